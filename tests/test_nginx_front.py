"""nginx in front of the directory cache: hits are files, misses go to the service, and no
stale tile stays on disk after a change (plain SQL, API writes, changes while stopped)."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from email.message import Message
from pathlib import Path
from typing import Any

import brotli
import httpx2
import mapbox_vector_tile
import psycopg
import pytest
import shapely
from shapely.affinity import affine_transform
from shapely.geometry import box, shape

from geo_core import grid
from geo_service.localdb import free_port
from tests.conftest import live_process
from tests.helpers import band_geoms, scrape, tile_envelope, value

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
TILES = "/collections/commune-2025/tiles/WebMercatorQuad"
EA_TILES = "/collections/enumeration-areas/tiles/WebMercatorQuad"
MVT = "application/vnd.mapbox-vector-tile"
HANOI_Z10 = (10, 813, 450)  # central Hà Nội, with Ba Đình (00004)
FAR_Z10 = (10, 818, 449)  # another part of the north, away from Ba Đình
EA_TILE = (13, 6504, 3605)  # Ba Đình at z13
EDIT_SQL = (
    "UPDATE admin_unit SET geom = ST_Multi(ST_Scale(geom, 'POINT(0.5 0.5)',"
    " ST_Centroid(geom))) WHERE vintage = '2025' AND level = 'commune'"
    " AND code = '00004'"
)
FRESH_WITHIN_S = 10.0

Response = tuple[int, Message, bytes]


def fetch(base: str, path: str, **headers: str) -> Response:
    """GET as sent on the wire: no decompression, every header kept."""
    parts = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        conn.request("GET", path, headers={"Accept-Encoding": "identity", **headers})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def tile_path(tile: tuple[int, int, int], prefix: str = TILES) -> str:
    return f"{prefix}/{tile[0]}/{tile[1]}/{tile[2]}"


class Front:
    """The service with the directory cache, and a real nginx in front of it."""

    def __init__(self, database_url: str, workdir: Path):
        self.database_url = database_url
        self.workdir = workdir
        self.root = workdir / "tiles"
        self.service = f"http://127.0.0.1:{free_port()}"
        self.nginx = f"http://127.0.0.1:{free_port()}"
        self.env = {
            "GEO_SERVICE_TILE_CACHE": "directory",
            "GEO_SERVICE_TILE_CACHE_PATH": str(self.root),
        }
        self._service = ExitStack()
        self.ready_status = 200  # what /health answers through nginx once it is up

    def file(self, tile: tuple[int, int, int], layer: str = "commune-2025") -> Path:
        z, x, y = tile
        return self.root / layer / "default" / str(z) / str(x) / f"{y}.mvt"

    def start_service(self) -> None:
        port = urllib.parse.urlsplit(self.service).port
        self._service.enter_context(live_process(self.database_url, port=port, **self.env))

    def stop_service(self) -> None:
        self._service.close()

    @contextmanager
    def running_nginx(self) -> Iterator[None]:
        """nginx with the configuration `geo-service tiles nginx-conf --standalone` prints."""
        prefix = self.workdir / "nginx"
        prefix.mkdir()
        command = [
            sys.executable,
            "-m",
            "geo_service",
            "tiles",
            "nginx-conf",
            "--standalone",
            "--workers",
            "1",
            "--listen",
            self.nginx.removeprefix("http://"),
            "--upstream",
            self.service,
        ]
        conf = subprocess.run(
            command, env={**os.environ, **self.env}, check=True, capture_output=True, text=True
        ).stdout
        (prefix / "nginx.conf").write_text(conf)
        log = (prefix / "stderr.log").open("wb")
        process = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
            stderr=log,
        )
        try:
            self._wait_for_nginx(process, prefix)
            yield
        finally:
            process.terminate()
            process.wait(timeout=15)
            log.close()

    def _wait_for_nginx(self, process: subprocess.Popen[bytes], prefix: Path) -> None:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError("nginx exited: " + (prefix / "stderr.log").read_text())
            try:
                if fetch(self.nginx, "/health")[0] == self.ready_status:
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)

    def counters(self) -> tuple[float, float]:
        """The service's tile cache hits and misses."""
        with httpx2.Client(base_url=self.service) as client:
            samples = scrape(client)
        return (
            value(samples, "geo_service_tile_cache_hits_total"),
            value(samples, "geo_service_tile_cache_misses_total"),
        )


@contextmanager
def running_front(database_url: str) -> Iterator[Front]:
    workdir = Path(tempfile.mkdtemp(prefix="geo-service-front-"))
    workdir.chmod(0o755)  # nginx's worker (nobody, when the tests run as root) reads the tiles
    front = Front(database_url, workdir)
    try:
        front.start_service()
        with front.running_nginx():
            yield front
    finally:
        front.stop_service()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def shared_front(demo_ro: str) -> Iterator[Front]:
    """For tests that only read; each uses tiles of its own."""
    with running_front(demo_ro) as front:
        yield front


@pytest.fixture
def front(demo_db: str) -> Iterator[Front]:
    """Over a database of its own, for tests that change data."""
    with running_front(demo_db) as front:
        yield front


def served_by_nginx(response: Response) -> bool:
    # the service sets X-Request-Id on every response; nginx serving a file does not
    return response[1]["X-Request-Id"] is None


def _static(front: Front, path: str, **headers: str) -> Response:
    """The tile through nginx once it is a file (the first request renders it)."""
    fetch(front.nginx, path)
    response = fetch(front.nginx, path, **headers)
    assert served_by_nginx(response)
    return response


# --- the configuration ----------------------------------------------------------------------


def _nginx_conf(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    settings = {
        "GEO_SERVICE_TILE_CACHE": "directory",
        "GEO_SERVICE_TILE_CACHE_PATH": str(tmp_path / "tiles"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "geo_service", "tiles", "nginx-conf", *args],
        env={**os.environ, **settings},
        capture_output=True,
        text=True,
    )


def test_the_server_block_includes_into_nginx(tmp_path: Path) -> None:
    done = _nginx_conf(
        tmp_path,
        "--listen",
        "127.0.0.1:8081",
        "--no-brotli",
        GEO_SERVICE_CORS_ORIGINS="https://a.example, https://b.example",
    )
    assert done.returncode == 0, done.stderr
    block = done.stdout
    assert "http {" not in block and "brotli" not in block and "load_module" not in block
    assert '"https://a.example" $http_origin;' in block and '"~."' not in block
    assert f'root "{tmp_path / "tiles"}";' in block
    conf = tmp_path / "nginx.conf"  # as a distribution's nginx.conf includes conf.d/*.conf
    (tmp_path / "geo-service.conf").write_text(block)
    conf.write_text(f"events {{}}\nhttp {{\n    include {tmp_path / 'geo-service.conf'};\n}}\n")
    checked = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(conf), "-g", f"pid {tmp_path / 'nginx.pid'};"],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), {"GEO_SERVICE_TILE_CACHE": "sqlite"}, "GEO_SERVICE_TILE_CACHE=directory"),
        (("--listen", "80; include /etc/passwd"), {}, "--listen"),
        (("--upstream", "http://127.0.0.1:8000/api"), {}, "--upstream"),
        (("--standalone", "--workers", "1;"), {}, "--workers"),
        ((), {"GEO_SERVICE_TILE_CACHE_PATH": "/srv/$host/tiles"}, "GEO_SERVICE_TILE_CACHE_PATH"),
        ((), {"GEO_SERVICE_TILE_CACHE_CONTROL": 'public"; evil'}, "GEO_SERVICE_TILE_CACHE_CONTROL"),
    ],
)
def test_bad_settings_are_refused(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    done = _nginx_conf(tmp_path, *args, **env)
    assert done.returncode == 2 and done.stdout == "" and message in done.stderr


# --- reads --------------------------------------------------------------------------------


def test_a_miss_is_rendered_then_nginx_serves_the_file(shared_front: Front) -> None:
    front = shared_front
    tile = (12, 3252, 1802)
    path = tile_path(tile)
    assert not front.file(tile).exists()
    status, headers, body = first = fetch(front.nginx, path)
    assert status == 200 and not served_by_nginx(first) and body
    assert front.file(tile).read_bytes() == body  # written before the answer
    counters = front.counters()
    again = fetch(front.nginx, path)
    assert served_by_nginx(again) and again[0] == 200 and again[2] == body
    assert front.counters() == counters  # the service saw nothing of it
    assert again[1]["Content-Type"] == MVT
    assert again[1]["Cache-Control"] == headers["Cache-Control"]
    assert again[1]["Vary"] == "Accept-Encoding, Origin"
    # no validator from the file's time: it could not tell two writes within a second apart
    assert again[1]["ETag"] is None and not again[1]["Last-Modified"]
    stale = fetch(
        front.nginx,
        path,
        **{"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT", "If-None-Match": "*"},
    )
    assert stale[0] == 200 and stale[2] == body


@pytest.mark.parametrize(
    ("accept", "encodings"), [("gzip", {"gzip"}), ("br", {"br"}), ("gzip, br", {"gzip", "br"})]
)
def test_compressed_files_are_negotiated(
    shared_front: Front, accept: str, encodings: set[str]
) -> None:
    path = tile_path((11, 1626, 901))
    raw = fetch(shared_front.service, path)[2]
    assert raw and _static(shared_front, path)[2] == raw
    status, headers, body = _static(shared_front, path, **{"Accept-Encoding": accept})
    encoding = headers["Content-Encoding"]
    assert status == 200 and encoding in encodings
    assert (brotli.decompress(body) if encoding == "br" else gzip.decompress(body)) == raw
    assert headers["Content-Type"] == MVT
    assert headers.get_all("Vary") == ["Accept-Encoding, Origin"]


def test_an_empty_tile_is_an_empty_200_like_the_service(shared_front: Front) -> None:
    tile = (10, 0, 0)  # the Arctic: no commune
    service = fetch(shared_front.service, tile_path(tile), **{"Accept-Encoding": "gzip, br"})
    status, headers, body = _static(
        shared_front, tile_path(tile), **{"Accept-Encoding": "gzip, br"}
    )
    assert (status, body) == (service[0], service[2]) == (200, b"")
    assert headers["Content-Type"] == service[1]["Content-Type"] == MVT
    assert headers["Content-Encoding"] is None and service[1]["Content-Encoding"] is None
    assert headers["Content-Length"] == "0"
    assert sorted(p.name for p in shared_front.file(tile).parent.iterdir()) == ["0.epoch", "0.mvt"]


def test_tiles_with_parameters_and_other_urls_go_to_the_service(shared_front: Front) -> None:
    front = shared_front
    path = tile_path((10, 815, 451)) + "?properties=code"
    first = fetch(front.nginx, path)
    hits = front.counters()[0]
    second = fetch(front.nginx, path)
    assert not served_by_nginx(first) and not served_by_nginx(second)
    assert second[2] == first[2] and front.counters()[0] == hits + 1  # the service's hit
    layer = mapbox_vector_tile.decode(second[2])["commune-2025"]
    assert all(set(f["properties"]) == {"code"} for f in layer["features"])
    assert not front.file((10, 815, 451)).exists()  # the default variant was never asked for
    status, headers, body = fetch(front.nginx, "/collections")
    assert status == 200 and headers["X-Request-Id"] and b"commune-2025" in body
    status, headers, body = fetch(front.nginx, f"{TILES}/23/0/0")  # bad input: the service's
    assert status == 400 and b'"parameter"' in body


def test_cors_headers_match_the_service(shared_front: Front) -> None:
    path = tile_path((9, 406, 225))
    origin = {"Origin": "https://maps.example.org"}
    service = fetch(shared_front.service, path, **origin)[1]
    nginx = _static(shared_front, path, **origin)[1]
    for name in ("Access-Control-Allow-Origin", "Access-Control-Expose-Headers"):
        assert nginx[name] == service[name] and nginx[name]
    assert _static(shared_front, path)[1]["Access-Control-Allow-Origin"] is None
    assert fetch(shared_front.service, path)[1]["Access-Control-Allow-Origin"] is None


# --- nginx's own errors --------------------------------------------------------------------


def _raw(base: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (HTTP that http.client would refuse to write) and read the
    answer until nginx closes the connection."""
    parts = urllib.parse.urlsplit(base)
    answer = b""
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(request)
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def _get(base: str, path: str | bytes) -> bytes:
    """A GET request's bytes, the connection closed after the answer."""
    target = path.encode() if isinstance(path, str) else path
    host = urllib.parse.urlsplit(base).netloc.encode()
    return b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"


@contextmanager
def nginx_before_a_stopped_service(**env: str) -> Iterator[str]:
    """nginx from the generated configuration, with no service behind it."""
    workdir = Path(tempfile.mkdtemp(prefix="geo-service-nginx-"))
    workdir.chmod(0o755)
    front = Front("postgresql://unused", workdir)
    front.env.update(env)
    front.service = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    front.ready_status = 502
    try:
        with front.running_nginx():
            yield front.nginx
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _json_error(answer: tuple[int, dict[str, str], bytes], status: int) -> dict[str, Any]:
    got, headers, body = answer
    assert got == status, body
    assert headers["content-type"] == "application/json"
    assert headers["server"] == "nginx"  # (server_tokens off: no version)
    document: dict[str, Any] = json.loads(body)
    assert document["status"] == status and document["detail"]
    assert document["code"] == document["title"] and document["description"] == document["detail"]
    return document


def test_errors_nginx_answers_itself_are_json() -> None:
    with nginx_before_a_stopped_service(GEO_SERVICE_MAX_BODY_BYTES="1000") as base:
        host = urllib.parse.urlsplit(base).netloc.encode()
        big = b"x" * 5000  # over nginx's limit (twice the service's)
        too_large = _raw(
            base,
            b"POST /aggregate HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: application/json"
            b"\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n" + big,
        )
        assert _json_error(too_large, 413)["parameter"] == "body"
        two_lengths = b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
        assert _json_error(_raw(base, two_lengths), 400)["parameter"] == "request"
        assert _json_error(_raw(base, b"NOT HTTP\r\n\r\n"), 400)["parameter"] == "request"
        long_uri = _raw(base, _get(base, b"/" + b"a" * 20000))
        assert _json_error(long_uri, 414)["parameter"] == "path"
        for path in ("/health", tile_path((10, 813, 450)), EA_TILES + "/10/813/450"):
            _json_error(_raw(base, _get(base, path)), 502)  # (a tile: after its redirect)


def test_the_services_own_errors_pass_through_nginx(shared_front: Front) -> None:
    for path in ("/collections/no-such-thing/items", f"{TILES}/23/0/0", "/nowhere"):
        direct = fetch(shared_front.service, path)
        status, headers, body = fetch(shared_front.nginx, path)
        assert status == direct[0] and status in (400, 404)
        assert (
            headers["X-Request-Id"]
            and json.loads(body)["detail"] == json.loads(direct[2])["detail"]
        )
        assert headers["Server"] == "nginx"


# --- changes ------------------------------------------------------------------------------


def _commune_in_tile(body: bytes, code: str, tile: tuple[int, int, int]) -> Any:
    """A commune's geometry in a tile, back in EPSG:3857."""
    features = mapbox_vector_tile.decode(body)["commune-2025"]["features"]
    (geometry,) = [f["geometry"] for f in features if f["properties"]["code"] == code]
    x0, y0, x1, y1 = tile_envelope(*tile)
    scale = (x1 - x0) / 4096  # decoded with y up, from the tile's lower left corner
    return affine_transform(shape(geometry), [scale, 0, 0, scale, x0, y0])


def _matches_database(front: Front, body: bytes, tile: tuple[int, int, int]) -> bool:
    """True when Ba Đình in the tile is the one in the database (to a pixel's precision)."""
    drawn = _commune_in_tile(body, "00004", tile)
    stored = band_geoms(front.database_url, tile[0])["00004"].intersection(
        box(*tile_envelope(*tile)).buffer(10_000)
    )
    return bool(shapely.symmetric_difference(drawn, stored).area < 0.05 * stored.area)


def test_a_plain_sql_change_is_purged_from_the_files(front: Front) -> None:
    stale = _static(front, tile_path(HANOI_Z10))[2]
    assert _matches_database(front, stale, HANOI_Z10)
    far = _static(front, tile_path(FAR_Z10))[2]
    far_written = front.file(FAR_Z10).stat().st_mtime_ns
    with psycopg.connect(front.database_url, autocommit=True) as conn:
        conn.execute(EDIT_SQL)
    deadline = time.monotonic() + FRESH_WITHIN_S
    while (body := fetch(front.nginx, tile_path(HANOI_Z10))[2]) == stale:
        assert time.monotonic() < deadline, "still the old tile through nginx"
        time.sleep(0.02)
    assert _matches_database(front, body, HANOI_Z10)
    assert not _matches_database(front, stale, HANOI_Z10)
    assert front.file(FAR_Z10).stat().st_mtime_ns == far_written  # untouched by the purge
    assert _static(front, tile_path(FAR_Z10))[2] == far


def test_deep_tiles_are_purged_from_the_files_too(front: Front) -> None:
    # a z18 tile on Ba Đình's western edge, which the edit moves a kilometre inwards
    west = shapely.get_coordinates(shapely.from_wkb(band_wkb(front, "00004")))
    x, y = west[west[:, 0].argmin()]
    tile = (18, *grid.tile_range((x, y, x, y), 18)[:2])
    stale = _static(front, tile_path(tile))
    assert served_by_nginx(stale) and stale[2]
    with psycopg.connect(front.database_url, autocommit=True) as conn:
        conn.execute(EDIT_SQL)
    deadline = time.monotonic() + FRESH_WITHIN_S
    while fetch(front.nginx, tile_path(tile))[2] == stale[2]:
        assert time.monotonic() < deadline, "still the old z18 tile through nginx"
        time.sleep(0.02)


def band_wkb(front: Front, code: str) -> bytes:
    with psycopg.connect(front.database_url) as conn:
        row = conn.execute(
            "SELECT ST_AsBinary(geom) FROM admin_unit WHERE vintage = '2025'"
            " AND level = 'commune' AND code = %s",
            (code,),
        ).fetchone()
    assert row is not None
    return bytes(row[0])


def _ea_statuses(body: bytes) -> dict[str, str]:
    if not body:
        return {}
    features = mapbox_vector_tile.decode(body)["enumeration-areas"]["features"]
    return {f["properties"]["code"]: f["properties"]["status"] for f in features}


def test_an_api_write_is_purged_before_its_answer(front: Front) -> None:
    from geo_service.users import add_user

    with psycopg.connect(front.database_url, autocommit=True) as conn:
        token = add_user(conn, "front-admin", "admin", [])
        row = conn.execute(
            "SELECT ST_AsGeoJSON(ST_Intersection(geom, ST_MakeEnvelope("
            "0, -90, ST_X(ST_Centroid(geom)), 90, 4326))) FROM commune_coverage"
            " WHERE vintage = '2025' AND code = '00004'"
        ).fetchone()
    assert row is not None
    auth = {"Authorization": f"Bearer {token}"}
    path = tile_path(EA_TILE, EA_TILES)
    assert _static(front, path)[2] == b""
    items = "/collections/enumeration-areas/items"
    with httpx2.Client(base_url=front.nginx, headers=auth) as api:  # the API through nginx
        feature = {
            "type": "Feature",
            "geometry": json.loads(row[0]),
            "properties": {"census_round": "2029", "commune_code": "00004"},
        }
        created = api.post(items, json=feature)
        assert created.status_code == 201, created.text
        assert _ea_statuses(fetch(front.nginx, path)[2]) == {"00004-001": "draft"}
        assert _ea_statuses(_static(front, path)[2]) == {"00004-001": "draft"}
        ea = created.json()["id"]
        submitted = api.post(f"{items}/{ea}/submit", headers={"If-Match": created.headers["ETag"]})
        assert submitted.status_code == 200
        # right after the answer, without waiting: nginx no longer has the old file
        assert _ea_statuses(fetch(front.nginx, path)[2]) == {"00004-001": "submitted"}
        assert _ea_statuses(_static(front, path)[2]) == {"00004-001": "submitted"}
        deleted = api.delete(f"{items}/{ea}", headers={"If-Match": submitted.headers["ETag"]})
        assert deleted.status_code == 204
        assert fetch(front.nginx, path)[2] == b""


def test_changes_made_while_stopped_are_purged_at_start(front: Front) -> None:
    stale = _static(front, tile_path(HANOI_Z10))[2]
    far = _static(front, tile_path(FAR_Z10))[2]
    front.stop_service()
    with psycopg.connect(front.database_url, autocommit=True) as conn:
        conn.execute(EDIT_SQL)
    # no instance runs: nginx serves the tree as it is (the documented trade-off)
    assert fetch(front.nginx, tile_path(HANOI_Z10))[2] == stale
    front.start_service()
    assert not front.file(HANOI_Z10).exists()  # purged before the service took requests
    assert front.file(FAR_Z10).read_bytes() == far
    assert _matches_database(front, fetch(front.nginx, tile_path(HANOI_Z10))[2], HANOI_Z10)

"""/metrics, request ids, JSON request logs and security headers."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from geo_service.http.app import create_app
from geo_service.http.observability import ACCESS_LOGGER
from geo_service.http.security import content_security_policy
from geo_service.localdb import free_port
from geo_service.settings import ServiceSettings
from tests.helpers import get_metrics, scrape, value

TILE = "/collections/commune-2025/tiles/WebMercatorQuad/10/813/450"  # central Hà Nội


def test_metrics_count_requests_by_route_template(client: TestClient) -> None:
    route = "/collections/{collectionId}/items/{featureId}"
    ok = {"method": "GET", "route": route, "status": "200"}
    before = scrape(client)
    for code in ("00004", "00004"):
        assert client.get(f"/collections/commune-2025/items/{code}").status_code == 200
    assert client.get("/collections/commune-2025/items/99999").status_code == 404
    assert client.get("/no/such/page/12345").status_code == 404
    after = scrape(client)
    assert (
        value(after, "geo_service_http_requests_total", **ok)
        == value(before, "geo_service_http_requests_total", **ok) + 2
    )
    assert (
        value(after, "geo_service_http_requests_total", method="GET", route=route, status="404")
        >= 1
    )
    assert (
        value(after, "geo_service_http_request_duration_seconds_count", **ok)
        == value(before, "geo_service_http_request_duration_seconds_count", **ok) + 2
    )
    assert value(
        after, "geo_service_http_request_duration_seconds_bucket", le="+Inf", **ok
    ) == value(after, "geo_service_http_request_duration_seconds_count", **ok)
    assert (
        value(
            after, "geo_service_http_requests_total", method="GET", route="unmatched", status="404"
        )
        >= 1
    )
    routes = {dict(labels).get("route") for _, labels in after}
    assert not any(r and ("00004" in r or "12345" in r) for r in routes)  # no raw paths


def test_metrics_survive_gzip_and_speak_openmetrics(client: TestClient) -> None:
    for _ in range(30):  # enough series for the body to pass GZip's minimum size
        client.get("/collections/province-2025/items/01")
    gz = get_metrics(client, headers={"Accept-Encoding": "gzip"})
    assert gz.headers.get("content-encoding") == "gzip"
    assert "geo_service_http_requests_total" in gz.text
    om = get_metrics(client, headers={"Accept": "application/openmetrics-text"})
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.rstrip().endswith("# EOF")


def test_pool_metrics(client: TestClient) -> None:
    # Counted from this test's own request, so the test holds whatever ran before it.
    before = scrape(client)
    assert client.get("/collections/commune-2025/items/00004").status_code == 200
    samples = scrape(client)
    settings: ServiceSettings = client.app.state.services.settings  # type: ignore[attr-defined]
    assert value(samples, "geo_service_db_pool_max") == settings.pool_max_size
    assert value(samples, "geo_service_db_pool_size") >= 1
    assert value(samples, "geo_service_db_requests_num_total") >= (
        value(before, "geo_service_db_requests_num_total") + 1
    )
    assert ("geo_service_db_requests_waiting", ()) in samples


@pytest.fixture
def tile_app(demo_db: str, tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    settings = ServiceSettings(home=tmp_path, tile_cache="sqlite", access_log=False)
    with TestClient(create_app(settings, db_url=demo_db)) as tile_client:
        yield tile_client, demo_db


def test_tile_cache_and_invalidation_metrics(tile_app: tuple[TestClient, str]) -> None:
    client, url = tile_app
    start = scrape(client)
    assert client.get(TILE).status_code == 200
    assert client.get(TILE).status_code == 200
    cached = scrape(client)
    assert (
        value(cached, "geo_service_tile_cache_misses_total")
        == value(start, "geo_service_tile_cache_misses_total") + 1
    )
    assert (
        value(cached, "geo_service_tile_cache_hits_total")
        == value(start, "geo_service_tile_cache_hits_total") + 1
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE admin_unit SET name = name || ' (test)' WHERE vintage = '2025'"
            " AND level = 'commune' AND code = '00004'"
        )
    # The notification arrives asynchronously; a tile request syncs the change log at once.
    assert client.get(TILE).status_code == 200
    for _ in range(200):
        changed = scrape(client)
        if value(changed, "geo_service_tile_change_notifications_total") > value(
            cached, "geo_service_tile_change_notifications_total"
        ):
            break
        time.sleep(0.05)
    assert value(changed, "geo_service_tile_change_notifications_total") >= 1
    assert value(changed, "geo_service_tile_changes_total") >= 1
    assert value(changed, "geo_service_tile_invalidated_tiles_total") >= 1
    assert (
        value(changed, "geo_service_tile_cache_misses_total")
        == value(cached, "geo_service_tile_cache_misses_total") + 1
    )
    assert value(changed, "geo_service_tile_cache_corrupt_total", backend="sqlite") == 0


def test_request_id_echoed_or_generated(client: TestClient) -> None:
    given = client.get("/health", headers={"X-Request-Id": "req-42.a:b"})
    assert given.headers["X-Request-Id"] == "req-42.a:b"
    for bad in ("has space", "x" * 65, "<script>", "é"):
        response = client.get("/health", headers={"X-Request-Id": bad.encode()})
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-Id"]), bad
    one, two = client.get("/"), client.get("/")
    assert one.headers["X-Request-Id"] != two.headers["X-Request-Id"]


class Lines(logging.Handler):
    """Keeps the formatted access-log lines."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def access_lines() -> Iterator[list[str]]:
    handler = Lines()
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def test_one_json_log_line_per_request(client: TestClient, access_lines: list[str]) -> None:
    client.get("/collections/commune-2025/items/00004", headers={"X-Request-Id": "log-test-1"})
    mine = [json.loads(line) for line in access_lines if "log-test-1" in line]
    assert len(mine) == 1
    line = mine[0]
    assert line["request_id"] == "log-test-1" and line["method"] == "GET"
    assert line["route"] == "/collections/{collectionId}/items/{featureId}"
    assert line["path"] == "/collections/commune-2025/items/00004"
    assert line["status"] == 200 and isinstance(line["duration_ms"], float)
    assert "\n" not in access_lines[-1]


def test_head_requests_are_logged_and_counted_by_their_route(
    client: TestClient, access_lines: list[str]
) -> None:
    # (HEAD runs as the GET it stands for: the route it matched must reach the log line)
    route = "/collections/{collectionId}/items/{featureId}"
    before = scrape(client)
    answer = client.head("/collections/commune-2025/items/00004", headers={"X-Request-Id": "h-1"})
    assert answer.status_code == 200 and answer.content == b""
    (line,) = [json.loads(line) for line in access_lines if "h-1" in line]
    assert (line["method"], line["route"], line["status"]) == ("HEAD", route, 200)
    head = {"method": "HEAD", "route": route, "status": "200"}
    assert value(scrape(client), "geo_service_http_requests_total", **head) == (
        value(before, "geo_service_http_requests_total", **head) + 1
    )


@pytest.fixture
def no_database(tmp_path: Path) -> Iterator[TestClient]:
    dead = f"postgresql://nobody:x@127.0.0.1:{free_port()}/nothing"
    settings = ServiceSettings(
        home=tmp_path, tile_cache="none", access_log=False, pool_timeout_s=0.5
    )
    app = create_app(settings, db_url=dead)

    @app.get("/boom", include_in_schema=False)
    async def boom() -> None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def test_5xx_bodies_carry_the_request_id(no_database: TestClient) -> None:
    down = no_database.get("/collections/province-2025/items", headers={"X-Request-Id": "r-503"})
    assert down.status_code == 503 and down.headers["Retry-After"]
    assert down.json()["request_id"] == "r-503" == down.headers["X-Request-Id"]
    health = no_database.get("/health")
    assert health.status_code == 503
    assert health.json()["request_id"] == health.headers["X-Request-Id"]
    bug = no_database.get("/boom")
    assert bug.status_code == 500 and "a bug" not in bug.text
    assert bug.json()["request_id"] == bug.headers["X-Request-Id"]
    samples = scrape(no_database)
    assert (
        value(samples, "geo_service_http_requests_total", method="GET", route="/boom", status="500")
        == 1
    )
    assert (
        value(
            samples,
            "geo_service_http_requests_total",
            method="GET",
            route="/collections/{collectionId}/items",
            status="503",
        )
        == 1
    )


def _assert_security_headers(response: Any) -> None:
    csp = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["frame-ancestors"] == "'self'"
    for sources in directives.values():  # no other host anywhere
        assert not re.search(r"https?:|\*", sources), csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert response.headers["Referrer-Policy"] == "same-origin"


@pytest.mark.parametrize("path", ["/map", "/map?lang=en&level=commune", "/api.html"])
def test_html_pages_send_security_headers(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    _assert_security_headers(response)


def test_api_html_uses_only_local_assets(client: TestClient) -> None:
    page = client.get("/api.html").text
    urls = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls)
    for url in urls:
        assert client.get(url).status_code == 200, url
    assert "cdn" not in page and "http" not in page


def test_basemap_host_is_the_only_exception() -> None:
    csp = content_security_policy("https://{s}.tile.example.org/{z}/{x}/{y}.png")
    assert "img-src 'self' data: blob: https://*.tile.example.org;" in csp
    assert "connect-src 'self';" in csp
    assert "https://tiles.example.net;" in content_security_policy(
        "https://tiles.example.net/{z}/{x}/{y}.png"
    )


def test_metrics_token_keeps_other_scrapers_out(demo_ro: str, tmp_path: Path) -> None:
    settings = ServiceSettings(home=tmp_path, metrics_token="s3cret-scrape")
    with TestClient(create_app(settings, db_url=demo_ro)) as guarded:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-scrape"}):
            refused = guarded.get("/metrics", headers=headers)
            assert refused.status_code == 401
            assert refused.json()["parameter"] == "Authorization"
            assert "geo_service_" not in refused.text
        allowed = guarded.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
        assert allowed.status_code == 200 and "geo_service_http_requests_total" in allowed.text
        assert guarded.get("/health").status_code == 200  # nothing else needs it


def test_metrics_without_a_token_are_for_this_machine_only(demo_ro: str, tmp_path: Path) -> None:
    """Without GEO_SERVICE_METRICS_TOKEN, /metrics answers a scraper on the loopback and
    nobody else: not another host, not a client forwarded by a proxy (trusted or not)."""
    settings = ServiceSettings(home=tmp_path, trusted_proxies="127.0.0.1")
    app = create_app(settings, db_url=demo_ro)
    with TestClient(app, client=("127.0.0.1", 40000)) as local:
        assert local.get("/metrics").status_code == 200
        for forwarded in (
            {"X-Forwarded-For": "203.0.113.9"},
            {"X-Forwarded-For": "127.0.0.1"},  # (what a client behind the proxy may send)
            {"Forwarded": "for=127.0.0.1"},
            {"X-Real-IP": "127.0.0.1"},
        ):
            refused = local.get("/metrics", headers=forwarded)
            assert refused.status_code == 403, forwarded
            assert refused.json()["parameter"] == "Authorization"
            assert "GEO_SERVICE_METRICS_TOKEN" in refused.json()["detail"]
            assert "geo_service_" not in refused.text
    for peer in ("203.0.113.9", "10.89.0.7", "::ffff:8.8.8.8"):
        with TestClient(app, client=(peer, 40000)) as remote:
            assert remote.get("/metrics").status_code == 403, peer
            assert remote.get("/health").status_code == 200

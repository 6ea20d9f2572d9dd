"""Attacks and operators' mishaps the service must withstand (issue #22), each against a
real service process, database, cache or client socket."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.conftest import PgCluster, serve

TILE = "/collections/commune-2025/tiles/WebMercatorQuad/6/50/28"
FULL = "/collections/commune-2025/items?limit=10000"


def _get(url: str, timeout: float = 15.0, headers: dict[str, str] | None = None
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


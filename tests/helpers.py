"""Small helpers shared by tests."""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import subprocess
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
import redis
import shapely
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql

BOUNDARY_TABLES = ("vintage", "admin_unit", "admin_unit_generalised", "crosswalk")
T = TypeVar("T")


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a loop in a thread of its own: in a worker that has run a browser
    test, Playwright's loop runs in the main thread and asyncio.run() is refused there."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def fingerprint(
    conn: psycopg.Connection, tables: tuple[str, ...] = BOUNDARY_TABLES
) -> dict[str, tuple[int, str]]:
    """Row count and checksum of every row of each table: equal means byte-for-byte unchanged."""
    result = {}
    for table in tables:
        query = sql.SQL(
            "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '')"
            " FROM {} t"
        ).format(sql.Identifier(table))
        row = conn.execute(query).fetchone()
        assert row is not None
        result[table] = (int(row[0]), str(row[1]))
    return result


def get_metrics(client: Any, headers: dict[str, str] | None = None) -> Any:
    """GET /metrics as a scraper on the service's machine: a test client's requests come
    from "testclient", which /metrics without a token refuses like any other host."""
    return get_locally(client, "/metrics", headers)


def get_health(client: Any, headers: dict[str, str] | None = None) -> Any:
    """GET /health as an operator on the service's machine (who is told the versions and
    the replicas; a test client's "testclient" is told only the status)."""
    return get_locally(client, "/health", headers)


def get_locally(client: Any, path: str, headers: dict[str, str] | None = None) -> Any:
    """GET `path` through a test client as a client on the service's machine (127.0.0.1)."""
    transport = getattr(client, "_transport", None)
    peer = getattr(transport, "client", None)
    if peer is not None:
        transport.client = ("127.0.0.1", 50000)  # type: ignore[union-attr]
    try:
        return client.get(path, headers=headers or {})
    finally:
        if peer is not None:
            transport.client = peer  # type: ignore[union-attr]


def scrape(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, keyed by name and sorted labels (the text must parse)."""
    response = get_metrics(client, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@contextmanager
def redis_server() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A throwaway Redis server (Debian's redis-server) on a free port: its URL and process."""
    from geo_service.localdb import free_port

    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory",
            "256mb",
            "--maxmemory-policy",
            "allkeys-lru",
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=10)


def tile_envelope(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """A WebMercatorQuad tile's bounds in EPSG:3857."""
    size = 2 * 20037508.342789244 / (1 << z)
    x0 = -20037508.342789244 + x * size
    y1 = 20037508.342789244 - y * size
    return x0, y1 - size, x0 + size, y1


def band_geoms(url: str, z: int) -> dict[str, Any]:
    """code → generalised geometry (EPSG:3857) of every 2025 commune drawn at zoom z."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT g.code, ST_AsBinary(g.geom_3857) FROM admin_unit_generalised g JOIN zoom_band"
            " b USING (band) WHERE g.vintage = '2025' AND g.level = 'commune' AND %s BETWEEN"
            " b.min_zoom AND b.max_zoom",
            (z,),
        ).fetchall()
    return {code: shapely.from_wkb(wkb) for code, wkb in rows}


def wait_protected(url: str, timeout_s: float = 60) -> None:
    """Wait until a running service has protected what a plain-SQL write left pending: until
    then `published_value` withholds every value of the indicators the write touched."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(url, autocommit=True) as conn:
        while conn.execute("SELECT 1 FROM disclosure_pending LIMIT 1").fetchone():
            assert time.monotonic() < deadline, "the service did not protect the written values"
            time.sleep(0.05)

"""Large downloads keep the server's memory flat: GeoJSON, CSV with WKT and GeoPackage
bodies many times the in-memory spool, read in bounded batches and spooled to disk.

The bodies are made from the demo communes with densified boundaries (every edge cut into
short segments), so a few thousand rows weigh tens of megabytes. By default the GeoJSON
body is about 24 MiB; `DOWNLOAD_MEMORY_MB=100 .venv/bin/pytest tests/test_download_memory.py`
runs the issue's 100 MB bodies (minutes of CPU on a busy machine: not for every CI run).
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import PgCluster, live_process

BODY_MIB = float(os.environ.get("DOWNLOAD_MEMORY_MB", "24"))
SPOOL_MIB = 1  # the in-memory part of a spooled body: the bodies are 20 to 150 times larger
# Beyond the spool, what a download may hold at once: a batch of about 1 MiB of rows (as
# libpq's result and as Python text), the largest unit's geometry a few times over (one
# commune's boundary is about 0.3 MiB of WKT per 10 MiB of GeoJSON body), and the
# allocator's slack. Before the batches were bounded in bytes and the spool moved to disk
# chunk by chunk, a 24 MiB body grew the server by 30 to 80 MiB, a 100 MiB one by 150 to
# 400 MiB.
BOUND_MIB = SPOOL_MIB + 14 + 0.12 * BODY_MIB
PATH = "/collections/commune-2025/items"
# bytes of GeoJSON per boundary vertex in the demo's communes (9.6 MiB for 452,000 vertices)
BYTES_PER_VERTEX = 22


@pytest.fixture
def dense_communes(pg: PgCluster, demo_template: str) -> Iterator[str]:
    """A demo copy whose 2025 communes have boundaries densified so the GeoJSON of all of
    them is about BODY_MIB."""
    url = pg.create_database(demo_template)
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT sum(ST_Perimeter(geom)), sum(ST_NPoints(geom)) FROM admin_unit"
            " WHERE vintage = '2025' AND level = 'commune'"
        ).fetchone()
        assert row is not None
        perimeter, vertices = float(row[0]), int(row[1])
        added = BODY_MIB * 2**20 / BYTES_PER_VERTEX - vertices
        # (the triggers would regeneralise every unit and log tile changes: not needed here,
        # the service starts afterwards)
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            "UPDATE admin_unit SET geom = ST_Multi(ST_Segmentize(geom, %s))"
            " WHERE vintage = '2025' AND level = 'commune'",
            (perimeter / added,),
        )
    yield url
    pg.drop_database(url)


def _memory_mib(pid: int) -> dict[str, float]:
    """The process's resident memory now (VmRSS) and at its highest (VmHWM), in MiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(rest.split()[0]) / 1024
    return found


def _download(url: str) -> int:
    """Read a body to its end in pieces (as a client saving a file does); its size."""
    size = 0
    with urllib.request.urlopen(url, timeout=600) as response:
        assert response.status == 200
        while piece := response.read(1 << 20):
            size += len(piece)
    return size


def test_large_downloads_keep_the_servers_memory_flat(dense_communes: str) -> None:
    formats = {
        "GeoJSON": "f=json&limit=10000",
        "CSV with WKT": "f=csv&wkt=true",
        "GeoPackage": "f=gpkg",
    }
    spool = str(SPOOL_MIB)
    with live_process(dense_communes, GEO_SERVICE_DOWNLOAD_SPOOL_MB=spool) as (base, process):
        for query in formats.values():  # (what a first download imports and caches)
            _download(f"{base}{PATH}?{query}&limit=5")
        grown = {}
        for name, query in formats.items():
            Path(f"/proc/{process.pid}/clear_refs").write_text("5")  # (VmHWM := VmRSS)
            before = _memory_mib(process.pid)["VmHWM"]
            size = _download(f"{base}{PATH}?{query}")
            grown[name] = (size / 2**20, _memory_mib(process.pid)["VmHWM"] - before)
    assert grown["GeoJSON"][0] > 0.7 * BODY_MIB, grown  # (the bodies are as large as meant)
    assert all(growth < BOUND_MIB for _, growth in grown.values()), (BOUND_MIB, grown)

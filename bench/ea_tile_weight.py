"""EA tiles over central Hà Nội, z5–z12: features, weight and time of the tile statement.

Usage: .venv/bin/python -m bench.ea_tile_weight DATABASE_URL [--repeat N] [--lon X --lat Y]

The database is one with enumeration areas (the benchmark's cached dump of the demo with
Hà Nội's generated EAs, restored) on this machine. For each zoom, the tile holding the
point: how many EAs it decodes to, its size raw and gzipped, and the best of `--repeat` runs
of `ea_tile_sql` on one connection (the statement alone, no HTTP), in wall time and in CPU
time of the PostgreSQL backend (read from /proc: on a shared machine CPU time swings much
less with the load than wall time). The tree it runs from is the one measured: run it from
another checkout (`PYTHONPATH=that/tree`) for the other side.
"""

from __future__ import annotations

import argparse
import gzip
import os
import time
from pathlib import Path

import mapbox_vector_tile
import psycopg

from geo_core import grid
from geo_service.tiles.sql import EA_LAYER, EA_MIN_ZOOM, MvtOptions, ea_tile_sql


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    """Print one line per zoom."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lon", type=float, default=105.85)
    parser.add_argument("--lat", type=float, default=21.03)
    args = parser.parse_args()
    with psycopg.connect(args.url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        backend = int(row[0])
        for z in range(EA_MIN_ZOOM, 13):
            x, y = next(grid.tiles_in((args.lon, args.lat, args.lon, args.lat), z))
            statement, params = ea_tile_sql(z, x, y, MvtOptions(), None)
            best, cpu, raw = float("inf"), float("inf"), b""
            for _ in range(args.repeat):
                started, used = time.perf_counter(), cpu_seconds(backend)
                row = conn.execute(statement, params).fetchone()
                best = min(best, time.perf_counter() - started)
                cpu = min(cpu, cpu_seconds(backend) - used)
                raw = bytes(row[1]) if row and row[1] is not None else b""
            layer = mapbox_vector_tile.decode(raw).get(EA_LAYER) if raw else None
            features = len(layer["features"]) if layer else 0
            print(
                f"{z}/{x}/{y}: {features:,} EAs, {len(raw) / 1024:,.0f} KB raw, "
                f"{len(gzip.compress(raw, 6)) / 1024:,.0f} KB gzip, "
                f"best of {args.repeat}: {best * 1000:,.0f} ms, {cpu * 1000:,.0f} ms CPU"
            )


if __name__ == "__main__":
    main()

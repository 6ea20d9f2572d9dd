"""PostgreSQL CPU of the EA tile statement over the harness's EA tile list, beside a
statement drawing the same tiles as tipg does (issue #25).

The backend's own CPU seconds (from /proc), so the load of other work on the machine moves
them less than wall times. Needs a database with `bench.eas` (the harness's: restore its
cached dump, then `bench.run.BENCH_TABLES_SQL`), on this machine. The tree measured is the
one on PYTHONPATH: run it from each tree for a before/after.

    PYTHONPATH=. .venv/bin/python -m bench.ea_tile_cpu DATABASE_URL --repeat 3
"""

from __future__ import annotations

import argparse
import os
from collections import defaultdict

import psycopg

from bench import tiles as tl
from bench.run import EA_TILES
from geo_service.tiles.sql import MvtOptions, ea_tile_sql

# What tipg 1.6.1 runs for a tile of `bench.eas` (every column, no simplification)
TIPG_LIKE = """
WITH t AS (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS e)
SELECT ST_AsMVT(f.*, 'default', 4096, 'geom') FROM (
    SELECT ST_AsMVTGeom(ST_Transform(geom, 3857), t.e, 4096, 256, true) AS geom,
           id, code, status, commune_code, census_round, households, version
    FROM bench.eas, t WHERE ST_Intersects(geom, ST_Transform(t.e, 4326))) f
"""
RANGES = {"z5–z9": range(5, 10), "z10–z12": range(10, 13)}


def _cpu(pid: int) -> float:
    """User + system CPU seconds of a local process."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    """Print the CPU of each statement over the tile list, per zoom range, min–max."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database_url")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        pid = int(row[0])
        tiles = tl.make_tile_list(conn, "bench.eas", EA_TILES)[0]
        spent: dict[tuple[str, str], list[float]] = defaultdict(list)
        for _ in range(args.repeat):
            for label, zooms in RANGES.items():
                chosen = [t for t in tiles if t[0] in zooms]
                for who in ("ours", "tipg-like"):
                    start = _cpu(pid)
                    for z, x, y in chosen:
                        statement, params = ea_tile_sql(z, x, y, MvtOptions(), None)
                        if who == "tipg-like":
                            conn.execute(TIPG_LIKE, params).fetchone()
                        else:
                            conn.execute(statement, params).fetchone()
                    spent[label, who].append(_cpu(pid) - start)
        for label, zooms in RANGES.items():
            count = sum(1 for t in tiles if t[0] in zooms)
            ours, theirs = spent[label, "ours"], spent[label, "tipg-like"]
            print(
                f"{label} ({count} tiles): ours {min(ours):.2f}–{max(ours):.2f} s, "
                f"tipg-like {min(theirs):.2f}–{max(theirs):.2f} s"
            )


if __name__ == "__main__":
    main()

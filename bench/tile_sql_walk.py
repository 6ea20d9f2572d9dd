"""The tile statement alone, walked over the benchmark's tile list on one connection.

Usage: .venv/bin/python -m bench.tile_sql_walk DATABASE_URL [--passes 3] [--layer commune-2025]

Runs `geo_service.tiles.sql.tile_sql` for every tile of bench/results/tile_list.txt (written
by `bench/tiles.py` and `scripts/bench.sh`) in order, on one connection, no HTTP and no
cache: what a cold walk costs the database. Prints the seconds of each pass and, for the
last, per zoom. Run it on two databases in turn (e.g. one migrated before a change and one
after) to compare them side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import defaultdict
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.tiles import TILE_LIST  # noqa: E402
from geo_service.features.catalogue import read_collection  # noqa: E402
from geo_service.features.query import RawItemParams, build_item_query  # noqa: E402
from geo_service.tiles.sql import MvtOptions, tile_sql  # noqa: E402


async def walk(url: str, layer: str, passes: int) -> None:
    """Print each pass's seconds and the last one's per zoom."""
    tiles = [tuple(map(int, line.split("/"))) for line in TILE_LIST.read_text().split()]
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        query = await build_item_query(conn, await read_collection(conn, layer), RawItemParams())
        for i in range(passes):
            per_zoom: dict[int, float] = defaultdict(float)
            started = time.perf_counter()
            for z, x, y in tiles:
                statement, params = tile_sql(query, z, x, y, MvtOptions())
                t0 = time.perf_counter()
                await (await conn.execute(statement, params)).fetchone()
                per_zoom[z] += time.perf_counter() - t0
            print(f"pass {i + 1}: {len(tiles)} tiles in {time.perf_counter() - started:.2f} s")
        print("per zoom (s):", {z: round(s, 2) for z, s in sorted(per_zoom.items())})


def main() -> None:
    """Parse the options and walk."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("url")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--layer", default="commune-2025")
    args = parser.parse_args()
    asyncio.run(walk(args.url, args.layer, args.passes))


if __name__ == "__main__":
    main()

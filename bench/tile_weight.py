"""The heaviest tile per zoom: every tile of a collection z0–z12, raw and gzip, against the budget.

Usage: .venv/bin/python bench/tile_weight.py [--database-url URL] [--collection commune-2025]
       [--zooms 0-12] [--output FILE]

Without `--database-url` the configured database is used (`geo-service db url`; load the
demo first with `geo-service demo --no-serve`). Every tile that some unit's bounding box
touches (the tiles that can hold a feature; the rest are empty) is rendered by the
service's own tile path (`TileService.unit_tile`, no cache) and gzipped as the service
stores it. Prints one Markdown table: per zoom the tiles rendered, the heaviest tile (raw
and gzip, with its z/x/y), the mean gzip size and the budget (`geo_core.zoom.TILE_BUDGET`).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from geo_core import grid  # noqa: E402
from geo_core.zoom import tile_budget  # noqa: E402
from geo_service.features.catalogue import read_collection  # noqa: E402
from geo_service.features.query import RawItemParams, build_item_query  # noqa: E402
from geo_service.settings import ServiceSettings  # noqa: E402
from geo_service.tiles.seed import parse_zooms  # noqa: E402
from geo_service.tiles.service import TileService  # noqa: E402
from geo_service.tiles.sql import unit_bboxes  # noqa: E402


@dataclass
class ZoomWeight:
    """The tiles of one zoom: how many, the heaviest (raw and gzip) and the total gzip."""

    zoom: int
    tiles: int = 0
    largest_raw: int = 0
    largest_gzip: int = 0
    largest_tile: str = ""
    total_gzip: int = 0


async def measure(url: str, collection_id: str, zooms: range) -> list[ZoomWeight]:
    """Render every tile of the zooms that a unit's box touches; the weights per zoom."""
    service = TileService(ServiceSettings(tile_cache="none"))
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        collection = await read_collection(conn, collection_id)
        query = await build_item_query(conn, collection, RawItemParams())
        boxes = await unit_bboxes(conn, collection.vintage, collection.level)
        result = []
        for z in zooms:
            weight = ZoomWeight(z)
            for x, y in sorted(grid.tiles_touching(boxes, z, margin=64 / 4096)):
                raw = (await service.unit_tile(conn, query, z, x, y)).raw
                packed = len(gzip.compress(raw, compresslevel=6, mtime=0)) if raw else 0
                weight.tiles += 1
                weight.total_gzip += packed
                if packed > weight.largest_gzip:
                    weight.largest_gzip, weight.largest_tile = packed, f"{z}/{x}/{y}"
                weight.largest_raw = max(weight.largest_raw, len(raw))
            result.append(weight)
            print(f"z{z}: {weight.tiles} tiles", file=sys.stderr)
        return result


def report(weights: list[ZoomWeight], collection_id: str, seconds: float) -> str:
    """The Markdown table."""
    lines = [
        f"Heaviest tile per zoom, `{collection_id}` ({seconds:.0f} s):",
        "",
        "| zoom | tiles | largest raw KB | largest gzip KB | tile | mean gzip KB | budget KB |",
        "|---:|---:|---:|---:|---|---:|---:|",
    ]
    for w in weights:
        budget = tile_budget(w.zoom)
        mean = w.total_gzip / w.tiles / 1024 if w.tiles else 0.0
        over = " **over**" if budget is not None and w.largest_gzip > budget else ""
        lines.append(
            f"| {w.zoom} | {w.tiles} | {w.largest_raw / 1024:.0f} | "
            f"{w.largest_gzip / 1024:.0f}{over} | {w.largest_tile} | {mean:.1f} | "
            f"{budget // 1024 if budget is not None else '–'} |"
        )
    return "\n".join(lines) + "\n"


def database_url() -> str:
    """The configured database (the embedded one is started if needed)."""
    from geo_service.db import database_url as configured

    return configured(ServiceSettings())


def main() -> int:
    """Measure, print and optionally write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url")
    parser.add_argument("--collection", default="commune-2025")
    parser.add_argument("--zooms", default="0-12")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    weights = asyncio.run(
        measure(args.database_url or database_url(), args.collection, parse_zooms(args.zooms))
    )
    text = report(weights, args.collection, time.perf_counter() - started)
    print(text)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

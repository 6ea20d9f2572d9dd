"""Seed and purge the tile cache from the command line."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from geo_core import grid
from geo_core.zoom import MAX_ZOOM
from geo_service.features.catalogue import read_collection
from geo_service.features.query import RawItemParams, build_item_query
from geo_service.settings import ServiceSettings
from geo_service.tiles.service import TileService
from tilecache.freshness import Change, purge

Bbox = tuple[float, float, float, float]


@dataclass
class SeedSummary:
    """What a seed run did."""

    tiles: int = 0
    bytes: int = 0
    seconds: float = 0.0
    cache_errors: int = 0  # writes the cache refused (e.g. Redis unreachable)


def parse_zooms(text: str) -> range:
    """'0-10' or '5' → a range of zooms."""
    low, _, high = text.partition("-")
    start, end = int(low), int(high or low)
    if not 0 <= start <= end <= MAX_ZOOM:
        raise ValueError(f"zooms must be within 0-{MAX_ZOOM}, low to high")
    return range(start, end + 1)


async def seed(
    settings: ServiceSettings,
    url: str,
    collection_id: str,
    zooms: range,
    bbox: Bbox | None,
    indicator: str | None,
    period: str | None,
    progress: Callable[[int, int], None],
) -> SeedSummary:
    """Render every tile of the zooms over the bbox (default: the collection's extent)."""
    started = time.perf_counter()
    service = TileService(settings)
    summary = SeedSummary()
    async with AsyncConnectionPool(
        url, min_size=1, max_size=2, open=False, kwargs={"autocommit": True}
    ) as pool:
        async with pool.connection() as conn:
            await service.freshness.start(conn)
            collection = await read_collection(conn, collection_id, with_periods=True)
            query = await build_item_query(
                conn, collection, RawItemParams(indicator=indicator, period=period)
            )
            area = bbox or collection.extent
            tiles = [(z, x, y) for z in zooms for x, y in grid.tiles_in(area, z)]
            for done, (z, x, y) in enumerate(tiles, start=1):
                await service.freshness.sync(conn)
                tile = await service.unit_tile(conn, query, z, x, y)
                summary.tiles += 1
                summary.bytes += len(tile.raw)
                progress(done, len(tiles))
    summary.cache_errors = cache_errors(service)
    for cache in service.caches:
        cache.close()
    summary.seconds = time.perf_counter() - started
    return summary


def cache_errors(service: TileService) -> int:
    """Failures the cache backends absorbed (a shared backend never raises)."""
    return sum(int(getattr(cache, "errors", 0)) for cache in service.caches)


def purge_tiles(
    settings: ServiceSettings, collection_id: str, bbox: Bbox | None
) -> tuple[int, int]:
    """Drop cached tiles of a collection (within bbox, or all of them): how many, and how
    many failures the cache absorbed."""
    service = TileService(settings)
    try:
        dropped = purge(service.caches, Change(0, collection_id, bbox), max_zoom=MAX_ZOOM)
        return dropped, cache_errors(service)
    finally:
        for cache in service.caches:
            cache.close()

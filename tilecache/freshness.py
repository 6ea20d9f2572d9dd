"""Never serve a stale tile: follow the database's change log and check every cached tile.

Triggers record each committed change (layer, bounding box, epoch) in `tile_change` and
NOTIFY `tile_change`. Every instance keeps the recent changes in memory. A cached tile
rendered at epoch E is served only if no change after E touches it; changes also purge the
affected tiles from the caches (to free space and spare the other instances the work).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from tilecache import grid
from tilecache.base import TileCache

logger = logging.getLogger(__name__)

Bbox = tuple[float, float, float, float]
# Features reach into a tile's buffer (64 of 4096 units): changes that close count too.
_BUFFER_SHARE = 64 / 4096
# Affected ranges are purged eagerly only down to this zoom; deeper tiles are left to the
# freshness check (they are cheap to re-render and a national change would name millions).
PURGE_MAX_ZOOM = 16
_HISTORY = 100_000


@dataclass(frozen=True)
class Change:
    """A committed change: every tile of `layer` touching `bbox` (None = all) is stale."""

    epoch: int
    layer: str
    bbox: Bbox | None


class ChangeLog:
    """Recent changes per layer, and the epoch up to which they are known."""

    def __init__(self) -> None:
        self.epoch = 0        # all changes up to here are known
        self.floor = 0        # tiles rendered before this cannot be checked: stale
        self._by_layer: dict[str, list[Change]] = defaultdict(list)
        self._count = 0

    def add(self, change: Change) -> None:
        """Record one change (in epoch order)."""
        self._by_layer[change.layer].append(change)
        self._count += 1
        self.epoch = max(self.epoch, change.epoch)
        if self._count > _HISTORY:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        oldest = min(c[0].epoch for c in self._by_layer.values() if c)
        for changes in self._by_layer.values():
            while changes and changes[0].epoch <= oldest:
                changes.pop(0)
                self._count -= 1
        self.floor = oldest + 1

    def changed_since(self, layer: str, epoch: int) -> bool:
        """True when the layer changed after `epoch` (or that cannot be known)."""
        changes = self._by_layer.get(layer)
        return epoch < self.floor or bool(changes and changes[-1].epoch > epoch)

    def is_fresh(self, layer: str, z: int, x: int, y: int, rendered_at: int) -> bool:
        """True when no change after `rendered_at` touches this tile."""
        if rendered_at < self.floor:
            return False
        bounds = _buffered_bounds(z, x, y)
        for change in reversed(self._by_layer.get(layer, ())):
            if change.epoch <= rendered_at:
                break
            if change.bbox is None or grid.intersects(change.bbox, bounds):
                return False
        return True


def _buffered_bounds(z: int, x: int, y: int) -> Bbox:
    west, south, east, north = grid.tile_bounds(z, x, y)
    pad_x = (east - west) * _BUFFER_SHARE
    pad_y = (north - south) * _BUFFER_SHARE
    return west - pad_x, south - pad_y, east + pad_x, north + pad_y


def purge(caches: Sequence[TileCache], change: Change, max_zoom: int = PURGE_MAX_ZOOM) -> int:
    """Drop the tiles a change affects from every cache; return how many were dropped."""
    dropped = 0
    for cache in caches:
        if change.bbox is None:
            dropped += cache.purge_layer(change.layer)
            continue
        for z in range(max_zoom + 1):
            x0, y0, x1, y1 = grid.tile_range(change.bbox, z, margin=_BUFFER_SHARE)
            dropped += cache.purge_range(change.layer, z, x0, y0, x1, y1)
    return dropped


_CHANGES_SQL = """
SELECT epoch, layer, ST_XMin(bbox), ST_YMin(bbox), ST_XMax(bbox), ST_YMax(bbox)
FROM tile_change WHERE epoch > %s ORDER BY epoch LIMIT %s
"""


class Freshness:
    """Keeps one instance's change log in step with the database and purges caches."""

    def __init__(self, caches: Sequence[TileCache]):
        self.log = ChangeLog()
        self.caches = list(caches)
        self.purged = 0   # tiles dropped from the caches
        self.changes = 0  # changes applied after start (each one an invalidation)
        self._lock = asyncio.Lock()

    async def start(self, conn: psycopg.AsyncConnection) -> None:
        """Load the recent history; older cached tiles will be re-checked by re-rendering."""
        cur = await conn.execute("SELECT epoch FROM tile_epoch")
        row = await cur.fetchone()
        current = int(row[0]) if row else 0
        # epochs are gapless (a rolled-back change rolls its increment back too)
        start_after = max(0, current - _HISTORY)
        self.log.floor = start_after
        await self._load(conn, start_after, purge_caches=False)
        self.log.epoch = max(self.log.epoch, current)

    async def sync(self, conn: psycopg.AsyncConnection, current: int | None = None) -> None:
        """Bring the log up to the database's epoch (read it unless given)."""
        if current is None:
            cur = await conn.execute("SELECT epoch FROM tile_epoch")
            row = await cur.fetchone()
            current = int(row[0]) if row else 0
        if current <= self.log.epoch:
            return
        async with self._lock:
            if current > self.log.epoch:
                await self._load(conn, self.log.epoch, purge_caches=True)

    async def _load(self, conn: psycopg.AsyncConnection, after: int, purge_caches: bool) -> None:
        while True:
            cur = await conn.execute(_CHANGES_SQL, (after, 10_000))
            rows = await cur.fetchall()
            for epoch, layer, x0, y0, x1, y1 in rows:
                bbox = None if x0 is None else (float(x0), float(y0), float(x1), float(y1))
                change = Change(int(epoch), str(layer), bbox)
                self.log.add(change)
                if purge_caches:
                    self.changes += 1
                    self.purged += await asyncio.to_thread(purge, self.caches, change)
                after = int(epoch)
            if len(rows) < 10_000:
                return

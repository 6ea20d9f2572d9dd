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
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import psycopg

from geo_core import grid
from tilecache.base import DEFAULT_VARIANT, CachedTile, SyncedTileCache, TileCache, TileKey

logger = logging.getLogger(__name__)

Bbox = tuple[float, float, float, float]
# Features reach into a tile's buffer (64 of 4096 units): changes that close count too.
_BUFFER_SHARE = 64 / 4096
# Affected ranges are purged eagerly only down to this zoom; deeper tiles are left to the
# freshness check (they are cheap to re-render and a national change would name millions).
PURGE_MAX_ZOOM = 16
_HISTORY = 100_000
# A served cache that missed more changes than this is emptied rather than purged change by
# change: re-rendering what is asked for again costs less than walking it that often.
_CATCH_UP_MAX = 10_000


EVERY_LAYER = "*"  # a change of every layer (a truncated table)


@dataclass(frozen=True)
class Change:
    """A committed change: every tile of `layer` (EVERY_LAYER: of all) touching `bbox`
    (None = all) is stale; with `values_only` (indicator values, their disclosure), only
    the tiles that carry values: the geometry-only tiles stay fresh."""

    epoch: int
    layer: str
    bbox: Bbox | None
    values_only: bool = False


class ChangeLog:
    """Recent changes per layer, and the epoch up to which they are known."""

    def __init__(self) -> None:
        self.epoch = 0  # all changes up to here are known
        self.floor = 0  # tiles rendered before this cannot be checked: stale
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

    def since(self, epoch: int) -> list[Change] | None:
        """Every change after `epoch` in epoch order; None when the log does not reach back."""
        if epoch < self.floor:
            return None
        changes = [c for layer in self._by_layer.values() for c in layer if c.epoch > epoch]
        return sorted(changes, key=lambda c: c.epoch)

    def changed_since(self, layer: str, epoch: int) -> bool:
        """True when the layer changed after `epoch` (or that cannot be known)."""
        return epoch < self.floor or any(
            changes and changes[-1].epoch > epoch
            for changes in (self._by_layer.get(layer), self._by_layer.get(EVERY_LAYER))
        )

    def is_fresh(
        self, layer: str, z: int, x: int, y: int, rendered_at: int, geometry_only: bool = False
    ) -> bool:
        """True when no change after `rendered_at` touches this tile (a geometry-only tile:
        no change but of values)."""
        # rendered at an epoch the database has not reached: a database restored from an
        # older backup (or, in notify mode, a change this instance has not heard of yet)
        if rendered_at < self.floor or rendered_at > self.epoch:
            return False
        everything = self._by_layer.get(EVERY_LAYER)
        if everything and everything[-1].epoch > rendered_at:
            return False
        bounds = _buffered_bounds(z, x, y)
        for change in reversed(self._by_layer.get(layer, ())):
            if change.epoch <= rendered_at:
                break
            if geometry_only and change.values_only:
                continue
            if change.bbox is None or grid.intersects(change.bbox, bounds):
                return False
        return True


def _buffered_bounds(z: int, x: int, y: int) -> Bbox:
    west, south, east, north = grid.tile_bounds(z, x, y)
    pad_x = (east - west) * _BUFFER_SHARE
    pad_y = (north - south) * _BUFFER_SHARE
    return west - pad_x, south - pad_y, east + pad_x, north + pad_y


def purge(caches: Sequence[TileCache], change: Change, max_zoom: int = PURGE_MAX_ZOOM) -> int:
    """Drop the tiles a change affects from every cache; return how many were dropped.

    A served cache (nginx sends its files unchecked) is purged at every zoom: its deep
    tiles have no freshness check to fall back on. (Its purge walks only the folders that
    exist, so deep zooms cost nothing where nothing was cached.)"""
    dropped = 0
    for cache in caches:
        if change.layer == EVERY_LAYER:
            dropped += cache.purge_layer(None)
            continue
        if change.values_only:
            dropped += cache.purge_values(change.layer)
            continue
        if change.bbox is None:
            dropped += cache.purge_layer(change.layer)
            continue
        deepest = grid.MAX_ZOOM if isinstance(cache, SyncedTileCache) else max_zoom
        for z in range(deepest + 1):
            x0, y0, x1, y1 = grid.tile_range(change.bbox, z, margin=_BUFFER_SHARE)
            dropped += cache.purge_range(change.layer, z, x0, y0, x1, y1)
    return dropped


def _where(key: TileKey) -> tuple[str, int, int, int]:
    return key.layer, key.z, key.x, key.y


def _drop_tile(caches: Sequence[TileCache], key: TileKey) -> None:
    for cache in caches:
        cache.purge_range(key.layer, key.z, key.x, key.y, key.x, key.y)


def _put(caches: Sequence[TileCache], key: TileKey, tile: CachedTile) -> None:
    for cache in caches:
        cache.put(key, tile)


_CHANGES_SQL = """
SELECT epoch, layer, ST_XMin(bbox), ST_YMin(bbox), ST_XMax(bbox), ST_YMax(bbox), values_only
FROM tile_change WHERE epoch > %s AND epoch <= %s ORDER BY epoch LIMIT %s
"""


async def _current_epoch(conn: psycopg.AsyncConnection) -> int:
    cur = await conn.execute("SELECT epoch FROM tile_epoch")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def data_epoch(conn: psycopg.AsyncConnection, log: ChangeLog) -> int:
    """The epoch to keep something read on `conn` under: the change log's, or the epoch
    the connection's database has reached if that is older (a replica that has not replayed
    the latest changes). Read before the data, so the data are at least that new."""
    return min(log.epoch, await _current_epoch(conn))


Connect = Callable[[], AbstractAsyncContextManager[psycopg.AsyncConnection]]


class EpochReader:
    """The database's current change epoch, read once for all the requests waiting when the
    read starts: concurrent tile requests share one small query instead of each needing a
    connection. A request only joins a read that starts after it arrived, so it sees every
    change committed before it came."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._next: asyncio.Future[int] | None = None  # the read the next requests share
        self._reading = False
        self._task: asyncio.Task[None] | None = None

    async def current(self) -> int:
        """The epoch, as of a read that started after this call."""
        future = self._next
        if future is None:
            future = self._next = asyncio.get_running_loop().create_future()
            # (a failure nobody waits for any more must not be reported as unretrieved)
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            if not self._reading:
                self._reading = True
                self._task = asyncio.create_task(self._read_while_asked())
        return await asyncio.shield(future)

    async def _read_while_asked(self) -> None:
        try:
            while self._next is not None:
                future, self._next = self._next, None
                try:
                    async with self._connect() as conn:
                        future.set_result(await _current_epoch(conn))
                except Exception as exc:  # every waiter gets the failure (e.g. database down)
                    future.set_exception(exc)
        finally:
            self._reading = False


class Freshness:
    """Keeps one instance's change log in step with the database and purges caches."""

    def __init__(self, caches: Sequence[TileCache]):
        self.log = ChangeLog()
        self.caches = list(caches)
        self.purged = 0  # tiles dropped from the caches
        self.changes = 0  # changes applied after start (each one an invalidation)
        self.purged_epoch = 0  # every change up to here is purged from the caches
        self.started = False  # start() done (sync() starts it if not)
        self._lock = asyncio.Lock()

    async def start(self, conn: psycopg.AsyncConnection) -> None:
        """Load the recent history; purge served caches of what changed while none ran.

        Tiles of the other caches rendered before the history are re-checked by re-rendering.
        """
        current = await _current_epoch(conn)
        # epochs are gapless (a rolled-back change rolls its increment back too)
        start_after = max(0, current - _HISTORY)
        self.log.floor = start_after
        await self._load(conn, start_after, current, purge_caches=False)
        self.log.epoch = max(self.log.epoch, current)
        for cache in self.caches:
            newest = getattr(cache, "newest_epoch", None)
            if newest is not None and (await asyncio.to_thread(newest) or 0) > current:
                # tiles from a database state after this one: restored from a backup
                logger.warning(
                    "tile cache %s holds tiles newer than the database (epoch %s): emptied",
                    cache.name,
                    current,
                )
                self.purged += await asyncio.to_thread(cache.purge_layer, None)
            if isinstance(cache, SyncedTileCache):
                await self._catch_up(cache, current)
        self.purged_epoch = self.log.epoch
        self.started = True

    async def _went_back(self, conn: psycopg.AsyncConnection, current: int) -> None:
        """The database's epoch is behind the log's: it was restored from an older backup.
        Cached tiles may show data it no longer has, and the log's changes are not its own:
        empty the caches and start again from the database."""
        async with self._lock:
            if current >= self.log.epoch:
                return
            logger.warning(
                "the database's tile epoch went back from %s to %s (restored from "
                "a backup?): emptying the tile caches",
                self.log.epoch,
                current,
            )
            for cache in self.caches:
                self.purged += await asyncio.to_thread(cache.purge_layer, None)
            self.log = ChangeLog()
            self.started = False
            await self.start(conn)

    async def _catch_up(self, cache: SyncedTileCache, current: int) -> None:
        """Purge a served cache of the changes after the epoch it was last purged up to."""
        synced = cache.synced_epoch()
        if synced == current:
            return
        missed = self.log.since(synced) if synced is not None and synced < current else None
        # a gap in the history (or a cache newer than the database): its tiles are unknowable
        if missed is None or len(missed) != current - (synced or 0) or len(missed) > _CATCH_UP_MAX:
            logger.info(
                "tile cache %s purged whole: synced at epoch %s, database at %s",
                cache.name,
                synced,
                current,
            )
            self.purged += await asyncio.to_thread(cache.purge_layer, None)
        else:
            for change in missed:
                self.purged += await asyncio.to_thread(purge, [cache], change)
        await asyncio.to_thread(cache.mark_synced, current)

    async def sync(
        self, conn: psycopg.AsyncConnection, current: int | None = None, purged: bool = False
    ) -> None:
        """Bring the log up to the database's epoch (read it unless given).

        With `purged`, also wait until every change up to it is purged from the caches.
        """
        if not self.started:  # the database did not answer when the service started
            async with self._lock:
                if not self.started:
                    await self.start(conn)
            return
        if current is None:
            current = await _current_epoch(conn)
        if current < self.log.epoch:
            await self._went_back(conn, current)
            return
        if current <= (self.purged_epoch if purged else self.log.epoch):
            return
        async with self._lock:  # (held by a load in progress: its purges are done after it)
            if current > self.log.epoch:
                await self._load(conn, self.log.epoch, current, purge_caches=True)

    async def catch_up(self, conn: psycopg.AsyncConnection) -> None:
        """Bring the log up to the epoch of `conn`'s database when that is ahead, never back
        (a replica behind the log has not been restored from a backup: it is only behind)."""
        if self.started and await _current_epoch(conn) > self.log.epoch:
            await self.sync(conn)

    async def store(
        self, key: TileKey, tile: CachedTile, caches: Sequence[TileCache] | None = None
    ) -> bool:
        """Put a fresh tile into every cache; False (nothing kept) when it is stale.

        A change can arrive while the tile is written. The log gets each change before its
        purge runs, so either that purge comes after the write, or the check after the write
        sees the change: a stale tile never stays in a cache.
        """
        if not self.log.is_fresh(*_where(key), tile.epoch, key.variant == DEFAULT_VARIANT):
            return False
        caches = self.caches if caches is None else caches
        if not all(cache.put_now(key, tile) for cache in caches):
            await asyncio.to_thread(_put, caches, key, tile)
        if self.log.is_fresh(*_where(key), tile.epoch, key.variant == DEFAULT_VARIANT):
            return True
        await asyncio.to_thread(_drop_tile, caches, key)
        return False

    async def _load(
        self, conn: psycopg.AsyncConnection, after: int, until: int, purge_caches: bool
    ) -> None:
        while True:
            cur = await conn.execute(_CHANGES_SQL, (after, until, 10_000))
            rows = await cur.fetchall()
            for epoch, layer, x0, y0, x1, y1, values_only in rows:
                bbox = None if x0 is None else (float(x0), float(y0), float(x1), float(y1))
                change = Change(int(epoch), str(layer), bbox, bool(values_only))
                self.log.add(change)  # before its purge: see store()
                if purge_caches:
                    self.changes += 1
                    self.purged += await asyncio.to_thread(purge, self.caches, change)
                after = int(epoch)
            if len(rows) < 10_000:
                break
        if purge_caches:
            self.purged_epoch = self.log.epoch
            for cache in self.caches:
                if isinstance(cache, SyncedTileCache):
                    await asyncio.to_thread(cache.mark_synced, self.purged_epoch)

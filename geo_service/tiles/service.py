"""Serve a tile: from a cache when it is provably fresh, else rendered by PostGIS."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import brotli
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from geo_core import grid
from geo_core.errors import Busy, InvalidParameter, NotFound, TooExpensive
from geo_service.features.catalogue import CollectionCatalogue
from geo_service.features.model import ItemQuery
from geo_service.features.query import RawItemParams, build_item_query, query_from_memory
from geo_service.messages import said
from geo_service.settings import ServiceSettings
from geo_service.tiles.sql import EA_LAYER, EA_MIN_ZOOM, MvtOptions, ea_tile_sql, tile_sql
from tilecache.base import DEFAULT_VARIANT, CachedTile, SyncedTileCache, TileCache, TileKey
from tilecache.directory import DirectoryTileCache
from tilecache.freshness import EpochReader, Freshness
from tilecache.redis import RedisTileCache
from tilecache.sqlite import SQLiteTileCache

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


def make_caches(settings: ServiceSettings) -> list[TileCache]:
    """The configured cache backend; one that cannot be opened (an unwritable path) is
    left out with an error in the log: tiles are then served uncached, not refused."""
    try:
        return _make_caches(settings)
    except (OSError, sqlite3.Error) as exc:
        logger.error(
            "tile cache %s cannot be used (%s); serving tiles uncached", settings.tile_cache, exc
        )
        return []


def _make_caches(settings: ServiceSettings) -> list[TileCache]:
    max_bytes = settings.tile_cache_max_mb * 1024 * 1024
    if settings.tile_cache == "none":
        return []
    if settings.tile_cache == "redis":
        return [RedisTileCache(settings.redis_url)]
    if settings.tile_cache == "sqlite":
        path = settings.tile_cache_path or settings.home / "tiles.sqlite"
        return [SQLiteTileCache(path, max_bytes)]
    if settings.tile_cache == "directory":
        return [DirectoryTileCache(tile_directory(settings), max_bytes)]
    raise ValueError(
        f"GEO_SERVICE_TILE_CACHE must be sqlite, redis, directory or none, "
        f"not {settings.tile_cache!r}"
    )


def tile_directory(settings: ServiceSettings) -> Path:
    """The root of the directory cache (the folder nginx serves tiles from)."""
    return (settings.tile_cache_path or settings.home / "tiles").absolute()


def variant_of(query: ItemQuery) -> str:
    """A short, stable name for the tile's query parameters (part of the cache key)."""
    if not query.indicators and query.properties is None:
        return DEFAULT_VARIANT  # the URL without parameters: a fixed name nginx can find
    text = "|".join(
        [
            ",".join(
                f"{i.code}@{i.period}" + (f"-{i.compare}" if i.compare else "")
                for i in query.indicators
            ),
            ",".join(query.properties) if query.properties is not None else "*",
        ]
    )
    return hashlib.sha1(text.encode()).hexdigest()[:16]


@dataclass
class TileStats:
    """Counters for /metrics."""

    hits: int = 0
    misses: int = 0
    rendered_bytes: int = 0
    notifications: int = 0


class ServedTile:
    """A tile for one request and, for one just rendered, the work of keeping it in the
    caches: run after the answer is sent (`keep`), so the client does not wait for the
    compression and the cache write, nor holds a database connection meanwhile. (A tile
    for the directory cache nginx serves is stored before: the next request finds it.)"""

    def __init__(
        self,
        tile: CachedTile,
        keep: Callable[[CachedTile], Awaitable[object]] | None = None,
        withheld: Sequence[str] = (),
    ) -> None:
        self.tile = tile
        self._keep = keep
        # the tile's indicators withheld while their protection is re-checked (read with
        # its values; such a tile is never cached: it is right only for seconds)
        self.withheld = list(withheld)

    @property
    def rendered(self) -> bool:
        """True when the tile was rendered for this request (a cache miss)."""
        return self._keep is not None

    async def body(self, encoding: str | None) -> bytes:
        """The body in an encoding (None: raw); one compressed now is kept for the cache."""
        body = await encoded(self.tile, encoding)
        if encoding == "gzip" and not self.tile.gzip:
            self.tile = replace(self.tile, gzip=body)
        elif encoding == "br" and not self.tile.brotli:
            self.tile = replace(self.tile, brotli=body)
        return body

    async def keep(self) -> None:
        """Store a rendered tile in the caches (nothing for a cached one)."""
        if self._keep is not None:
            await self._keep(self.tile)


class RenderSlots:
    """At most `at_once` tiles are rendered at the same time, below the requests' pool
    size: a burst of uncached (or never cached) dense tiles cannot take every connection
    from the other requests. A render waits up to `wait_s` for a slot, then Busy (503 with
    Retry-After, naming the limit); cached tiles never wait for one. (`async with` it.)"""

    def __init__(self, at_once: int, wait_s: float) -> None:
        self.at_once, self.wait_s = at_once, wait_s
        self._free = asyncio.Semaphore(at_once)

    async def __aenter__(self) -> None:
        if not self._free.locked():  # (the usual case, without a timer)
            await self._free.acquire()
            return
        try:
            async with asyncio.timeout(self.wait_s):
                await self._free.acquire()
        except TimeoutError as exc:
            raise Busy(
                f"the service renders at most {self.at_once} tiles at once "
                "(GEO_SERVICE_TILE_RENDERS_AT_ONCE) and is at that limit; retry shortly",
                parameter="limit",
                limit=self.at_once,
            ) from exc

    async def __aexit__(self, *_: object) -> None:
        self._free.release()


class _Unshared(Exception):
    """The request that started a render was given up: those waiting render their own."""


@dataclass(frozen=True)
class TileRequest:
    """A tile asked for: its grid position and what its features carry."""

    z: int
    x: int
    y: int
    indicator: str | None = None
    period: str | None = None
    properties: str | None = None
    census_round: str | None = None  # enumeration areas: one census round
    # enumeration areas with private reads: only those of these provinces or communes
    # (None: all); such a tile is rendered for its request and never cached
    scope: tuple[str, ...] | None = None
    compare: str | None = None  # units: an earlier period, for the indicators' change


class TileService:
    """Caches, freshness and rendering of one service instance."""

    def __init__(self, settings: ServiceSettings, primary_down: Callable[[], bool] = lambda: False):
        self.settings = settings
        # Whether the replica checks last found the primary down while a replica serves
        # reads: freshness is then read from the replica a tile comes from (nothing newer
        # can be read anywhere), not waited for from the primary.
        self.primary_down = primary_down
        self.caches = make_caches(settings)
        # the caches nginx serves without asking (a check per tile against a runtime
        # Protocol costs more than the rest of keeping a small tile)
        self._served_by_nginx = [c for c in self.caches if isinstance(c, SyncedTileCache)]
        self._checked = [c for c in self.caches if c not in self._served_by_nginx]
        self.freshness = Freshness(self.caches)
        self.options = MvtOptions(max_features=settings.max_features_per_tile)
        self.renders = RenderSlots(settings.tile_render_slots, settings.pool_timeout_s)
        # renders under way, by tile: a request for a tile being rendered waits for that
        # render instead of starting another (a dense EA tile costs seconds of database time)
        self._flights: dict[Hashable, asyncio.Future[ServedTile]] = {}
        self.stats = TileStats()
        self._listener: asyncio.Task[None] | None = None
        self._control: AsyncConnectionPool | None = None
        self._epochs: EpochReader | None = None

    async def start(self, control: AsyncConnectionPool, url: str) -> None:
        """Load the change log and listen for changes. `control` is the small pool of the
        freshness checks, apart from the requests' pool: a cached tile never waits for it."""
        self._control = control
        self._epochs = EpochReader(control.connection)
        await self._withdraw_private_tiles()
        try:
            async with control.connection(timeout=5) as conn:
                await self.freshness.start(conn)
        except (psycopg.Error, OSError) as exc:
            logger.warning(
                "tile change log not loaded (%s); cached tiles re-render until "
                "the database answers",
                exc,
            )
            # Not started: the first sync once the database answers starts it (catching a
            # directory cache up on what it missed); until then no cached tile is trusted.
            self.freshness = Freshness(self.caches)
            self.freshness.log.floor = 2**62
        self._listener = asyncio.create_task(self._listen(control, url))

    async def _withdraw_private_tiles(self) -> None:
        """With private reads, EA tiles written while reads were public leave the caches
        nginx serves without asking: a front whose config was not generated again would
        hand them (households, geometry) to anyone."""
        if self.settings.public_reads:
            return
        for cache in self._served_by_nginx:
            dropped = await asyncio.to_thread(cache.purge_layer, EA_LAYER)
            if dropped:
                logger.warning(
                    "reads are private: %d EA tiles written while they were public "
                    "removed from the %s cache",
                    dropped,
                    cache.name,
                )

    async def stop(self) -> None:
        """Stop listening and close the caches."""
        if self._listener:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        for cache in self.caches:
            cache.close()

    async def _listen(self, pool: AsyncConnectionPool, url: str) -> None:
        """LISTEN tile_change; on each notification purge what changed (reconnects)."""
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    url,
                    autocommit=True,
                    application_name="geo-service-listener",
                    connect_timeout=self.settings.connect_timeout_s,
                ) as conn:
                    await conn.execute("LISTEN tile_change")
                    async with pool.connection() as work:
                        await self.freshness.sync(work)
                    delay = 0.5
                    async for _ in conn.notifies():
                        async with pool.connection() as work:
                            await self.freshness.sync(work)
                        # (counted once acted on: whoever waits for the count, a test or an
                        # operator, then finds the change purged, not about to be)
                        self.stats.notifications += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep listening whatever happens
                # Warn once per outage; retry quickly at first, then every few seconds.
                if delay == 0.5:
                    logger.warning("tile change listener: %s; reconnecting", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 4.0)

    async def tile(
        self,
        pool: AsyncConnectionPool,
        catalogue: CollectionCatalogue,
        layer: str,
        request: TileRequest,
    ) -> ServedTile:
        """A tile of a collection of units or of the enumeration areas, fresh. A cached tile
        is served without a connection from the requests' `pool`; a rendered one is stored
        in the caches when the caller runs `keep()` (after answering)."""
        z, x, y = request.z, request.x, request.y
        if not grid.is_valid(z, x, y):
            raise InvalidParameter(
                f"tile {z}/{x}/{y} is outside the grid: x and y must be "
                f"below {grid.tile_count(z)} at zoom {z}",
                parameter="x" if x >= grid.tile_count(z) else "y",
            )
        if layer == EA_LAYER and z < EA_MIN_ZOOM:
            # (OGC API – Tiles: a tile outside the tileset's limits is a 404)
            raise NotFound(
                said("ea_tiles_min_zoom", z=z, minimum=EA_MIN_ZOOM),
                parameter="z",
                minimum=EA_MIN_ZOOM,
            )
        raw = RawItemParams(
            indicator=request.indicator,
            period=request.period,
            properties=request.properties,
            compare=request.compare,
        )
        if layer == EA_LAYER and request.scope is not None:
            scoped = ("scope", request.scope, request.census_round, z, x, y)
            return await self._once(scoped, lambda: self._scoped_served(pool, request))
        key: TileKey | None
        if layer == EA_LAYER:
            key = TileKey(EA_LAYER, request.census_round or DEFAULT_VARIANT, z, x, y)
        else:
            known = catalogue.peek(layer)
            query = await query_from_memory(known, raw) if known is not None else None
            key = TileKey(layer, variant_of(query), z, x, y) if query is not None else None
        if key is not None and (cached := await self._cached_checked(key, pool)) is not None:
            return ServedTile(cached)
        if key is None:  # (a collection not in memory yet: its key needs the database)
            return await self._miss(pool, catalogue, layer, request, raw)
        return await self._once(key, lambda: self._miss(pool, catalogue, layer, request, raw))

    async def _once(
        self, flight: Hashable, render: Callable[[], Awaitable[ServedTile]]
    ) -> ServedTile:
        """`render()`, shared by the requests for the same tile that come while it runs:
        twenty clients asking at once for a dense tile just purged cost one render, not
        twenty. A request joins only a render that saw every change committed before the
        request came (the tile's epoch is read in the snapshot of its features); otherwise,
        or if the request that started the render is given up, it renders its own."""
        running = self._flights.get(flight)
        if running is None:
            return await self._lead(flight, render)
        if self._epochs is None:  # (not started: no epoch to compare with)
            return await render()
        # (with the primary down no change can come: any render under way is recent enough)
        seen = 0 if self.primary_down() else await self._epochs.current()
        try:
            shared = await asyncio.shield(running)
        except _Unshared:
            return await render()
        if shared.tile.epoch >= seen:
            # (its first request keeps it in the caches)
            return ServedTile(shared.tile, withheld=shared.withheld)
        return await render()

    async def _lead(
        self, flight: Hashable, render: Callable[[], Awaitable[ServedTile]]
    ) -> ServedTile:
        """Render for this request and for those that join it meanwhile."""
        running: asyncio.Future[ServedTile] = asyncio.get_running_loop().create_future()
        self._flights[flight] = running
        try:
            served = await render()
        except BaseException as exc:
            del self._flights[flight]
            gone = isinstance(exc, asyncio.CancelledError)
            running.set_exception(_Unshared() if gone else exc)
            running.exception()  # (retrieved: nobody may have joined)
            raise
        del self._flights[flight]
        running.set_result(served)
        return served

    async def _scoped_served(self, pool: AsyncConnectionPool, request: TileRequest) -> ServedTile:
        return ServedTile(await self.scoped_ea_tile(pool, request))

    async def _miss(
        self,
        pool: AsyncConnectionPool,
        catalogue: CollectionCatalogue,
        layer: str,
        request: TileRequest,
        raw: RawItemParams,
    ) -> ServedTile:
        """The tile rendered (or found cached after all), within the render slots."""
        z, x, y = request.z, request.x, request.y
        async with self.renders, pool.connection() as conn:
            if layer == EA_LAYER:
                statement, params = ea_tile_sql(z, x, y, self.options, request.census_round)
                key = TileKey(EA_LAYER, request.census_round or DEFAULT_VARIANT, z, x, y)
            else:
                collection = await catalogue.get(conn, layer)
                query = await build_item_query(conn, collection, raw)
                statement, params = tile_sql(query, z, x, y, self.options)
                key = TileKey(collection.id, variant_of(query), z, x, y)
            if (cached := await self._cached_checked(key, pool)) is not None:
                return ServedTile(cached)
            self.stats.misses += 1
            tile, withheld = await self._rendered(conn, statement, params, z, x, y)
        caches = self._caches_for(key.layer)
        if not caches or withheld:
            return ServedTile(tile, withheld=withheld)
        if self._any_served_by_nginx(caches):
            # nginx serves these files: the next request for the tile must find it there
            return ServedTile(await self._keep(key, tile, caches, pool))
        return ServedTile(tile, lambda done: self._keep(key, done, caches, pool))

    async def _keep(
        self, key: TileKey, tile: CachedTile, caches: list[TileCache], reads: AsyncConnectionPool
    ) -> CachedTile:
        """Compress a rendered tile in the encodings it lacks and store it (if still fresh)."""
        tile = await _completed(tile)
        try:
            if self._sync_before_keeping(tile, caches):
                await self._sync(reads)
            await self.freshness.store(key, tile, caches)
        except Exception as exc:  # a tile not kept is rendered again: never an error
            logger.warning("tile %s not cached: %s", key, exc)
        return tile

    def _sync_before_keeping(self, tile: CachedTile, caches: list[TileCache]) -> bool:
        """Whether the change log must catch up with the database before `tile` is stored.

        A log behind the render would call the tile stale. In strict mode a cache nginx
        serves also needs the log to know every change committed before the tile is stored
        (a tile a replica rendered behind a change is then refused): nothing checks its
        tiles later. The other caches need no read per tile here, since every strict read
        syncs the log before it trusts a cached tile."""
        if not self.freshness.started or tile.epoch > self.freshness.log.epoch:
            return True
        strict = self.settings.tile_freshness == "strict"
        return strict and self._any_served_by_nginx(caches)

    def _any_served_by_nginx(self, caches: list[TileCache]) -> bool:
        return any(cache in self._served_by_nginx for cache in caches)

    async def _cached_checked(self, key: TileKey, reads: AsyncConnectionPool) -> CachedTile | None:
        """The tile from a cache when nothing changed since it was rendered; in strict mode
        the change log is first brought up to the database's epoch. Only a tile some cache
        holds needs that read: a missing one is rendered, and carries the epoch read in the
        snapshot of its features (a replica's, maybe behind); `_keep` syncs the log before
        storing it, so one rendered behind a logged change is never kept."""
        held = [t for cache in self._caches_for(key.layer) if (t := cache.get(key)) is not None]
        if not held:
            return None
        if self.settings.tile_freshness == "strict":
            await self._sync(reads)
        for tile in held:
            if self.freshness.log.is_fresh(
                key.layer, key.z, key.x, key.y, tile.epoch, key.variant == DEFAULT_VARIANT
            ):
                self.stats.hits += 1
                return tile
        return None

    async def _sync(self, reads: AsyncConnectionPool) -> None:
        """Bring the change log up to the database's current epoch (one shared read); with
        the primary down, up to what the replica of `reads` has replayed."""
        if not self.primary_down():
            try:
                await self._sync_from_primary()
                return
            except (psycopg.Error, PoolTimeout):
                if not self.primary_down():  # (the checks found it down meanwhile)
                    raise
        async with reads.connection() as conn:
            await self.freshness.catch_up(conn)

    async def _sync_from_primary(self) -> None:
        assert self._epochs is not None and self._control is not None
        current = await self._epochs.current()
        if self.freshness.started and current == self.freshness.log.epoch:
            return
        async with self._control.connection() as conn:
            await self.freshness.sync(conn, current)

    def degraded_caches(self) -> list[str]:
        """The caches whose last purge failed (nginx may serve stale tiles from them)."""
        return [cache.name for cache in self.caches if getattr(cache, "degraded", False)]

    def _caches_for(self, layer: str) -> list[TileCache]:
        """The caches a layer's tiles may be kept in: with private reads, EA tiles never go
        where nginx serves them without asking the service."""
        if layer == EA_LAYER and not self.settings.public_reads:
            return self._checked
        return self.caches

    def _cached(self, key: TileKey) -> CachedTile | None:
        """The tile from a cache when nothing changed since it was rendered."""
        for cache in self._caches_for(key.layer):
            cached = cache.get(key)
            if cached is not None and self.freshness.log.is_fresh(
                key.layer, key.z, key.x, key.y, cached.epoch, key.variant == DEFAULT_VARIANT
            ):
                self.stats.hits += 1
                return cached
        return None

    async def unit_tile(
        self, conn: psycopg.AsyncConnection, query: ItemQuery, z: int, x: int, y: int
    ) -> CachedTile:
        """A tile of an administrative-unit collection."""
        statement, params = tile_sql(query, z, x, y, self.options)
        return await self.cached_tile(
            conn, query.collection.id, variant_of(query), z, x, y, statement, params
        )

    async def ea_tile(
        self, conn: psycopg.AsyncConnection, z: int, x: int, y: int, census_round: str | None
    ) -> CachedTile:
        """A tile of the enumeration areas (optionally of one census round)."""
        statement, params = ea_tile_sql(z, x, y, self.options, census_round)
        return await self.cached_tile(
            conn, EA_LAYER, census_round or DEFAULT_VARIANT, z, x, y, statement, params
        )

    async def scoped_ea_tile(self, pool: AsyncConnectionPool, request: TileRequest) -> CachedTile:
        """A tile of the EAs of one reader's scope: rendered for this request, never read
        from or written to a cache (caches are shared by every reader, nginx's files by
        everyone), so no reader is ever given another scope's EAs."""
        z, x, y = request.z, request.x, request.y
        statement, params = ea_tile_sql(z, x, y, self.options, request.census_round, request.scope)
        self.stats.misses += 1
        async with self.renders, pool.connection() as conn:
            tile = await self._render(conn, statement, params, z, x, y)
        return tile

    async def prerender_tile(
        self, conn: psycopg.AsyncConnection, query: ItemQuery | None, z: int, x: int, y: int
    ) -> bool:
        """Render a tile of a unit collection (`query`; None: of every census round's EAs)
        into the caches unless a fresh copy is there; True when it was rendered (for the
        background pre-render: not counted as a request's hit or miss)."""
        if query is None and z < EA_MIN_ZOOM:  # (no EA tiles there)
            return False
        if query is None:
            key = TileKey(EA_LAYER, DEFAULT_VARIANT, z, x, y)
            statement, params = ea_tile_sql(z, x, y, self.options, None)
        else:
            key = TileKey(query.collection.id, variant_of(query), z, x, y)
            statement, params = tile_sql(query, z, x, y, self.options)
        caches = self._caches_for(key.layer)
        if not caches:
            return False
        for cache in caches:
            cached = cache.get(key)
            if cached is not None and self.freshness.log.is_fresh(
                key.layer, z, x, y, cached.epoch, key.variant == DEFAULT_VARIANT
            ):
                return False
        try:
            tile, withheld = await self._rendered(conn, statement, params, z, x, y)
        except TooExpensive as exc:  # (over the feature guard: a request gets the same 422)
            logger.info("tile pre-render: %s skipped: %s", key, exc.message)
            return False
        if withheld:  # (right only for seconds: not kept)
            return False
        await self.freshness.store(key, await _completed(tile), caches)
        return True

    async def cached_tile(
        self,
        conn: psycopg.AsyncConnection,
        layer: str,
        variant: str,
        z: int,
        x: int,
        y: int,
        statement: Any,
        params: dict[str, Any],
    ) -> CachedTile:
        """The tile, fresh: from a cache if nothing changed since it was rendered."""
        # In strict mode the caller has synced the change log for this request.
        key = TileKey(layer, variant, z, x, y)
        if (cached := self._cached(key)) is not None:
            return cached
        self.stats.misses += 1
        tile, withheld = await self._rendered(conn, statement, params, z, x, y)
        if self.caches and not withheld:  # (withheld values: right only for seconds)
            tile = await _completed(tile)
            await self.freshness.store(key, tile, self._caches_for(layer))
        return tile

    async def _render(
        self,
        conn: psycopg.AsyncConnection,
        statement: Any,
        params: dict[str, Any],
        z: int,
        x: int,
        y: int,
    ) -> CachedTile:
        return (await self._rendered(conn, statement, params, z, x, y))[0]

    async def _rendered(
        self,
        conn: psycopg.AsyncConnection,
        statement: Any,
        params: dict[str, Any],
        z: int,
        x: int,
        y: int,
    ) -> tuple[CachedTile, list[str]]:
        """The tile and its indicators withheld for re-protection (read with its values)."""
        try:
            row = await (await conn.execute(statement, params)).fetchone()
        except psycopg.errors.DataException as exc:
            raise InvalidParameter(
                f"tile {z}/{x}/{y}: {exc.diag.message_primary}", parameter="z"
            ) from exc
        if row is not None and row[1] is None:
            raise TooExpensive(
                f"tile {z}/{x}/{y} holds more than {self.options.max_features:,} features, "
                "the most this service draws in one tile (GEO_SERVICE_MAX_FEATURES_PER_TILE): "
                "ask for its tiles at a deeper zoom",
                parameter="z",
            )
        epoch, raw = (int(row[0]), bytes(row[1])) if row else (0, b"")
        withheld = list(row[2] or []) if row is not None and len(row) > 2 else []
        self.stats.rendered_bytes += len(raw)
        # (compressed when answered, in the encoding asked for, and when stored)
        return CachedTile(epoch, raw, b"", b""), withheld

    async def purge_committed_changes(self) -> None:
        """Sync the change log and wait until a committed write's tiles are purged from the
        caches served without a freshness check (nginx over the directory cache)."""
        if not self._served_unchecked() or self._control is None:
            return
        try:
            async with self._control.connection() as conn:
                await self.freshness.sync(conn, purged=True)
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            # the write has committed: answer it; the change listener purges when it can
            logger.warning("tiles changed by a write not purged before the answer: %s", exc)

    def _served_unchecked(self) -> bool:
        """True when some cached tile can be served without checking the change log first.

        With `strict` freshness, the service checks every cached tile it serves, so only a
        cache that others serve (nginx over the directory cache) must be purged at once.
        """
        if not self.caches:
            return False
        return self.settings.tile_freshness != "strict" or bool(self._served_by_nginx)


async def encoded(tile: CachedTile, encoding: str | None) -> bytes:
    """The tile's body in an encoding (None: raw), compressed now if it was not stored so."""
    if encoding is None or not tile.raw:
        return tile.raw
    stored = tile.brotli if encoding == "br" else tile.gzip
    if stored:
        return stored
    compress = _brotli if encoding == "br" else _gzip
    return await _off_loop(len(tile.raw), compress, tile.raw)


async def _off_loop(size: int, work: Callable[[bytes], _T], raw: bytes) -> _T:
    # Big tiles take milliseconds to compress: keep the event loop serving meanwhile.
    return await asyncio.to_thread(work, raw) if size > 20_000 else work(raw)


def _gzip(raw: bytes) -> bytes:
    return gzip.compress(raw, compresslevel=6, mtime=0)


def _brotli(raw: bytes) -> bytes:
    return bytes(brotli.compress(raw, quality=5))


async def _completed(tile: CachedTile) -> CachedTile:
    """The tile with both compressed copies the caches keep (the missing ones made now)."""
    gzipped = tile.gzip or await _off_loop(len(tile.raw), _gzip, tile.raw)
    brotlied = tile.brotli or await _off_loop(len(tile.raw), _brotli, tile.raw)
    return replace(tile, gzip=gzipped, brotli=brotlied)

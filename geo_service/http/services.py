"""What the app's requests share: settings, the connection pool, tiles, the collection
catalogue, the EA operations. Built by `create_app`; the database parts open in its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool

from geo_service.basemaps.registry import BaseMaps
from geo_service.db import (
    HealthCheck,
    close_pool,
    open_control_pool,
    open_jobs_pool,
    open_pool,
)
from geo_service.ea.service import EaService
from geo_service.features.catalogue import CollectionCatalogue
from geo_service.features.files import BuiltFiles
from geo_service.http.downloads import DownloadLimits
from geo_service.http.limits import ConcurrencyLimits
from geo_service.jobs.runner import JobRunner
from geo_service.jobs.service import Jobs
from geo_service.outputs.page_workers import PageWorkers
from geo_service.replicas import ReplicaSet
from geo_service.settings import ServiceSettings
from geo_service.tiles.prerender import Prerenderer
from geo_service.tiles.service import TileService
from geo_service.users import FailedAttempts
from geo_service.viewer.page import PageVintages
from geo_service.viewer.tables import UnitTables
from indicators.protect import watch_pending


class NotStarted(RuntimeError):
    """A part that opens with the app's lifespan was used before it started."""


class Services:
    """The shared parts of one app."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.failed_auth = FailedAttempts()
        # raster work (drawn areas by population, EA estimates): threads of its own
        self.raster_work = ThreadPoolExecutor(settings.raster_workers, "raster")
        self.ea = EaService.from_settings(settings, self.raster_work)
        self.health = HealthCheck()
        self.downloads = DownloadLimits(
            settings.download_slots, settings.downloads_per_client, settings.pool_timeout_s
        )
        self.aggregates = ConcurrencyLimits(
            "area statistics",
            settings.aggregate_slots,
            settings.aggregates_per_client,
            settings.pool_timeout_s,
        )
        self.renders = ConcurrencyLimits(
            "maps or PDFs drawn",
            settings.renders_at_once,
            settings.renders_per_client,
            settings.pool_timeout_s,
        )
        # map book pages drawn beside each other (when asked for), within the render limit
        self.page_workers = PageWorkers(min(settings.map_book_workers, settings.renders_at_once))
        # long outputs as background jobs, run by any instance (geo_service/jobs)
        self.jobs = Jobs(settings)
        self.job_runner: JobRunner | None = None
        self._jobs_pool: AsyncConnectionPool | None = None
        self._jobs_task: asyncio.Task[None] | None = None
        # base map files are opened (and a bad one named in the log) when the app is built
        self.basemaps = BaseMaps(settings)
        self.files = BuiltFiles(settings.home / "downloads", settings.download_cache_mb << 20)
        self.metrics_registry: CollectorRegistry | None = None  # set by observability
        self._pool: AsyncConnectionPool | None = None
        self._control: AsyncConnectionPool | None = None
        self._tiles: TileService | None = None
        self._catalogue: CollectionCatalogue | None = None
        self._disclosure: asyncio.Task[None] | None = None
        self.prerender: Prerenderer | None = None
        self._prerender_task: asyncio.Task[None] | None = None
        self.database_url = ""  # set when the lifespan starts
        # the owner's: work that reads stored values (the disclosure protection and audit)
        self.owner_url = ""
        self._unit_tables: UnitTables | None = None
        # (an unparseable replica URL is logged here, when the app is built)
        self.replicas = ReplicaSet(
            settings.replica_url_list,
            settings.replica_max_lag_s,
            settings.replica_check_interval_s,
        )
        self._page_vintages: PageVintages | None = None

    async def start(self, url: str, owner_url: str) -> None:
        """Open the pools (the database may still be down), the tile caches, the listener
        and the disclosure protection (as `owner_url`: it writes what may be published)."""
        self.database_url, self.owner_url = url, owner_url
        self._pool = await open_pool(url, self.settings)
        self._control = await open_control_pool(url, self.settings)
        # LISTEN and the pre-render's session lock need a connection of their own to the
        # primary: through a transaction pooler, GEO_SERVICE_LISTEN_URL
        direct = self.settings.listen_url or url
        try:
            self._tiles = TileService(self.settings, self.replicas.primary_unavailable)
            await self._tiles.start(self._control, direct)
        except BaseException:
            # (an open pool keeps the process from exiting)
            await close_pool(self._control)
            await close_pool(self._pool)
            raise
        await self.replicas.start(
            self._pool,
            self._control,
            lambda replica: open_pool(replica, self.settings),
        )
        tiles = self._tiles
        self._catalogue = CollectionCatalogue(lambda: tiles.freshness.log)
        # values a plain SQL write left withheld are protected again within seconds
        self._disclosure = asyncio.create_task(watch_pending(owner_url))
        self._unit_tables = UnitTables(lambda: tiles.freshness.log)
        self._page_vintages = PageVintages(lambda: tiles.freshness.log.epoch)
        # every tile of every collection into the cache, in the background (never waited for)
        self.prerender = Prerenderer(tiles, self.settings, direct, self._requests_running)
        self._prerender_task = asyncio.create_task(self.prerender.run())
        if self.settings.job_slots:
            jobs_pool = self._jobs_pool = await open_jobs_pool(url, self.settings)
            self.job_runner = JobRunner(
                self.settings,
                lambda: jobs_pool,
                direct,
                self.renders.background,
                self.page_workers,
            )
            self._jobs_task = asyncio.create_task(self.job_runner.run())

    def _requests_running(self) -> bool:
        """Whether requests hold or wait for connections of the pool now."""
        if self._pool is None:
            return False
        stats = self._pool.get_stats()
        in_use = stats.get("pool_size", 0) - stats.get("pool_available", 0)
        return in_use > 0 or stats.get("requests_waiting", 0) > 0

    async def stop(self) -> None:
        """Stop listening, close the caches and the pool."""
        for task in (self._jobs_task, self._disclosure, self._prerender_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._tiles is not None:
            await self._tiles.stop()
        await self.replicas.stop()
        for pool in (self._jobs_pool, self._control, self._pool):
            if pool is not None:
                await close_pool(pool)
        self.raster_work.shutdown(wait=False, cancel_futures=True)
        self.page_workers.close()

    @property
    def started(self) -> bool:
        """Whether the lifespan has opened the pool and the tiles."""
        return self._pool is not None and self._tiles is not None

    @property
    def pool(self) -> AsyncConnectionPool:
        """The database connection pool."""
        if self._pool is None:
            raise NotStarted("the connection pool opens with the app's lifespan")
        return self._pool

    def read_pool(self) -> AsyncConnectionPool:
        """The pool for reads: a healthy replica's, else the primary's."""
        return self.replicas.read_pool() if self._pool is not None else self.pool

    async def read_pool_after(self, position: int | None) -> AsyncConnectionPool:
        """The pool for a read that must see the client's writes up to WAL `position` (None:
        any read pool)."""
        if self._pool is None or position is None or not self.replicas.configured:
            return self.read_pool()
        wait_s = self.settings.replica_wait_ms / 1000
        return await self.replicas.read_pool_after(position, wait_s)

    @property
    def control(self) -> AsyncConnectionPool:
        """Two connections for /health and freshness checks, apart from the requests'."""
        if self._control is None:
            raise NotStarted("the control pool opens with the app's lifespan")
        return self._control

    @property
    def tiles(self) -> TileService:
        """Tile rendering, caches and freshness."""
        if self._tiles is None:
            raise NotStarted("the tile service starts with the app's lifespan")
        return self._tiles

    @property
    def catalogue(self) -> CollectionCatalogue:
        """The collections, kept fresh by the tile change log."""
        if self._catalogue is None:
            raise NotStarted("the collection catalogue starts with the app's lifespan")
        return self._catalogue

    @property
    def page_vintages(self) -> PageVintages:
        """The map page's vintages and extents, kept fresh by the tile change log."""
        if self._page_vintages is None:
            raise NotStarted("the page's vintages start with the app's lifespan")
        return self._page_vintages

    @property
    def unit_tables(self) -> UnitTables:
        """The viewer's unit tables (names, parents, label points), kept fresh likewise."""
        if self._unit_tables is None:
            raise NotStarted("the unit tables start with the app's lifespan")
        return self._unit_tables

    def pool_if_started(self) -> AsyncConnectionPool | None:
        """The pool, or None before the lifespan opened it (metrics read it either way)."""
        return self._pool

    def tiles_if_started(self) -> TileService | None:
        """The tile service, or None before the lifespan started it."""
        return self._tiles

    def fresh(self, collection_id: str) -> Callable[[int], bool]:
        """Whether something built from a collection's data at an epoch is still current."""
        log = self.tiles.freshness.log

        def fresh(epoch: int) -> bool:
            return log.floor <= epoch <= log.epoch and not log.changed_since(collection_id, epoch)

        return fresh

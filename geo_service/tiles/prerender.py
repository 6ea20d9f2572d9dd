"""Render every tile of the unit collections and the EAs into the cache in the background.

At start-up the job walks the tiles z0..`GEO_SERVICE_PRERENDER_MAX_ZOOM` of every unit
collection (the geometry-only tiles the map draws) and of the enumeration areas (every
census round; with private reads only into caches the service checks) and renders those
the cache lacks, so a restart carries on where the last run stopped instead of starting
over. Afterwards it follows the tile change log: a change (a boundary load, a repair, a
new vintage, an EA saved) has already purged exactly its tiles (tilecache.freshness), and
the job renders those again. A change of indicator values leaves the geometry tiles fresh:
there is nothing to render again. `geo-service demo` renders the map's first view
(`render_first_view`) before it serves; the job then skips those tiles.

Requests keep priority: the job uses one connection of its own, pauses between tiles and
waits while requests hold connections of the pool. Tiles that no part of a unit touches
(open sea) are never rendered. One instance per database renders (an advisory lock); a
database error is logged and retried with back-off; nothing here ever blocks a request or
the start. Progress is in `/metrics` and in `geo-service tiles stats` (a small status file
in GEO_SERVICE_HOME).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg

from geo_core import grid
from geo_service.features.catalogue import list_collections, read_collection
from geo_service.features.model import ItemQuery
from geo_service.features.query import RawItemParams, build_item_query
from geo_service.settings import ServiceSettings
from geo_service.tiles.service import TileService
from geo_service.tiles.sql import EA_LAYER, EA_MIN_ZOOM, ea_bboxes, try_prerender_lock, unit_bboxes
from tilecache.freshness import EVERY_LAYER, Change

logger = logging.getLogger(__name__)

Bbox = tuple[float, float, float, float]
# features reach into a tile's buffer (64 of 4096 units): a part that close counts
_MARGIN = 64 / 4096
STATUS_FILE = "prerender.json"
# The map's first view fits the country to the window: z5–z6 on a laptop, z7 on a 4K screen.
FIRST_VIEW_MAX_ZOOM = 7


@dataclass
class PrerenderStatus:
    """What the job has done and has left (for /metrics and `tiles stats`)."""

    # starting | waiting (for the change log) | rendering | idle | retrying | off |
    # another instance renders
    state: str = "starting"
    rendered: int = 0  # tiles rendered since the service started
    remaining: int = 0  # tiles of the current pass still to check
    errors: int = 0  # database errors met (each one retried)
    last_error: str = ""
    epoch: int = 0  # every change up to this epoch is rendered (when state is idle)
    updated: float = 0.0  # time of the last write of the status file


# A pass: None = every tile of every collection; else the changed areas per layer (None
# for a whole layer).
Areas = dict[str, list[Bbox] | None] | None


class Prerenderer:
    """The background job of one service instance."""

    def __init__(
        self,
        service: TileService,
        settings: ServiceSettings,
        url: str,
        busy: Callable[[], bool],
    ) -> None:
        self.service = service
        self.url = url
        self.busy = busy
        self.max_zoom = settings.prerender_max_zoom
        self.pause = settings.prerender_pause_ms / 1000
        self.status = PrerenderStatus()
        self.status_path = settings.home / STATUS_FILE
        self.poll_s = 1.0  # how often the change log is looked at when idle
        self.retry_s = (1.0, 60.0)  # first and longest wait after a database error
        self._written = 0.0

    @property
    def enabled(self) -> bool:
        """Off with GEO_SERVICE_PRERENDER_MAX_ZOOM=0 or without a cache to fill."""
        return self.max_zoom > 0 and bool(self.service.caches)

    async def run(self) -> None:
        """Render what is missing, then what each change purges; forever, retrying."""
        if not self.enabled:
            self._set("off")
            return
        delay: float | None = None
        while True:
            try:
                await self._connected()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # (the database gone, mostly: never end the job)
                self.status.errors += 1
                self.status.last_error = str(exc).strip()[:300] or type(exc).__name__
                delay = self.retry_s[0] if delay is None else min(delay * 2, self.retry_s[1])
                logger.warning("tile pre-render: %s; retrying in %.1f s", exc, delay)
                self._set("retrying")
                await asyncio.sleep(delay)
                # (then a whole pass again: it skips every tile already cached)

    async def _connected(self) -> None:
        """One connection's life: a pass over everything, then one per change."""
        async with await psycopg.AsyncConnection.connect(
            self.url, autocommit=True, application_name="geo-service-prerender"
        ) as conn:
            while not await try_prerender_lock(conn):
                # another instance (a worker beside this one) renders and writes the status
                self.status.state = "another instance renders"
                await asyncio.sleep(30)
            while not self.service.freshness.started:
                # (the change log not loaded yet: no cached tile could be trusted or kept)
                self._set("waiting")
                await asyncio.sleep(self.poll_s)
            areas: Areas = None
            while True:
                seen = self.service.freshness.log.epoch
                await self._pass(conn, areas)
                self.status.epoch = seen
                self._set("idle")
                areas = await self._changes_after(seen)

    async def render_layers(self, conn: psycopg.AsyncConnection, layers: list[str]) -> int:
        """One pass over these layers' whole pyramids, as at start-up; tiles rendered (the
        benchmark times the job with it)."""
        before = self.status.rendered
        await self._pass(conn, dict.fromkeys(layers))
        return self.status.rendered - before

    async def _changes_after(self, seen: int) -> Areas:
        """Wait for changes after epoch `seen`; the areas they touch."""
        while True:
            log = self.service.freshness.log
            if log.epoch < seen:  # a database restored from a backup: caches emptied
                return None
            if log.epoch > seen:
                return changed_areas(log.since(seen))
            await asyncio.sleep(self.poll_s)

    async def _pass(self, conn: psycopg.AsyncConnection, areas: Areas) -> None:
        """Render the tiles of these areas that no cache has fresh, low zooms first."""
        collections = {c.id: c for c in await list_collections(conn)}
        layers = {*collections, EA_LAYER}
        targets = layers if areas is None else layers & areas.keys()
        plan: list[tuple[str, int, int, int]] = []
        for layer in sorted(targets):
            if layer == EA_LAYER:
                boxes = await ea_bboxes(conn)
            else:
                collection = collections[layer]
                boxes = await unit_bboxes(conn, collection.vintage, collection.level)
            changed = None if areas is None else areas[layer]
            # (seconds of pure Python over every EA's box once there are 100,000 of them:
            # in a worker thread, or every request of this instance waits for it)
            low = EA_MIN_ZOOM if layer == EA_LAYER else 0  # (no EA tiles further out)
            tiles = await asyncio.to_thread(tiles_to_render, boxes, changed, self.max_zoom, low)
            plan += [(layer, *tile) for tile in tiles]
        plan.sort(key=lambda t: (t[1], t[0], t[2], t[3]))
        self.status.remaining = len(plan)
        self._set("rendering" if plan else "idle")
        queries: dict[str, ItemQuery | None] = {EA_LAYER: None}
        for layer, z, x, y in plan:
            if layer not in queries:
                collection = await read_collection(conn, layer)
                queries[layer] = await build_item_query(conn, collection, RawItemParams())
            await self._give_way()
            if await self.service.prerender_tile(conn, queries[layer], z, x, y):
                self.status.rendered += 1
                if self.pause:
                    await asyncio.sleep(self.pause)
            else:  # (found fresh without awaiting: let requests in between such tiles)
                await asyncio.sleep(0)
            self.status.remaining -= 1
            self._write_now_and_then()
        self.status.remaining = 0

    async def _give_way(self, longest_s: float = 1.0) -> None:
        """Wait while requests hold database connections (at most `longest_s`, so a busy
        service still gets its pyramid, a tile at a time)."""
        waited = 0.0
        while self.busy() and waited < longest_s:
            await asyncio.sleep(0.02)
            waited += 0.02

    def _set(self, state: str) -> None:
        self.status.state = state
        self._write()

    def _write_now_and_then(self) -> None:
        if time.monotonic() - self._written > 2:
            self._write()

    def _write(self) -> None:
        """The status file `geo-service tiles stats` reads (written whole, then renamed)."""
        self._written = time.monotonic()
        self.status.updated = time.time()
        with contextlib.suppress(OSError):  # (a read-only home: /metrics still says it)
            temporary = self.status_path.with_suffix(".tmp")
            temporary.write_text(json.dumps(asdict(self.status)), encoding="utf-8")
            temporary.replace(self.status_path)


async def render_first_view(settings: ServiceSettings, url: str) -> int:
    """Render now, into the configured cache, every tile z0–FIRST_VIEW_MAX_ZOOM over the
    extent of every unit collection that its cache lacks, the sea between the units too
    (the map asks for those as well); tiles rendered. The demo does so before it serves, so
    the first map opened is drawn from the cache; the background job renders the rest."""
    service = TileService(settings)
    try:
        if not Prerenderer(service, settings, url, busy=lambda: False).enabled:
            return 0
        rendered = 0
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await service.freshness.start(conn)
            for collection in await list_collections(conn):
                boxes = await unit_bboxes(conn, collection.vintage, collection.level)
                if not boxes:
                    continue
                query = await build_item_query(conn, collection, RawItemParams())
                extent = (
                    min(b[0] for b in boxes),
                    min(b[1] for b in boxes),
                    max(b[2] for b in boxes),
                    max(b[3] for b in boxes),
                )
                for z in range(min(settings.prerender_max_zoom, FIRST_VIEW_MAX_ZOOM) + 1):
                    for x, y in sorted(grid.tiles_in(extent, z)):
                        rendered += await service.prerender_tile(conn, query, z, x, y)
        return rendered
    finally:
        for cache in service.caches:
            cache.close()


def changed_areas(changes: list[Change] | None) -> Areas:
    """The areas per layer that changes touch (None: everything, as at the start)."""
    if changes is None:
        return None  # the log does not reach back far enough: check everything
    areas: dict[str, list[Bbox] | None] = {}
    for change in changes:
        if change.layer == EVERY_LAYER:
            return None
        if change.values_only:  # (the job renders geometry-only tiles: they stay fresh)
            continue
        if change.bbox is None:
            areas[change.layer] = None
        else:
            known = areas.setdefault(change.layer, [])
            if known is not None:
                known.append(change.bbox)
    return areas


def tiles_to_render(
    boxes: list[Bbox], changed: list[Bbox] | None, max_zoom: int, min_zoom: int = 0
) -> list[tuple[int, int, int]]:
    """(z, x, y) of the tiles min_zoom..max_zoom a unit's part touches (within the changed
    boxes)."""
    tiles = []
    for z in range(min_zoom, max_zoom + 1):
        touched = grid.tiles_touching(boxes, z, _MARGIN)
        if changed is not None:
            touched &= grid.tiles_touching(changed, z, _MARGIN)
        tiles += [(z, x, y) for x, y in sorted(touched)]
    return tiles


def read_status(home: Path) -> dict[str, object] | None:
    """The last status a service's job wrote under `home` (None: no job has run)."""
    try:
        loaded = json.loads((home / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None

"""Dense EA tiles cannot starve the service (issue #22, sixth attack pass): twenty anonymous
requests for a few dense EA tiles just purged by an edit rendered each of them once per
request and took every pooled connection (items and EA pages answered 503). Requests for a
tile being rendered now share that render, and renders at once are bounded below the pool
size (cached tiles never wait for a slot). And the pre-render plans its tiles (every EA's
box at every zoom) in a worker thread, not in the event loop every request waits on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import AsyncConnectionPool

from geo_core import grid
from geo_core.errors import Busy
from geo_service.features.catalogue import CollectionCatalogue
from geo_service.http.app import create_app
from geo_service.settings import ServiceSettings
from geo_service.tiles import prerender
from geo_service.tiles.service import ServedTile, TileRequest, TileService
from geo_service.tiles.sql import EA_LAYER
from tests.helpers import run_coroutine
from tilecache.base import DEFAULT_VARIANT, TileKey

SQUARES = 3_000
POINT = (105.8165, 21.0305)  # inside the squares (Ba Đình, Hà Nội)


@pytest.fixture(scope="module")
def squares_db(pg: Any, demo_template: str) -> Iterator[str]:
    """A demo database with 3,000 EAs of 15 m side by side (a dense tile at low zoom)."""
    side = 0.000135
    url = pg.create_database(demo_template)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO enumeration_area (census_round, code, commune_vintage, commune_code,"
            " geom, households, updated_by)"
            " SELECT '2031', '00004-' || lpad(i::text, 5, '0'), '2025', '00004',"
            f" ST_Multi(ST_MakeEnvelope(105.815 + (i % 60) * {side}, 21.030 + (i / 60) * {side},"
            f"  105.815 + (i % 60 + 1) * {side}, 21.030 + (i / 60 + 1) * {side}, 4326)),"
            " 3, 'test'"
            f" FROM generate_series(0, {SQUARES - 1}) i"
        )
    yield url
    pg.drop_database(url)


class CountedTiles(TileService):
    """The service, counting the renders running at once; `gate` (when set) holds each
    render after its statement ran, until the test opens it."""

    def __init__(self, settings: ServiceSettings) -> None:
        super().__init__(settings)
        self.running = self.most = 0
        self.gate: asyncio.Event | None = None
        self.rendered = asyncio.Event()
        self.pool: AsyncConnectionPool | None = None  # the requests' pool

    async def _rendered(self, conn: Any, statement: Any, params: Any, *zxy: int) -> Any:
        # (every render runs through here: shared, scoped, pre-rendered)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            tile = await super()._rendered(conn, statement, params, *zxy)
            self.rendered.set()
            if self.gate is not None:
                await self.gate.wait()
            return tile
        finally:
            self.running -= 1


@asynccontextmanager
async def _started(url: str, tmp_path: Any, **settings: Any) -> AsyncIterator[CountedTiles]:
    service = CountedTiles(
        ServiceSettings(home=tmp_path / "home", prerender_max_zoom=0, **settings)
    )
    async with (
        AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as control,
        AsyncConnectionPool(url, min_size=1, max_size=8, open=False) as pool,
    ):
        await service.start(control, url)
        service.pool = pool
        try:
            yield service
        finally:
            await service.stop()


async def _ea_tile(service: CountedTiles, z: int, scope: tuple[str, ...] | None = None) -> Any:
    x, y = next(grid.tiles_in((*POINT, *POINT), z))
    catalogue = CollectionCatalogue(lambda: service.freshness.log)
    request = TileRequest(z, x, y, census_round="2031", scope=scope)
    assert service.pool is not None
    return await service.tile(service.pool, catalogue, EA_LAYER, request)


def _statuses(served: ServedTile) -> set[str]:
    layer = mapbox_vector_tile.decode(served.tile.raw)[EA_LAYER]
    return {f["properties"]["status"] for f in layer["features"]}


def test_requests_for_a_tile_being_rendered_share_its_render(
    squares_db: str, tmp_path: Any
) -> None:
    """Twelve requests at once for one uncached dense tile (and twelve for one scoped
    reader's tile, which is never cached) cost one render each, and all get the tile."""

    async def scenario() -> None:
        async with _started(squares_db, tmp_path, tile_cache="none") as service:
            for scope in (None, ("00004",)):
                before = service.stats.misses
                served = await asyncio.gather(*(_ea_tile(service, 6, scope) for _ in range(12)))
                assert service.stats.misses - before == 1, "one render for twelve requests"
                assert len({s.tile.raw for s in served}) == 1
                assert len(mapbox_vector_tile.decode(served[0].tile.raw)[EA_LAYER]["features"])

    run_coroutine(scenario())


def test_a_request_after_a_change_does_not_join_an_older_render(
    squares_db: str, tmp_path: Any
) -> None:
    """A request that comes after a committed change gets a tile with the change, even
    while a render from before the change is still under way."""

    async def scenario() -> None:
        async with _started(squares_db, tmp_path, tile_cache="none") as service:
            service.gate = asyncio.Event()
            first = asyncio.create_task(_ea_tile(service, 7))
            await service.rendered.wait()  # its statement has run: it holds the old tile
            async with await psycopg.AsyncConnection.connect(squares_db, autocommit=True) as c:
                await c.execute(
                    "UPDATE enumeration_area SET status = 'submitted' WHERE code = '00004-00000'"
                    " AND census_round = '2031'"
                )
            second = asyncio.create_task(_ea_tile(service, 7))
            await asyncio.sleep(0.2)  # (it waits on the first render, or renders its own)
            service.gate.set()
            old, new = await first, await second
            assert "submitted" not in _statuses(old)
            assert "submitted" in _statuses(new), "a request after the change got the older tile"
            async with await psycopg.AsyncConnection.connect(squares_db, autocommit=True) as c:
                await c.execute(
                    "UPDATE enumeration_area SET status = 'draft' WHERE code = '00004-00000'"
                    " AND census_round = '2031'"
                )

    run_coroutine(scenario())


def test_renders_at_once_stay_below_the_pool(squares_db: str, tmp_path: Any) -> None:
    """Eight different uncached tiles asked for at once (pool of 8) are rendered at most
    GEO_SERVICE_TILE_RENDERS_AT_ONCE (2) at a time; every one is answered."""

    async def scenario() -> None:
        async with _started(
            squares_db, tmp_path, tile_cache="none", tile_renders_at_once=2
        ) as service:
            served = await asyncio.gather(*(_ea_tile(service, z) for z in range(5, 13)))
            assert all(s.tile.raw for s in served)
            assert service.most <= 2, f"{service.most} renders at once"

    run_coroutine(scenario())


def test_a_cached_tile_never_waits_for_a_render_slot(squares_db: str, tmp_path: Any) -> None:
    """With every render slot taken, a cached tile is still served and an uncached one is
    refused after the pool timeout with Busy (503, Retry-After) naming the limit."""

    async def scenario() -> None:
        async with _started(
            squares_db,
            tmp_path,
            tile_cache="sqlite",
            tile_renders_at_once=2,
            pool_timeout_s=0.2,
        ) as service:
            kept = await _ea_tile(service, 8)
            await kept.keep()
            async with AsyncExitStack() as slots:
                for _ in range(2):
                    await slots.enter_async_context(service.renders)
                again = await _ea_tile(service, 8)
                assert not again.rendered and again.tile.raw == kept.tile.raw
                with pytest.raises(Busy) as refused:
                    await _ea_tile(service, 9)
                assert refused.value.parameter == "limit"
                assert "GEO_SERVICE_TILE_RENDERS_AT_ONCE" in refused.value.message

    run_coroutine(scenario())


def test_the_pre_render_plans_its_tiles_outside_the_event_loop(
    squares_db: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pre-render's plan (every EA's box at every zoom: 16 s of pure Python for 100,000
    EAs under load) is made in a worker thread: made in the event loop, it held every
    request of the instance, /health too, after each EA geometry edit (15 s seen)."""
    made_in: list[str] = []

    def watched(*args: Any) -> Any:
        try:
            asyncio.get_running_loop()
            made_in.append("the event loop")
        except RuntimeError:
            made_in.append("a worker thread")
        return planned(*args)

    planned = prerender.tiles_to_render
    monkeypatch.setattr(prerender, "tiles_to_render", watched)
    settings = ServiceSettings(home=tmp_path / "home", tile_cache="sqlite", prerender_max_zoom=5)
    with TestClient(create_app(settings, db_url=squares_db)) as client:
        job = client.app.state.services.prerender  # type: ignore[attr-defined]
        deadline = time.monotonic() + 300
        while not (made_in and job.status.state == "idle"):
            assert time.monotonic() < deadline, f"pre-render stuck: {job.status}"
            time.sleep(0.2)
        x, y = next(grid.tiles_in((*POINT, *POINT), 5))
        cache = client.app.state.services.tiles.caches[0]  # type: ignore[attr-defined]
        assert cache.get(TileKey(EA_LAYER, DEFAULT_VARIANT, 5, x, y)) is not None
    assert set(made_in) == {"a worker thread"}, made_in

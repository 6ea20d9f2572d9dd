"""Indicator loads leave geometry tiles alone (issue #25): a change of values purges the
tiles that carry values (`?indicator=`, `?properties=`), not the geometry-only tiles the map
draws, nginx serves and the pre-render renders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from geo_service.http.app import create_app
from geo_service.settings import ServiceSettings
from geo_service.tiles.prerender import changed_areas
from tilecache.base import DEFAULT_VARIANT, CachedTile, TileCache, TileKey
from tilecache.directory import DirectoryTileCache
from tilecache.freshness import Change, ChangeLog, purge
from tilecache.redis import RedisTileCache
from tilecache.sqlite import SQLiteTileCache

TILES = "/collections/commune-2025/tiles/WebMercatorQuad"
HANOI_Z10 = (10, 813, 450)
LAYER = "commune-2025"


def test_an_indicator_load_keeps_geometry_tiles_and_purges_value_tiles(
    demo_db: str, tmp_path: Path
) -> None:
    z, x, y = HANOI_Z10
    settings = ServiceSettings(home=tmp_path / "home", tile_cache="sqlite", prerender_max_zoom=0)
    with TestClient(create_app(settings, db_url=demo_db)) as client:
        tiles = client.app.state.services.tiles  # type: ignore[attr-defined]
        geometry = client.get(f"{TILES}/{z}/{x}/{y}")
        values = client.get(f"{TILES}/{z}/{x}/{y}", params={"indicator": "population"})
        assert geometry.status_code == values.status_code == 200
        cache = tiles.caches[0]
        assert cache.get(TileKey(LAYER, DEFAULT_VARIANT, z, x, y)) is not None
        with psycopg.connect(demo_db, autocommit=True) as conn:  # a load, in plain SQL
            conn.execute(
                "UPDATE indicator_value SET value = value + 1 WHERE indicator = 'population'"
                " AND vintage = '2025' AND level = 'commune' AND code = '00004'"
            )
            row = conn.execute(
                "SELECT values_only FROM tile_change ORDER BY epoch DESC LIMIT 1"
            ).fetchone()
            assert row == (True,)
        hits, misses = tiles.stats.hits, tiles.stats.misses
        again = client.get(f"{TILES}/{z}/{x}/{y}")
        assert again.content == geometry.content
        assert (tiles.stats.hits, tiles.stats.misses) == (hits + 1, misses)  # from the cache
        assert cache.get(TileKey(LAYER, DEFAULT_VARIANT, z, x, y)) is not None
        fresh = client.get(f"{TILES}/{z}/{x}/{y}", params={"indicator": "population"})
        assert tiles.stats.misses == misses + 1  # purged: drawn again with the new value
        assert fresh.content != values.content
        # a change of geometry still purges the geometry tile
        with psycopg.connect(demo_db, autocommit=True) as conn:
            conn.execute(
                "UPDATE admin_unit SET geom = ST_Multi(ST_Buffer(geom, -0.001))"
                " WHERE vintage = '2025' AND level = 'commune' AND code = '00004'"
            )
        assert client.get(f"{TILES}/{z}/{x}/{y}").content != geometry.content
        assert tiles.stats.misses == misses + 2


def _tile(epoch: int) -> CachedTile:
    return CachedTile(epoch, b"raw", b"gz", b"br")


@pytest.fixture(params=["sqlite", "directory", "redis"])
def make_cache(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], TileCache]:
    def make() -> TileCache:
        if request.param == "sqlite":
            return SQLiteTileCache(tmp_path / "tiles.sqlite", 1 << 20)
        if request.param == "directory":
            return DirectoryTileCache(tmp_path / "tree", 1 << 20)
        url = request.getfixturevalue("redis_url")
        return RedisTileCache(url, prefix=f"gs:test-values-{tmp_path.name}")

    return make


def test_every_cache_drops_only_the_tiles_with_values(make_cache: Callable[[], TileCache]) -> None:
    cache = make_cache()
    try:
        keys = [
            TileKey(layer, variant, 10, 813, 450)
            for layer in (LAYER, "province-2025")
            for variant in (DEFAULT_VARIANT, "0123456789abcdef", "fedcba9876543210")
        ]
        for key in keys:
            cache.put(key, _tile(1))
        assert purge([cache], Change(2, LAYER, None, values_only=True)) == 2
        kept = {k for k in keys if cache.get(k) is not None}
        assert kept == {k for k in keys if k.layer != LAYER or k.variant == DEFAULT_VARIANT}
    finally:
        cache.close()


def test_a_values_change_leaves_geometry_tiles_fresh_and_unrendered() -> None:
    log = ChangeLog()
    log.add(Change(1, LAYER, None))
    log.add(Change(2, LAYER, None, values_only=True))
    assert log.is_fresh(LAYER, 10, 813, 450, 1, geometry_only=True)
    assert not log.is_fresh(LAYER, 10, 813, 450, 1, geometry_only=False)
    assert not log.is_fresh(LAYER, 10, 813, 450, 0, geometry_only=True)
    # the pre-render renders geometry tiles: nothing to do after an indicator load
    assert changed_areas([Change(2, LAYER, None, values_only=True)]) == {}
    assert changed_areas([Change(1, LAYER, None)]) == {LAYER: None}

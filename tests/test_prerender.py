"""The background pre-render (issue #25): it fills the cache with every tile of a small
collection, and after a change re-renders exactly the tiles the change purged."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import geopandas as gpd
import psycopg
import pytest
from fastapi.testclient import TestClient

from boundaries.checks import FieldMap
from boundaries.load import LoadOptions, load_boundaries
from boundaries.vintages import Vintage, add_vintage
from geo_core import grid
from geo_service.http.app import create_app
from geo_service.settings import ServiceSettings
from geo_service.tiles.prerender import changed_areas, tiles_to_render
from geo_service.tiles.sql import EA_MIN_ZOOM, unit_bboxes
from tests.conftest import DEMO_DATA
from tests.helpers import run_coroutine, scrape, value
from tilecache.base import DEFAULT_VARIANT, TileKey
from tilecache.freshness import EVERY_LAYER, Change

LAYER = "province-t"
MAX_ZOOM = 10


@pytest.fixture
def small(empty_db: str, tmp_path: Path) -> str:
    """Four provinces of the north (Hà Nội, Bắc Ninh, Hưng Yên, Hải Dương) as vintage t."""
    provinces = gpd.read_file(DEMO_DATA / "provinces-2019.geojson")
    path = tmp_path / "north.geojson"
    provinces[provinces["code"].isin(["01", "27", "33", "30"])].to_file(path, driver="GeoJSON")
    with psycopg.connect(empty_db, autocommit=True) as conn:
        add_vintage(conn, Vintage("t", date(2020, 1, 1), description="test"))
        load_boundaries(conn, [path], LoadOptions("t", "province", FieldMap("code", "name")))
    return empty_db


@pytest.fixture
def service(small: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = ServiceSettings(
        home=tmp_path / "home", tile_cache="sqlite", prerender_max_zoom=MAX_ZOOM
    )
    with TestClient(create_app(settings, db_url=small)) as client:
        client.app.state.services.prerender.poll_s = 0.1  # type: ignore[attr-defined]
        yield client


def _prerender(client: TestClient) -> Any:
    return client.app.state.services.prerender  # type: ignore[attr-defined]


def _wait_until_rendered(client: TestClient, url: str, timeout: float = 120) -> None:
    """Until the job has rendered every change the database has."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT epoch FROM tile_epoch").fetchone()
    assert row is not None
    deadline = time.monotonic() + timeout
    status = _prerender(client).status
    while not (status.state == "idle" and status.epoch >= row[0]):
        assert time.monotonic() < deadline, f"pre-render stuck: {status}"
        client.get("/health")  # (strict freshness: a request syncs the change log too)
        time.sleep(0.2)


def _plan(url: str) -> list[tuple[int, int, int]]:
    async def boxes() -> list[tuple[float, float, float, float]]:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            return await unit_bboxes(conn, "t", "province")

    return tiles_to_render(run_coroutine(boxes()), None, MAX_ZOOM)


def _cached(client: TestClient, tiles: list[tuple[int, int, int]]) -> dict[Any, int]:
    """(z, x, y) → the epoch the cached tile was rendered at, for those in the cache."""
    cache = client.app.state.services.tiles.caches[0]  # type: ignore[attr-defined]
    found = {}
    for z, x, y in tiles:
        tile = cache.get(TileKey(LAYER, DEFAULT_VARIANT, z, x, y))
        if tile is not None:
            found[(z, x, y)] = tile.epoch
    return found


def test_the_job_fills_the_cache_and_renders_again_what_a_change_purged(
    service: TestClient, small: str, tmp_path: Path
) -> None:
    _wait_until_rendered(service, small)
    plan = _plan(small)
    assert len(plan) > 20
    before = _cached(service, plan)
    assert set(before) == set(plan)  # every tile a province touches, z0–z10
    status = _prerender(service).status
    assert status.rendered == len(plan) and status.remaining == 0
    samples = scrape(service)
    assert value(samples, "geo_service_tile_prerendered_total") == len(plan)
    assert value(samples, "geo_service_tile_prerender_remaining") == 0
    # a map opened now is served from the cache: no tile is rendered for it
    misses = service.app.state.services.tiles.stats.misses  # type: ignore[attr-defined]
    for z, x, y in plan[:10]:
        assert service.get(f"/collections/{LAYER}/tiles/WebMercatorQuad/{z}/{x}/{y}").is_success
    assert service.app.state.services.tiles.stats.misses == misses  # type: ignore[attr-defined]

    # a plain SQL edit of Bắc Ninh (27): its tiles are purged and rendered again, no others
    with psycopg.connect(small, autocommit=True) as conn:
        epoch = conn.execute("SELECT epoch FROM tile_epoch").fetchone()
        conn.execute(
            "UPDATE admin_unit SET geom = ST_Multi(ST_Scale(geom, 'POINT(0.9 0.9)',"
            " ST_Centroid(geom))) WHERE vintage = 't' AND code = '27'"
        )
        changes = [
            Change(0, layer, (x0, y0, x1, y1))
            for layer, x0, y0, x1, y1 in conn.execute(
                "SELECT layer, ST_XMin(bbox), ST_YMin(bbox), ST_XMax(bbox), ST_YMax(bbox)"
                " FROM tile_change WHERE epoch > %s",
                epoch,
            ).fetchall()
        ]
    _wait_until_rendered(service, small)
    areas = changed_areas(changes)
    assert areas is not None and set(areas) == {LAYER}
    boxes = areas[LAYER]
    assert boxes is not None
    affected = {
        (z, x, y)
        for z in range(MAX_ZOOM + 1)
        for x, y in grid.tiles_touching(boxes, z, margin=64 / 4096)
    }
    after = _cached(service, plan)
    assert set(after) == set(_plan(small))  # (the shrunken province touches the same tiles)
    rerendered = {tile for tile in plan if after[tile] != before[tile]}
    assert rerendered == affected & set(plan)
    assert 0 < len(rerendered) < len(plan)
    assert _prerender(service).status.rendered == len(plan) + len(rerendered)


def test_tiles_stats_shows_the_job(service: TestClient, small: str, tmp_path: Path) -> None:
    _wait_until_rendered(service, small)
    done = subprocess.run(
        [sys.executable, "-m", "geo_service", "tiles", "stats"],
        env={
            **os.environ,
            "DATABASE_URL": small,
            "GEO_SERVICE_HOME": str(tmp_path / "home"),
            "GEO_SERVICE_TILE_CACHE": "sqlite",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split("\t", 1) for line in done.stdout.splitlines())
    assert lines["prerender_state"] == "idle"
    assert int(lines["prerender_rendered"]) == len(_plan(small))
    assert lines["prerender_remaining"] == "0"


def test_a_restart_carries_on_where_the_job_stopped(small: str, tmp_path: Path) -> None:
    settings = ServiceSettings(
        home=tmp_path / "home", tile_cache="sqlite", prerender_max_zoom=MAX_ZOOM
    )
    plan = _plan(small)
    with TestClient(create_app(settings, db_url=small)) as first:
        deadline = time.monotonic() + 120
        while _prerender(first).status.rendered < 5:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    with TestClient(create_app(settings, db_url=small)) as second:
        present = len(_cached(second, plan))
        assert 5 <= present < len(plan)
        _wait_until_rendered(second, small)
        # the second run rendered only what the first had not
        assert _prerender(second).status.rendered == len(plan) - present
        assert set(_cached(second, plan)) == set(plan)


def test_a_database_error_is_retried_and_reported(small: str, tmp_path: Path) -> None:
    settings = ServiceSettings(
        home=tmp_path / "home", tile_cache="sqlite", prerender_max_zoom=MAX_ZOOM
    )
    with TestClient(create_app(settings, db_url=small)) as client:
        job = _prerender(client)
        job.retry_s = (0.05, 0.2)
        deadline = time.monotonic() + 120
        while job.status.rendered < 3:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with psycopg.connect(small, autocommit=True) as conn:  # the job's connection dies
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'geo-service-prerender'"
            )
            # (and a change, so the job needs its connection even if it had finished)
            conn.execute(
                "UPDATE admin_unit SET geom = ST_Multi(ST_Scale(geom, 'POINT(0.9 0.9)',"
                " ST_Centroid(geom))) WHERE vintage = 't' AND code = '27'"
            )
        # requests are served meanwhile, and the job carries on when it can
        assert client.get(f"/collections/{LAYER}/tiles/WebMercatorQuad/5/25/14").is_success
        _wait_until_rendered(client, small)
        assert job.status.errors >= 1 and job.status.last_error
        assert value(scrape(client), "geo_service_tile_prerender_errors_total") >= 1
        assert set(_cached(client, _plan(small))) == set(_plan(small))


def test_changed_areas() -> None:
    assert changed_areas(None) is None
    assert changed_areas([Change(1, "a", (0, 0, 1, 1)), Change(2, "a", None)]) == {"a": None}
    assert changed_areas([Change(1, "a", (0, 0, 1, 1)), Change(2, EVERY_LAYER, None)]) is None
    assert changed_areas([Change(1, "a", (0, 0, 1, 1)), Change(2, "b", (1, 1, 2, 2))]) == {
        "a": [(0, 0, 1, 1)],
        "b": [(1, 1, 2, 2)],
    }


def test_enumeration_areas_and_a_new_collection_are_rendered_too(
    service: TestClient, small: str
) -> None:
    _wait_until_rendered(service, small)
    square = "ST_Multi(ST_MakeEnvelope(105.80, 21.00, 105.83, 21.03, 4326))"
    with psycopg.connect(small, autocommit=True) as conn:  # plain SQL, as an operator might
        conn.execute(
            "INSERT INTO admin_unit (vintage, level, code, parent_code, name, search_name,"
            f" unit_type, area_km2, geom) VALUES ('t', 'commune', '00001', '01', 'Thử',"
            f" 'thu', 'Phường', 10, {square})"
        )
        conn.execute(
            "INSERT INTO enumeration_area (census_round, code, commune_vintage, commune_code,"
            " geom, updated_by) VALUES ('2029', '00001-001', 't', '00001',"
            " ST_Multi(ST_MakeEnvelope(105.80, 21.00, 105.81, 21.01, 4326)), 'test')"
        )
        row = conn.execute("SELECT epoch FROM tile_epoch").fetchone()
        assert row is not None
    _wait_until_rendered(service, small)
    cache = service.app.state.services.tiles.caches[0]  # type: ignore[attr-defined]
    for layer, lowest in (("commune-t", 0), ("enumeration-areas", EA_MIN_ZOOM)):
        for z in range(MAX_ZOOM + 1):
            x, y = next(iter(grid.tiles_in((105.805, 21.005, 105.805, 21.005), z)))
            tile = cache.get(TileKey(layer, DEFAULT_VARIANT, z, x, y))
            if z < lowest:  # (no EA tiles there: none rendered)
                assert tile is None, f"{layer} {z}/{x}/{y}"
                continue
            assert tile is not None and tile.epoch >= row[0], f"{layer} {z}/{x}/{y}"
        assert tile is not None and tile.raw


def test_one_instance_renders_for_the_database(
    service: TestClient, small: str, tmp_path: Path
) -> None:
    _wait_until_rendered(service, small)
    settings = ServiceSettings(
        home=tmp_path / "other", tile_cache="sqlite", prerender_max_zoom=MAX_ZOOM
    )
    with TestClient(create_app(settings, db_url=small)) as other:
        deadline = time.monotonic() + 60
        while _prerender(other).status.state != "another instance renders":
            assert time.monotonic() < deadline, _prerender(other).status
            time.sleep(0.05)
        assert _prerender(other).status.rendered == 0
        assert not (tmp_path / "other" / "prerender.json").exists()

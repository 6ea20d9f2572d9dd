"""EA tiles hold every enumeration area at every zoom (issue #25): no silent cap on the
features of a tile, a guard that refuses instead of drawing part of a tile, and low-zoom
geometry generalised once per zoom (migrations 0022, 0027) that stays what the per-tile
simplification drew, keeps neighbours' shared edges and follows every edit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mapbox_vector_tile
import psycopg
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely import affinity
from shapely.geometry import shape

from geo_core import grid
from geo_service.http.app import create_app
from geo_service.settings import DEMO_RASTER, ServiceSettings
from geo_service.tiles.sql import (
    EA_BAND_ZOOMS,
    EA_LAYER,
    MvtOptions,
    ea_tile_properties,
    ea_tile_sql,
)

TILES = "/collections/enumeration-areas/tiles/WebMercatorQuad"
CELL_SQUARES = 20_100  # more than the 20,000 features a tile was cut at
COMMUNES = ["00004", "00008", "00025", "00070"]  # Ba Đình and neighbours, Hà Nội
PIXEL = 16  # cells of a 4096-cell tile in a screen pixel of a 256-pixel tile
TILE = shapely.box(0, 0, 4096, 4096)  # the tile proper, without its buffer

# An EA tile as it was drawn before migration 0022 (without its feature cap): each EA's
# Web Mercator copy simplified to half a pixel for this tile, then clipped and snapped.
_SIMPLIFIED_PER_TILE = """
WITH env AS (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS e),
features AS MATERIALIZED (
    SELECT ST_AsMVTGeom(ST_Simplify(a.geom_3857, %(tolerance)s, true), env.e, 4096, 64, true)
               AS geom,
           a.id, a.code, a.status, round(a.households)::int AS households
    FROM enumeration_area a CROSS JOIN env
    WHERE a.geom_3857 && ST_Expand(env.e, %(margin)s)
)
SELECT coalesce(ST_AsMVT(f.*, 'enumeration-areas', 4096, 'geom', 'id'), '') FROM features f
WHERE f.geom IS NOT NULL
"""


# An EA tile at z5–z8 with every EA's stored geometry put through ST_AsMVTGeom (as the
# statement did before it mapped geometry already on the tile's grid straight onto it).
_BAND_BY_MVT_GEOM = """
WITH env AS (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS e)
SELECT coalesce(ST_AsMVT(f.*, 'enumeration-areas', 4096, 'geom', 'feature_id'), '') FROM (
    SELECT ST_AsMVTGeom(a.geom_z{z}, env.e, 4096, 64, true) AS geom, a.id AS feature_id,
           {columns}
    FROM enumeration_area a CROSS JOIN env
    WHERE a.geom_3857 && ST_Expand(env.e, %(margin)s)) f
WHERE f.geom IS NOT NULL
"""


def _features(raw: bytes) -> list[dict[str, Any]]:
    if not raw:
        return []
    return list(mapbox_vector_tile.decode(raw)[EA_LAYER]["features"])


def _by_id(raw: bytes) -> dict[int, tuple[dict[str, Any], Any]]:
    """Each EA's properties and shape, by its id (the MVT feature id)."""
    return {
        f["id"]: (f["properties"], shapely.make_valid(shape(f["geometry"]))) for f in _features(raw)
    }


def _squares_sql(count: int) -> str:
    """Plain SQL adding `count` EAs of 15 m × 15 m side by side in Ba Đình (round 2031)."""
    side = 0.000135  # degrees: about 15 m
    return (
        "INSERT INTO enumeration_area (census_round, code, commune_vintage, commune_code, geom,"
        " households, updated_by)"
        " SELECT '2031', '00004-' || lpad(i::text, 5, '0'), '2025', '00004',"
        f" ST_Multi(ST_MakeEnvelope(105.815 + (i % 150) * {side}, 21.030 + (i / 150) * {side},"
        f"  105.815 + (i % 150 + 1) * {side}, 21.030 + (i / 150 + 1) * {side}, 4326)), 3, 'test'"
        f" FROM generate_series(0, {count - 1}) i"
    )


@pytest.fixture(scope="module")
def squares_db(pg: Any, demo_template: str) -> Iterator[str]:
    """A demo database with 20,100 small EAs side by side (more than a tile was cut at)."""
    url = pg.create_database(demo_template)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(_squares_sql(CELL_SQUARES))
    yield url
    pg.drop_database(url)


def test_a_tile_holds_every_ea_at_every_zoom(squares_db: str, tmp_path: Any) -> None:
    """20,100 EAs of 15 m in one place: every tile over them, from z5 (where each is a tiny
    fraction of a pixel) to z9, holds all of them (a tile used to stop at 20,000, and EAs
    smaller than a cell of the tile's grid vanished)."""
    settings = ServiceSettings(home=tmp_path / "home", tile_cache="none", prerender_max_zoom=0)
    with TestClient(create_app(settings, db_url=squares_db)) as client:
        for z in (5, 7, 8, 9):
            x, y = next(grid.tiles_in((105.816, 21.031, 105.816, 21.031), z))
            response = client.get(f"{TILES}/{z}/{x}/{y}", params={"round": "2031"})
            assert response.status_code == 200, response.text
            ids = {f["id"] for f in _features(response.content)}
            assert len(ids) == CELL_SQUARES, f"z{z}: {len(ids)} of {CELL_SQUARES} EAs"


def test_a_feature_guard_refuses_the_tile_instead_of_cutting_it(
    squares_db: str, tmp_path: Any
) -> None:
    """With GEO_SERVICE_MAX_FEATURES_PER_TILE set, a tile over more EAs is a 422 naming `z`
    (a part of a tile would look like all of it), never cached; a tile under it is whole."""
    settings = ServiceSettings(
        home=tmp_path / "home",
        tile_cache="sqlite",
        prerender_max_zoom=0,
        max_features_per_tile=20_000,
    )
    x, y = next(grid.tiles_in((105.816, 21.031, 105.816, 21.031), 7))
    with TestClient(create_app(settings, db_url=squares_db)) as client:
        for _ in range(2):  # (the refusal is not kept anywhere: the same answer again)
            refused = client.get(f"{TILES}/7/{x}/{y}", params={"round": "2031"})
            assert refused.status_code == 422, refused.text
            assert refused.json()["parameter"] == "z"
            assert "20,000" in refused.json()["detail"]
        # a z17 tile holds a few hundred of the squares: under the guard, drawn whole
        x, y = next(grid.tiles_in((105.8160, 21.0310, 105.8160, 21.0310), 17))
        small = client.get(f"{TILES}/17/{x}/{y}", params={"round": "2031"})
        assert small.status_code == 200
        assert 0 < len(_features(small.content)) < 1_000


@pytest.fixture(scope="module")
def generated_db(pg: Any, demo_template: str) -> Iterator[str]:
    """A demo database with the generator's draft EAs of four central Hà Nội communes."""
    from geo_service.ea.generate import generate

    url = pg.create_database(demo_template)
    with psycopg.connect(url, autocommit=True) as conn:
        summary = generate(conn, "2025", "2029", COMMUNES, DEMO_RASTER, 120, 3.5)
    assert summary.eas > 150
    yield url
    pg.drop_database(url)


def _tiles(url: str, z: int) -> Iterator[tuple[int, int, bytes, bytes]]:
    """Every tile at zoom z over the generated EAs, drawn now and per tile as before."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)"
            " FROM (SELECT ST_Extent(geom) AS e FROM enumeration_area) s"
        ).fetchone()
        assert row is not None
        for x, y in sorted(grid.tiles_in(tuple(row), z)):
            statement, params = ea_tile_sql(z, x, y, MvtOptions(), None)
            new = conn.execute(statement, params).fetchone()
            old = conn.execute(_SIMPLIFIED_PER_TILE, params).fetchone()
            assert new is not None and old is not None
            yield x, y, bytes(new[1]), bytes(old[0])


@pytest.mark.parametrize("z", [5, 6, 7, 8, 9])
def test_low_zoom_tiles_hold_the_same_eas_within_half_a_pixel(generated_db: str, z: int) -> None:
    """The same EAs as the per-tile simplification drew, with the same status (all tiles up
    to z8 carry) or code and status (from z9: what the pages read; the rest is in the
    items), each within half a pixel (and the rounding to the tile grid) of it; the EAs
    that vanished from it (smaller than a cell) are there too, as the one cell they lie
    in."""
    with psycopg.connect(generated_db) as conn:
        row = conn.execute("SELECT count(*) FROM enumeration_area").fetchone()
    assert row is not None
    every_ea: set[int] = set()
    for x, y, new_raw, old_raw in _tiles(generated_db, z):
        new, old = _by_id(new_raw), _by_id(old_raw)
        assert set(old) <= set(new), f"{z}/{x}/{y}: {sorted(set(old) - set(new))} missing"
        every_ea |= set(new)
        for ea_id, (props, geom) in old.items():
            new_props, new_geom = new[ea_id]
            if z < 9:
                assert new_props == {"status": props["status"]}, ea_id
            else:
                assert new_props == {"code": props["code"], "status": props["status"]}, ea_id
            if not geom.is_empty and not new_geom.is_empty:
                distance = geom.hausdorff_distance(new_geom)
                assert distance <= PIXEL, f"{z}/{x}/{y} EA {ea_id}: {distance:.1f} cells"
    assert len(every_ea) == row[0], f"z{z}: {len(every_ea)} of {row[0]} EAs"


# Each EA in a tile's box as it is, mapped onto the tile's grid (y down, not rounded)
_IN_TILE_SPACE = """
SELECT a.id, a.code, a.status,
       ST_AsBinary(ST_Affine(a.geom_3857, %(scale)s, 0, 0, %(negative_scale)s,
                             %(shift_x)s, %(shift_y)s))
FROM enumeration_area a WHERE a.geom_3857 && ST_TileEnvelope(%(z)s, %(x)s, %(y)s)
"""


@pytest.mark.parametrize("z", [10, 11, 12])
def test_z10_to_z12_tiles_draw_every_ea_within_a_pixel_of_its_geometry(
    generated_db: str, z: int
) -> None:
    """Drawn from the bands of migration 0027, a z10–z12 tile holds every EA reaching into
    it, with its code and status, within a pixel of its unsimplified geometry, and every
    part of it wider than a pixel drawn (a spike or strip narrower than that may go, as
    `ST_AsMVTGeom` cut some before); an EA too small to draw is a cell within it."""
    with psycopg.connect(generated_db) as conn:
        total = conn.execute("SELECT count(*) FROM enumeration_area").fetchone()
        row = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)"
            " FROM (SELECT ST_Extent(geom) AS e FROM enumeration_area) s"
        ).fetchone()
        assert row is not None and total is not None
        every_ea: set[int] = set()
        for x, y in sorted(grid.tiles_in(tuple(row), z)):
            statement, params = ea_tile_sql(z, x, y, MvtOptions(), None)
            answer = conn.execute(statement, params).fetchone()
            assert answer is not None
            drawn = _by_id(bytes(answer[1]))
            every_ea |= set(drawn)
            for ea_id, code, status, wkb in conn.execute(_IN_TILE_SPACE, params).fetchall():
                # (decoded tiles have y up: flipped as the decoder flips them)
                exact = affinity.scale(shapely.from_wkb(wkb), 1, -1, origin=(0, 2048))
                if ea_id not in drawn:
                    assert exact.intersection(TILE).area == 0, f"{z}/{x}/{y}: {ea_id} missing"
                    continue
                props, geom = drawn[ea_id]
                assert props == {"code": code, "status": status}, ea_id
                beyond = geom.intersection(TILE).difference(exact.buffer(PIXEL)).area
                wide = exact.buffer(-PIXEL / 2).buffer(PIXEL / 2).intersection(TILE)
                left_out = wide.difference(geom.buffer(PIXEL)).area
                assert beyond < 1e-6 and left_out < 1e-6, f"{z}/{x}/{y} EA {ea_id}"
    assert len(every_ea) == total[0], f"z{z}: {len(every_ea)} of {total[0]} EAs"


@pytest.mark.parametrize("z", EA_BAND_ZOOMS)
def test_band_tiles_decode_as_clipped_by_postgis(generated_db: str, z: int) -> None:
    """At z5–z8 and z10–z12 an EA wholly inside the tile's buffer is mapped onto the tile
    grid without ST_AsMVTGeom: every tile decodes to the same EAs, properties and shapes
    (rings turned the way the MVT spec wants, or they would decode as holes) as with
    ST_AsMVTGeom."""
    with psycopg.connect(generated_db, autocommit=True) as conn:
        row = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)"
            " FROM (SELECT ST_Extent(geom) AS e FROM enumeration_area) s"
        ).fetchone()
        assert row is not None
        for x, y in sorted(grid.tiles_in(tuple(row), z)):
            statement, params = ea_tile_sql(z, x, y, MvtOptions(), None)
            new = conn.execute(statement, params).fetchone()
            columns = ", ".join(f"a.{n}" for n in ea_tile_properties(z))
            band_sql = _BAND_BY_MVT_GEOM.replace("{z}", str(z)).replace("{columns}", columns)
            old = conn.execute(band_sql, params).fetchone()
            assert new is not None and old is not None
            drawn, clipped = _by_id(bytes(new[1])), _by_id(bytes(old[0]))
            assert set(drawn) == set(clipped), f"{z}/{x}/{y}"
            for ea_id, (props, geom) in clipped.items():
                assert drawn[ea_id][0] == props, ea_id
                assert drawn[ea_id][1].equals(geom), f"{z}/{x}/{y} EA {ea_id}"
                assert drawn[ea_id][1].area == pytest.approx(geom.area), ea_id


@pytest.mark.parametrize("z", [5, 6, 7, 8])
def test_neighbouring_eas_still_share_their_edges(generated_db: str, z: int) -> None:
    """Decoded, the EAs of a tile neither overlap (but for the single cells that stand for
    EAs smaller than half a pixel) nor leave gaps between them: the union has no hole that
    the EAs' exact union, drawn into the same tile, does not have."""
    with psycopg.connect(generated_db, autocommit=True) as conn:
        for x, y, new_raw, _ in _tiles(generated_db, z):
            geoms = [g for _, g in _by_id(new_raw).values() if not g.is_empty]
            cells = sum(1 for g in geoms if g.area <= 1)
            union = shapely.union_all(geoms)
            overlap = sum(g.area for g in geoms) - union.area
            assert overlap <= cells + 1e-6 * union.area, f"{z}/{x}/{y}: {overlap} cells²"
            row = conn.execute(
                "SELECT ST_AsBinary(ST_AsMVTGeom(ST_Transform(ST_Union(geom), 3857),"
                " ST_TileEnvelope(%s, %s, %s), 4096, 64, true)) FROM enumeration_area",
                (z, x, y),
            ).fetchone()
            assert row is not None and row[0] is not None
            exact = shapely.from_wkb(row[0])
            assert _holes(union) <= _holes(exact) + PIXEL * PIXEL, f"{z}/{x}/{y}: a gap"


@pytest.mark.parametrize("z", [10, 11, 12])
def test_z10_to_z12_bands_overlap_and_gap_less_than_the_per_tile_path(
    generated_db: str, z: int
) -> None:
    """At z10–z12 EAs of neighbouring communes whose common boundary does not have the same
    vertices on both sides overlap, or part, by slivers of a grid step once snapped, as
    they did (more) when simplified per tile: drawn from the bands, no tile overlaps or
    gaps more than the per-tile path drew it."""
    for x, y, new_raw, old_raw in _tiles(generated_db, z):
        drawn = []
        for raw in (new_raw, old_raw):
            geoms = [g for _, g in _by_id(raw).values() if not g.is_empty]
            union = shapely.union_all(geoms)
            drawn.append((sum(g.area for g in geoms) - union.area, _holes(union)))
        (overlap, holes), (overlap_before, holes_before) = drawn
        assert overlap <= overlap_before + PIXEL, f"{z}/{x}/{y}: {overlap} cells²"
        assert holes <= holes_before + PIXEL * PIXEL, f"{z}/{x}/{y}: a gap"


def _holes(geom: Any) -> float:
    """The area of a (multi)polygon's holes."""
    parts = getattr(geom, "geoms", [geom])
    return float(sum(shapely.Polygon(ring).area for part in parts for ring in part.interiors))


def test_an_edit_changes_the_low_zoom_tile(generated_db: str, tmp_path: Any) -> None:
    """Moving an EA and changing its status with plain SQL recomputes its generalised
    copies, and its (cached) z7 tile shows both; so does the (cached) z12 tile it moved
    into, drawn from the z12 band, with its code and new status."""
    settings = ServiceSettings(home=tmp_path / "home", tile_cache="sqlite", prerender_max_zoom=0)
    with psycopg.connect(generated_db, autocommit=True) as conn:
        row = conn.execute(
            "SELECT id, code, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom))"
            " FROM enumeration_area ORDER BY ST_Area(geom) DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    ea_id, code, lon, lat = row
    x, y = next(grid.tiles_in((lon, lat, lon, lat), 7))
    path = f"{TILES}/7/{x}/{y}"
    # (0.1° east of it: a z12 tile the EA is not in yet)
    moved = f"{TILES}/12/{'/'.join(map(str, next(grid.tiles_in((lon + 0.1, lat) * 2, 12))))}"

    with TestClient(create_app(settings, db_url=generated_db)) as client:
        before = _by_id(client.get(path).content)[ea_id]
        assert ea_id not in _by_id(client.get(moved).content)
        assert _by_id(client.get(path).content)[ea_id] == before  # (now from the cache)
        with psycopg.connect(generated_db, autocommit=True) as conn:
            conn.execute(
                "UPDATE enumeration_area SET geom = ST_Multi(ST_Translate(geom, 0.1, 0)),"
                " status = 'submitted' WHERE id = %s",
                (ea_id,),
            )
            stored = conn.execute(
                "SELECT bool_and("
                + " AND ".join(
                    f"ST_Equals(geom_z{z}, ea_band_geometry(geom, {z}))" for z in EA_BAND_ZOOMS
                )
                + ") FROM enumeration_area WHERE id = %s",
                (ea_id,),
            ).fetchone()
            assert stored == (True,)
        props, geom = _by_id(client.get(path).content)[ea_id]
        detailed = _by_id(client.get(moved).content)[ea_id][0]
    assert props == {"status": "submitted"}
    assert detailed == {"code": code, "status": "submitted"}
    # 0.1° of the 360 / 2**7 a z7 tile spans: about 146 of its 4096 cells, snapped to 8
    assert geom.bounds[0] - before[1].bounds[0] == pytest.approx(0.1 / (360 / 2**7) * 4096, abs=9)

"""The boundary loader: shipped files, foreign files, bad input, all-or-nothing writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import psycopg
import pytest
import shapely
from shapely.geometry import Polygon, box

from boundaries.checks import FieldMap
from boundaries.load import LoadOptions, load_boundaries
from boundaries.vintages import Vintage, add_vintage
from geo_core.errors import LoaderError
from geo_core.zoom import FINEST_BAND, ZOOM_BANDS
from tests.conftest import DEMO_DATA, TEST_DATA
from tests.helpers import fingerprint

NATURAL_EARTH = TEST_DATA / "naturalearth_lowres" / "naturalearth_lowres.shp"
WARDS = DEMO_DATA / "vietnam-3d-map-2025" / "wards"


def _vintage(conn: psycopg.Connection, vintage_id: str = "t") -> str:
    add_vintage(conn, Vintage(vintage_id, date(2020, 1, 1), description="test"))
    return vintage_id


def _write_geojson(
    path: Path, features: list[tuple[dict[str, object], Polygon]], crs: str = "EPSG:4326"
) -> Path:
    frame = gpd.GeoDataFrame([p for p, _ in features], geometry=[g for _, g in features], crs=crs)
    frame.to_file(path, driver="GPKG" if path.suffix == ".gpkg" else "GeoJSON")
    return path


def _count(conn: psycopg.Connection, vintage: str, level: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM admin_unit WHERE vintage = %s AND level = %s", (vintage, level)
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_demo_files_load_with_expected_counts(demo_ro: str) -> None:
    with psycopg.connect(demo_ro) as conn:
        assert _count(conn, "2019", "province") == 63
        assert _count(conn, "2025", "province") == 34
        assert _count(conn, "2025", "commune") == 3321
        types = dict(
            conn.execute(
                "SELECT unit_type, count(*) FROM admin_unit WHERE vintage = '2025' AND level = "
                "'commune' GROUP BY 1"
            ).fetchall()
        )
        assert types == {"Xã": 2621, "Phường": 687, "Đặc khu": 13}
        crosswalk = conn.execute("SELECT count(*) FROM crosswalk").fetchone()
        assert crosswalk == (10667,)
        hcm = conn.execute(
            "SELECT name, search_name FROM admin_unit WHERE vintage = '2025' "
            "AND level = 'province' AND code = '79'"
        ).fetchone()
        assert hcm == ("TP. Hồ Chí Minh", "tp. ho chi minh")
        # the two corrected codes are there under their official values
        fixed = {
            r[0]
            for r in conn.execute(
                "SELECT code FROM admin_unit WHERE code IN ('05665', '23737', '5665', '23938')"
                " AND vintage = '2025'"
            )
        }
        assert fixed == {"05665", "23737"}
        # every commune's parent exists
        orphans = conn.execute(
            "SELECT count(*) FROM admin_unit c WHERE c.level = 'commune' AND NOT EXISTS ("
            "SELECT 1 FROM admin_unit p WHERE p.vintage = c.vintage AND p.level = 'province'"
            " AND p.code = c.parent_code)"
        ).fetchone()
        assert orphans == (0,)


def test_projected_file_is_reprojected_and_areas_match(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    vintage = _vintage(conn)
    source = gpd.read_file(DEMO_DATA / "provinces-2019.geojson")
    # provinces near the zone's central meridian, where UTM's scale error is small
    utm = source[source["code"].isin(["01", "79", "31", "25"])].to_crs("EPSG:32648")
    path = tmp_path / "provinces-utm48n.gpkg"
    utm.to_file(path, driver="GPKG")
    load_boundaries(
        conn, [path], LoadOptions(vintage, "province", FieldMap("code", "name", None, "type"))
    )
    stored = dict(
        conn.execute(
            "SELECT code, area_km2 FROM admin_unit WHERE vintage = %s", (vintage,)
        ).fetchall()
    )
    for code, area_m2 in zip(utm["code"], utm.geometry.area, strict=True):
        assert stored[code] == pytest.approx(area_m2 / 1e6, rel=0.005)
    srid = conn.execute("SELECT DISTINCT ST_SRID(geom) FROM admin_unit").fetchall()
    assert srid == [(4326,)]


def test_src_crs_option_overrides_missing_crs(conn: psycopg.Connection, tmp_path: Path) -> None:
    vintage = _vintage(conn)
    frame = gpd.GeoDataFrame(
        {"code": ["01"], "name": ["A"]}, geometry=[box(580000, 2330000, 600000, 2350000)]
    )
    path = tmp_path / "no_crs.shp"
    frame.to_file(path)
    with pytest.raises(LoaderError, match="declares no CRS"):
        load_boundaries(conn, [path], LoadOptions(vintage, "province", FieldMap("code", "name")))
    summary = load_boundaries(
        conn,
        [path],
        LoadOptions(vintage, "province", FieldMap("code", "name"), src_crs="EPSG:32648"),
    )
    assert summary.loaded == 1
    row = conn.execute("SELECT ST_X(ST_Centroid(geom)), area_km2 FROM admin_unit").fetchone()
    assert row is not None
    assert 105.7 < row[0] < 106.0 and row[1] == pytest.approx(400, rel=0.005)


def test_unknown_crs_is_named(conn: psycopg.Connection) -> None:
    vintage = _vintage(conn)
    with pytest.raises(LoaderError, match="unknown CRS 'EPSG:999999'"):
        load_boundaries(
            conn,
            [NATURAL_EARTH],
            LoadOptions(vintage, "province", FieldMap("name", "name"), src_crs="EPSG:999999"),
        )


def test_invalid_geometry_is_repaired_and_reported(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    vintage = _vintage(conn)
    bowtie = Polygon([(105, 21), (105.2, 21.2), (105.2, 21), (105, 21.2), (105, 21)])
    path = _write_geojson(
        tmp_path / "bowtie.geojson",
        [
            ({"code": "01", "name": "Bow tie"}, bowtie),
            ({"code": "02", "name": "Square"}, box(106, 21, 106.1, 21.1)),
        ],
    )
    summary = load_boundaries(
        conn, [path], LoadOptions(vintage, "province", FieldMap("code", "name"))
    )
    assert summary.loaded == 2
    assert [(p.code, p.index) for p in summary.report.repaired] == [("01", 0)]
    assert "Self-intersection" in summary.report.repaired[0].message
    row = conn.execute(
        "SELECT ST_IsValid(geom), ST_NumGeometries(geom), area_km2 > 0"
        " FROM admin_unit WHERE code = '01'"
    ).fetchone()
    assert row == (True, 2, True)


def test_duplicate_code_is_rejected_and_nothing_changes(conn: psycopg.Connection) -> None:
    vintage = _vintage(conn)
    before = fingerprint(conn)
    with pytest.raises(LoaderError) as failure:
        load_boundaries(
            conn,
            [NATURAL_EARTH],
            LoadOptions(vintage, "province", FieldMap("iso_a3", "name"), code_pattern=r".+"),
        )
    message = failure.value.message
    assert "duplicate code '-99'" in message and "naturalearth_lowres.shp" in message
    assert fingerprint(conn) == before


def test_foreign_file_loads_with_custom_code_pattern(conn: psycopg.Connection) -> None:
    vintage = _vintage(conn)
    summary = load_boundaries(
        conn,
        [NATURAL_EARTH],
        LoadOptions(
            vintage, "province", FieldMap("name", "name", None, "continent"), code_pattern=r".+"
        ),
    )
    assert summary.loaded == 177
    row = conn.execute(
        "SELECT unit_type, round(area_km2 / 1e6) FROM admin_unit WHERE code = 'Brazil'"
    ).fetchone()
    assert row == ("South America", 9)


def test_wrong_field_names_list_the_existing_fields(conn: psycopg.Connection) -> None:
    vintage = _vintage(conn)
    with pytest.raises(LoaderError) as failure:
        load_boundaries(
            conn, [NATURAL_EARTH], LoadOptions(vintage, "province", FieldMap("ma_tinh", "ten"))
        )
    message = failure.value.message
    assert "--code-field 'ma_tinh' is not a field" in message
    assert "--name-field 'ten'" in message and "iso_a3" in message and "continent" in message


def test_bad_codes_and_empty_geometries_are_reported_with_feature_and_code(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    vintage = _vintage(conn)
    path = tmp_path / "bad.geojson"
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"code": "1", "name": "Short code"},
                        "geometry": box(105, 21, 105.1, 21.1).__geo_interface__,
                    },
                    {
                        "type": "Feature",
                        "properties": {"code": "02", "name": "No geometry"},
                        "geometry": None,
                    },
                    {
                        "type": "Feature",
                        "properties": {"code": "03", "name": "A line"},
                        "geometry": {"type": "LineString", "coordinates": [[105, 21], [106, 22]]},
                    },
                    {
                        "type": "Feature",
                        "properties": {"code": "04", "name": None},
                        "geometry": box(106, 21, 106.1, 21.1).__geo_interface__,
                    },
                ],
            }
        )
    )
    before = fingerprint(conn)
    with pytest.raises(LoaderError) as failure:
        load_boundaries(conn, [path], LoadOptions(vintage, "province", FieldMap("code", "name")))
    errors = failure.value.details["errors"]
    assert any("feature 0 code 1" in e and "does not match" in e for e in errors)
    assert any("feature 1 code 02" in e and "empty geometry" in e for e in errors)
    assert any("feature 2 code 03" in e and "LineString" in e for e in errors)
    assert any("feature 3 code 04" in e and "no name" in e for e in errors)
    assert fingerprint(conn) == before


def test_malformed_vietnam_3d_map_file_names_the_feature(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    vintage = _vintage(conn)
    path = tmp_path / "01.json"
    ring = [[105, 21], [105.1, 21], [105.1, 21.1]]
    path.write_text(
        json.dumps(
            {
                "provinceId": "01",
                "wards": [
                    {"id": "00001", "name": "Fine", "polygons": [ring]},
                    {
                        "id": "00002",
                        "name": "Broken",
                        "polygons": [[[105, 21], [105.1], [105, 21.1]]],
                    },
                ],
            }
        )
    )
    before = fingerprint(conn)
    with pytest.raises(LoaderError, match=r"01\.json: feature 1: a ring is not a list of"):
        load_boundaries(conn, [path], LoadOptions(vintage, "commune", FieldMap("id", "name")))
    assert fingerprint(conn) == before


def test_vietnam_3d_map_heights_are_dropped_and_nan_is_reported(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    vintage = _vintage(conn)
    path = tmp_path / "01.json"
    path.write_text(
        json.dumps(
            {
                "provinceId": "01",
                "wards": [
                    {
                        "id": "00001",
                        "name": "With heights",
                        "polygons": [[[105, 21, 5], [105.1, 21, 5], [105.1, 21.1, 7]]],
                    },
                    {
                        "id": "00002",
                        "name": "Not a number",
                        "polygons": [[[106, 21], [float("nan"), 21], [106.1, 21.1]]],
                    },
                ],
            }
        )
    )
    with pytest.raises(LoaderError) as failure:
        load_boundaries(conn, [path], LoadOptions(vintage, "commune", FieldMap("id", "name")))
    assert failure.value.details["errors"] == [
        f"{path}: feature 1 code 00002: geometry has non-finite coordinates"
    ]


def test_child_outside_parent_is_reported(conn: psycopg.Connection, tmp_path: Path) -> None:
    vintage = _vintage(conn)
    parents = _write_geojson(
        tmp_path / "p.geojson",
        [
            ({"code": "01", "name": "P1"}, box(105, 21, 106, 22)),
        ],
    )
    children = _write_geojson(
        tmp_path / "c.geojson",
        [
            ({"code": "00001", "name": "Inside", "p": "01"}, box(105.1, 21.1, 105.5, 21.5)),
            ({"code": "00002", "name": "Half out", "p": "01"}, box(105.8, 21.1, 106.2, 21.5)),
        ],
    )
    load_boundaries(conn, [parents], LoadOptions(vintage, "province", FieldMap("code", "name")))
    summary = load_boundaries(
        conn, [children], LoadOptions(vintage, "commune", FieldMap("code", "name", "p"))
    )
    assert summary.loaded == 2
    assert len(summary.report.warnings) == 1
    warning = summary.report.warnings[0]
    assert warning.code == "00002" and "50.0% of its area lies outside parent 01" in warning.message


def test_unknown_parent_is_an_error(conn: psycopg.Connection, tmp_path: Path) -> None:
    vintage = _vintage(conn)
    parents = _write_geojson(
        tmp_path / "p.geojson", [({"code": "01", "name": "P"}, box(105, 21, 106, 22))]
    )
    children = _write_geojson(
        tmp_path / "c.geojson",
        [({"code": "00001", "name": "Lost", "p": "99"}, box(105.1, 21.1, 105.5, 21.5))],
    )
    load_boundaries(conn, [parents], LoadOptions(vintage, "province", FieldMap("code", "name")))
    with pytest.raises(LoaderError, match="parent province '99' does not exist"):
        load_boundaries(
            conn, [children], LoadOptions(vintage, "commune", FieldMap("code", "name", "p"))
        )


def test_failure_half_way_through_the_write_leaves_no_partial_data(demo_db: str) -> None:
    with psycopg.connect(demo_db, autocommit=True) as conn:
        before = fingerprint(conn)

        def explode(stage: str, done: int, total: int) -> None:
            # units and two bands are written by now; the third band fails
            if stage == "write bands" and done == 2:
                raise RuntimeError("disk full (simulated)")

        options = LoadOptions(
            "2025",
            "commune",
            FieldMap("id", "name", "provinceId", "type"),
            replace=True,
            pad_codes=True,
            code_pattern=r"\d{5}",
        )
        wards = sorted(p for p in WARDS.glob("*.json") if p.name != "index.json")
        with pytest.raises(RuntimeError, match="simulated"):
            load_boundaries(conn, wards[:3], options, progress=explode)
        assert fingerprint(conn) == before


def test_reload_needs_replace(demo_db: str) -> None:
    with psycopg.connect(demo_db, autocommit=True) as conn:
        options = LoadOptions("2025", "province", FieldMap("id", "name", None, "type"))
        path = DEMO_DATA / "vietnam-3d-map-2025" / "provinces.json"
        with pytest.raises(LoaderError, match="pass --replace"):
            load_boundaries(conn, [path], options)
        options.replace = True
        summary = load_boundaries(conn, [path], options)
        assert summary.loaded == 34 and summary.replaced == 34


def test_unknown_vintage_lists_known_ones(conn: psycopg.Connection) -> None:
    _vintage(conn, "2025")
    with pytest.raises(LoaderError, match=r"unknown vintage '1999' \(known: 2025\)"):
        load_boundaries(
            conn, [NATURAL_EARTH], LoadOptions("1999", "province", FieldMap("name", "name"))
        )


def test_generalised_bands_form_clean_coverages(demo_ro: str) -> None:
    with psycopg.connect(demo_ro) as conn:
        cleaned_area = None
        bands = "SELECT band, tolerance FROM zoom_band ORDER BY band DESC"
        for band, tolerance in conn.execute(bands).fetchall():
            rows = conn.execute(
                "SELECT ST_AsBinary(geom) FROM admin_unit_generalised WHERE vintage = '2025'"
                " AND level = 'commune' AND band = %s",
                (band,),
            ).fetchall()
            geoms = shapely.from_wkb([r[0] for r in rows])
            assert len(geoms) == 3321
            assert not shapely.is_empty(geoms).any()
            assert shapely.is_valid(geoms).all()
            # no overlaps and identical shared edges between neighbours
            assert shapely.coverage_is_valid(geoms), f"band {band}"
            union_area = shapely.coverage_union_all(geoms).area
            total_area = float(np.sum(shapely.area(geoms)))
            assert union_area == pytest.approx(total_area, rel=1e-6)  # nothing overlaps
            cleaned_area = cleaned_area or union_area
            # simplification moves edges but opens no new gaps: the covered area holds
            # (to 1 %; 3 % for the z0–z4 bands, whose coast is simplified by 5–10 km)
            rel = 0.01 if tolerance <= 0.022 else 0.03
            assert union_area == pytest.approx(cleaned_area, rel=rel), f"band {band}"


def test_low_zoom_band_is_much_smaller(demo_ro: str) -> None:
    with psycopg.connect(demo_ro) as conn:
        counts = dict(
            conn.execute(
                "SELECT band, sum(ST_NPoints(geom)) FROM admin_unit_generalised"
                " WHERE vintage = '2025' AND level = 'commune' GROUP BY band"
            ).fetchall()
        )
    assert counts[0] < counts[FINEST_BAND] / 5
    ordered = [counts[b.band] for b in sorted(ZOOM_BANDS, key=lambda b: -b.tolerance)]
    assert ordered == sorted(ordered) and len(set(ordered)) == len(ordered)


def _cleaned_like_geos(units: np.ndarray, width: float) -> np.ndarray:
    """Our cleaning of `units`, checked to be a valid coverage with GEOS's unit areas."""
    from boundaries.generalise import clean_coverage

    ours = clean_coverage(units, gap_width=width)
    geos = shapely.coverage_clean(units, gap_width=width)  # type: ignore[attr-defined]
    assert shapely.coverage_is_valid(ours)
    assert shapely.area(ours) == pytest.approx(shapely.area(geos), abs=1e-9)
    return ours


def test_narrow_gaps_are_closed_like_geos_does() -> None:
    from boundaries.generalise import clean_coverage

    width = 0.05
    lake = box(44, 4, 46, 6)  # 2 wide: a real hole, kept
    units = np.array(
        [
            box(0, 0, 4, 10),  # A
            Polygon([(4.02, 0), (10, 0), (10, 10), (4, 10)]),  # B: a sliver triangle left of it
            box(0, -2, 10, 0),  # below both
            box(0, 10, 10, 12),  # above both
            box(20, 0, 30, 10).difference(box(24, 4, 26, 6)),  # G, around a pond ...
            box(24.01, 4.01, 25.99, 5.99),  # ... almost filled by island H
            box(40, 0, 50, 10).difference(lake),  # K, around a wide lake
        ],
        dtype=object,
    )
    ours = _cleaned_like_geos(units, width)
    areas = shapely.area(ours)
    # the sliver goes to B, whose edge along it is the longer one
    assert areas[0] == pytest.approx(40) and areas[1] == pytest.approx(60)
    # the thin frame around the island goes to G; the island stays as it was
    assert areas[4] == pytest.approx(100 - 1.98**2) and areas[5] == pytest.approx(1.98**2)
    # the wide lake stays open
    holes = [
        shapely.Polygon(r)
        for p in shapely.get_parts(shapely.coverage_union_all(ours))
        for r in p.interiors
    ]
    assert len(holes) == 1 and holes[0].equals(lake)
    # a clean coverage comes out exactly as it went in
    again = clean_coverage(ours, gap_width=width)
    assert all(a.equals_exact(b, tolerance=0) for a, b in zip(again, ours, strict=True))


def test_gaps_touching_at_a_point_are_closed_like_geos_does() -> None:
    width = 0.05
    units = np.array(
        [
            # L and R leave two sliver triangles between them, tip to tip at (5, 5)
            Polygon([(0, 0), (4.99, 0), (5, 5), (4.98, 10), (0, 10)]),  # L
            Polygon([(5.02, 0), (10, 0), (10, 10), (5.01, 10), (5, 5)]),  # R
            box(0, -2, 10, 0),
            box(0, 10, 10, 12),
            # a shallow bay in M, closed by S touching M at the bay's two corners only: the
            # union of the coverage has no hole there, but the bay is a gap all the same
            box(20, 0, 30, 10).difference(box(24, 9.98, 26, 10)),  # M
            Polygon([(24, 10), (26, 10), (25, 11)]),  # S
        ],
        dtype=object,
    )
    ours = _cleaned_like_geos(units, width)
    # no gap is left: the outline is that of the boxes and S
    assert shapely.area(shapely.union_all(ours)) == pytest.approx(100 + 20 + 20 + 100 + 1)
    # the lower sliver goes to R (the longer edge along it), the upper one to L
    assert shapely.covers(ours[1], Polygon([(4.99, 0), (5.02, 0), (5, 5)]))
    assert shapely.covers(ours[0], Polygon([(5, 5), (5.01, 10), (4.98, 10)]))
    assert shapely.covers(ours[4], box(24, 9.98, 26, 10))


def test_large_coverage_cleaned_in_halves_is_a_clean_coverage() -> None:
    from boundaries.generalise import clean_coverage

    rng = np.random.default_rng(7)
    # 1,200 cells (enough to be cleaned in two halves), each overlapping its right and upper
    # neighbours by a sliver up to 0.01 wide
    units = np.array(
        [
            box(i, j, i + 1 + rng.uniform(0, 0.01), j + 1 + rng.uniform(0, 0.01))
            for i in range(40)
            for j in range(30)
        ],
        dtype=object,
    )
    ours = clean_coverage(units)

    assert shapely.coverage_is_valid(ours)
    assert shapely.area(ours).sum() == pytest.approx(shapely.area(shapely.union_all(units)))
    # each cell keeps its shape: at most the slivers along its four sides moved
    assert shapely.area(shapely.symmetric_difference(ours, units)).max() < 4 * 0.01 * 1.01
    assert shapely.covers(
        ours, [box(i + 0.02, j + 0.02, i + 0.98, j + 0.98) for i in range(40) for j in range(30)]
    ).all()


@pytest.mark.parametrize(
    "inner",
    [
        box(4.01, 4.01, 5.99, 5.99),  # J leaves a narrow frame in I's hole: a gap of its own
        box(4.5, 4.5, 5.5, 5.5),  # J leaves a wide one: it stays, the outer frame closes
    ],
)
def test_gaps_around_islands_with_islands_are_closed_like_geos_does(inner: Polygon) -> None:
    frame = box(0, 0, 10, 10).difference(box(2, 2, 8, 8))  # G, around a pond ...
    island = box(2.01, 2.01, 7.99, 7.99).difference(box(4, 4, 6, 6))  # ... with island I
    ours = _cleaned_like_geos(np.array([frame, island, inner], dtype=object), 0.05)
    assert shapely.area(ours[0]) == pytest.approx(100 - 5.98**2)  # G took the frame


def test_a_gap_around_one_part_of_a_unit_is_closed_like_geos_does() -> None:
    frame = box(0, 0, 10, 10).difference(box(2, 2, 8, 8))
    # one part of U is the island in G's pond, the other lies far away
    unit = shapely.MultiPolygon([box(2.01, 2.01, 7.99, 7.99), box(20, 0, 30, 10)])
    ours = _cleaned_like_geos(np.array([frame, unit], dtype=object), 0.05)
    assert shapely.area(ours[0]) == pytest.approx(100 - 5.98**2)


# --- third-party files: what a loader review found -----------------------------------------


def _province_options(vintage: str, **extra: object) -> LoadOptions:
    return LoadOptions(vintage, "province", FieldMap("code", "name"), **extra)  # type: ignore[arg-type]


def test_heights_are_dropped_and_reported(conn: psycopg.Connection, tmp_path: Path) -> None:
    vintage = _vintage(conn)
    square = shapely.force_3d(box(105, 21, 105.1, 21.1), 12.5)
    path = tmp_path / "z.shp"  # a PolygonZ shapefile, as ArcGIS exports
    gpd.GeoDataFrame({"code": ["01"], "name": ["A"]}, geometry=[square], crs="EPSG:4326").to_file(
        path
    )
    summary = load_boundaries(conn, [path], _province_options(vintage))
    assert summary.loaded == 1
    row = conn.execute("SELECT ST_NDims(geom) FROM admin_unit").fetchone()
    assert row == (2,)


def test_unreadable_rings_name_the_feature(conn: psycopg.Connection, tmp_path: Path) -> None:
    vintage = _vintage(conn)
    good = [[105, 21], [105.1, 21], [105.1, 21.1], [105, 21]]
    unclosed = [[106, 21], [106.1, 21], [106.1, 21.1], [106, 21.1]]
    path = tmp_path / "rings.geojson"
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"code": code, "name": code},
                        "geometry": {"type": "Polygon", "coordinates": [ring]},
                    }
                    for code, ring in (("01", good), ("02", unclosed))
                ],
            }
        )
    )
    before = fingerprint(conn)
    with pytest.raises(LoaderError, match=r"rings.geojson: feature 1 code 02: geometry cannot"):
        load_boundaries(conn, [path], _province_options(vintage))
    assert fingerprint(conn) == before


@pytest.mark.parametrize(("corner", "feature"), [((105, 90.3), 1), ((180.3, 21), 1)])
def test_coordinates_beyond_lon_lat_name_the_feature(
    conn: psycopg.Connection, tmp_path: Path, corner: tuple[float, float], feature: int
) -> None:
    vintage = _vintage(conn)
    x, y = corner
    path = _write_geojson(
        tmp_path / "far.geojson",
        [
            ({"code": "01", "name": "A"}, box(105, 21, 105.1, 21.1)),
            ({"code": "02", "name": "B"}, box(x - 0.5, y - 0.5, x, y)),
        ],
    )
    with pytest.raises(LoaderError, match=rf"feature {feature} code 02: coordinates fall"):
        load_boundaries(conn, [path], _province_options(vintage))


def test_src_crs_overriding_the_files_own_is_reported(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    vintage = _vintage(conn)
    path = _write_geojson(
        tmp_path / "p.gpkg",
        [({"code": "01", "name": "A"}, box(580000, 2330000, 600000, 2350000))],
        crs="EPSG:3405",
    )
    summary = load_boundaries(conn, [path], _province_options(vintage, src_crs="EPSG:32648"))
    assert any(
        "overrides the CRS the file declares (EPSG:3405)" in w.message
        for w in summary.report.warnings
    )


def test_pad_codes_restores_parent_codes_too(conn: psycopg.Connection, tmp_path: Path) -> None:
    vintage = _vintage(conn)
    parents = _write_geojson(
        tmp_path / "p.gpkg", [({"code": 1, "name": "P"}, box(105, 21, 106, 22))]
    )
    children = _write_geojson(
        tmp_path / "c.gpkg", [({"code": 4, "name": "C", "p": 1}, box(105.1, 21.1, 105.5, 21.5))]
    )
    load_boundaries(conn, [parents], _province_options(vintage, pad_codes=True))
    summary = load_boundaries(
        conn,
        [children],
        LoadOptions(vintage, "commune", FieldMap("code", "name", "p"), pad_codes=True),
    )
    assert summary.loaded == 1
    row = conn.execute(
        "SELECT code, parent_code FROM admin_unit WHERE level = 'commune'"
    ).fetchone()
    assert row == ("00004", "01")
    assert {p.message for p in summary.report.repaired} == {
        "code '4' corrected to '00004': leading zeros restored (--pad-codes)",
        "parent code '1' corrected to '01': leading zeros restored (--pad-codes)",
    }


def test_several_layers_need_a_choice(conn: psycopg.Connection, tmp_path: Path) -> None:
    vintage = _vintage(conn)
    path = tmp_path / "two.gpkg"
    for layer, x in (("old", 105), ("new", 106)):
        gpd.GeoDataFrame(
            {"code": ["01"], "name": [layer]}, geometry=[box(x, 21, x + 0.1, 21.1)], crs="EPSG:4326"
        ).to_file(path, layer=layer)
    with pytest.raises(LoaderError, match="has 2 layers: old, new; say which with --layer"):
        load_boundaries(conn, [path], _province_options(vintage))
    summary = load_boundaries(conn, [path], _province_options(vintage, layer="new"))
    assert summary.loaded == 1


def test_empty_layer_and_missing_attributes_say_so(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    vintage = _vintage(conn)
    path = tmp_path / "empty.gpkg"
    gpd.GeoDataFrame({"code": [], "name": []}, geometry=[], crs="EPSG:4326").to_file(path)
    with pytest.raises(LoaderError, match="empty.gpkg: the layer has no features"):
        load_boundaries(conn, [path], _province_options(vintage))
    shp = tmp_path / "nodbf.shp"
    gpd.GeoDataFrame(
        {"code": ["01"], "name": ["A"]}, geometry=[box(105, 21, 106, 22)], crs="EPSG:4326"
    ).to_file(shp)
    shp.with_suffix(".dbf").unlink()
    with pytest.raises(LoaderError, match="needs its .dbf"):
        load_boundaries(conn, [shp], _province_options(vintage))


def test_dbf_encoding_can_be_given_and_mis_decoding_is_noticed(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    vintage = _vintage(conn)
    path = tmp_path / "utf8.shp"
    gpd.GeoDataFrame(
        {"code": ["01"], "name": ["Hà Nội"]}, geometry=[box(105, 21, 106, 22)], crs="EPSG:4326"
    ).to_file(path, encoding="UTF-8")
    path.with_suffix(".cpg").unlink()  # as many shapefiles come: no word on the encoding
    summary = load_boundaries(conn, [path], _province_options(vintage))
    assert any(
        "looks mis-decoded" in w.message and "--encoding UTF-8" in w.message
        for w in summary.report.warnings
    )
    load_boundaries(conn, [path], _province_options(vintage, replace=True, encoding="UTF-8"))
    assert conn.execute("SELECT name FROM admin_unit").fetchone() == ("Hà Nội",)
    with pytest.raises(LoaderError, match="unknown --encoding"):
        load_boundaries(conn, [path], _province_options(vintage, replace=True, encoding="klingon"))


def test_names_are_stored_composed(conn: psycopg.Connection, tmp_path: Path) -> None:
    import unicodedata

    vintage = _vintage(conn)
    decomposed = unicodedata.normalize("NFD", "Hà Nội")
    path = _write_geojson(
        tmp_path / "nfd.geojson", [({"code": "01", "name": decomposed}, box(105, 21, 106, 22))]
    )
    load_boundaries(conn, [path], _province_options(vintage))
    assert conn.execute("SELECT name FROM admin_unit").fetchone() == ("Hà Nội",)


def test_replacing_parents_may_not_orphan_children(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    vintage = _vintage(conn)
    two = _write_geojson(
        tmp_path / "p.geojson",
        [
            ({"code": "01", "name": "P1"}, box(105, 21, 106, 22)),
            ({"code": "02", "name": "P2"}, box(106, 21, 107, 22)),
        ],
    )
    load_boundaries(conn, [two], _province_options(vintage))
    children = _write_geojson(
        tmp_path / "c.geojson",
        [({"code": "00004", "name": "C", "p": "02"}, box(106.1, 21.1, 106.5, 21.5))],
    )
    load_boundaries(
        conn, [children], LoadOptions(vintage, "commune", FieldMap("code", "name", "p"))
    )
    one = _write_geojson(
        tmp_path / "one.geojson", [({"code": "01", "name": "P1"}, box(105, 21, 106, 22))]
    )
    before = fingerprint(conn)
    with pytest.raises(LoaderError, match=r"1 units .* would lose their parent.*02 \(1 commune"):
        load_boundaries(conn, [one], _province_options(vintage, replace=True))
    assert fingerprint(conn) == before


def test_overlaps_given_away_when_cleaning_are_reported(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    vintage = _vintage(conn)
    path = _write_geojson(
        tmp_path / "overlap.geojson",
        [
            ({"code": "01", "name": "A"}, box(105, 21, 105.5, 21.5)),
            ({"code": "02", "name": "B"}, box(105.25, 21, 105.75, 21.5)),
        ],
    )
    summary = load_boundaries(conn, [path], _province_options(vintage))
    changed = {w.code: w.message for w in summary.report.warnings}
    assert len(changed) == 1
    code, message = next(iter(changed.items()))
    assert "50.0% of its area lost to overlapping neighbours" in message


@pytest.mark.parametrize(
    ("options", "parameter"),
    [({"code_pattern": "("}, "--code-pattern"), ({"gap_width": -1.0}, "--gap-width")],
)
def test_bad_options_are_named(
    conn: psycopg.Connection, tmp_path: Path, options: dict[str, object], parameter: str
) -> None:
    vintage = _vintage(conn)
    path = _write_geojson(
        tmp_path / "p.geojson", [({"code": "01", "name": "A"}, box(105, 21, 106, 22))]
    )
    with pytest.raises(LoaderError) as caught:
        load_boundaries(conn, [path], _province_options(vintage, **options))
    assert caught.value.parameter == parameter


def test_two_loads_of_one_level_at_once_do_not_collide(empty_db: str, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with psycopg.connect(empty_db, autocommit=True) as conn:
        vintage = _vintage(conn)
    path = _write_geojson(
        tmp_path / "p.geojson", [({"code": "01", "name": "A"}, box(105, 21, 106, 22))]
    )

    def load(replace: bool) -> str:
        with psycopg.connect(empty_db, autocommit=True) as own:
            try:
                load_boundaries(own, [path], _province_options(vintage, replace=replace))
            except LoaderError as exc:
                return exc.message
            return "loaded"

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(load, [False, False, True, True]))
    # the first wins; a second without --replace is told so (never a unique violation)
    assert results.count("loaded") >= 1
    assert all(r == "loaded" or "pass --replace" in r for r in results), results
    with psycopg.connect(empty_db) as conn:
        assert _count(conn, vintage, "province") == 1


def _cli(database: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "geo_service", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": database, "COLUMNS": "200"},
        timeout=300,
    )


def test_cli_refuses_an_unwritable_report_before_loading(empty_db: str, tmp_path: Path) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        vintage = _vintage(conn)
        before = fingerprint(conn)
    path = _write_geojson(
        tmp_path / "p.geojson", [({"code": "01", "name": "A"}, box(105, 21, 106, 22))]
    )
    done = _cli(
        empty_db,
        "load",
        "boundaries",
        str(path),
        "--vintage",
        vintage,
        "--level",
        "province",
        "--code-field",
        "code",
        "--name-field",
        "name",
        "--report",
        str(tmp_path / "no" / "such" / "folder.csv"),
    )
    assert done.returncode == 2 and "--report" in done.stderr and "Traceback" not in done.stderr
    with psycopg.connect(empty_db) as conn:
        assert fingerprint(conn) == before


def test_cli_prints_brackets_in_messages_as_they_are(empty_db: str, tmp_path: Path) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        vintage = _vintage(conn)
    path = _write_geojson(
        tmp_path / "p.geojson", [({"code": "01", "name": "A"}, box(105, 21, 106, 22))]
    )
    for field in ("[/x]", "[bold]ma"):
        done = _cli(
            empty_db,
            "load",
            "boundaries",
            str(path),
            "--vintage",
            vintage,
            "--level",
            "province",
            "--code-field",
            field,
            "--name-field",
            "name",
        )
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert f"--code-field '{field}' is not a field" in " ".join(done.stderr.split())

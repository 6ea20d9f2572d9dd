"""Crosswalks computed from geometry: synthetic coverages with known answers (a unit split in
two, two merged, a boundary shifted), a hand-built raster, totals through carry-over, bad
input, and the 2009 communes of the demo data."""

from __future__ import annotations

import csv
import gc
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
import rasterio
import shapely
from fastapi.testclient import TestClient
from rasterio.transform import Affine
from shapely.geometry import box

from boundaries.checks import FieldMap
from boundaries.load import LoadOptions, load_boundaries
from boundaries.overlay import EQUAL_AREA_CRS, Overlay, equal_area, overlay
from boundaries.readers import read_boundaries
from boundaries.vintages import Vintage, add_vintage
from geo_core.errors import GeoServiceError, InvalidParameter, LoaderError
from geo_service.http.app import create_app
from geo_service.settings import ServiceSettings
from indicators.catalogue import Indicator, save_indicator
from indicators.crosswalk_build import build_crosswalk, compute_crosswalk
from indicators.store import carry_over, store_values
from indicators.values import ValueRow
from tests.conftest import History

REPO = Path(__file__).resolve().parent.parent
COMMUNES_2009 = REPO / "data" / "vn" / "communes-2009.geojson.gz"
WARDS_2025 = REPO / "data" / "vn" / "vietnam-3d-map-2025" / "wards"
EXACT = 1e-9
# exactextract keeps pixel coverage fractions in single precision
RASTER_EXACT = 1e-6

# Strips of 1° of latitude (10–11°N), split by longitude: on a cylindrical equal-area
# projection x is linear in longitude, so area shares are exact ratios of widths.
#   old 01 [105,107] is split into new 11 [105,106] and 12 [106,107];
#   old 02 [107,108] and 03 [108,109] are merged into new 13 [107,109];
#   the boundary between old 04 [109,110] and 05 [110,111] moves to 110.3 in the new set
#   (new 14 [109,110.3], 15 [110.3,111]).
OLD = {
    "01": (105, 107),
    "02": (107, 108),
    "03": (108, 109),
    "04": (109, 110),
    "05": (110, 111),
}
NEW = {"11": (105, 106), "12": (106, 107), "13": (107, 109), "14": (109, 110.3), "15": (110.3, 111)}
SOUTH, NORTH = 10.0, 11.0

# Raster: 0.5° pixels over [105,111] × [10,11] (2 rows × 12 columns); pixel (r, c) holds
# 1 + c (the same in both rows), so a unit's population is easy to work out by hand.
PIXEL = 0.5
COLUMNS = 12


def _frame(units: dict[str, tuple[float, float]]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"code": list(units), "name": [f"Unit {c}" for c in units]},
        geometry=[box(w, SOUTH, e, NORTH) for w, e in units.values()],
        crs="EPSG:4326",
    )


def _column_population(west: float, east: float) -> float:
    """The raster's population between two longitudes (both rows), fractional coverage."""
    total = 0.0
    for c in range(COLUMNS):
        lo, hi = 105 + c * PIXEL, 105 + (c + 1) * PIXEL
        overlap = max(0.0, min(hi, east) - max(lo, west))
        total += 2 * (1 + c) * overlap / PIXEL
    return total


@pytest.fixture
def raster(tmp_path: Path) -> Path:
    path = tmp_path / "pop.tif"
    values = np.tile(np.arange(1, COLUMNS + 1, dtype=np.float32), (2, 1))
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=COLUMNS,
        height=2,
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=Affine(PIXEL, 0, 105, 0, -PIXEL, NORTH),
        nodata=-1,
    ) as dst:
        dst.write(values, 1)
    return path


def _links(build: object) -> dict[tuple[str, str], object]:
    return {(lk.from_code, lk.to_code): lk for lk in build.links}  # type: ignore[attr-defined]


def test_split_merge_and_shift_give_exact_area_shares() -> None:
    build = compute_crosswalk(_frame(OLD), _frame(NEW), sliver=0.0)
    links = _links(build)
    assert set(links) == {
        ("01", "11"),
        ("01", "12"),
        ("02", "13"),
        ("03", "13"),
        ("04", "14"),
        ("05", "14"),
        ("05", "15"),
    }
    expected = {
        ("01", "11"): 0.5,
        ("01", "12"): 0.5,
        ("02", "13"): 1.0,
        ("03", "13"): 1.0,
        ("04", "14"): 1.0,
        ("05", "14"): 0.3,
        ("05", "15"): 0.7,
    }
    for key, share in expected.items():
        assert links[key].area_share == pytest.approx(share, abs=EXACT), key  # type: ignore[attr-defined]
    relations = {key: link.relation for key, link in links.items()}  # type: ignore[attr-defined]
    assert [k for k, r in relations.items() if r == "whole"] == [
        ("02", "13"),
        ("03", "13"),
        ("04", "14"),
    ]
    # every unit of both sides is fully covered by the other
    assert all(q.covered_share == pytest.approx(1.0, abs=EXACT) for q in build.quality)
    assert build.slivers == [] and build.notes == []


def test_population_shares_match_a_hand_built_raster(raster: Path) -> None:
    build = compute_crosswalk(
        _frame(OLD), _frame(NEW), weights=("area", "population"), raster=raster, sliver=0.0
    )
    links = _links(build)
    for (old, new), link in links.items():
        o_w, o_e = OLD[old]
        n_w, n_e = NEW[new]
        piece = _column_population(max(o_w, n_w), min(o_e, n_e))
        expected = piece / _column_population(o_w, o_e)
        assert link.population_share == pytest.approx(expected, abs=RASTER_EXACT), (old, new)  # type: ignore[attr-defined]
        if link.relation == "partial":  # type: ignore[attr-defined]
            assert link.population == pytest.approx(piece, rel=RASTER_EXACT)  # type: ignore[attr-defined]
        else:  # a unit kept whole needs no population to be split
            assert link.population is None  # type: ignore[attr-defined]
    # the shifted boundary cuts a pixel at 0.6 of its width: not the area share
    assert links[("05", "14")].population_share != pytest.approx(0.3, abs=1e-3)  # type: ignore[attr-defined]
    split = _column_population(105, 107) + _column_population(110, 111)  # old 01 and 05
    assert build.figures["population_in_split_units"] == pytest.approx(split, rel=RASTER_EXACT)


def test_slivers_are_dropped_and_reported() -> None:
    # the new boundary lies 0.005° east of the old one: a strip of 0.5 % of old 04
    new = dict(NEW) | {"14": (109, 110.005), "15": (110.005, 111)}
    old = dict(OLD) | {"04": (109, 110), "05": (110, 111)}
    build = compute_crosswalk(_frame(old), _frame(new), sliver=0.01)
    links = _links(build)
    assert ("05", "14") not in links and links[("05", "15")].relation == "whole"  # type: ignore[attr-defined]
    assert len(build.slivers) == 1 and build.slivers[0].startswith("05 → 14")
    quality = {(q.side, q.code): q for q in build.quality}
    assert quality[("from", "05")].sliver_share == pytest.approx(0.005, abs=EXACT)
    assert quality[("to", "14")].sliver_share == pytest.approx(0.005 / 1.005, abs=EXACT)
    assert any("sliver" in note for note in build.notes)


def test_partial_coverage_is_reported_per_unit() -> None:
    new = {k: v for k, v in NEW.items() if k != "12"}  # half of old 01 has no new unit
    build = compute_crosswalk(_frame(OLD), _frame(new), sliver=0.0)
    quality = {(q.side, q.code): q for q in build.quality}
    assert quality[("from", "01")].covered_share == pytest.approx(0.5, abs=EXACT)
    assert _links(build)[("01", "11")].relation == "whole"  # type: ignore[attr-defined]
    old = dict(OLD) | {"06": (120, 121)}  # far away: overlaps nothing
    build = compute_crosswalk(_frame(old), _frame(NEW), sliver=0.0)
    assert build.unlinked() == ["06"]
    assert any("06" in note and "cannot be carried" in note for note in build.notes)


def test_bad_input_is_refused_naming_what(raster: Path, tmp_path: Path) -> None:
    far = {"21": (0, 1)}
    with pytest.raises(LoaderError, match="do not overlap"):
        compute_crosswalk(_frame(OLD), _frame(far))
    overlapping = dict(NEW) | {"16": (105.5, 106.5)}
    with pytest.raises(LoaderError, match="overlap") as caught:
        compute_crosswalk(_frame(OLD), _frame(overlapping), names=("vintage a", "vintage b"))
    assert "units of vintage b overlap" in caught.value.message
    with pytest.raises(InvalidParameter, match="--raster"):
        compute_crosswalk(_frame(OLD), _frame(NEW), weights=("population",))
    with pytest.raises(InvalidParameter, match="--weights"):
        compute_crosswalk(_frame(OLD), _frame(NEW), weights=("households",))
    shifted = {k: (w + 50, e + 50) for k, (w, e) in OLD.items()}
    shifted_new = {k: (w + 50, e + 50) for k, (w, e) in NEW.items()}
    with pytest.raises(LoaderError, match=r"pop\.tif does not cover"):
        compute_crosswalk(
            _frame(shifted), _frame(shifted_new), weights=("population",), raster=raster
        )
    with pytest.raises(LoaderError, match="not found"):
        compute_crosswalk(
            _frame(OLD), _frame(NEW), weights=("population",), raster=tmp_path / "none.tif"
        )


def _hanoi() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """The 2009 communes of Hà Nội and its 2025 communes, as read from the shipped files."""
    old = read_boundaries([COMMUNES_2009])
    old = old[old["code"].str.startswith("101")].reset_index(drop=True)
    new = read_boundaries([WARDS_2025 / "01.json"])
    assert len(old) > 500 and len(new) > 100
    return old, new


def test_the_overlay_finds_every_piece_a_pairwise_cut_finds() -> None:
    """The 2009 communes of Hà Nội against its 2025 communes (real, uncleaned boundaries,
    several chunks per thread): the same pieces and areas as cutting every pair."""
    old, new = _hanoi()
    result = overlay(np.asarray(old.geometry.values), np.asarray(new.geometry.values))
    found = {
        (int(o), int(n)): a
        for o, n, a in zip(result.old_index, result.new_index, result.piece_area, strict=True)
    }
    a = shapely.make_valid(np.asarray(old.geometry.values))
    b = shapely.make_valid(np.asarray(new.geometry.values))
    o_i, n_i = np.meshgrid(np.arange(len(a)), np.arange(len(b)), indexing="ij")
    o_i, n_i = o_i.ravel(), n_i.ravel()
    area = equal_area(shapely.intersection(a[o_i], b[n_i]))
    expected = {(int(o), int(n)): x for o, n, x in zip(o_i, n_i, area, strict=True) if x > 0}
    assert found.keys() == expected.keys()
    # (the overlay clips a new unit to where it can meet the old one before cutting: the same
    # piece, rounded otherwise, so a piece of a square metre may differ by a millionth of one)
    assert all(found[k] == pytest.approx(x, rel=EXACT, abs=1e-6) for k, x in expected.items())
    # pieces in code order of the old units, then of the new ones
    order = list(zip(result.old_index, result.new_index, strict=True))
    assert order == sorted(order)
    assert result.old_area == pytest.approx(equal_area(a), rel=EXACT)
    assert result.new_area == pytest.approx(equal_area(b), rel=EXACT)


def test_each_run_of_old_units_is_measured_whole_as_soon_as_it_is_cut() -> None:
    """`then` sees every piece of an old unit in one run (what the sliver rule and the
    population shares need), with the run's own areas; its values come back in order."""
    old, new = _hanoi()
    runs: list[int] = []

    def then(run: Overlay) -> np.ndarray:
        runs.append(len(run.old_area))
        pieces_of_old = np.bincount(run.old_index, minlength=len(run.old_area))
        return pieces_of_old[run.old_index] + run.piece_area / run.old_area[run.old_index]

    result = overlay(np.asarray(old.geometry.values), np.asarray(new.geometry.values), then=then)
    assert len(runs) > 1 and sum(runs) == len(old)
    pieces_of_old = np.bincount(result.old_index, minlength=len(result.old_area))
    expected = (
        pieces_of_old[result.old_index] + result.piece_area / result.old_area[result.old_index]
    )
    assert result.measured is not None and np.array_equal(result.measured, expected)
    assert (
        overlay(
            np.asarray(old.geometry.values)[:0], np.asarray(new.geometry.values), then=then
        ).measured
        is not None
    )


def _grid(cells: int, prefix: str) -> gpd.GeoDataFrame:
    """A square of 1° cut into cells × cells units."""
    step = 1 / cells
    return gpd.GeoDataFrame(
        {"code": [f"{prefix}{i}" for i in range(cells * cells)]},
        geometry=[
            box(105 + x * step, 10 + y * step, 105 + (x + 1) * step, 10 + (y + 1) * step)
            for x in range(cells)
            for y in range(cells)
        ],
        crs="EPSG:4326",
    )


def test_the_build_runs_without_garbage_collections_and_restores_the_collector() -> None:
    """The cyclic collector is paused while a build makes its many objects (each collection
    walks the whole process holding the GIL), and left as the caller had it."""
    old, new = _grid(40, "o"), _grid(30, "n")
    started: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(info["generation"])

    gc.collect()  # (counts from zero: no collection is due as the build starts)
    gc.callbacks.append(count)
    try:
        build = compute_crosswalk(old, new)
        during = list(started)
        assert gc.isenabled()
        gc.disable()
        compute_crosswalk(old, new)
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.callbacks.remove(count)
    # (the one collection that comes due as it resumes, instead of 30 on the way)
    assert len(during) <= 1 and len(build.links) > len(old)


def test_equal_areas_are_those_of_epsg_6933() -> None:
    """The areas computed from the authalic latitude are PROJ's on EPSG:6933."""
    wards = read_boundaries([WARDS_2025 / "01.json"])
    expected = wards.to_crs(EQUAL_AREA_CRS).area.to_numpy()
    assert equal_area(np.asarray(wards.geometry.values)) == pytest.approx(expected, rel=1e-8)


# ---- with the database ------------------------------------------------------------------


@pytest.fixture
def vintages(conn: psycopg.Connection, tmp_path: Path) -> psycopg.Connection:
    """Vintages 'a' (OLD) and 'b' (NEW) at province level, population on 'a'."""
    add_vintage(conn, Vintage("a", date(2000, 1, 1), date(2025, 7, 1)))
    add_vintage(conn, Vintage("b", date(2025, 7, 1)))
    for vintage, units in (("a", OLD), ("b", NEW)):
        path = tmp_path / f"{vintage}.geojson"
        _frame(units).to_file(path)
        load_boundaries(conn, [path], LoadOptions(vintage, "province", FieldMap("code", "name")))
    save_indicator(conn, Indicator("pop", "Dân số", "Population", "count"))
    store_values(
        conn,
        "pop",
        "a",
        "province",
        [
            ValueRow("t", c, "2009", v, "ok")
            for c, v in zip(OLD, (1000.5, 20, 30, 400, 5000), strict=True)
        ],
    )
    return conn


def test_build_stores_links_quality_and_provenance(
    vintages: psycopg.Connection, raster: Path
) -> None:
    conn = vintages
    build = build_crosswalk(
        conn, "a", "b", "province", weights=("area", "population"), raster=raster
    )
    rows = conn.execute(
        "SELECT from_code, to_code, relation, area_share, population_share FROM crosswalk"
        " WHERE from_vintage = 'a' AND to_vintage = 'b' ORDER BY 1, 2"
    ).fetchall()
    assert len(rows) == len(build.links) == 7
    assert rows[0][:3] == ("01", "11", "partial") and rows[0][3] == pytest.approx(0.5)
    head = conn.execute(
        "SELECT method, weights, raster, sliver_threshold, built_at, figures"
        " FROM crosswalk_provenance WHERE from_vintage = 'a' AND to_vintage = 'b'"
    ).fetchone()
    assert head is not None
    assert head[:4] == ("computed", ["area", "population"], str(raster), 0.02)
    assert head[4] is not None and head[5]["links"] == 7
    quality = conn.execute(
        "SELECT side, count(*), min(covered_share) FROM crosswalk_quality GROUP BY side ORDER BY 1"
    ).fetchall()
    assert [(s, n) for s, n, _ in quality] == [("from", 5), ("to", 5)]
    # a second build needs --replace and changes nothing without it
    with pytest.raises(LoaderError, match="--replace"):
        build_crosswalk(conn, "a", "b", "province")
    build_crosswalk(conn, "a", "b", "province", replace=True)
    assert conn.execute("SELECT weights FROM crosswalk_provenance").fetchone() == (["area"],)


@pytest.mark.parametrize("weight", ["area", "population"])
def test_carry_over_through_a_computed_crosswalk_conserves_totals(
    vintages: psycopg.Connection, raster: Path, weight: str
) -> None:
    conn = vintages
    build_crosswalk(conn, "a", "b", "province", weights=("area", "population"), raster=raster)
    carry_over(conn, "pop", "a", "b", "province", weight)
    before = conn.execute(
        "SELECT sum(value) FROM indicator_value WHERE indicator = 'pop' AND vintage = 'a'"
    ).fetchone()
    after = conn.execute(
        "SELECT sum(value) FROM indicator_value WHERE indicator = 'pop' AND vintage = 'b'"
    ).fetchone()
    assert before and after
    assert abs(after[0] - before[0]) <= 1e-9 * before[0]


def test_totals_are_conserved_minus_what_the_report_says_falls_outside(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    add_vintage(conn, Vintage("a", date(2000, 1, 1), date(2025, 7, 1)))
    add_vintage(conn, Vintage("b", date(2025, 7, 1)))
    old = dict(OLD) | {"06": (104, 105)}  # west of every new unit
    for vintage, units in (("a", old), ("b", NEW)):
        path = tmp_path / f"{vintage}.geojson"
        _frame(units).to_file(path)
        load_boundaries(conn, [path], LoadOptions(vintage, "province", FieldMap("code", "name")))
    save_indicator(conn, Indicator("pop", "Dân số", "Population", "count"))
    values = dict(zip(old, (1000.5, 20, 30, 400, 5000, 77.25), strict=True))
    store_values(
        conn, "pop", "a", "province", [ValueRow("t", c, "2009", v, "ok") for c, v in values.items()]
    )
    build = build_crosswalk(conn, "a", "b", "province")
    assert build.unlinked() == ["06"]
    result = carry_over(conn, "pop", "a", "b", "province", "area")
    assert any("06" in note for note in result.notes)
    after = conn.execute(
        "SELECT sum(value) FROM indicator_value WHERE indicator = 'pop' AND vintage = 'b'"
    ).fetchone()
    outside = sum(values[c] for c in build.unlinked())
    assert after and abs(after[0] - (sum(values.values()) - outside)) <= 1e-9 * after[0]


def test_build_refuses_unknown_vintages_and_missing_levels(vintages: psycopg.Connection) -> None:
    conn = vintages
    with pytest.raises(LoaderError, match="unknown vintage 'zz'"):
        build_crosswalk(conn, "a", "zz", "province")
    with pytest.raises(LoaderError, match="vintage a has no commune level"):
        build_crosswalk(conn, "a", "b", "commune")
    with pytest.raises(GeoServiceError, match="same vintage"):
        build_crosswalk(conn, "a", "a", "province")
    assert conn.execute("SELECT count(*) FROM crosswalk").fetchone() == (0,)


def test_a_failed_build_writes_nothing(vintages: psycopg.Connection, tmp_path: Path) -> None:
    conn = vintages
    build_crosswalk(conn, "a", "b", "province")
    before = conn.execute("SELECT * FROM crosswalk ORDER BY 2, 3, 5, 6").fetchall()
    with pytest.raises(LoaderError):
        build_crosswalk(
            conn,
            "a",
            "b",
            "province",
            weights=("population",),
            raster=tmp_path / "missing.tif",
            replace=True,
        )
    assert conn.execute("SELECT * FROM crosswalk ORDER BY 2, 3, 5, 6").fetchall() == before


# ---- the 2009 communes of the demo data ------------------------------------------------------


def test_the_converted_2009_communes_have_the_documented_counts() -> None:
    frame = read_boundaries([COMMUNES_2009])
    assert len(frame) == 11_163 and frame["code"].nunique() == 11_163
    assert frame["code"].str.fullmatch(r"\d{7}").all()
    names = dict(zip(frame["code"], frame["name"], strict=True))
    assert names["1010101"] == "Phường Phúc Xá"  # decoded from \u escapes
    assert not frame["name"].str.contains(r"\\u", regex=False).any()
    population = frame["population"]
    assert (population == 0).sum() == 78
    assert population.sum() == pytest.approx(77_501_045.745, abs=0.01)
    readme = (REPO / "data" / "vn" / "README.md").read_text(encoding="utf-8")
    assert "communes-2009.geojson.gz" in readme and "78 communes have population 0" in readme
    assert json.loads(json.dumps(frame.crs.to_json_dict()))["id"]["code"] == 4326


def _shipped_2009(conn: psycopg.Connection) -> dict[str, float | None]:
    rows = conn.execute(
        "SELECT code, CASE WHEN status = 'ok' THEN value END FROM indicator_value"
        " WHERE indicator = 'population' AND vintage = '2025' AND level = 'commune'"
        " AND period = '2009'"
    ).fetchall()
    return dict(rows)


def test_demo_history_loads_the_2009_communes_and_carries_their_population(
    history: History,
) -> None:
    from geo_service.demo import load_history

    # (the history is loaded once for the run, into the demo as shipped: see `history`)
    with psycopg.connect(history.pg.url("tmpl_demo")) as conn:
        shipped = _shipped_2009(conn)
    lines = history.lines
    loaded = history.pg.create_database("tmpl_history")
    with psycopg.connect(loaded, autocommit=True) as conn:
        assert any("links computed" in line for line in lines)
        # the default demo's copy of the carried 2009 population is what the history computes
        assert any("shipped copy" in line for line in lines)
        again = _shipped_2009(conn)
        assert again.keys() == shipped.keys() and len(shipped) == 3321
        for code, value in shipped.items():
            assert again[code] == (pytest.approx(value, rel=1e-9) if value is not None else None)
        assert conn.execute(
            "SELECT count(*), count(DISTINCT code) FROM admin_unit"
            " WHERE vintage = '2009' AND level = 'commune'"
        ).fetchone() == (11_163, 11_163)
        name = conn.execute(
            "SELECT name FROM admin_unit WHERE vintage = '2009' AND code = '1010101'"
        ).fetchone()
        assert name == ("Phường Phúc Xá",)
        statuses = dict(
            conn.execute(
                "SELECT status, count(*) FROM indicator_value WHERE indicator = 'population'"
                " AND vintage = '2009' AND level = 'commune' GROUP BY status"
            ).fetchall()
        )
        assert statuses == {"ok": 11_163 - 78, "not_available": 78}
        head = conn.execute(
            "SELECT method, weights FROM crosswalk_provenance"
            " WHERE from_vintage = '2009' AND to_vintage = '2025' AND level = 'commune'"
        ).fetchone()
        assert head == ("computed", ["area", "population"])
        before = conn.execute(
            "SELECT sum(value) FROM indicator_value WHERE indicator = 'population'"
            " AND vintage = '2009' AND level = 'commune'"
        ).fetchone()
        after = conn.execute(
            "SELECT sum(value), count(*) FROM indicator_value WHERE indicator = 'population'"
            " AND vintage = '2025' AND level = 'commune' AND period = '2009'"
        ).fetchone()
        # a 2025 commune with any not-available 2009 part is not available; every other
        # receives exactly its shares of the 2009 communes
        expected = conn.execute(
            "SELECT sum(v.value * c.population_share) FROM crosswalk c"
            " JOIN indicator_value v ON v.indicator = 'population' AND v.vintage = '2009'"
            "  AND v.level = 'commune' AND v.code = c.from_code AND v.status = 'ok'"
            " JOIN indicator_value n ON n.indicator = 'population' AND n.vintage = '2025'"
            "  AND n.level = 'commune' AND n.period = '2009' AND n.code = c.to_code"
            "  AND n.status = 'ok'"
            " WHERE c.from_vintage = '2009' AND c.to_vintage = '2025' AND c.from_level = 'commune'"
        ).fetchone()
        assert before and after and expected and after[1] == 3321
        assert abs(after[0] - expected[0]) <= 1e-9 * expected[0]
        assert after[0] > 0.9 * before[0]
        _check_2009_provinces_and_districts(conn, lines)
        # run again: everything is skipped
        assert all("already" in line for line in load_history(conn))
    history.pg.drop_database(loaded)


def _check_2009_provinces_and_districts(conn: psycopg.Connection, lines: list[str]) -> None:
    """The 2009 provinces and districts merged from the communes: counts, a clean coverage,
    population sums with the not-available communes named, the province crosswalk to 2025
    computed from geometry and the population carried onto the 2025 provinces."""
    counts = dict(
        conn.execute(
            "SELECT level, count(*) FROM admin_unit WHERE vintage = '2009' GROUP BY level"
        ).fetchall()
    )
    assert counts == {"province": 63, "district": 703, "commune": 11_163}
    row = conn.execute(
        "SELECT name, unit_type, parent_code FROM admin_unit WHERE vintage = '2009'"
        " AND level = 'district' AND code = '10101'"
    ).fetchone()
    assert row == ("Quận Ba Đình", "Quận", "101")
    for level in ("province", "district"):
        geoms = shapely.from_wkb([r[0] for r in conn.execute(
            "SELECT ST_AsBinary(geom) FROM admin_unit_generalised WHERE vintage = '2009'"
            " AND level = %s AND band = 0", (level,)
        ).fetchall()])  # fmt: skip
        # a clean coverage: valid units, no two overlapping (GEOS's coverage validator
        # accepts the provinces too; after the loader's closing of gaps under 50 m it
        # flags edges of 4 districts, 10101, 70105, 70119 and 70131, where nothing overlaps:
        # each borders an uncovered area wider than 50 m beside a neighbour that took the
        # narrow gaps around it; README, "History")
        assert len(geoms) == counts[level] and shapely.is_valid(geoms).all()
        assert shapely.STRtree(geoms).query(geoms, predicate="overlaps").shape[1] == 0
        assert level == "district" or shapely.coverage_is_valid(geoms)
    # areas: the merged units cover what the communes cover, the gaps the communes leave
    # inside them and the gaps under 50 m between them closed on loading (1.6 % for the
    # provinces on the ellipsoid)
    areas = dict(conn.execute(
        "SELECT level, sum(ST_Area(geom::geography)) FROM admin_unit_generalised"
        " WHERE vintage = '2009' AND band = 0 GROUP BY level"
    ).fetchall())  # fmt: skip
    assert areas["commune"] < areas["district"] < areas["province"] < 1.02 * areas["commune"]
    sums = dict(conn.execute(
        "SELECT level, sum(value) FROM indicator_value WHERE indicator = 'population'"
        " AND vintage = '2009' AND period = '2009' GROUP BY level"
    ).fetchall())  # fmt: skip
    assert sums["province"] == pytest.approx(sums["commune"], rel=1e-12)
    assert sums["district"] == pytest.approx(sums["commune"], rel=1e-12)
    assert sums["commune"] == pytest.approx(77_501_045.745, abs=0.01)
    derivation = conn.execute(
        "SELECT derivation FROM indicator_series WHERE indicator = 'population'"
        " AND vintage = '2009' AND level = 'province'"
    ).fetchone()[0]
    lacking = derivation["units_with_parts_not_available"]
    assert derivation["parts_not_available"] == sum(lacking.values()) == 78
    assert lacking["101"] == 14 and len(lacking) == 20
    head = conn.execute(
        "SELECT method, weights FROM crosswalk_provenance WHERE from_vintage = '2009'"
        " AND to_vintage = '2025' AND level = 'province'"
    ).fetchone()
    assert head == ("computed", ["area", "population"])
    carried = conn.execute(
        "SELECT count(*) FILTER (WHERE status = 'ok'), sum(value) FROM indicator_value"
        " WHERE indicator = 'population' AND vintage = '2025' AND level = 'province'"
        " AND period = '2009'"
    ).fetchone()
    # (what is lost is the slivers dropped, each below 2 % of its 2009 province)
    assert carried[0] == 34 and carried[1] == pytest.approx(sums["province"], rel=0.05)
    assert any("district 2009: 703 units merged" in line for line in lines)


def test_province_crosswalk_from_geometry_agrees_with_the_official_one(demo_db: str) -> None:
    from indicators.crosswalk_build import compare_with_stored

    with psycopg.connect(demo_db, autocommit=True) as conn:
        build = build_crosswalk(conn, "2019", "2025", "province", store=False)
        agreement = compare_with_stored(conn, build, "2019", "2025", "province")
        # every old province merged whole into one new province (the merge lists)
        assert agreement.stored_whole == 63
        assert agreement.whole_disagreeing == []
        assert agreement.whole_agreeing == 63 and agreement.only_stored == []
        assert agreement.only_computed == [] and max(agreement.share_differences) == 0.0
        # nothing was stored: the official crosswalk is untouched
        assert conn.execute(
            "SELECT count(*) FROM crosswalk_provenance WHERE level = 'province'"
        ).fetchone() == (0,)


def _cli(database: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "geo_service", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": database, "COLUMNS": "200"},
        timeout=300,
    )


def test_one_command_builds_the_crosswalk_with_its_quality_figures(
    vintages: psycopg.Connection, empty_db: str, raster: Path, tmp_path: Path
) -> None:
    report = tmp_path / "links.csv"
    args = ["crosswalk", "build", "--from", "a", "--to", "b", "--level", "province"]
    done = _cli(empty_db, *args, "--raster", str(raster), "--report", str(report))
    assert done.returncode == 0, done.stderr
    assert "7 links (3 whole)" in done.stdout
    assert "a: 5 units, share covered by the other vintage: min 1.000" in done.stdout
    assert "weights area, population" in done.stdout
    rows = list(csv.DictReader(report.open(encoding="utf-8")))
    assert sum(r["kind"] == "link" for r in rows) == 7
    assert sum(r["kind"] == "unit" for r in rows) == 10
    again = _cli(empty_db, *args, "--weights", "area")
    assert again.returncode == 2 and "--replace" in again.stderr
    missing = _cli(empty_db, *args, "--raster", str(tmp_path / "none.tif"), "--replace")
    assert missing.returncode == 2 and "none.tif" in missing.stderr
    level = _cli(empty_db, "crosswalk", "build", "--from", "a", "--to", "b", "--level", "commune")
    assert level.returncode == 2 and "vintage a has no commune level" in level.stderr
    # the failed runs changed nothing: still the first build's population weights
    assert vintages.execute("SELECT weights FROM crosswalk_provenance").fetchone() == (
        ["area", "population"],
    )


def test_a_rebuilt_crosswalk_carries_its_series_again(vintages: psycopg.Connection) -> None:
    conn = vintages
    build_crosswalk(conn, "a", "b", "province")
    carry_over(conn, "pop", "a", "b", "province", "area")
    expected = dict(conn.execute(_CARRIED).fetchall())
    # a stale derivation: the values no longer follow the links
    conn.execute("UPDATE indicator_value SET value = 1 WHERE indicator = 'pop' AND vintage = 'b'")
    build = build_crosswalk(conn, "a", "b", "province", replace=True)
    assert "pop carried over again through the new crosswalk" in build.notes
    assert dict(conn.execute(_CARRIED).fetchall()) == pytest.approx(expected)
    derivation = conn.execute(
        "SELECT derivation FROM indicator_series WHERE indicator = 'pop' AND vintage = 'b'"
    ).fetchone()
    assert derivation and derivation[0]["crosswalk_method"] == "computed"


_CARRIED = (
    "SELECT code, value FROM indicator_value WHERE indicator = 'pop' AND vintage = 'b'"
    " ORDER BY code"
)


def test_a_refused_build_names_both_vintages(
    vintages: psycopg.Connection, empty_db: str, tmp_path: Path
) -> None:
    """Whatever is wrong with the vintages asked for, the refusal names the crosswalk (both
    vintages and the level), in the library, the command and the API (in English and
    Vietnamese), and writes nothing."""
    conn = vintages
    add_vintage(conn, Vintage("far", date(2030, 1, 1)))
    path = tmp_path / "far.geojson"
    _frame({"21": (0, 1), "22": (1, 2)}).to_file(path)  # in the Gulf of Guinea
    load_boundaries(conn, [path], LoadOptions("far", "province", FieldMap("code", "name")))
    refusals = {
        ("a", "far", "province"): (
            "--to",
            "vintage a (province) and vintage far (province) do not overlap",
        ),
        ("a", "zz", "province"): (
            "--to",
            "unknown vintage 'zz' (crosswalk a → zz at province level); vintages: a, b, far",
        ),
        ("zz", "b", "province"): (
            "--from",
            "unknown vintage 'zz' (crosswalk zz → b at province level); vintages: a, b, far",
        ),
        ("a", "b", "commune"): (
            "--level",
            "vintage a has no commune level loaded (crosswalk a → b at commune level)",
        ),
        ("a", "b", "canton"): ("--level", "unknown level 'canton' (crosswalk a → b at canton"),
    }
    for (old, new, level), (parameter, message) in refusals.items():
        with pytest.raises(GeoServiceError) as caught:
            build_crosswalk(conn, old, new, level)
        assert caught.value.parameter == parameter and message in caught.value.message
        done = _cli(empty_db, "crosswalk", "build", "--from", old, "--to", new, "--level", level)
        assert done.returncode == 2 and message in " ".join(done.stderr.split()), done.stderr
    assert conn.execute("SELECT count(*) FROM crosswalk").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM crosswalk_provenance").fetchone() == (0,)
    # the API's answer for a crosswalk never built names both vintages, in either language
    with TestClient(create_app(ServiceSettings(home=tmp_path), db_url=empty_db)) as client:
        for lang, expected in (
            ("en", "no recorded crosswalk a → far at province level"),
            ("vi", "chưa có bảng chuyển đổi từ năm ranh giới a sang far ở cấp tỉnh"),
        ):
            answer = client.get("/crosswalks/a/far/province", headers={"Accept-Language": lang})
            assert answer.status_code == 404 and answer.json()["detail"] == expected


def test_sums_lacking_parts_stay_flagged_once_carried_over(
    vintages: psycopg.Connection, empty_db: str, tmp_path: Path
) -> None:
    """A sum with parts lacking a figure, carried over: every new unit drawing on it is
    flagged with the parts missing, in the derivation and in the API's value table."""
    conn = vintages
    save_indicator(conn, Indicator("popsum", "Dân số", "Population", "count"))
    sums = {
        "method": "sum",
        "from_vintage": "a",
        "from_level": "commune",
        "parts_vintage": "a",
        "parts_level": "commune",
        "units_with_parts_not_available": {"01": 3},
    }
    values = (10, 20, 30, 40, 50)
    rows = [ValueRow("t", c, "2009", v, "ok") for c, v in zip(OLD, values, strict=True)]
    store_values(conn, "popsum", "a", "province", rows, derivation=sums)
    build_crosswalk(conn, "a", "b", "province")
    carry_over(conn, "popsum", "a", "b", "province", "area")
    reached = {
        str(r[0])
        for r in conn.execute(
            "SELECT to_code FROM crosswalk WHERE from_vintage = 'a' AND from_code = '01'"
        ).fetchall()
    }
    derivation = conn.execute(
        "SELECT derivation FROM indicator_series WHERE indicator = 'popsum' AND vintage = 'b'"
    ).fetchone()[0]
    assert derivation["units_with_parts_not_available"] == dict.fromkeys(sorted(reached), 3)
    assert (derivation["parts_vintage"], derivation["parts_level"]) == ("a", "commune")
    with TestClient(create_app(ServiceSettings(home=tmp_path), db_url=empty_db)) as client:
        table = client.get(
            "/maps/values", params={"collection": "province-b", "indicator": "popsum"}
        ).json()
        assert table["incomplete"]["units"] == dict.fromkeys(sorted(reached), 3)
        classes = client.get(
            "/maps/choropleth", params={"collection": "province-b", "indicator": "popsum"}
        ).json()
        assert classes["incomplete"]["units"] == len(reached)
        # the plain population carried over is whole
        whole = client.get(
            "/maps/values", params={"collection": "province-a", "indicator": "pop"}
        ).json()
        assert whole["incomplete"] is None

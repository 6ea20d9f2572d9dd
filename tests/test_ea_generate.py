"""Draft enumeration areas: exact coverage, contiguity, workload band, population, determinism."""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
import shapely.affinity
from exactextract import exact_extract
from rasterio.transform import Affine
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry

from geo_service.ea.blocks import (
    as_coverage,
    boundary_share,
    cut_into_blocks,
    generate_along_lines,
)
from geo_service.ea.delineate import (
    DraftEA,
    _adjacency,
    _boundary_band,
    _burn,
    _cell_runs,
    _cut_level,
    _face_pairs,
    _Grid,
    _inside_untouched,
    _Level,
    _moments,
    _moments_of,
    _polygonal,
    _prefix_sums,
    _principal_axes,
    _read_grid,
    _segments,
    _touched,
    _unique_ints,
    _Units,
    _units,
    generate_commune_eas,
    generate_many,
    generate_on_grid,
    polygonal_all,
)
from geo_service.ea.rules import EaRules

REPO = Path(__file__).resolve().parent.parent
WORLDPOP = REPO / "data" / "vn" / "raster" / "vn_ppp_2020_1km_Aggregated.tif"
WARDS = REPO / "data" / "vn" / "vietnam-3d-map-2025" / "wards"
HANOI = WARDS / "01.json"
real_data = pytest.mark.skipif(not WORLDPOP.exists() or not HANOI.exists(), reason="no real data")

# Synthetic raster: 1 km-ish pixels (30″) near Hà Nội, 1,000 persons each, one nodata pixel.
PIXEL = 1 / 120
WEST, NORTH = 105.8, 21.05
NODATA = -99999.0
NODATA_PIXEL = (0, 5)
HOUSEHOLDS, HOUSEHOLD_SIZE = 120, 3.5
TARGET_POP = HOUSEHOLDS * HOUSEHOLD_SIZE


@pytest.fixture
def uniform(tmp_path: Path) -> Path:
    path = tmp_path / "uniform.tif"
    values = np.full((6, 6), 1000.0, dtype=np.float32)
    values[NODATA_PIXEL] = NODATA
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=6,
        height=6,
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=Affine(PIXEL, 0, WEST, 0, -PIXEL, NORTH),
        nodata=NODATA,
    ) as dst:
        dst.write(values, 1)
    return path


def pixels(row0: int, col0: int, rows: int, cols: int) -> Polygon:
    """The block of synthetic pixels rows × cols from (row0, col0)."""
    return box(
        WEST + col0 * PIXEL,
        NORTH - (row0 + rows) * PIXEL,
        WEST + (col0 + cols) * PIXEL,
        NORTH - row0 * PIXEL,
    )


def hanoi(code: str) -> MultiPolygon:
    """A Hà Nội commune of 2025 from the 3D-map JSON, made valid."""
    return commune_of("01", code)


@cache
def commune_of(province: str, code: str) -> MultiPolygon:
    """A commune of 2025 from the province's 3D-map JSON, made valid."""
    wards = json.loads((WARDS / f"{province}.json").read_text(encoding="utf-8"))["wards"]
    [ward] = [w for w in wards if w["id"] == code]
    raw = MultiPolygon([Polygon(ring) for ring in ward["polygons"]])
    parts = shapely.get_parts(shapely.make_valid(raw))
    while any(p.geom_type in ("MultiPolygon", "GeometryCollection") for p in parts):
        parts = shapely.get_parts(parts)
    return MultiPolygon([p for p in parts if p.geom_type == "Polygon"])


def raster_sum(raster: Path, commune: BaseGeometry) -> float:
    """The commune's population by exactextract (fractional pixel coverage)."""
    frame = gpd.GeoDataFrame(geometry=[commune], crs="EPSG:4326")
    table = exact_extract(str(raster), frame, "sum", output="pandas")
    return float(table["sum"].iloc[0])


def households(eas: list[DraftEA]) -> np.ndarray:
    return np.array([ea.households for ea in eas])


def in_band(eas: list[DraftEA]) -> np.ndarray:
    hh = households(eas)
    return (hh >= 0.5 * HOUSEHOLDS) & (hh <= 1.5 * HOUSEHOLDS)


def assert_exact_coverage(eas: list[DraftEA], commune: BaseGeometry) -> None:
    """No gaps, no overlaps, nothing outside the commune; edges of neighbours match."""
    geoms = np.array([ea.geometry for ea in eas])
    assert all(isinstance(g, MultiPolygon) and g.is_valid and not g.is_empty for g in geoms)
    assert [ea.serial for ea in eas] == list(range(1, len(eas) + 1))
    assert shapely.coverage_is_valid(geoms)
    tolerance = 1e-9 * commune.area
    union = shapely.coverage_union_all(geoms)
    assert shapely.symmetric_difference(union, commune).area < tolerance
    assert shapely.difference(union, commune).area < tolerance  # nothing outside
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    pairs = left < right
    overlap = shapely.area(shapely.intersection(geoms[left[pairs]], geoms[right[pairs]])).sum()
    assert overlap < tolerance
    assert abs(shapely.area(geoms).sum() - commune.area) < tolerance


def assert_contiguous(eas: list[DraftEA], commune: MultiPolygon) -> None:
    """Every EA is one polygon, unless the commune itself is in pieces there."""
    for ea in eas:
        if len(ea.geometry.geoms) == 1:
            continue
        # A multi-part EA is allowed only if each part lies in a different part of the commune
        # (an island too small for an EA of its own joins the nearest EA).
        owners = [
            next(
                i
                for i, part in enumerate(commune.geoms)
                if part.intersection(piece).area > 0.5 * piece.area
            )
            for piece in ea.geometry.geoms
        ]
        assert len(set(owners)) == len(owners), f"EA {ea.serial} is split within one piece"


def same(first: list[DraftEA], second: list[DraftEA]) -> bool:
    return len(first) == len(second) and all(
        a.geometry.wkb == b.geometry.wkb and a.population == b.population
        for a, b in zip(first, second, strict=True)
    )


# --- synthetic raster ----------------------------------------------------------------------------


def test_uniform_square_gives_ten_balanced_eas(uniform: Path) -> None:
    commune = MultiPolygon([pixels(2, 2, 2, 2)])  # 2 × 2 pixels of 1,000 persons
    eas = generate_commune_eas(commune, uniform, HOUSEHOLDS, HOUSEHOLD_SIZE)
    assert len(eas) == round(4000 / TARGET_POP) == 10
    assert_exact_coverage(eas, commune)
    assert all(len(ea.geometry.geoms) == 1 for ea in eas)
    assert in_band(eas).all(), households(eas)
    assert sum(ea.population for ea in eas) == pytest.approx(4000, rel=1e-9)
    for ea in eas:
        assert ea.households == pytest.approx(ea.population / HOUSEHOLD_SIZE)


def test_sparse_land_gets_coarser_cells_and_the_same_rules(tmp_path: Path, uniform: Path) -> None:
    # 20 persons per 1 km pixel: two EAs over 36 km². At 100 m an EA would be 1,800 cells;
    # the cells are made coarser (at most about 64 per EA, at least 2 × 2 per pixel: here
    # 500 m cells), dense land keeps 100 m cells.
    path = tmp_path / "sparse.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=6, height=6, count=1, dtype="float32",
        crs="EPSG:4326", transform=Affine(PIXEL, 0, WEST, 0, -PIXEL, NORTH),
    ) as dst:  # fmt: skip
        dst.write(np.full((6, 6), 20.0, dtype=np.float32), 1)
    commune = MultiPolygon([pixels(0, 0, 6, 6)])
    eas, cell_m = generate_on_grid(commune, path, HOUSEHOLDS, HOUSEHOLD_SIZE)
    assert cell_m > 400
    assert len(eas) == round(720 / TARGET_POP) == 2
    assert_exact_coverage(eas, commune)
    assert_contiguous(eas, commune)
    assert sum(ea.population for ea in eas) == pytest.approx(720, rel=1e-9)
    dense = MultiPolygon([pixels(2, 2, 2, 2)])
    assert generate_on_grid(dense, uniform, HOUSEHOLDS, HOUSEHOLD_SIZE)[1] < 120


def test_irregular_commune_with_a_hole_and_a_nodata_pixel(uniform: Path) -> None:
    # A disc over most of the raster, with a hole, partly over the nodata pixel: boundary cells
    # are cut along a curved boundary, and the nodata pixel counts as nobody.
    centre = shapely.Point(WEST + 3 * PIXEL, NORTH - 3 * PIXEL)
    commune = MultiPolygon([centre.buffer(2.9 * PIXEL, 64).difference(centre.buffer(PIXEL / 2))])
    eas = generate_commune_eas(commune, uniform, HOUSEHOLDS, HOUSEHOLD_SIZE)
    total = raster_sum(uniform, commune)
    assert len(eas) == round(total / TARGET_POP)
    assert_exact_coverage(eas, commune)
    assert all(len(ea.geometry.geoms) == 1 for ea in eas)
    assert in_band(eas).all(), households(eas)
    assert sum(ea.population for ea in eas) == pytest.approx(total, rel=1e-6)


def test_commune_smaller_than_a_cell_is_one_ea(uniform: Path) -> None:
    corner = (WEST + 2.3 * PIXEL, NORTH - 2.6 * PIXEL)
    commune = MultiPolygon([box(*corner, corner[0] + 0.0002, corner[1] + 0.00015)])  # ~20 × 17 m
    [ea] = generate_commune_eas(commune, uniform, HOUSEHOLDS, HOUSEHOLD_SIZE)
    assert ea.serial == 1
    assert ea.geometry.equals(commune)
    assert ea.population == pytest.approx(raster_sum(uniform, commune), rel=1e-6)


def test_population_concentrated_in_one_pixel_refines_the_cells(tmp_path: Path) -> None:
    # 40,000 persons in one 1 km pixel: 100 m cells would hold ~500 persons, more than one EA.
    path = tmp_path / "dense.tif"
    values = np.zeros((3, 3), dtype=np.float32)
    values[1, 1] = 40_000
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=3,
        height=3,
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=Affine(PIXEL, 0, WEST, 0, -PIXEL, NORTH),
    ) as dst:
        dst.write(values, 1)
    commune = MultiPolygon([pixels(0, 0, 3, 3)])
    eas = generate_commune_eas(commune, path, HOUSEHOLDS, HOUSEHOLD_SIZE)
    assert len(eas) == round(40_000 / TARGET_POP)
    assert_exact_coverage(eas, commune)
    assert all(len(ea.geometry.geoms) == 1 for ea in eas)
    assert in_band(eas).all(), households(eas)
    # The empty pixels around still belong to EAs (coverage above), at the edge of the crowd.
    assert sum(ea.population for ea in eas) == pytest.approx(40_000, rel=1e-9)


def test_deterministic_and_same_in_a_process_pool(uniform: Path) -> None:
    communes = [
        ("a", MultiPolygon([pixels(2, 2, 2, 2)])),
        ("b", MultiPolygon([pixels(0, 3, 2, 3)])),
    ]
    first = generate_many(communes, uniform, HOUSEHOLDS, HOUSEHOLD_SIZE, workers=1)
    pooled = generate_many(communes, uniform, HOUSEHOLDS, HOUSEHOLD_SIZE, workers=2)
    assert first.keys() == pooled.keys() == {"a", "b"}
    assert all(same(first[code], pooled[code]) for code in first)


def test_invalid_parameters(uniform: Path) -> None:
    with pytest.raises(ValueError):
        generate_commune_eas(pixels(2, 2, 1, 1), uniform, households_per_ea=0)


# --- real communes of Hà Nội ---------------------------------------------------------------------


@real_data
@pytest.mark.parametrize("code", ["00004", "09700", "09706"])
def test_real_commune(code: str) -> None:
    """00004 Ba Đình (dense, urban), 09700 Ba Vì (81 km², rural), 09706 Yên Bài (3 parts)."""
    commune = hanoi(code)
    eas = generate_commune_eas(commune, WORLDPOP)
    total = raster_sum(WORLDPOP, commune)
    assert len(eas) == max(1, math.floor(total / TARGET_POP + 0.5))
    assert_exact_coverage(eas, commune)
    assert_contiguous(eas, commune)
    assert in_band(eas).mean() >= 0.9
    assert sum(ea.population for ea in eas) == pytest.approx(total, rel=0.005)
    assert same(eas, generate_commune_eas(commune, WORLDPOP))


def assert_interior_is_the_centre_burn(commune: BaseGeometry, raster: Path) -> int:
    """The untouched cells found inside region by region are exactly the cells whose centre
    a rasterisation burns, less the cells the boundary touches; how many there are."""
    grid = _read_grid(commune, raster, TARGET_POP, 100)
    band = _touched(commune, grid, _boundary_band(commune, grid))
    transform = Affine(grid.dx, 0.0, float(grid.xs[0]), 0.0, -grid.dy, float(grid.ys[0]))
    burnt = _burn(commune, grid.shape, transform, False) & ~band
    assert np.array_equal(_inside_untouched(commune, grid, band), burnt)
    return int(burnt.sum())


def test_interior_cells_region_by_region_are_the_burnt_centres(uniform: Path) -> None:
    """A commune in two pieces, one with a hole holding an island of its own: regions of
    untouched cells inside, outside, in the hole and on the island."""
    outer = pixels(0, 0, 4, 4).difference(pixels(1, 1, 2, 2))
    island = shapely.affinity.scale(pixels(1, 1, 2, 2), 0.5, 0.5)
    apart = pixels(4, 4, 2, 2)
    commune = MultiPolygon([outer, island, apart])
    assert assert_interior_is_the_centre_burn(commune, uniform) > 0


@real_data
@pytest.mark.parametrize(("province", "code"), [("01", "00004"), ("01", "09706"), ("68", "24733")])
def test_interior_cells_of_real_communes_are_the_burnt_centres(province: str, code: str) -> None:
    """Ba Đình (dense, small cells), Yên Bài (three parts), 24733 (sparse, coarse cells)."""
    assert assert_interior_is_the_centre_burn(commune_of(province, code), WORLDPOP) > 0


# --- along the demo's national roads and railways -------------------------------------------------

TRANSPORT = REPO / "data" / "vn" / "lines" / "transport.geojson"


@cache
def transport() -> list[BaseGeometry]:
    """The demo's roads and railways."""
    features = json.loads(TRANSPORT.read_text(encoding="utf-8"))["features"]
    return [shapely.geometry.shape(f["geometry"]) for f in features]


def lines_across(commune: BaseGeometry) -> list[BaseGeometry]:
    """The lines crossing the commune, clipped to it (as the database hands them over)."""
    every = transport()
    near = shapely.STRtree(every).query(commune, predicate="intersects")
    clipped = [shapely.intersection(every[i], commune) for i in near]
    return [line for line in clipped if not line.is_empty]


@real_data
@pytest.mark.parametrize(
    ("code", "count", "share"),
    # EAs and share of their boundaries along a line before generation was made faster
    # (issue #24): a faster run must not give fewer EAs a line to follow.
    [("00337", 98, 0.0556), ("09552", 112, 0.0815), ("00640", 130, 0.0837)],
)
def test_real_commune_along_the_national_lines(code: str, count: int, share: float) -> None:
    """Hà Nội communes crossed by national roads: the EAs follow them as much as before, and
    every EA keeps the rules (coverage, area, workload band)."""
    commune = hanoi(code)
    lines = lines_across(commune)
    assert lines
    eas = generate_along_lines(commune, lines, WORLDPOP)
    assert len(eas) == count
    assert_exact_coverage(eas, commune)
    rules = EaRules()
    assert (households(eas) >= rules.households_min).all()
    assert (households(eas) <= rules.households_max).all()
    metres = 111_320.0 * 110_574.0 * math.cos(math.radians(commune.centroid.y))
    assert min(ea.geometry.area for ea in eas) * metres >= rules.min_area_m2
    total, along = boundary_share(eas, commune, lines)
    assert along / total >= share


def test_principal_axes_are_those_of_the_covariance() -> None:
    """The closed-form axes of a 2 × 2 covariance are LAPACK's, up to their sign."""
    rng = np.random.default_rng(24)
    cases = [(1.0, 0.0, 1.0), (2.0, 0.0, 1.0), (1.0, 0.0, 2.0), (1.0, 0.5, 1.0)]
    cases += [(float(a), float(b), float(c)) for a, b, c in rng.normal(size=(200, 3))]
    majors, minors = _principal_axes(*(np.array(column) for column in zip(*cases, strict=True)))
    for (a, b, c), major, minor in zip(cases, majors, minors, strict=True):
        _, vectors = np.linalg.eigh(np.array([[a, b], [b, c]]))
        assert abs(float(major @ vectors[:, 1])) == pytest.approx(1.0, abs=1e-9)
        assert abs(float(minor @ vectors[:, 0])) == pytest.approx(1.0, abs=1e-9)


def _level_of(groups: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[_Level, _Units]:
    """A level of the bisection made of the groups' units (x, y, area), with no edges."""
    x, y, area = (np.concatenate([group[k] for group in groups]) for k in range(3))
    node = np.repeat(np.arange(len(groups)), [len(group[0]) for group in groups])
    count, none = len(x), np.zeros(len(x), dtype=np.int64)
    units = _Units(none, none, np.empty(0, dtype=object), area.copy(), x, y, area)
    starts = np.concatenate([[0], np.cumsum(np.bincount(node))])
    empty = np.empty(0, dtype=np.int64)
    level = _Level(np.arange(count), node, starts, np.full(len(groups), 4), empty, empty)
    return level, units


def test_round_groups_are_summed_alone_so_their_cuts_do_not_turn() -> None:
    """A square of equal cells has var x = var y and cov xy = 0 but for the last bits of the
    sums, and those bits alone set its cut directions (summed in another order, this square's
    long axis turns by over 40°). Summed with the other groups of a level, such groups must
    get the sums they get on their own; the others' moments are the same to rounding."""
    columns, rows = np.meshgrid(np.arange(4), np.arange(4))
    x, y = 51.3 + columns.ravel() * 97.3, -17.1 + rows.ravel() * 97.3
    area = np.full(16, 9467.29)
    rng = np.random.default_rng(17)
    cloud = (rng.normal(size=40) * 300, rng.normal(size=40) * 90 + 7, rng.random(40) * 1e4)
    groups = [(x, y, area), cloud, (x + 5000, 2 * y, area)]
    a, b, c = _moments_of(*_level_of(groups))
    for g in (0, 2):  # the square, and a rectangle (cov xy = 0 but for the last bits)
        assert (a[g], b[g], c[g]) == _moments(*groups[g])
    assert np.allclose((a[1], b[1], c[1]), _moments(*cloud), rtol=1e-12, atol=0)
    major, _ = _principal_axes(a, b, c)
    own, _ = _principal_axes(*(np.array([m]) for m in _moments(x, y, area)))
    assert np.array_equal(major[0], own[0])


def test_running_sums_of_a_level_are_each_groups_own() -> None:
    """The quantile cut's running sums for all groups at once are, bit for bit, np.cumsum
    of each group alone (the cut position between equal cells depends on those bits), for
    groups cut one by one and small ones padded into tables."""
    rng = np.random.default_rng(5)
    sizes = np.concatenate([rng.integers(1, 40, 60), rng.integers(100, 400, 6), [1, 127, 128]])
    weights = rng.random(int(sizes.sum())) * 1000.1
    starts = np.concatenate([[0], np.cumsum(sizes)])
    expected = np.concatenate(
        [
            part
            for start, end in zip(starts[:-1], starts[1:], strict=True)
            for part in (np.zeros(1), np.cumsum(weights[start:end]))
        ]
    )
    assert _prefix_sums(weights, sizes).tobytes() == expected.tobytes()


def test_unique_ints_are_numpys() -> None:
    """The sort-based distinct values are np.unique's."""
    rng = np.random.default_rng(9)
    for values in (rng.integers(0, 50, 500), rng.integers(-(2**40), 2**40, 3000), np.empty(0)):
        ints = values.astype(np.int64)
        assert np.array_equal(_unique_ints(ints), np.unique(ints))


def test_cutting_a_level_at_once_is_cutting_each_group_alone(tmp_path: Path) -> None:
    """The bisection cuts every group of one depth together: each must be cut exactly as it is
    on its own (no sums, ties or edges leaking from one group to another). Pixels of equal
    value make many cells of equal weight, so every tie rule is exercised, and a value with
    no exact binary fraction makes sums depend on their order, as they do on real data."""
    path = tmp_path / "equal.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=6, height=6, count=1, dtype="float64",
        crs="EPSG:4326", transform=Affine(PIXEL, 0, WEST, 0, -PIXEL, NORTH),
    ) as dst:  # fmt: skip
        dst.write(np.full((6, 6), 1000.1), 1)
    # An eight-pointed star: cuts across its arms leave stray pieces to mend.
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    radii = np.tile([2.95, 1.2], 8) * PIXEL
    commune = shapely.Polygon(
        np.column_stack(
            [WEST + 3 * PIXEL + radii * np.cos(angles), NORTH - 3 * PIXEL + radii * np.sin(angles)]
        )
    )
    grid = _read_grid(commune, path, TARGET_POP, 100)
    units = _units(commune, grid)
    adjacency = _adjacency(units, grid)
    nodes = [(np.arange(units.count), round(float(units.pop.sum()) / TARGET_POP))]
    levels = 0
    while cutting := [node for node in nodes if node[1] > 1]:
        together = _cut_level(cutting, units, adjacency)
        for node, halves in zip(cutting, together, strict=True):
            [alone] = _cut_level([node], units, adjacency)
            for (idx, n), (idx_alone, n_alone) in zip(halves, alone, strict=True):
                assert n == n_alone
                assert np.array_equal(idx, idx_alone)
        cut = iter(together)
        nodes = [half for node in nodes for half in (next(cut) if node[1] > 1 else (node,))]
        levels += 1
    assert levels >= 4 and len(nodes) >= 20


@real_data
@pytest.mark.parametrize(
    ("province", "code"),
    # 24733: the cheaper of two sample communes whose blocks met this way only once sparse
    # land had at most 64 cells per EA (coarser cells, so other grid lines cross the lines)
    [("20", "06184"), ("68", "23089"), ("68", "24733")],
)
def test_blocks_meeting_along_a_line_make_a_valid_coverage(province: str, code: str) -> None:
    """06184, 23089 and 24733, cut into blocks along the national lines (issue #24): each
    block is noded on its own grid, so a point where a grid line crosses the edge between
    two blocks was computed on both sides a last digit apart; the EAs must still share their
    edges vertex for vertex, cover the commune and keep the rules."""
    commune = commune_of(province, code)
    lines = lines_across(commune)
    assert len(cut_into_blocks(commune, lines)) > 1
    eas = generate_along_lines(commune, lines, WORLDPOP)
    geoms = np.array([ea.geometry for ea in eas])
    assert shapely.is_empty(shapely.coverage_invalid_edges(geoms)).all()
    assert_exact_coverage(eas, commune)
    rules = EaRules()
    assert (households(eas) >= rules.households_min).all()
    assert (households(eas) <= rules.households_max).all()
    metres = 111_320.0 * 110_574.0 * math.cos(math.radians(commune.centroid.y))
    assert min(ea.geometry.area for ea in eas) * metres >= rules.min_area_m2
    assert same(eas, generate_along_lines(commune, lines, WORLDPOP))


def test_a_point_computed_twice_on_the_two_sides_of_an_edge_becomes_one() -> None:
    """Both EAs have the shared edge's middle vertex, a last digit apart: snapping each to
    the other at once swapped them (still no valid coverage); now both sides get one point,
    and EAs that were not broken are left as they were."""
    y = 0.3
    other_y = float(np.nextafter(y, 1.0))
    west = MultiPolygon([Polygon([(0, 0), (1, 0), (1, y), (1, 1), (0, 1)])])
    east = MultiPolygon([Polygon([(1, 0), (2, 0), (2, 1), (1, 1), (1, other_y)])])
    north = MultiPolygon([Polygon([(0, 1), (1, 1), (2, 1), (2, 2), (0, 2)])])
    drafts = [DraftEA(1, west, 1.0, 1.0), DraftEA(2, east, 1.0, 1.0), DraftEA(3, north, 1.0, 1.0)]
    assert not shapely.coverage_is_valid(np.array([west, east, north]))
    fixed = as_coverage(drafts)
    geoms = np.array([ea.geometry for ea in fixed])
    assert shapely.coverage_is_valid(geoms)
    assert [ea.serial for ea in fixed] == [1, 2, 3]
    assert shapely.coverage_union_all(geoms).equals(box(0, 0, 2, 2))
    assert fixed[2] is drafts[2]
    middle = {
        tuple(xy) for xy in shapely.get_coordinates(geoms[:2]) if xy[0] == 1 and 0 < xy[1] < 1
    }
    assert len(middle) == 1


# --- neighbouring faces by shared segments (issue #24) ------------------------------------------


def relate_pairs(units: _Units, grid: _Grid) -> set[tuple[int, int]]:
    """Pairs of units, one of them a face, whose polygons share a line (DE-9IM)."""
    n_in = units.n_interior
    polygons = np.concatenate(
        [shapely.box(grid.xs[units.col[:n_in]], grid.ys[units.row[:n_in] + 1],
                     grid.xs[units.col[:n_in] + 1], grid.ys[units.row[:n_in]]), units.faces]
    )  # fmt: skip
    left, right = shapely.STRtree(polygons).query(polygons, predicate="intersects")
    faces = (left < right) & (right >= n_in)
    left, right = left[faces], right[faces]
    shared = shapely.relate_pattern(polygons[left], polygons[right], "****1****")
    return set(zip(left[shared].tolist(), right[shared].tolist(), strict=True))


def assert_face_pairs_are_the_shared_lines(commune: BaseGeometry, raster: Path) -> None:
    """The face pairs found by matching segments are exactly the pairs whose geometries share
    a line, among all units (not only those in neighbouring cells)."""
    grid = _read_grid(commune, raster, TARGET_POP, 100)
    units = _units(commune, grid)
    assert units.count > units.n_interior > 0
    n_in = units.n_interior
    cell_unit = np.full(grid.shape, -1, dtype=np.int64)
    cell_unit[units.row[:n_in], units.col[:n_in]] = np.arange(n_in)
    a, b = _face_pairs(units, grid, cell_unit)
    found = {(min(x, y), max(x, y)) for x, y in zip(a.tolist(), b.tolist(), strict=True)}
    assert found == relate_pairs(units, grid)


def test_face_neighbours_by_shared_segments_are_those_sharing_a_line(uniform: Path) -> None:
    """A commune with a hole, an island in it and a piece apart, turned off the grid."""
    outer = pixels(0, 0, 4, 4).difference(pixels(1, 1, 2, 2))
    island = shapely.affinity.scale(pixels(1, 1, 2, 2), 0.5, 0.5)
    commune = MultiPolygon([outer, island, pixels(4, 4, 2, 2)])
    assert_face_pairs_are_the_shared_lines(shapely.affinity.rotate(commune, 7), uniform)


@real_data
@pytest.mark.parametrize(("province", "code"), [("01", "00004"), ("01", "09706")])
def test_real_face_neighbours_by_shared_segments(province: str, code: str) -> None:
    """Ba Đình (dense, small cells) and Yên Bài (three parts), as above."""
    assert_face_pairs_are_the_shared_lines(commune_of(province, code), WORLDPOP)


def test_segments_are_each_rings_own_with_the_lower_point_first() -> None:
    """A square with a square hole: four segments each, none from one ring to the other."""
    square = box(0, 0, 4, 4).difference(box(1, 1, 2, 2))
    segments, owner = _segments(np.array([square, box(4, 0, 5, 1)], dtype=object))
    assert len(segments) == 12 and owner.tolist() == [0] * 8 + [1] * 4
    assert ((segments[:, 0] < segments[:, 2]) | (
        (segments[:, 0] == segments[:, 2]) & (segments[:, 1] < segments[:, 3])
    )).all()  # fmt: skip
    assert [4.0, 0.0, 4.0, 1.0] in segments.tolist()  # the side the two polygons share


def test_polygonal_all_is_polygonal_of_each() -> None:
    """Valid polygons and multipolygons in bulk; a bow tie and an empty one as one by one."""
    bow_tie = Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    shapes = [box(0, 0, 1, 1), MultiPolygon([box(2, 0, 3, 1), box(4, 0, 5, 1)]), bow_tie]
    for bulk, alone in zip(polygonal_all(shapes), [_polygonal(s) for s in shapes], strict=True):
        assert isinstance(bulk, MultiPolygon) and bulk.equals_exact(alone, 0)


def test_cells_are_united_as_runs_with_every_corner(uniform: Path) -> None:
    """Cells side by side in a row and in one group make one polygon with a vertex at every
    cell corner along it (so its sides match its neighbours' segment for segment); a gap or
    another group starts a new run."""
    grid = _read_grid(pixels(0, 0, 2, 2), uniform, TARGET_POP, 100)
    rows = np.array([0, 0, 0, 0, 0, 1], dtype=np.int64)
    cols = np.array([0, 1, 2, 4, 5, 0], dtype=np.int64)
    group = np.array([0, 0, 0, 0, 1, 0], dtype=np.int64)
    runs, run_group = _cell_runs(grid, rows, cols, group)
    # (row 0, cells 0-2), (row 0, cell 4), (row 1, cell 0) in group 0; (row 0, cell 5) in 1
    assert run_group.tolist() == [0, 0, 0, 1]
    assert shapely.get_num_coordinates(runs).tolist() == [9, 5, 5, 5]
    assert shapely.is_valid(runs).all()
    boxes = shapely.box(grid.xs[cols], grid.ys[rows + 1], grid.xs[cols + 1], grid.ys[rows])
    assert shapely.union_all(runs).equals(shapely.union_all(boxes))
    assert shapely.area(runs).sum() == pytest.approx(shapely.area(boxes).sum(), rel=1e-12)

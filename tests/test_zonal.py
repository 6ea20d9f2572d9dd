"""Zonal statistics with fractional pixel coverage: synthetic rasters, then real data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Geod
from rasterio.transform import Affine
from rasterio.warp import Resampling, calculate_default_transform, reproject
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry

from geo_core.errors import InvalidParameter, LoaderError
from indicators import zonal
from indicators.zonal import (
    STATS,
    RasterSums,
    ZonalResult,
    raster_total,
    sum_over,
    zonal_statistics,
)

REPO = Path(__file__).resolve().parent.parent
WORLDPOP = REPO / "data" / "vn" / "raster" / "vn_ppp_2020_1km_Aggregated.tif"
PROVINCES = REPO / "data" / "vn" / "vietnam-3d-map-2025" / "provinces.json"

# 4 × 4 pixels of 1°, west 100°E, north 20°N; row r (from the top), column c holds 4r + c + 1.
WEST, NORTH, NODATA = 100.0, 20.0, -9999.0
NODATA_PIXEL = (3, 0)  # would hold 13
VALUES = np.arange(1, 17, dtype=np.float32).reshape(4, 4)
VALUES[NODATA_PIXEL] = NODATA
EXACT = 1e-9


def pixel(row: int, col: int) -> BaseGeometry:
    return box(WEST + col, NORTH - row - 1, WEST + col + 1, NORTH - row)


@pytest.fixture
def grid(tmp_path: Path) -> Path:
    path = tmp_path / "grid.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=4,
        height=4,
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=Affine(1, 0, WEST, 0, -1, NORTH),
        nodata=NODATA,
    ) as dst:
        dst.write(VALUES, 1)
    return path


def units(*geometries: BaseGeometry | None, crs: str = "EPSG:4326") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"code": [f"u{i}" for i in range(len(geometries))]}, geometry=list(geometries), crs=crs
    )


def one(raster: Path, geometry: BaseGeometry, stat: str = "sum") -> ZonalResult:
    [result] = zonal_statistics(raster, units(geometry), stat)
    return result


# --- exact results on a synthetic grid -----------------------------------------------------------


def test_polygon_equal_to_one_pixel(grid: Path) -> None:
    result = one(grid, pixel(1, 1))
    assert result == ZonalResult("u0", 6.0, 1.0)
    assert one(grid, pixel(1, 1), "mean").value == 6.0


def test_polygon_over_half_of_two_pixels_counts_each_by_its_share(grid: Path) -> None:
    # The west half of pixel (0, 1) = 2 and the east half of pixel (0, 0) = 1.
    half_half = box(WEST + 0.5, NORTH - 1, WEST + 1.5, NORTH)
    result = one(grid, half_half)
    assert result.value == pytest.approx(0.5 * 1 + 0.5 * 2, abs=EXACT)
    assert result.covered_pixels == pytest.approx(1.0, abs=EXACT)
    assert one(grid, half_half, "mean").value == pytest.approx(1.5, abs=EXACT)


def test_unit_smaller_than_a_pixel_gets_its_share(grid: Path) -> None:
    quarter = box(WEST + 1, NORTH - 2, WEST + 1.5, NORTH - 1.5)  # a quarter of pixel (1, 1) = 6
    result = one(grid, quarter)
    assert result.value == pytest.approx(6 / 4, abs=EXACT)
    assert result.covered_pixels == pytest.approx(0.25, abs=EXACT)
    for stat in ("mean", "min", "max", "median"):
        assert one(grid, quarter, stat).value == pytest.approx(6.0, abs=EXACT)


def test_nodata_pixel_alone_gives_no_value(grid: Path) -> None:
    assert one(grid, pixel(*NODATA_PIXEL)) == ZonalResult("u0", None, 0.0, 0.0, 1.0)
    assert one(grid, pixel(*NODATA_PIXEL), "mean").value is None
    assert one(grid, pixel(*NODATA_PIXEL), "count").value is None


def test_nodata_pixel_is_left_out_of_a_partial_cover(grid: Path) -> None:
    # The whole nodata pixel and the west half of pixel (3, 1) = 14.
    result = one(grid, box(WEST, NORTH - 4, WEST + 1.5, NORTH - 3))
    assert result.value == pytest.approx(0.5 * 14, abs=EXACT)
    assert result.covered_pixels == pytest.approx(0.5, abs=EXACT)
    # two thirds of the unit lie on the nodata pixel: said, for the operator to judge
    assert result.nodata_share == pytest.approx(2 / 3) and result.outside_share == 0


def test_polygon_partly_outside_the_raster(grid: Path) -> None:
    # Only the south-west quarter of pixel (0, 3) = 4 lies on the raster.
    result = one(grid, box(WEST + 3.5, NORTH - 0.5, WEST + 5, NORTH + 1))
    assert result.value == pytest.approx(4 / 4, abs=EXACT)
    assert result.covered_pixels == pytest.approx(0.25, abs=EXACT)
    assert result.outside_share == pytest.approx(1 - 0.25 / 2.25)
    assert result.nodata_share == pytest.approx(0, abs=EXACT)
    beyond = one(grid, box(WEST + 10, NORTH, WEST + 11, NORTH + 1))
    assert beyond.value is None and beyond.outside_share == 1


def test_statistics_over_several_pixels(grid: Path) -> None:
    # Rows 0–2 × columns 0–2 with a half-pixel margin: the corner pixels count 1/4, the edge
    # pixels 1/2, the centre pixel (1, 1) = 6 in full.
    window = box(WEST + 0.5, NORTH - 2.5, WEST + 2.5, NORTH - 0.5)
    weights = np.outer([0.5, 1, 0.5], [0.5, 1, 0.5])
    values = VALUES[:3, :3].astype(float)
    expected = {"sum": (weights * values).sum(), "count": 4.0, "mean": 6.0, "min": 1.0, "max": 11.0}
    assert expected["sum"] == 24.0
    for stat, value in expected.items():
        result = one(grid, window, stat)
        assert result.value == pytest.approx(value, abs=EXACT), stat
        assert result.covered_pixels == pytest.approx(4.0, abs=EXACT)


def test_statistics_skip_the_nodata_pixel(grid: Path) -> None:
    # Pixels 9, 10, 14 and the nodata pixel, all in full.
    block = box(WEST, NORTH - 4, WEST + 2, NORTH - 2)
    expected = {
        "sum": 33.0,
        "count": 3.0,
        "mean": 11.0,
        "min": 9.0,
        "max": 14.0,
        "median": 10.0,
        "stdev": math.sqrt((4 + 1 + 9) / 3),
    }
    for stat, value in expected.items():
        assert one(grid, block, stat).value == pytest.approx(value, abs=EXACT), stat


def test_several_units_keep_their_order_and_codes(grid: Path) -> None:
    frame = gpd.GeoDataFrame(
        {"ma": [7, 3, 5]},
        geometry=[pixel(2, 2), pixel(*NODATA_PIXEL), pixel(0, 0)],
        crs="EPSG:4326",
    )
    results = zonal_statistics(grid, frame, "sum", code_column="ma")
    assert results == [
        ZonalResult("7", 11.0, 1.0),
        ZonalResult("3", None, 0.0, 0.0, 1.0),
        ZonalResult("5", 1.0, 1.0),
    ]


def test_empty_collection_and_invalid_geometries(grid: Path) -> None:
    collection = shapely.GeometryCollection([pixel(0, 0), shapely.LineString([(0, 0), (1, 1)])])
    bowtie = Polygon([(WEST, NORTH), (WEST + 1, NORTH - 1), (WEST + 1, NORTH), (WEST, NORTH - 1)])
    results = zonal_statistics(grid, units(None, Polygon(), collection, bowtie), "sum")
    assert [r.value for r in results[:3]] == [None, None, 1.0]
    # make_valid splits the bow-tie into two triangles: half of pixel (0, 0).
    assert results[3].value == pytest.approx(0.5, abs=EXACT)


@pytest.mark.parametrize("read_once", [True, False])
def test_sums_batch_after_batch_from_one_open_raster(
    grid: Path, read_once: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crosswalk's population step: the zonal sums, NaN where no valid pixel, whether
    the band is read whole once or (a large raster) window by window."""
    if not read_once:
        monkeypatch.setattr(zonal, "_READ_ONCE_PIXELS", 0)
    shapes = [
        pixel(2, 2),
        pixel(*NODATA_PIXEL),
        box(WEST + 0.5, NORTH - 2.5, WEST + 2.5, NORTH - 0.5),
        box(WEST - 5, NORTH + 5, WEST - 4, NORTH + 6),  # beyond the raster
    ]
    expected = [r.value for r in zonal_statistics(grid, units(*shapes), "sum")]
    with RasterSums(grid) as sums:
        got = [*sums.sums(np.array(shapes[:2])), *sums.sums(np.array(shapes[2:]))]
        assert len(sums.sums(np.array([], dtype=object))) == 0
        assert (sums.source.whole is not None) is read_once
    assert got[0] == expected[0] == 11.0 and got[2] == pytest.approx(expected[2], abs=EXACT)
    assert math.isnan(got[1]) and math.isnan(got[3]) and expected[1] is expected[3] is None


def test_raster_total_skips_nodata(grid: Path) -> None:
    assert raster_total(grid) == sum(range(1, 17)) - 13


# --- reprojection --------------------------------------------------------------------------------


def test_units_in_another_crs_than_the_raster_are_reprojected(grid: Path) -> None:
    window = box(WEST + 0.5, NORTH - 2.5, WEST + 2.5, NORTH - 0.5)
    # Mercator maps lon/lat rectangles to rectangles, so the result stays exact.
    [result] = zonal_statistics(grid, units(window).to_crs("EPSG:3857"), "sum")
    assert result.value == pytest.approx(24.0, abs=1e-6)


@pytest.mark.parametrize("crs", ["EPSG:3857", "EPSG:32648"])
def test_raster_in_a_projected_crs(grid: Path, tmp_path: Path, crs: str) -> None:
    projected = tmp_path / "projected.tif"
    with rasterio.open(grid) as src:
        transform, width, height = calculate_default_transform(
            src.crs, crs, src.width, src.height, *src.bounds, resolution=2000
        )
        with rasterio.open(
            projected,
            "w",
            driver="GTiff",
            width=width,
            height=height,
            count=1,
            dtype="float32",
            crs=crs,
            transform=transform,
            nodata=NODATA,
        ) as dst:
            reproject(rasterio.band(src, 1), rasterio.band(dst, 1), resampling=Resampling.nearest)
    shapes = [
        box(WEST + 0.5, NORTH - 2.5, WEST + 2.5, NORTH - 0.5),
        box(WEST, NORTH - 4, WEST + 2, NORTH - 2),
        pixel(1, 1),
    ]
    # Nearest resampling keeps the values; only the pixels along the 1° edges are mixed.
    means = zonal_statistics(grid, units(*shapes), "mean")
    for a, b in zip(means, zonal_statistics(projected, units(*shapes), "mean"), strict=True):
        assert b.value == pytest.approx(a.value, rel=0.01), a.code
    # min and max take any pixel touched, so keep 5 km (> 2 pixels) away from the 1° edges.
    inset = [shape.buffer(-0.05, join_style="mitre") for shape in shapes]
    for stat in ("min", "max"):
        for a, b in zip(
            zonal_statistics(grid, units(*inset), stat),
            zonal_statistics(projected, units(*inset), stat),
            strict=True,
        ):
            assert b.value == a.value, (stat, a.code)
    # The covered 2 km pixels measure the unit's area as the projection distorts it.
    area, _ = Geod(ellps="WGS84").geometry_area_perimeter(pixel(1, 1))
    stretch = 1 / math.cos(math.radians(18.5)) ** 2 if crs == "EPSG:3857" else 1.0
    [centre] = zonal_statistics(projected, units(pixel(1, 1)), "count")
    assert centre.value == pytest.approx(abs(area) * stretch / 2000**2, rel=0.01)


def test_sum_over_one_shape_equals_the_zonal_sum(grid: Path, tmp_path: Path) -> None:
    shapes = [
        pixel(0, 0),
        box(WEST + 0.5, NORTH - 2.5, WEST + 2.5, NORTH - 0.5),
        MultiPolygon([pixel(0, 0), pixel(2, 2)]),
        pixel(3, 0),  # the nodata pixel
        box(WEST + 3.5, NORTH - 1, WEST + 5, NORTH),
    ]  # partly outside the raster
    for shape in shapes:
        assert sum_over(grid, shape) == one(grid, shape).value, shape.wkt
    assert sum_over(grid, box(0, 0, 1, 1)) is None  # outside
    # a raster in another CRS takes the general path and gives the same answer
    projected = tmp_path / "mercator.tif"
    with rasterio.open(grid) as src:
        transform, width, height = calculate_default_transform(
            src.crs, "EPSG:3857", src.width, src.height, *src.bounds, resolution=2000
        )
        with rasterio.open(
            projected,
            "w",
            driver="GTiff",
            width=width,
            height=height,
            count=1,
            dtype="float32",
            crs="EPSG:3857",
            transform=transform,
            nodata=NODATA,
        ) as dst:
            reproject(rasterio.band(src, 1), rasterio.band(dst, 1), resampling=Resampling.nearest)
    assert sum_over(projected, pixel(1, 1)) == one(projected, pixel(1, 1)).value


# --- errors --------------------------------------------------------------------------------------


def test_unknown_statistic(grid: Path) -> None:
    with pytest.raises(InvalidParameter) as failure:
        zonal_statistics(grid, units(pixel(0, 0)), "average")
    assert failure.value.parameter == "--stat"
    assert "'average'" in failure.value.message
    assert all(stat in failure.value.message for stat in STATS)


def test_missing_or_unreadable_raster(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.tif"
    with pytest.raises(LoaderError, match="nowhere.tif"):
        zonal_statistics(missing, units(pixel(0, 0)), "sum")
    with pytest.raises(LoaderError, match="nowhere.tif"):
        raster_total(missing)
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    with pytest.raises(LoaderError, match="notes.tif"):
        zonal_statistics(text, units(pixel(0, 0)), "sum")


def test_missing_band(grid: Path) -> None:
    with pytest.raises(InvalidParameter, match="band 2"):
        zonal_statistics(grid, units(pixel(0, 0)), "sum", band=2)


# --- real data: WorldPop 2020 over the 34 provinces ----------------------------------------------


def _polygonal(geometry: BaseGeometry) -> BaseGeometry:
    parts = shapely.get_parts(shapely.make_valid(geometry))
    while any(p.geom_type in ("MultiPolygon", "GeometryCollection") for p in parts):
        parts = shapely.get_parts(parts)
    return MultiPolygon([p for p in parts if p.geom_type == "Polygon"])


def _provinces() -> gpd.GeoDataFrame:
    provinces = json.loads(PROVINCES.read_text())["provinces"]
    geometries = [
        _polygonal(MultiPolygon([Polygon(ring) for ring in p["polygons"]])) for p in provinces
    ]
    return gpd.GeoDataFrame(
        {"code": [p["id"] for p in provinces]}, geometry=geometries, crs="EPSG:4326"
    )


@pytest.mark.skipif(not WORLDPOP.exists() or not PROVINCES.exists(), reason="no real data")
def test_worldpop_over_the_provinces_adds_up() -> None:
    provinces = _provinces()
    assert len(provinces) == 34
    total = raster_total(WORLDPOP)
    assert total == pytest.approx(99.49e6, rel=1e-3)

    results = zonal_statistics(WORLDPOP, provinces, "sum")
    assert [r.code for r in results] == list(provinces["code"])
    assert all(r.value is not None and r.value > 0 for r in results)
    by_province = sum(r.value or 0.0 for r in results)

    with rasterio.open(WORLDPOP) as src:
        extent = box(*src.bounds)
    union = shapely.union_all(provinces.geometry.values)
    inside, outside = zonal_statistics(WORLDPOP, units(union, extent.difference(union)), "sum")
    assert inside.value is not None and outside.value is not None
    # The union and its complement partition the raster: fractional coverage loses nothing.
    assert inside.value + outside.value == pytest.approx(total, rel=1e-9)
    # Overlaps between the provinces' polygons count twice, but they are small.
    assert by_province == pytest.approx(total - outside.value, rel=0.005)


def test_units_beyond_the_raster_are_provisional_and_reported(demo_db: str, tmp_path: Path) -> None:
    import psycopg

    from geo_service.settings import DEMO_RASTER
    from indicators.catalogue import Indicator, save_indicator
    from indicators.zonal_store import store_zonal

    # the demo raster cut at 21°N: Hà Nội's northern part is left out
    cropped = tmp_path / "cropped.tif"
    with rasterio.open(DEMO_RASTER) as src:
        window = rasterio.windows.from_bounds(
            src.bounds.left, src.bounds.bottom, src.bounds.right, 21.0, src.transform
        )
        profile = {
            **src.profile,
            "height": int(window.height),
            "width": int(window.width),
            "transform": src.window_transform(window),
        }
        with rasterio.open(cropped, "w", **profile) as dst:
            dst.write(src.read(1, window=window), 1)
    with psycopg.connect(demo_db, autocommit=True) as conn:
        save_indicator(conn, Indicator("pop_cut", "Dân số", "Population", "count"))
        result = store_zonal(conn, cropped, "pop_cut", "2025", "province", "sum", "2020")
        status = dict(
            conn.execute(
                "SELECT code, status FROM indicator_value WHERE indicator = 'pop_cut'"
            ).fetchall()
        )
    assert status["01"] == "provisional" and status["79"] == "ok"  # Hà Nội / Hồ Chí Minh
    assert any("beyond the raster" in note and "01 (" in note for note in result.notes)

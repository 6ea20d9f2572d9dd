"""Zonal statistics of a raster over polygons, with fractional pixel coverage.

A pixel cut by a unit's boundary counts by the share of its area inside the unit, so a unit
smaller than one pixel still gets its share of that pixel. Nodata (and NaN) pixels are ignored.
The coverage computation is exactextract's; this module validates the inputs, brings the units
into the raster's CRS and maps the results back to unit codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
import shapely
import shapely.geometry
from exactextract import exact_extract
from exactextract.feature import Feature, FeatureSource
from exactextract.raster import RasterioRasterSource
from pyproj import CRS
from rasterio.errors import RasterioError
from shapely.geometry.base import BaseGeometry

from geo_core.errors import InvalidParameter, LoaderError

# As exactextract defines them: weighted by coverage; min and max take every pixel touched.
STATS = ("sum", "mean", "min", "max", "count", "median", "stdev")
_POLYGONAL = ("Polygon", "MultiPolygon")
_POLYGONAL_TYPES = (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON)
_COLLECTIONS = ("MultiPoint", "MultiLineString", "MultiPolygon", "GeometryCollection")
# A band up to this many pixels is read whole once for batch after batch of sums (128 MiB
# of float32); a larger one window by window, as exactextract asks.
_READ_ONCE_PIXELS = 2**25


@dataclass(frozen=True)
class ZonalResult:
    """The statistic of one unit; value is None when the unit covers no valid pixel."""

    code: str
    value: float | None
    covered_pixels: float
    outside_share: float = 0.0  # of the unit's area beyond the raster's extent
    nodata_share: float = 0.0  # of the unit's area within the extent on nodata pixels


def zonal_statistics(
    raster: Path, units: gpd.GeoDataFrame, stat: str, *, code_column: str = "code", band: int = 1
) -> list[ZonalResult]:
    """`stat` of the raster band over each unit (in the units' order), coverage-weighted."""
    if stat not in STATS:
        raise InvalidParameter(
            f"unknown statistic {stat!r}; choose one of {', '.join(STATS)}", parameter="--stat"
        )
    if code_column not in units.columns:
        raise InvalidParameter(f"the units have no column {code_column!r}", parameter="code_column")
    codes = [str(code) for code in units[code_column]]
    with _open(raster, band) as dataset:
        return _zonal(dataset, raster, units, stat, codes, band)


class RasterSums:
    """Coverage-weighted sums of a raster band over batch after batch of lon/lat polygons,
    from the raster opened once: each batch read anew took ~15 ms per block decompressed,
    more than the sums of a few hundred polygons. One thread at a time (GDAL's rule)."""

    def __init__(self, raster: Path, band: int = 1) -> None:
        self.raster, self.band = Path(raster), band
        self.dataset = _open(self.raster, band)
        self.source = _ReadOnce(self.dataset, band)

    def __enter__(self) -> RasterSums:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dataset.close()

    def sums(self, geometries: np.ndarray) -> np.ndarray:
        """The sum over each polygon, as `zonal_statistics`; NaN where no valid pixel."""
        codes = [str(i) for i in range(len(geometries))]
        units = gpd.GeoDataFrame({"code": codes}, geometry=geometries, crs="EPSG:4326")
        results = _zonal(self.dataset, self.raster, units, "sum", codes, self.band, self.source)
        return np.array([np.nan if r.value is None else r.value for r in results], dtype=float)


class _ReadOnce(RasterioRasterSource):
    """A band read whole at the first window asked for, then sliced (a small band; a large
    one is read window by window): every batch of sums would otherwise decompress the same
    blocks again, ~5 ms per window for the WorldPop raster."""

    def __init__(self, dataset: Any, band: int) -> None:
        super().__init__(dataset, band)
        self.whole: np.ndarray | None = None

    def read_window(self, x0: int, y0: int, nx: int, ny: int) -> np.ndarray:
        if self.ds.width * self.ds.height > _READ_ONCE_PIXELS:
            return super().read_window(x0, y0, nx, ny)
        if self.whole is None:
            self.whole = super().read_window(0, 0, self.ds.width, self.ds.height)
        return self.whole[y0 : y0 + ny, x0 : x0 + nx]


def _zonal(
    dataset: Any,
    raster: Path,
    units: gpd.GeoDataFrame,
    stat: str,
    codes: list[str],
    band: int,
    source: RasterioRasterSource | None = None,
) -> list[ZonalResult]:
    """`zonal_statistics` on an opened raster (read through `source` if given)."""
    results = [ZonalResult(code, None, 0.0) for code in codes]
    geometries = _in_raster_crs(units, dataset)
    shapes = _polygonal_all(geometries.to_numpy())
    rows = [row for row, shape in enumerate(shapes) if shape is not None]
    if not rows:
        return results
    features = _WkbFeatures(
        rows, shapely.to_wkb([shapes[row] for row in rows]), geometries.crs.to_wkt()
    )
    ops = ["count"] if stat == "count" else [stat, "count"]
    try:
        # raster-sequential reads each raster block once, instead of once per unit.
        table = exact_extract(
            source or RasterioRasterSource(dataset, band),
            features,
            ops,
            include_cols=["row"],
            output="pandas",
            strategy="raster-sequential",
        )
    except (RuntimeError, ValueError, RasterioError) as exc:
        raise LoaderError(f"zonal statistics failed on raster {raster}: {exc}") from exc
    bounds = dataset.bounds
    pixel_area = abs(dataset.transform.a * dataset.transform.e)
    table_rows = table["row"].to_numpy(dtype=int)
    in_table = np.array([shapes[row] for row in table_rows], dtype=object)
    area, inside = shapely.area(in_table), _area_inside(in_table, bounds)
    for row, value, covered, whole, within in zip(
        table_rows.tolist(),
        table[stat].tolist(),
        table["count"].tolist(),
        area.tolist(),
        inside.tolist(),
        strict=True,
    ):
        outside = 1 - within / whole if whole else 0.0
        # (count is the coverage-weighted number of valid pixels: pixels of the unit, less
        # the nodata ones)
        nodata = max(0.0, 1 - float(covered) * pixel_area / within) if within else 0.0
        results[row] = ZonalResult(
            codes[row], float(value) if covered > 0 else None, float(covered), outside, nodata
        )
    return results


def sum_over(raster: Path, geometry: BaseGeometry, band: int = 1) -> float | None:
    """Coverage-weighted sum over one lon/lat polygon: the fast path for a single EA edit."""
    raster = Path(raster)
    if not raster.is_file() or not _is_lonlat(str(raster), raster.stat().st_mtime):
        units = gpd.GeoDataFrame({"code": ["one"]}, geometry=[geometry], crs="EPSG:4326")
        return zonal_statistics(raster, units, "sum", band=band)[0].value
    shape = _polygonal(geometry)
    if shape is None:
        return None
    feature = {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(shape)}
    with _open(raster, band) as dataset:
        try:
            # GeoJSON in and out: no GeoDataFrame, no CRS objects; ~10x faster for one shape.
            result = exact_extract(
                RasterioRasterSource(dataset, band), [feature], ["sum", "count"], output="geojson"
            )
        except (RuntimeError, ValueError, RasterioError) as exc:
            raise LoaderError(f"zonal statistics failed on raster {raster}: {exc}") from exc
    values = result[0]["properties"]
    return float(values["sum"]) if values["count"] > 0 else None


def _area_inside(shapes: np.ndarray, bounds: Any) -> np.ndarray:
    """Each shape's area within the raster's extent (a shape wholly inside is not cut)."""
    box = np.asarray(shapely.bounds(shapes))
    inside = np.asarray(shapely.area(shapes), dtype=float)
    crossing = np.flatnonzero(
        (box[:, 0] < bounds.left)
        | (box[:, 1] < bounds.bottom)
        | (box[:, 2] > bounds.right)
        | (box[:, 3] > bounds.top)
    )
    if len(crossing):
        extent = shapely.box(bounds.left, bounds.bottom, bounds.right, bounds.top)
        inside[crossing] = shapely.area(shapely.intersection(shapes[crossing], extent))
    return inside


class _WkbFeatures(FeatureSource):
    """Units handed to exactextract as WKB: its GeoDataFrame source goes through GeoJSON text
    for every unit, which cost more than the coverage computation itself."""

    def __init__(self, rows: list[int], wkbs: np.ndarray, srs_wkt: str) -> None:
        super().__init__()
        self.rows, self.wkbs, self.wkt = rows, wkbs, srs_wkt

    def count(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Any:
        for row, wkb in zip(self.rows, self.wkbs, strict=True):
            yield _WkbFeature(row, wkb)

    def srs_wkt(self) -> str:
        return self.wkt


class _WkbFeature(Feature):
    """One unit: its row number (the only column) and its WKB."""

    def __init__(self, row: int, wkb: bytes) -> None:
        Feature.__init__(self)
        self.row, self.wkb = row, wkb

    def get(self, name: str) -> int:
        return self.row

    def geometry(self) -> bytes:
        return self.wkb

    def set_geometry_format(self) -> str:
        return "wkb"

    def fields(self) -> list[str]:
        return ["row"]


@lru_cache(maxsize=8)
def _is_lonlat(raster: str, mtime: float) -> bool:
    """Whether the raster is in EPSG:4326 (cached per file version: CRS parsing is slow)."""
    with rasterio.open(raster) as dataset:
        return dataset.crs is not None and CRS.from_user_input(dataset.crs.to_wkt()).equals(
            CRS.from_epsg(4326), ignore_axis_order=True
        )


def raster_total(raster: Path, band: int = 1) -> float:
    """Sum of all valid (not nodata, not NaN) pixels of the band."""
    total = 0.0
    with _open(raster, band) as dataset:
        scale, offset = dataset.scales[band - 1], dataset.offsets[band - 1]
        for _, window in dataset.block_windows(band):
            block = dataset.read(band, window=window, masked=True).astype(np.float64)
            values = np.ma.masked_invalid(block * scale + offset)
            total += float(values.filled(0.0).sum())
    return total


def _open(raster: Path, band: int) -> Any:
    """The opened raster dataset; LoaderError naming the file if it is missing or unreadable."""
    if not Path(raster).is_file():
        raise LoaderError(f"raster file not found: {raster}")
    try:
        dataset = rasterio.open(raster)
    except RasterioError as exc:
        raise LoaderError(f"not a readable raster: {raster} ({exc})") from exc
    if not 1 <= band <= dataset.count:
        dataset.close()
        raise InvalidParameter(
            f"band {band} does not exist in {raster} ({dataset.count} band(s))", parameter="--band"
        )
    return dataset


def _in_raster_crs(units: gpd.GeoDataFrame, dataset: Any) -> gpd.GeoSeries:
    """The units' geometries in the raster's CRS (units without a CRS are taken as EPSG:4326)."""
    geometries = units.geometry
    if geometries.crs is None:
        geometries = geometries.set_crs("EPSG:4326")
    if dataset.crs is None:
        return geometries
    raster_crs = CRS.from_user_input(dataset.crs.to_wkt())
    if not geometries.crs.equals(raster_crs, ignore_axis_order=True):
        geometries = geometries.to_crs(raster_crs)
    # Same CRS, same WKT: exactextract warns on any textual difference.
    return geometries.set_crs(raster_crs, allow_override=True)


def _polygonal_all(geometries: np.ndarray) -> list[BaseGeometry | None]:
    """`_polygonal` of each geometry; valid polygons, the usual case, are checked at once."""
    kind = shapely.get_type_id(geometries)
    ready = np.isin(kind, _POLYGONAL_TYPES) & shapely.is_valid(geometries)
    ready &= ~shapely.is_empty(geometries)
    return [
        geometry if ok else _polygonal(geometry)
        for geometry, ok in zip(geometries.tolist(), ready.tolist(), strict=True)
    ]


def _polygonal(geometry: BaseGeometry | None) -> BaseGeometry | None:
    """The valid polygonal part of a geometry, None if it has none."""
    if geometry is None or geometry.is_empty:
        return None
    if geometry.geom_type in _POLYGONAL and geometry.is_valid:
        return geometry
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    parts = shapely.get_parts(geometry)
    while any(part.geom_type in _COLLECTIONS for part in parts):
        parts = shapely.get_parts(parts)
    polygons = [part for part in parts if part.geom_type == "Polygon" and not part.is_empty]
    if not polygons:
        return None
    return polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(polygons)

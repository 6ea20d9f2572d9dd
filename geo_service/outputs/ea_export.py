"""EAs as files for a CAPI system or QGIS: GeoPackage, zipped Shapefile, GeoJSON and CSV,
each EA with its commune, province, figures, status and assignment.

Rows are read in batches from a server-side cursor; files are written batch by batch
(GeoPackage, Shapefile) or spooled (GeoJSON, CSV), and only a complete file is sent (a large
one is a job's file: `build_file`).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import orjson
import shapely
from psycopg import sql as pgsql
from psycopg_pool import AsyncConnectionPool

from geo_service.ea import sql
from geo_service.features.export import Spool, cursor_batches, spool_csv_rows

FORMATS = ("geojson", "csv", "gpkg", "shp")
SUFFIXES = {"geojson": "geojson", "csv": "csv", "gpkg": "gpkg", "shp": "shp.zip"}
# (a text file built for a job is spooled with this much memory, the rest on disk)
_TEXT_MEMORY = 8 * 1024 * 1024
MEDIA_TYPES = {
    "geojson": "application/geo+json",
    "csv": "text/csv; charset=utf-8",
    "gpkg": "application/geopackage+sqlite3",
    "shp": "application/zip",
}
NUMBERS = {"population", "area_km2"}
# (estimated households are an estimate from the population grid, written as the whole
# number the field map prints: an integer field in every format, never 12.000000001)
INTEGERS = {"households", "listed_dwellings", "listed_households", "version"}
# dBASE field names have at most 10 characters: the Shapefile's names for the long ones
SHAPEFILE_NAMES = {
    "census_round": "round",
    "commune_code": "commune",
    "commune_name": "commune_nm",
    "province_code": "province",
    "province_name": "province_n",
    "households": "households",
    "population": "population",
    "urban_rural": "urban_rur",
    "boundary_description": "bound_desc",
    "landmarks": "landmarks",
    "listed_dwellings": "listed_dw",
    "listed_households": "listed_hh",
    "enumerator_code": "enum_code",
    "enumerator_name": "enum_name",
    "supervisor_area": "sup_area",
    "supervisor_code": "sup_code",
    "supervisor_name": "sup_name",
    "updated_at": "updated",
}


@dataclass(frozen=True)
class EaSelection:
    """Which EAs an export holds: the list's filters (with the reader's scope)."""

    filters: sql.ListFilter
    limit: int | None = None
    offset: int = 0
    timeout_ms: int | None = None  # database time of each statement (None: the pool's)


Progressed = Callable[[int], None] | None  # told the EAs written so far, after each batch


def _statement(selection: EaSelection, wkb: bool) -> tuple[pgsql.Composed, dict[str, Any]]:
    return sql.export_sql(selection.filters, selection.limit, selection.offset, wkb)


async def _batches(
    pool: AsyncConnectionPool, selection: EaSelection, wkb: bool, progress: Progressed
) -> AsyncIterator[list[tuple[Any, ...]]]:
    """The exported rows in batches; `progress` told the rows done after each batch."""
    statement, params = _statement(selection, wkb)
    done = 0
    async for batch in cursor_batches(pool, statement, params, selection.timeout_ms):
        yield batch
        done += len(batch)
        if progress is not None:
            progress(done)


async def spool_geojson(
    pool: AsyncConnectionPool,
    selection: EaSelection,
    max_memory: int,
    progress: Progressed = None,
) -> Spool:
    """A FeatureCollection (CRS84) of the EAs with every exported attribute."""
    spool = Spool(max_memory)
    try:
        spool.write(b'{"type":"FeatureCollection","features":[')
        first = True
        async for batch in _batches(pool, selection, False, progress):
            for row in batch:
                props = dict(zip(sql.EXPORT_COLUMNS, row[:-1], strict=True))
                feature = b'{"type":"Feature","id":' + orjson.dumps(props["code"])
                feature += b',"geometry":' + row[-1].encode()
                feature += b',"properties":' + orjson.dumps(props) + b"}"
                spool.write(feature if first else b"," + feature)
                first = False
        spool.write(b"]}")
    except BaseException:
        spool.close()
        raise
    return spool


async def spool_csv(
    pool: AsyncConnectionPool,
    selection: EaSelection,
    max_memory: int,
    progress: Progressed = None,
) -> Spool:
    """CSV in UTF-8 with BOM (Excel shows Vietnamese names), geometry as WKT last; text that
    starts like a formula is quoted so a spreadsheet never runs it."""
    batches = _batches(pool, selection, True, progress)
    header = [*sql.EXPORT_COLUMNS, "wkt"]
    return await spool_csv_rows(batches, header, _csv_cells, max_memory)


def _csv_cells(row: tuple[Any, ...]) -> list[Any]:
    # (WKT never starts like a formula: the guard leaves it as it is)
    return [*row[:-1], shapely.from_wkb(bytes(row[-1])).wkt]


async def build_file(
    pool: AsyncConnectionPool,
    selection: EaSelection,
    fmt: str,
    progress: Progressed = None,
) -> Path:
    """The EAs as a GeoPackage, a zipped Shapefile (EPSG:4326), a GeoJSON or a CSV file in
    a new temporary folder (the caller deletes the folder); written batch by batch, so
    memory stays flat (a job is told the EAs written after each batch)."""
    if fmt in ("geojson", "csv"):
        return await _text_file(pool, selection, fmt, progress)
    statement, params = _statement(selection, wkb=True)
    folder = Path(tempfile.mkdtemp(prefix="geo-service-ea-"))
    target = folder / ("enumeration_areas.gpkg" if fmt == "gpkg" else "shp/enumeration_areas.shp")
    target.parent.mkdir(exist_ok=True)
    try:
        written = 0
        async for batch in cursor_batches(pool, statement, params, selection.timeout_ms):
            await asyncio.to_thread(_append, target, batch, fmt, written > 0)
            written += len(batch)
            if progress is not None:
                progress(written)
        if not written:  # the layer, with its fields, and no rows
            await asyncio.to_thread(_append, target, [], fmt, False)
        if fmt == "shp":
            return await asyncio.to_thread(_zip, target.parent, folder / "enumeration_areas.zip")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return target


async def _text_file(
    pool: AsyncConnectionPool, selection: EaSelection, fmt: str, progress: Progressed
) -> Path:
    """A GeoJSON or CSV file, the same bytes as the download's spool."""
    make = spool_geojson if fmt == "geojson" else spool_csv
    folder = Path(tempfile.mkdtemp(prefix="geo-service-ea-"))
    target = folder / f"enumeration_areas.{fmt}"
    try:
        spool = await make(pool, selection, _TEXT_MEMORY, progress)
        try:
            with target.open("wb") as out:
                async for chunk in spool.chunks():
                    await asyncio.to_thread(out.write, chunk)
        finally:
            spool.close()
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return target


def _frame(records: list[tuple[Any, ...]], fmt: str) -> gpd.GeoDataFrame:
    columns: dict[str, Any] = {
        name: [r[i] for r in records] for i, name in enumerate(sql.EXPORT_COLUMNS)
    }
    frame = gpd.GeoDataFrame(
        columns,
        geometry=shapely.from_wkb([bytes(r[-1]) for r in records]) if records else [],
        crs="EPSG:4326",
    )
    for name in NUMBERS:  # the same field types in every batch (nulls as NaN)
        frame[name] = frame[name].astype(float)
    for name in INTEGERS:
        frame[name] = frame[name].astype("Int64")
    for name in set(sql.EXPORT_COLUMNS) - NUMBERS - INTEGERS:
        frame[name] = frame[name].astype(object)
    if fmt == "shp":
        frame = frame.rename(columns=SHAPEFILE_NAMES)
    return frame


def _append(path: Path, records: list[tuple[Any, ...]], fmt: str, append: bool) -> None:
    frame = _frame(records, fmt)
    if fmt == "gpkg":
        options = {} if append else {"dataset_options": {"VERSION": "1.3"}}  # (see features)
        frame.to_file(
            path,
            layer="enumeration_areas",
            driver="GPKG",
            mode="a" if append else "w",
            **options,
        )
    else:  # a .cpg says UTF-8, so QGIS and ArcGIS read Vietnamese names right
        frame.to_file(
            path,
            driver="ESRI Shapefile",
            mode="a" if append else "w",
            layer_options={"ENCODING": "UTF-8"},
        )


def _zip(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for part in sorted(folder.iterdir()):
            archive.write(part, part.name)
    return target

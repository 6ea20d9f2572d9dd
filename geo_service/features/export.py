"""Write items out: streamed GeoJSON and CSV (bounded memory), GeoPackage via pyogrio."""

from __future__ import annotations

import asyncio
import csv
import io
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import orjson
import shapely
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from geo_service.features.model import ItemQuery
from geo_service.features.sql import features_sql, rows_sql

BATCH = 500


async def _rows(
    pool: AsyncConnectionPool, statement: sql.Composed, params: dict[str, Any]
) -> AsyncIterator[list[tuple[Any, ...]]]:
    """Batches of rows from a server-side cursor, so memory stays bounded."""
    async with pool.connection() as conn, conn.transaction():
        async with conn.cursor(name="export") as cur:
            await cur.execute(statement, params)
            while batch := await cur.fetchmany(BATCH):
                yield batch


async def stream_geojson(
    pool: AsyncConnectionPool, query: ItemQuery, tail: dict[str, Any]
) -> AsyncIterator[bytes]:
    """A FeatureCollection, feature by feature; counts and links come after the features."""
    statement, params = features_sql(query)
    async for chunk in stream_features(pool, statement, params, tail):
        yield chunk


async def stream_features(
    pool: AsyncConnectionPool, statement: sql.Composed, params: dict[str, Any], tail: dict[str, Any]
) -> AsyncIterator[bytes]:
    """A FeatureCollection from a query whose rows are Features as JSON text."""
    yield b'{"type":"FeatureCollection","features":['
    returned = 0
    async for batch in _rows(pool, statement, params):
        chunk = ",".join(row[0] for row in batch).encode()
        yield (b"," + chunk) if returned else chunk
        returned += len(batch)
    tail = {**tail, "numberReturned": returned}
    yield b"]," + orjson.dumps(tail)[1:]


async def stream_csv(
    pool: AsyncConnectionPool, query: ItemQuery, wkt: bool
) -> AsyncIterator[bytes]:
    """CSV in UTF-8 with BOM (so Excel shows Vietnamese names), optional WKT geometry."""
    statement, params = rows_sql(query, wkt=True)
    columns = [*query.selected(), *(["wkt"] if wkt else [])]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")
    writer.writerow(columns)
    async for batch in _rows(pool, statement, params):
        for row in batch:
            writer.writerow(row if wkt else row[:-1])
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue().encode()


async def geopackage(pool: AsyncConnectionPool, query: ItemQuery, layer: str) -> bytes:
    """The selection as a GeoPackage file (the router caps it at MAX_GPKG features)."""
    statement, params = rows_sql(query, wkt=False)
    records: list[tuple[Any, ...]] = []
    async for batch in _rows(pool, statement, params):
        records.extend(batch)
    names = query.selected()
    return await asyncio.to_thread(_write_geopackage, records, names, layer, query.crs.srid)


def _write_geopackage(
    records: list[tuple[Any, ...]], names: list[str], layer: str, srid: int
) -> bytes:
    frame = gpd.GeoDataFrame(
        {name: [r[i] for r in records] for i, name in enumerate(names)},
        geometry=shapely.from_wkb([bytes(r[-1]) for r in records]) if records else [],
        crs=f"EPSG:{srid}",
    )
    for name in names:  # numeric columns arrive as Decimal
        if frame[name].map(lambda v: v.__class__.__name__ == "Decimal").any():
            frame[name] = frame[name].astype(float)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{layer}.gpkg"
        frame.to_file(path, layer=layer, driver="GPKG")
        return path.read_bytes()

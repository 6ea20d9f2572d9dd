"""Write items out: GeoJSON and CSV spooled in full before they are sent, GeoPackage built
on disk in batches.

A body is read from the database as fast as the database gives it, into memory up to a
bound and then into a temporary file, and the connection goes back to the pool before the
first byte is sent: a client that reads slowly (or not at all) never holds a connection
or an open transaction.
"""

from __future__ import annotations

import asyncio
import collections
import csv
import io
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import IO, Any

import geopandas as gpd
import orjson
import shapely
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from geo_core.text import spreadsheet_safe
from geo_service.features.model import ItemQuery
from geo_service.features.sql import (
    count_items,
    features_sql,
    local_statement_timeout,
    rows_sql,
    statement_time_limit,
)

BATCH = 500  # rows fetched at once, at most
FIRST_BATCH = 50  # rows of the first fetch, before their size is known
BATCH_BYTES = 1024 * 1024  # about this much row data per fetch after the first
CHUNK = 64 * 1024


class Spool:
    """A response body, written while the database is read, sent once it is complete: in
    memory up to a bound, then in a temporary file. Memory never holds more than the bound
    and one chunk (a file-backed temporary spool would copy its whole memory part at once
    when it moves to disk)."""

    def __init__(self, max_memory: int) -> None:
        self._max_memory = max_memory
        self._pending = bytearray()  # small writes gathered into chunks
        self._held: collections.deque[bytes] = collections.deque()  # the body, in memory
        self._held_bytes = 0
        self._file: IO[bytes] | None = None
        self.size = 0

    def write(self, data: bytes) -> None:
        """Add to the body (a large piece is kept as it is, not copied)."""
        self.size += len(data)
        if len(data) >= CHUNK:
            self._flush()
            self._keep(data)
            return
        self._pending += data
        if len(self._pending) >= CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._keep(bytes(self._pending))
            self._pending.clear()

    def _keep(self, chunk: bytes) -> None:
        if self._file is None and self._held_bytes + len(chunk) > self._max_memory:
            self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
            while self._held:  # (chunk by chunk: never a second copy of the whole part)
                self._file.write(self._held.popleft())
            self._held_bytes = 0
        if self._file is None:
            self._held.append(chunk)
            self._held_bytes += len(chunk)
        else:
            self._file.write(chunk)

    @property
    def on_disk(self) -> bool:
        """Whether the body outgrew memory."""
        return self._file is not None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body in pieces (each let go once sent); from disk in a worker thread once it
        outgrew memory."""
        self._flush()
        if self._file is None:
            while self._held:
                chunk = self._held.popleft()
                self._held_bytes -= len(chunk)
                yield chunk
            return
        file = self._file
        file.seek(0)
        while chunk := await asyncio.to_thread(file.read, CHUNK):
            yield chunk

    def close(self) -> None:
        """Free the memory or delete the temporary file."""
        self._pending.clear()
        self._held.clear()
        self._held_bytes = 0
        if self._file is not None:
            self._file.close()


async def cursor_batches(
    pool: AsyncConnectionPool,
    statement: sql.Composed,
    params: dict[str, Any],
    timeout_ms: int | None = None,
    at_most: int | None = None,
) -> AsyncIterator[list[tuple[Any, ...]]]:
    """Batches of rows from a server-side cursor, each of about BATCH_BYTES, so memory
    stays bounded however large the rows (each statement
    stopped after `timeout_ms` of database time, when given); a query of at most one batch
    of rows (`at_most`) is read in one round trip instead (two more with a timeout)."""
    if at_most is not None and at_most <= BATCH:
        async with pool.connection() as conn:
            rows = await _all_rows(conn, statement, params, timeout_ms)
        if rows:
            yield rows
        return
    async with pool.connection() as conn, conn.transaction():
        if timeout_ms is not None:
            await local_statement_timeout(conn, timeout_ms)
        async with conn.cursor(name="export") as cur:
            await cur.execute(statement, params)
            size = FIRST_BATCH
            while batch := await cur.fetchmany(size):
                size = next_batch_size(batch)
                yield batch


def next_batch_size(batch: list[tuple[Any, ...]]) -> int:
    """How many rows to fetch next so a fetch holds about BATCH_BYTES (rows of densified
    geometry can be a thousand times larger than rows of codes and names)."""
    data = sum(_row_bytes(row) for row in batch)
    return max(1, min(BATCH, BATCH_BYTES * len(batch) // max(1, data)))


def _row_bytes(row: tuple[Any, ...]) -> int:
    return sum(len(v) + 16 if isinstance(v, str | bytes | memoryview) else 16 for v in row)


async def _all_rows(
    conn: AsyncConnection, statement: sql.Composed, params: dict[str, Any], timeout_ms: int | None
) -> list[tuple[Any, ...]]:
    """Every row of a small query (never prepared: a generic plan over the disclosure view
    can be far slower), stopped after `timeout_ms` of database time when given."""
    if timeout_ms is None:
        return await (await conn.execute(statement, params, prepare=False)).fetchall()
    async with conn.transaction():
        await local_statement_timeout(conn, timeout_ms)
        return await (await conn.execute(statement, params, prepare=False)).fetchall()


Tail = Callable[[int], dict[str, Any]]  # what follows the features, given numberMatched


async def spool_geojson(
    pool: AsyncConnectionPool,
    query: ItemQuery,
    tail: Tail,
    max_memory: int,
    head: dict[str, Any] | None = None,
    matched: int | None = None,
    rechecking: Callable[[list[str]], dict[str, Any] | None] | None = None,
) -> tuple[Spool, list[str] | None]:
    """A FeatureCollection of the query's items; `head` before the features (readers that
    stream want the CRS first), counts and links after them. Without `matched`, the items
    are counted by the statement that picks the page (a filter is evaluated once). Also
    the query's indicators withheld for re-protection, read by the page's own statement
    (None for an empty page: it read no value), and `rechecking`'s note of them after the
    features."""
    counted = matched is None
    statement, params = features_sql(query, with_count=counted)
    spool = Spool(max_memory)
    withheld: list[str] | None = None
    try:
        spool.write(_collection_head(head))
        returned = 0
        batches = cursor_batches(pool, statement, params, query.statement_timeout_ms, query.limit)
        async for batch in batches:
            if matched is None:
                matched = int(batch[0][1])
            if withheld is None:
                withheld = list(batch[0][-1] or [])
            _write_features(spool, batch, returned)
            returned += len(batch)
        if matched is None:  # (an empty page: nothing was counted with it)
            matched = 0 if query.offset == 0 else await _count(pool, query)
        note = rechecking(withheld) if rechecking and withheld else None
        spool.write(
            _collection_tail(tail(matched) | ({"rechecking": note} if note else {}), returned)
        )
    except BaseException:
        spool.close()
        raise
    return spool, withheld


async def _count(pool: AsyncConnectionPool, query: ItemQuery) -> int:
    async with pool.connection() as conn:
        async with statement_time_limit(conn, query.statement_timeout_ms):
            return await count_items(conn, query)


def _collection_head(head: dict[str, Any] | None) -> bytes:
    members = orjson.dumps({"type": "FeatureCollection", **(head or {})})[:-1]
    return members + b',"features":['


def _write_features(spool: Spool, batch: list[tuple[Any, ...]], before: int) -> None:
    # (feature by feature: a batch joined and encoded at once is several copies of it)
    for i, row in enumerate(batch):
        if before or i:
            spool.write(b",")
        spool.write(row[0].encode())


def _collection_tail(tail: dict[str, Any], returned: int) -> bytes:
    return b"]," + orjson.dumps({**tail, "numberReturned": returned})[1:]


async def spool_features(
    pool: AsyncConnectionPool,
    statement: sql.Composed,
    params: dict[str, Any],
    tail: dict[str, Any],
    max_memory: int,
    head: dict[str, Any] | None = None,
    timeout_ms: int | None = None,
    at_most: int | None = None,
) -> Spool:
    """A FeatureCollection from a query whose rows are Features as JSON text (at most
    `at_most` of them, when the query says so)."""
    spool = Spool(max_memory)
    try:
        spool.write(_collection_head(head))
        returned = 0
        async for batch in cursor_batches(pool, statement, params, timeout_ms, at_most):
            _write_features(spool, batch, returned)
            returned += len(batch)
        spool.write(_collection_tail(tail, returned))
    except BaseException:
        spool.close()
        raise
    return spool


Refuse = Callable[[list[str]], None]  # raises when any of these indicators is withheld


async def _checked(
    batches: AsyncIterator[list[tuple[Any, ...]]], refuse: Refuse
) -> AsyncIterator[list[tuple[Any, ...]]]:
    """The batches of `rows_sql`, refused (`refuse`) when the statement read the values
    while any indicator was withheld; its flag column dropped."""
    first = True
    async for batch in batches:
        if first:
            refuse(list(batch[0][-1] or []))
            first = False
        yield [row[:-1] for row in batch]


async def spool_csv(
    pool: AsyncConnectionPool, query: ItemQuery, wkt: bool, max_memory: int, refuse: Refuse
) -> Spool:
    """CSV in UTF-8 with BOM (so Excel shows Vietnamese names), optional WKT geometry;
    `refuse` told the indicators withheld when its values were read (the same statement)."""
    statement, params = rows_sql(query, wkt=True, withheld=True)
    columns = [*query.selected(), *(["wkt"] if wkt else [])]
    batches = cursor_batches(pool, statement, params, query.statement_timeout_ms)
    return await spool_csv_rows(
        _checked(batches, refuse), columns, lambda row: row if wkt else row[:-1], max_memory
    )


async def spool_csv_rows(
    batches: AsyncIterator[list[tuple[Any, ...]]],
    header: list[str],
    cells: Callable[[tuple[Any, ...]], Sequence[Any]],
    max_memory: int,
) -> Spool:
    """CSV in UTF-8 with BOM (so Excel shows Vietnamese names) of each row's `cells`; text
    that starts like a formula is quoted so a spreadsheet never runs it. A long last cell
    (a geometry's WKT, megabytes for a large unit) goes to the spool without passing through
    the csv writer, whose buffers hold text at four bytes a character."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")
    writer.writerow(header)
    spool = Spool(max_memory)
    try:
        async for batch in batches:
            for row in batch:
                values = [spreadsheet_safe(value) for value in cells(row)]
                last = values[-1]
                if len(values) > 1 and isinstance(last, str) and len(last) >= CHUNK:
                    writer.writerow([*values[:-1], None])  # (ends in "," and the line's end)
                    buffer.seek(buffer.tell() - 2)
                    buffer.truncate()
                    _move(buffer, spool)
                    _write_csv_field(spool, last)
                    spool.write(b"\r\n")
                else:
                    writer.writerow(values)
                if buffer.tell() >= CHUNK:  # (a batch's text at once is several copies)
                    _move(buffer, spool)
        _move(buffer, spool)
    except BaseException:
        spool.close()
        raise
    return spool


def _write_csv_field(spool: Spool, text: str) -> None:
    """One field as the csv module quotes it (QUOTE_MINIMAL), encoded once."""
    if any(special in text for special in ',"\r\n'):
        spool.write(b'"')
        spool.write(text.replace('"', '""').encode())
        spool.write(b'"')
    else:
        spool.write(text.encode())


def _move(buffer: io.StringIO, spool: Spool) -> None:
    spool.write(buffer.getvalue().encode())
    buffer.seek(0)
    buffer.truncate()


async def geopackage(
    pool: AsyncConnectionPool, query: ItemQuery, layer: str, refuse: Refuse
) -> Path:
    """The selection as a GeoPackage file in a new temporary folder (the caller deletes the
    folder), written batch by batch so memory does not grow with the number of items;
    `refuse` told the indicators withheld when its values were read (the same statement)."""
    statement, params = rows_sql(query, wkt=False, withheld=True)
    folder = Path(tempfile.mkdtemp(prefix="geo-service-gpkg-"))
    path = folder / f"{layer}.gpkg"
    names = query.selected()
    numeric = [name for name in names if query.is_number(name)]
    try:
        written = 0
        batches = cursor_batches(pool, statement, params, query.statement_timeout_ms)
        async for batch in _checked(batches, refuse):
            await asyncio.to_thread(
                _append, path, batch, names, numeric, layer, query.crs.srid, written > 0
            )
            written += len(batch)
        if not written:  # the layer, with its fields, and no rows
            await asyncio.to_thread(_append, path, [], names, numeric, layer, query.crs.srid, False)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return path


def _append(
    path: Path,
    records: list[tuple[Any, ...]],
    names: list[str],
    numeric: list[str],
    layer: str,
    srid: int,
    append: bool,
) -> None:
    frame = gpd.GeoDataFrame(
        {name: [r[i] for r in records] for i, name in enumerate(names)},
        geometry=shapely.from_wkb([bytes(r[-1]) for r in records]) if records else [],
        crs=f"EPSG:{srid}",
    )
    for name in numeric:  # (the same field types in every batch, nulls as NaN)
        frame[name] = frame[name].astype(float)
    if append:
        frame.to_file(path, layer=layer, driver="GPKG", mode="a")
    else:  # GeoPackage 1.3: GDAL before 3.8 (Debian 12's, QGIS 3.22's) opens 1.4 files only
        # by their .gpkg extension, which a download URL does not have (/vsicurl/)
        frame.to_file(path, layer=layer, driver="GPKG", dataset_options={"VERSION": "1.3"})

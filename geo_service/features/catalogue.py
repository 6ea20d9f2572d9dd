"""The collections: one per (level, vintage) of units, read from the database, and kept in
memory for items and tiles until the change log says their layer changed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from geo_core.errors import NotFound
from geo_service.features import sql
from geo_service.features.model import COLLECTION_ID, Collection
from indicators.read import list_indicators
from indicators.sql import collection_periods
from tilecache.freshness import ChangeLog, data_epoch


def _collection(
    row: tuple[Any, ...], periods: dict[str, tuple[str, ...]] | None = None
) -> Collection:
    level, vintage, count, x0, y0, x1, y1, valid_from, valid_to, description = row
    return Collection(
        f"{level}-{vintage}",
        str(level),
        str(vintage),
        int(count),
        (float(x0), float(y0), float(x1), float(y1)),
        str(valid_from),
        str(valid_to) if valid_to else None,
        str(description),
        periods or {},
    )


async def list_collections(conn: psycopg.AsyncConnection) -> list[Collection]:
    """Every (level, vintage) that has units, newest vintage first."""
    return [_collection(row) for row in await sql.collection_rows(conn)]


async def read_collection(
    conn: psycopg.AsyncConnection, collection_id: str, with_periods: bool = False
) -> Collection:
    """One collection as the database has it now; NotFound when the id names no loaded
    (level, vintage)."""
    match = COLLECTION_ID.match(collection_id)
    rows = await sql.collection_rows(conn, **match.groupdict()) if match else []
    if not rows:
        raise NotFound(
            f"unknown collection {collection_id!r}; ids look like commune-2025 (see /collections)",
            parameter="collectionId",
        )
    level, vintage = str(rows[0][0]), str(rows[0][1])
    periods = await collection_periods(conn, vintage, level) if with_periods else None
    return _collection(rows[0], periods)


class CollectionCatalogue:
    """Collections (with their indicators' periods) kept in memory until the change log
    says their layer changed; the registered CRSs of the database, read once."""

    def __init__(self, change_log: Callable[[], ChangeLog]) -> None:
        self._change_log = change_log
        self._entries: dict[str, tuple[Collection, int]] = {}
        self._srids: frozenset[int] | None = None

    async def get(self, conn: psycopg.AsyncConnection, collection_id: str) -> Collection:
        """The collection, from memory when nothing in it changed since it was read."""
        log = self._change_log()
        entry = self._entries.get(collection_id)
        if entry is not None and not log.changed_since(collection_id, entry[1]):
            return entry[0]
        # (conn may be a replica's, behind the primary's change log)
        epoch = await data_epoch(conn, log)
        found = await read_collection(conn, collection_id, with_periods=True)
        self._entries[collection_id] = (found, epoch)
        return found

    def peek(self, collection_id: str) -> Collection | None:
        """The collection from memory if nothing in it changed since it was read, else None."""
        entry = self._entries.get(collection_id)
        if entry is None or self._change_log().changed_since(collection_id, entry[1]):
            return None
        return entry[0]

    async def srids(self, conn: psycopg.AsyncConnection) -> frozenset[int]:
        """The SRIDs PostGIS lists in spatial_ref_sys (migrations add to them, nothing else)."""
        if self._srids is None:
            self._srids = await sql.registered_srids(conn)
        return self._srids


async def indicator_entries(conn: psycopg.AsyncConnection) -> dict[str, dict[str, Any]]:
    """Every catalogue entry (names, unit, kind …) by code."""
    return {entry["code"]: entry for entry in await list_indicators(conn)}

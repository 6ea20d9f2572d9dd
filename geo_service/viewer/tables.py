"""The viewer's table of units (codes, names, parents, types and label points), kept in
memory per collection until the change log says its layer changed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from geo_service.features import sql as features
from geo_service.features.model import Collection
from tilecache.freshness import ChangeLog, data_epoch


async def read_unit_table(conn: psycopg.AsyncConnection, collection: Collection) -> dict[str, Any]:
    """Every unit of the collection as parallel arrays (compact JSON), with the names of
    their parents and a label point and its room (radius in metres) for each."""
    rows = await features.unit_table(conn, collection.vintage, collection.level)
    parents = sorted({r["parent_code"] for r in rows if r["parent_code"]})
    names = await features.unit_names(conn, collection.vintage, parents) if parents else {}
    return {
        "collection": collection.id,
        "vintage": collection.vintage,
        "level": collection.level,
        "codes": [r["code"] for r in rows],
        "names": [r["name"] for r in rows],
        "types": [r["unit_type"] for r in rows],
        "parents": [r["parent_code"] for r in rows],
        "labels": [[r["lon"], r["lat"], r["radius_m"]] for r in rows],
        "parentNames": {code: name for code, (name, _) in names.items()},
    }


class UnitTables:
    """Unit tables kept until their collection's layer changes (a label point costs about
    half a millisecond per unit to find)."""

    def __init__(self, change_log: Callable[[], ChangeLog]) -> None:
        self._change_log = change_log
        self._entries: dict[str, tuple[dict[str, Any], int]] = {}

    async def get(self, conn: psycopg.AsyncConnection, collection: Collection) -> dict[str, Any]:
        """The collection's table, from memory when nothing in it changed since it was read."""
        log = self._change_log()
        entry = self._entries.get(collection.id)
        if entry is not None and not log.changed_since(collection.id, entry[1]):
            return entry[0]
        # (conn may be a replica's, behind the primary's change log)
        epoch = await data_epoch(conn, log)
        table = await read_unit_table(conn, collection)
        self._entries[collection.id] = (table, epoch)
        return table

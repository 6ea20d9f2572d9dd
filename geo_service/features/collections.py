"""Collections: one per (level, vintage) of administrative units, id `{level}-{vintage}`."""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg

from geo_service.errors import NotFound
from tilecache.freshness import ChangeLog

_ID = re.compile(r"^(?P<level>[a-z]+)-(?P<vintage>[A-Za-z0-9_.-]{1,32})$")
LEVEL_TITLES = {"province": ("Provinces", "Tỉnh"), "district": ("Districts", "Huyện"),
                "commune": ("Communes", "Xã")}


@dataclass(frozen=True)
class Collection:
    """A published set of units of one level and vintage."""

    id: str
    level: str
    vintage: str
    count: int
    extent: tuple[float, float, float, float]
    valid_from: str
    valid_to: str | None
    description: str

    @property
    def title(self) -> str:
        """Human title, e.g. "Communes 2025"."""
        english = LEVEL_TITLES.get(self.level, (self.level.title(), ""))[0]
        return f"{english} {self.vintage}"


_QUERY = """
SELECT u.level, u.vintage, count(*), ST_XMin(ST_Extent(u.geom)), ST_YMin(ST_Extent(u.geom)),
       ST_XMax(ST_Extent(u.geom)), ST_YMax(ST_Extent(u.geom)),
       v.valid_from::text, v.valid_to::text, v.description
FROM admin_unit u JOIN vintage v ON v.id = u.vintage
WHERE (%(level)s::text IS NULL OR u.level = %(level)s)
  AND (%(vintage)s::text IS NULL OR u.vintage = %(vintage)s)
GROUP BY u.level, u.vintage, v.valid_from, v.valid_to, v.description
ORDER BY v.valid_from DESC, min((SELECT rank FROM admin_level l WHERE l.id = u.level))
"""


def _collection(row: tuple[object, ...]) -> Collection:
    level, vintage, count, x0, y0, x1, y1, valid_from, valid_to, description = row
    return Collection(f"{level}-{vintage}", str(level), str(vintage), int(count),  # type: ignore[call-overload]
                      (float(x0), float(y0), float(x1), float(y1)),  # type: ignore[arg-type]
                      str(valid_from), str(valid_to) if valid_to else None, str(description))


async def list_collections(conn: psycopg.AsyncConnection) -> list[Collection]:
    """Every (level, vintage) that has units."""
    cur = await conn.execute(_QUERY, {"level": None, "vintage": None})
    return [_collection(row) for row in await cur.fetchall()]


async def get_collection(conn: psycopg.AsyncConnection, collection_id: str) -> Collection:
    """One collection; NotFound when the id names no loaded (level, vintage)."""
    match = _ID.match(collection_id)
    if match:
        cur = await conn.execute(_QUERY, match.groupdict())
        row = await cur.fetchone()
        if row:
            return _collection(row)
    raise NotFound(f"unknown collection {collection_id!r}; ids look like commune-2025 "
                   "(see /collections)", parameter="collectionId")


class CollectionCache:
    """Collections kept in memory until the change log says their layer changed."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Collection, int]] = {}

    async def get(self, conn: psycopg.AsyncConnection, collection_id: str,
                  log: ChangeLog) -> Collection:
        """The collection, from memory when nothing in it changed since it was read."""
        entry = self._entries.get(collection_id)
        if entry is not None and not log.changed_since(collection_id, entry[1]):
            return entry[0]
        epoch = log.epoch
        found = await get_collection(conn, collection_id)
        self._entries[collection_id] = (found, epoch)
        return found

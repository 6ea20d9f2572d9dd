"""Every statement on enumeration areas: rows, lists, checks against the rules, the
coverage report, generation and history. Values are always bound parameters."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from geo_service.features.filter import Filter, Kind
from geo_service.features.sql import FilterSql

Row = dict[str, Any]

# Full precision (15 decimals): an EA read and sent back unchanged is exactly what is stored;
# rounded coordinates can make a valid sliver or a snapped vertex invalid.
# (the reason of the last rejection travels with a rejected EA: the editor sees it at once)
REJECTION = (
    "CASE WHEN status = 'rejected' THEN (SELECT h.reason FROM ea_history h"
    " WHERE h.ea_id = enumeration_area.id AND h.action = 'reject' ORDER BY h.id DESC LIMIT 1)"
    " END"
)
ATTRIBUTES = (
    "urban_rural",
    "boundary_description",
    "landmarks",
    "listed_dwellings",
    "listed_households",
)
COLUMNS = sql.SQL(
    "id, census_round, code, commune_vintage, commune_code, status, population,"
    " households, version, updated_by, updated_at, urban_rural, boundary_description,"
    " landmarks, listed_dwellings, listed_households, listed_at,"
    f" {REJECTION} AS rejection_reason,"
    " ST_AsGeoJSON(geom, 15) AS geometry"
)
# The Feature `store.as_feature` makes of a row, built by PostgreSQL, so lists stream unparsed.
FEATURE_JSON = sql.SQL(
    """json_build_object(
    'type', 'Feature', 'id', id, 'geometry', ST_AsGeoJSON(geom, 15)::json,
    'properties', json_build_object(
        'census_round', census_round, 'code', code, 'commune_vintage', commune_vintage,
        'commune_code', commune_code, 'status', status, 'population', population,
        'households', households, 'version', version, 'updated_by', updated_by,
        'updated_at', to_char(updated_at AT TIME ZONE 'UTC',
                              'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
        'urban_rural', urban_rural, 'boundary_description', boundary_description,
        'landmarks', landmarks, 'listed_dwellings', listed_dwellings,
        'listed_households', listed_households,
        'listed_at', to_char(listed_at AT TIME ZONE 'UTC',
                             'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
        'rejection_reason', """
    + REJECTION
    + """))::text"""
)


# ---- rows ----


async def fetch(conn: psycopg.AsyncConnection, ea_id: int, lock: bool = False) -> Row | None:
    """One EA row (locked for update when asked), or None."""
    statement = sql.SQL("SELECT {} FROM enumeration_area WHERE id = %s{}").format(
        COLUMNS, sql.SQL(" FOR UPDATE" if lock else "")
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(statement, (ea_id,))
        return await cur.fetchone()


async def of_commune(conn: psycopg.AsyncConnection, census_round: str, commune: str) -> list[Row]:
    """The EA rows of a commune in a round, by id."""
    statement = sql.SQL(
        "SELECT {} FROM enumeration_area WHERE census_round = %s AND commune_code = %s ORDER BY id"
    ).format(COLUMNS)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(statement, (census_round, commune))
        return await cur.fetchall()


async def _returning(
    conn: psycopg.AsyncConnection, statement: sql.SQL | sql.Composed, params: Any
) -> Row:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(statement, params)
        row = await cur.fetchone()
    assert row is not None
    return row


async def insert(conn: psycopg.AsyncConnection, values: dict[str, Any]) -> Row:
    """Insert a draft EA (round, code, vintage, commune, population, households, wkb, user)."""
    return await _returning(
        conn,
        sql.SQL(
            "INSERT INTO enumeration_area (census_round, code, commune_vintage, commune_code,"
            " status, population, households, geom, updated_by) VALUES (%(round)s, %(code)s,"
            " %(vintage)s, %(commune)s, 'draft', %(population)s, %(households)s,"
            " ST_Multi(ST_GeomFromWKB(%(wkb)s, 4326)), %(user)s) RETURNING {}"
        ).format(COLUMNS),
        values,
    )


async def update_geometry(conn: psycopg.AsyncConnection, ea_id: int, values: dict[str, Any]) -> Row:
    """New geometry and estimates (and code, unless None): back to draft, next version."""
    return await _returning(
        conn,
        sql.SQL(
            "UPDATE enumeration_area SET geom = ST_Multi(ST_GeomFromWKB(%(wkb)s, 4326)),"
            " population = %(population)s, households = %(households)s, status = 'draft',"
            " code = coalesce(%(code)s, code), version = version + 1, updated_by = %(user)s,"
            " updated_at = now() WHERE id = %(id)s RETURNING {}"
        ).format(COLUMNS),
        {**values, "id": ea_id},
    )


async def set_attributes(
    conn: psycopg.AsyncConnection, ea_id: int, values: dict[str, Any], user: str, bump: bool
) -> Row:
    """Set the attributes given (None clears one); with `bump`, a new version."""
    names = [name for name in ATTRIBUTES[:3] if name in values]
    assignments: list[sql.Composable] = [
        sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in names
    ]
    if bump:
        assignments.append(
            sql.SQL("version = version + 1, updated_by = %(user)s, updated_at = now()")
        )
    if not assignments:
        row = await fetch(conn, ea_id)
        assert row is not None
        return row
    return await _returning(
        conn,
        sql.SQL("UPDATE enumeration_area SET {} WHERE id = %(id)s RETURNING {}").format(
            sql.SQL(", ").join(assignments), COLUMNS
        ),
        {**{name: values[name] for name in names}, "user": user, "id": ea_id},
    )


async def history_state(
    conn: psycopg.AsyncConnection, ea_id: int, entry_id: int
) -> dict[str, Any] | None:
    """The EA as it was after one change of its history (before it, for a deletion)."""
    cur = await conn.execute(
        "SELECT coalesce(after, before) FROM ea_history WHERE ea_id = %s AND id = %s",
        (ea_id, entry_id),
    )
    row = await cur.fetchone()
    return row[0] if row else None


async def set_status(conn: psycopg.AsyncConnection, ea_id: int, status: str, user: str) -> Row:
    """A workflow status, next version."""
    return await _returning(
        conn,
        sql.SQL(
            "UPDATE enumeration_area SET status = %s, version = version + 1, updated_by = %s,"
            " updated_at = now() WHERE id = %s RETURNING {}"
        ).format(COLUMNS),
        (status, user, ea_id),
    )


async def delete(conn: psycopg.AsyncConnection, ea_id: int) -> None:
    """Delete one EA (its history stays)."""
    await conn.execute("DELETE FROM enumeration_area WHERE id = %s", (ea_id,))


async def has_eas(conn: psycopg.AsyncConnection, census_round: str, commune: str) -> bool:
    """Whether the commune has any EA in the round."""
    found = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM enumeration_area"
        " WHERE census_round = %s AND commune_code = %s)",
        (census_round, commune),
    )
    row = await found.fetchone()
    return bool(row and row[0])


async def next_serial(conn: psycopg.AsyncConnection, census_round: str, commune: str) -> int:
    """The commune's next free EA serial in the round."""
    cur = await conn.execute(
        "SELECT coalesce(max(split_part(code, '-', 2)::int), 0) + 1 FROM enumeration_area"
        " WHERE census_round = %s AND commune_code = %s AND code ~ '^[0-9]+-[0-9]+$'",
        (census_round, commune),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 1


async def lock_commune(conn: psycopg.AsyncConnection, census_round: str, commune: str) -> None:
    """Serialise writes within one commune and round (overlap checks need a stable view)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ea:{census_round}:{commune}",)
    )


async def stored_wkb(conn: psycopg.AsyncConnection, ea_id: int) -> bytes | None:
    """The EA's geometry as stored (WKB), or None."""
    cur = await conn.execute(
        "SELECT ST_AsBinary(geom) FROM enumeration_area WHERE id = %s", (ea_id,)
    )
    row = await cur.fetchone()
    return bytes(row[0]) if row else None


async def split_wkb(conn: psycopg.AsyncConnection, ea_id: int, line_wkb: bytes) -> list[bytes]:
    """The EA cut by a lon/lat line, largest part first (WKB)."""
    cur = await conn.execute(
        "SELECT ST_AsBinary(d.geom) FROM enumeration_area e, LATERAL ST_Dump(ST_Split("
        " e.geom, ST_GeomFromWKB(%s, 4326))) d WHERE e.id = %s"
        " ORDER BY ST_Area(d.geom) DESC",
        (line_wkb, ea_id),
    )
    return [bytes(row[0]) for row in await cur.fetchall()]


async def union_wkb(conn: psycopg.AsyncConnection, ids: list[int]) -> bytes | None:
    """The union of the EAs (WKB), or None."""
    cur = await conn.execute(
        "SELECT ST_AsBinary(ST_UnaryUnion(ST_Collect(geom)))"
        " FROM enumeration_area WHERE id = ANY(%s)",
        (ids,),
    )
    row = await cur.fetchone()
    return bytes(row[0]) if row and row[0] else None


# ---- lists ----


@dataclass(frozen=True)
class ListFilter:
    """Which EAs a list asks for (None: any)."""

    commune: str | None = None
    status: str | None = None
    census_round: str | None = None
    bbox: tuple[float, float, float, float] | None = None  # lon/lat
    # the reader's scope (geo_service/ea/access.py): province or commune codes, None: all
    scope: tuple[str, ...] | None = None
    # the boundary vintage of the EAs' communes (a code may name other units in other ones)
    commune_vintage: str | None = None
    filter: Filter | None = None  # a checked CQL2 filter over QUERYABLES

    def where(self, alias: str = "enumeration_area") -> tuple[sql.Composable, dict[str, Any]]:
        """The WHERE condition over the table (or its alias) and its parameters (only the
        filters given, so the planner sees each one and can use its index)."""
        conditions: list[sql.Composable] = []
        params: dict[str, Any] = {}
        for column, value in (
            ("commune_code", self.commune),
            ("status", self.status),
            ("census_round", self.census_round),
            ("commune_vintage", self.commune_vintage),
        ):
            if value is not None:
                conditions.append(
                    sql.SQL("{} = {}").format(
                        sql.Identifier(alias, column), sql.Placeholder(column)
                    )
                )
                params[column] = value
        if self.bbox is not None:
            conditions.append(
                sql.SQL("{} && ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 4326)").format(
                    sql.Identifier(alias, "geom")
                )
            )
            params.update(zip(("x0", "y0", "x1", "y1"), self.bbox, strict=True))
        if self.scope is not None:
            conditions.append(in_scope(alias))
            params["scope"] = list(self.scope)
        if self.filter is not None:
            conditions.append(_EaFilter(params, alias).condition(self.filter.condition))
        return sql.SQL(" AND ").join(conditions or [sql.SQL("true")]), params


# What a CQL2 filter over EAs may use (each a column of the table), and the kind of each
QUERYABLES: dict[str, Kind] = {
    "census_round": "string",
    "code": "string",
    "commune_code": "string",
    "commune_vintage": "string",
    "status": "string",
    "population": "number",
    "households": "number",
    "urban_rural": "string",
    "listed_dwellings": "number",
    "listed_households": "number",
    "listed_at": "instant",
    "updated_at": "instant",
    "geometry": "geometry",
}


class _EaFilter(FilterSql):
    """A checked filter as SQL over the EA table (or its alias), in longitude/latitude."""

    def __init__(self, params: dict[str, Any], alias: str) -> None:
        super().__init__(params)
        self.alias = alias

    def prop(self, name: str) -> sql.Composable:
        """A queryable's column (the names are QUERYABLES', checked by the filter)."""
        assert name in QUERYABLES
        column = sql.Identifier(self.alias, "geom" if name == "geometry" else name)
        # (float8, as the filter binds numbers: the listed counts are integers)
        return column + sql.SQL("::float8") if QUERYABLES[name] == "number" else column


def in_scope(alias: str) -> sql.Composable:
    """Whether the EA (table or alias) lies in a commune, or in a province, of %(scope)s:
    its commune's own vintage says which province it is in."""
    return sql.SQL(
        "({ea}.commune_code = ANY(%(scope)s::text[]) OR EXISTS (SELECT 1 FROM admin_unit"
        " scope_unit WHERE scope_unit.level = 'commune' AND scope_unit.vintage ="
        " {ea}.commune_vintage AND scope_unit.code = {ea}.commune_code"
        " AND scope_unit.parent_code = ANY(%(scope)s::text[])))"
    ).format(ea=sql.Identifier(alias))


async def count_and_extent(
    conn: psycopg.AsyncConnection, scope: tuple[str, ...] | None = None
) -> tuple[int, tuple[float | None, ...]]:
    """How many EAs there are (of the scope), and the bounding box of all of them (None when
    empty)."""
    where, params = ListFilter(scope=scope).where()
    cur = await conn.execute(
        sql.SQL(
            "WITH t AS (SELECT count(*) AS n, ST_Extent(geom) AS e"
            " FROM enumeration_area WHERE {})"
            " SELECT n, ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM t"
        ).format(where),
        params,
    )
    count, *extent = await cur.fetchone() or (0, None, None, None, None)
    return int(count), tuple(extent)


# ---- communes ----


async def commune_row(
    conn: psycopg.AsyncConnection, code: str, vintage: str | None
) -> tuple[str, str, str | None] | None:
    """(vintage, code, province code) of the commune (latest vintage unless given)."""
    cur = await conn.execute(
        "SELECT u.vintage, u.code, u.parent_code FROM admin_unit u"
        " JOIN vintage v ON v.id = u.vintage WHERE u.level = 'commune' AND u.code = %s"
        " AND (%s::text IS NULL OR u.vintage = %s) ORDER BY v.valid_from DESC, v.id DESC LIMIT 1",
        (code, vintage, vintage),
    )
    row = await cur.fetchone()
    return (row[0], row[1], row[2]) if row else None


async def round_commune_vintage(
    conn: psycopg.AsyncConnection, census_round: str, code: str
) -> str | None:
    """The boundary vintage the round's EAs of a commune code lie in (the latest, should
    they lie in several); None when the round has no EA there."""
    cur = await conn.execute(
        "SELECT e.commune_vintage FROM enumeration_area e JOIN vintage v"
        " ON v.id = e.commune_vintage WHERE e.census_round = %s AND e.commune_code = %s"
        " ORDER BY v.valid_from DESC, v.id DESC LIMIT 1",
        (census_round, code),
    )
    row = await cur.fetchone()
    return row[0] if row else None


async def commune_exists(conn: psycopg.AsyncConnection, code: str) -> bool:
    """Whether a commune has the code in any vintage."""
    cur = await conn.execute(
        "SELECT 1 FROM admin_unit WHERE level = 'commune' AND code = %s", (code,)
    )
    return await cur.fetchone() is not None


async def commune_with_province(
    conn: psycopg.AsyncConnection, code: str, vintage: str | None = None
) -> dict[str, Any] | None:
    """The commune of the vintage (None: the latest) with its name and its province's code
    and name."""
    # newest by the vintage's own date, not its id as text ('census2019' > '2025' as text)
    cur = await conn.execute(
        "SELECT c.vintage, c.code, c.name, c.parent_code, p.name FROM admin_unit c"
        " JOIN vintage v ON v.id = c.vintage"
        " LEFT JOIN admin_unit p ON p.vintage = c.vintage AND p.level = 'province'"
        "  AND p.code = c.parent_code"
        " WHERE c.level = 'commune' AND c.code = %s AND (%s::text IS NULL OR c.vintage = %s)"
        " ORDER BY v.valid_from DESC, v.id DESC LIMIT 1",
        (code, vintage, vintage),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return {
        "vintage": row[0],
        "code": row[1],
        "name": row[2],
        "province": row[3],
        "provinceName": row[4],
    }


async def latest_commune_vintage(conn: psycopg.AsyncConnection) -> str | None:
    """The newest vintage that has communes."""
    cur = await conn.execute(
        "SELECT v.id FROM vintage v WHERE EXISTS (SELECT 1 FROM admin_unit u"
        " WHERE u.vintage = v.id AND u.level = 'commune') ORDER BY v.valid_from DESC, v.id DESC"
        " LIMIT 1"
    )
    row = await cur.fetchone()
    return str(row[0]) if row and row[0] else None


async def commune_coverage_wkb(
    conn: psycopg.AsyncConnection, vintage: str, code: str
) -> bytes | None:
    """The commune's geometry in the communes' clean coverage (WKB), or None."""
    cur = await conn.execute(
        "SELECT ST_AsBinary(geom) FROM commune_coverage WHERE vintage = %s AND code = %s",
        (vintage, code),
    )
    row = await cur.fetchone()
    return bytes(row[0]) if row else None


def communes_coverage(
    conn: psycopg.Connection, vintage: str, codes: list[str] | None
) -> list[tuple[str, bytes]]:
    """(code, WKB) of the vintage's communes in the clean coverage (or of those listed)."""
    rows = conn.execute(
        "SELECT code, ST_AsBinary(geom) FROM commune_coverage WHERE vintage = %s"
        " AND (%s::text[] IS NULL OR code = ANY(%s)) ORDER BY code",
        (vintage, codes, codes),
    ).fetchall()
    return [(row[0], bytes(row[1])) for row in rows]


# ---- checks against the rules (see rules.py) ----

SNAP = """
SELECT ST_AsBinary(ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_Snap(
    ST_GeomFromWKB(%(wkb)s, 4326),
    ST_Collect(ARRAY(SELECT geom FROM enumeration_area WHERE census_round = %(round)s
                     AND commune_code = %(commune)s AND id <> %(self)s
                     AND geom && ST_Expand(ST_GeomFromWKB(%(wkb)s, 4326), %(snap)s))
               || ARRAY[ST_Boundary((SELECT geom FROM commune_coverage
                                     WHERE vintage = %(vintage)s AND code = %(commune)s))]),
    %(snap)s)), 3)))
"""

OUTSIDE = """
WITH g AS (SELECT ST_GeomFromWKB(%(wkb)s, 4326) AS g),
c AS (SELECT geom FROM commune_coverage WHERE vintage = %(vintage)s AND code = %(commune)s),
outside AS (SELECT ST_Difference(g.g, c.geom) AS d FROM g, c)
SELECT ST_Area(g.g::geography),
       ST_Area(outside.d::geography),
       ST_AsText(ST_PointOnSurface(outside.d)),
       -- slivers outside that are no wider than twice the tolerance vanish when shrunk
       CASE WHEN ST_IsEmpty(outside.d) THEN false
            ELSE NOT ST_IsEmpty(ST_Buffer(outside.d::geography, -%(tolerance)s)::geometry) END
FROM g, outside
"""

OVERLAPS = """
WITH g AS (SELECT ST_GeomFromWKB(%(wkb)s, 4326) AS g),
o AS (SELECT e.id, e.code, ST_CollectionExtract(ST_Intersection(e.geom, g.g), 3) AS o
      FROM enumeration_area e, g
      WHERE e.census_round = %(round)s AND e.id <> %(self)s AND e.geom && g.g
        AND ST_Intersects(e.geom, g.g))
SELECT id, code, ST_Area(o::geography), ST_AsText(ST_PointOnSurface(o)),
       -- as outside the commune: slivers no wider than twice the tolerance are allowed
       NOT ST_IsEmpty(ST_Buffer(o::geography, -%(tolerance)s)::geometry)
FROM o WHERE NOT ST_IsEmpty(o)
"""


async def snapped_wkb(conn: psycopg.AsyncConnection, params: dict[str, Any]) -> bytes | None:
    """The geometry with vertices snapped to the commune boundary and neighbouring EAs."""
    row = await (await conn.execute(SNAP, params)).fetchone()
    return bytes(row[0]) if row and row[0] else None


async def outside(conn: psycopg.AsyncConnection, params: dict[str, Any]) -> tuple[Any, ...]:
    """(area m², area outside the commune m², a point outside as WKT, beyond tolerance)."""
    row = await (await conn.execute(OUTSIDE, params)).fetchone()
    assert row is not None
    return tuple(row)


async def overlaps(conn: psycopg.AsyncConnection, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(id, code, overlap m², a point in it as WKT, beyond tolerance) per overlapped EA."""
    return await (await conn.execute(OVERLAPS, params)).fetchall()


async def set_geometry(conn: psycopg.AsyncConnection, ea_id: int, wkb: bytes) -> None:
    """A geometry only (inside a change of several EAs, before their estimates and
    versions are written): the others' checks see it."""
    await conn.execute(
        "UPDATE enumeration_area SET geom = ST_Multi(ST_GeomFromWKB(%s, 4326)) WHERE id = %s",
        (wkb, ea_id),
    )


async def fetch_by_code(
    conn: psycopg.AsyncConnection, census_round: str, commune: str, code: str
) -> Row | None:
    """One EA of a commune and round by its code, locked for update, or None."""
    statement = sql.SQL(
        "SELECT {} FROM enumeration_area WHERE census_round = %s AND commune_code = %s"
        " AND code = %s FOR UPDATE"
    ).format(COLUMNS)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(statement, (census_round, commune, code))
        return await cur.fetchone()


# What a change released (covered by the changed EAs before, by no EA now, inside the
# commune), piece by piece: a piece is a new gap unless it joins area that was uncovered
# already (a commune still being drawn may shrink an EA into its undrawn part). Only the
# window around each piece is looked at, so a save stays cheap in a large commune.
NEW_GAPS = """
WITH c AS (SELECT geom FROM commune_coverage WHERE vintage = %(vintage)s AND code = %(commune)s),
b AS (SELECT ST_Union(ST_GeomFromWKB(w, 4326)) AS g FROM unnest(%(before)s::bytea[]) w),
n AS (SELECT ST_Union(e.geom) AS g FROM enumeration_area e, b
      WHERE e.census_round = %(round)s AND e.commune_code = %(commune)s AND e.geom && b.g),
released AS (SELECT ST_CollectionExtract(ST_Intersection(
                 ST_Difference(b.g, coalesce(n.g, 'SRID=4326;POLYGON EMPTY'::geometry)),
                 c.geom), 3) AS g FROM b, n, c),
piece AS (SELECT d.geom AS g FROM released, LATERAL ST_Dump(released.g) d
          -- as the rules treat overlaps: slivers no wider than twice the tolerance pass
          WHERE ST_Area(d.geom::geography) > %(min_m2)s
            AND NOT ST_IsEmpty(ST_Buffer(d.geom::geography, -%(tolerance)s)::geometry))
SELECT ST_AsGeoJSON(p.g, 9)::json, ST_Area(p.g::geography), ST_AsText(ST_PointOnSurface(p.g)),
       ARRAY(SELECT e.code FROM enumeration_area e
             WHERE e.census_round = %(round)s AND e.commune_code = %(commune)s
               AND e.geom && ST_Expand(p.g, 1e-8) AND ST_DWithin(e.geom, p.g, 1e-8)
               AND ST_Length(ST_Intersection(ST_Boundary(e.geom),
                                             ST_Buffer(ST_Boundary(p.g), 1e-8))) > 1e-7
             ORDER BY e.code),
       ST_AsBinary(p.g)
FROM piece p, c, released r
WHERE NOT EXISTS (
    -- uncovered area around the piece that the change did not release (a commune still
    -- being drawn), looked at ~10 m deep: 0.1 m deep, the undrawn area at the end of a strip
    -- a few metres wide measured under 1 m² and did not count
    SELECT 1 FROM LATERAL (SELECT ST_Expand(ST_Envelope(p.g), 1e-4) AS w) win,
    LATERAL ST_Dump(ST_Difference(ST_Intersection(c.geom, win.w), ST_Union(
        coalesce((SELECT ST_Union(e.geom) FROM enumeration_area e
                  WHERE e.census_round = %(round)s AND e.commune_code = %(commune)s
                    AND e.geom && win.w), 'SRID=4326;POLYGON EMPTY'::geometry),
        r.g))) old
    WHERE ST_Area(old.geom::geography) > %(min_m2)s AND ST_DWithin(old.geom, p.g, 1e-8)
      -- (a sliver the rules tolerate between EAs is no undrawn area)
      AND NOT ST_IsEmpty(ST_Buffer(old.geom::geography, -%(tolerance)s)::geometry))
ORDER BY 2 DESC
"""


async def new_gaps(conn: psycopg.AsyncConnection, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(GeoJSON, m², a point in it as WKT, codes of the EAs along it, WKB) of every gap a
    change of EAs (their geometries before: `before`) opened in the commune (inside the
    change's transaction)."""
    # (the planner's guess at the dumped pieces makes the statement look costly enough to
    # JIT-compile: 3 s of compiling for 3 ms of work)
    await conn.execute("SET LOCAL jit = off")
    return await (await conn.execute(NEW_GAPS, params)).fetchall()


# ---- the coverage report ----

COVERAGE = """
WITH c AS (SELECT geom FROM commune_coverage WHERE vintage = %(vintage)s
           AND code = %(commune)s),
e AS (SELECT id, code, geom, households FROM enumeration_area
      WHERE census_round = %(round)s AND commune_code = %(commune)s
        AND commune_vintage = %(vintage)s),
gaps AS (SELECT (ST_Dump(ST_Difference(
            c.geom, coalesce((SELECT ST_Union(geom) FROM e),
                             'SRID=4326;POLYGON EMPTY'::geometry)))).geom
         FROM c)
SELECT
  (SELECT ST_Area(geom::geography) FROM c),
  (SELECT count(*) FROM e),
  (SELECT coalesce(json_agg(json_build_object('geometry', ST_AsGeoJSON(g.geom, 7)::json,
          'area_m2', round(ST_Area(g.geom::geography)::numeric, 1))), '[]')
   FROM gaps g WHERE ST_Area(g.geom::geography) > %(min_m2)s),
  (SELECT coalesce(json_agg(json_build_object('eas', ARRAY[a.code, b.code],
          'area_m2', round(ST_Area(ST_Intersection(a.geom, b.geom)::geography)::numeric, 1),
          'location', ST_AsGeoJSON(ST_PointOnSurface(ST_Intersection(a.geom, b.geom)), 7)::json)),
          '[]')
   FROM e a JOIN e b ON a.id < b.id AND a.geom && b.geom AND ST_Intersects(a.geom, b.geom)
   WHERE ST_Area(ST_Intersection(a.geom, b.geom)::geography) > %(min_m2)s),
  (SELECT coalesce(json_agg(json_build_object('ea', e.code, 'area_m2',
          round(ST_Area(ST_Difference(e.geom, c.geom)::geography)::numeric, 1))), '[]')
   FROM e, c WHERE ST_Area(ST_Difference(e.geom, c.geom)::geography) > %(min_m2)s),
  (SELECT coalesce(json_agg(json_build_object('ea', code,
                                              'households', round(households::numeric))), '[]')
   FROM e WHERE households NOT BETWEEN %(hh_min)s AND %(hh_max)s)
"""


async def coverage(conn: psycopg.AsyncConnection, params: dict[str, Any]) -> tuple[Any, ...]:
    """(commune m², EAs, gaps, overlaps, EAs leaving the commune, EAs outside the band)."""
    row = await (await conn.execute(COVERAGE, params)).fetchone()
    assert row is not None
    return tuple(row)


# ---- history ----


async def write_history(
    conn: psycopg.AsyncConnection,
    ea_id: int,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    user: str,
    reason: str | None,
    merged_into: int | None = None,
) -> None:
    """Append one change with the full states before and after (GeoJSON Features); an EA
    a merge absorbed names the EA that took its geometry."""
    await conn.execute(
        "INSERT INTO ea_history (ea_id, action, before, after, user_name, reason, merged_into)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            ea_id,
            action,
            Jsonb(before) if before else None,
            Jsonb(after) if after else None,
            user,
            reason,
            merged_into,
        ),
    )


async def history(conn: psycopg.AsyncConnection, ea_id: int) -> list[tuple[Any, ...]]:
    """(id, action, before, after, user, reason, at) of every change of an EA."""
    cur = await conn.execute(
        "SELECT id, action, before, after, user_name, reason, at FROM"
        " ea_history WHERE ea_id = %s ORDER BY id",
        (ea_id,),
    )
    return await cur.fetchall()


GEOMETRY_AUTHORS = """
WITH RECURSIVE lineage(id) AS (
    SELECT %(ea)s::bigint
    UNION
    -- an EA made by a split carries the geometry of the EA it was cut from; an EA that
    -- took others in a merge carries theirs (a restore brings back one of the EA's own
    -- versions, so its authors are in the EA's history already)
    SELECT CASE WHEN h.ea_id = l.id THEN (h.before ->> 'id')::bigint ELSE h.ea_id END
    FROM ea_history h JOIN lineage l
      ON (h.ea_id = l.id AND h.action = 'split' AND (h.before ->> 'id')::bigint <> l.id)
      OR (h.merged_into = l.id AND h.action = 'merge')
)
SELECT DISTINCT h.user_name FROM ea_history h JOIN lineage l ON h.ea_id = l.id
WHERE h.action IN ('create', 'update', 'split', 'merge', 'generate', 'restore')
"""


async def geometry_authors(conn: psycopg.AsyncConnection, ea_id: int) -> set[str]:
    """Everyone who drew or changed the EA's geometry, and that of every EA it was cut from or
    took in by a merge, however far back."""
    cur = await conn.execute(GEOMETRY_AUTHORS, {"ea": ea_id})
    return {str(row[0]) for row in await cur.fetchall()}


# ---- generated drafts ----

GENERATED_HISTORY = """
INSERT INTO ea_history (ea_id, action, after, user_name, reason)
SELECT id, 'generate', jsonb_build_object('type', 'Feature', 'id', id,
       'geometry', ST_AsGeoJSON(geom, 15)::jsonb,
       'properties', jsonb_build_object('code', code, 'census_round', census_round,
                                        'commune_vintage', commune_vintage,
                                        'commune_code', commune_code, 'status', status,
                                        'population', population, 'households', households,
                                        'version', version)),
       %s, %s
FROM enumeration_area WHERE census_round = %s AND commune_code = ANY(%s)
"""
COPY_DRAFTS = (
    "COPY enumeration_area (census_round, code, commune_vintage, commune_code,"
    " status, population, households, geom, updated_by) FROM STDIN"
)


def communes_with_eas(conn: psycopg.Connection, census_round: str) -> set[str]:
    """The communes that have EAs in the round."""
    return {
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT commune_code FROM enumeration_area WHERE census_round = %s",
            (census_round,),
        )
    }


def replace_drafts(
    conn: psycopg.Connection,
    census_round: str,
    communes: list[str],
    rows: Iterable[tuple[Any, ...]],
    user: str,
    reason: str,
) -> None:
    """Replace the communes' EAs by drafts (with their history), one generation at a time
    (call inside a transaction)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('ea-generate'))")
    conn.execute(
        "DELETE FROM enumeration_area WHERE census_round = %s AND commune_code = ANY(%s)",
        (census_round, communes),
    )
    with conn.cursor().copy(COPY_DRAFTS) as copy:
        for row in rows:
            copy.write_row(row)
    conn.execute(GENERATED_HISTORY, (user, reason, census_round, communes))


async def add_drafts(
    conn: psycopg.AsyncConnection,
    census_round: str,
    commune: str,
    rows: Iterable[tuple[Any, ...]],
    user: str,
    reason: str,
) -> None:
    """Add drafts of one commune (with their history), inside the caller's transaction."""
    async with conn.cursor().copy(COPY_DRAFTS) as copy:
        for row in rows:
            await copy.write_row(row)
    await conn.execute(GENERATED_HISTORY, (user, reason, census_round, [commune]))


async def count_matching(conn: psycopg.AsyncConnection, filters: ListFilter) -> int:
    """How many EAs the filters match."""
    where, params = filters.where()
    cur = await conn.execute(
        sql.SQL("SELECT count(*) FROM enumeration_area WHERE {}").format(where), params
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


def page_sql(filters: ListFilter, limit: int, offset: int) -> tuple[sql.Composed, dict[str, Any]]:
    """A page of EAs, one GeoJSON Feature (text) per row, in round and code order."""
    where, params = filters.where()
    # The page's ids first, then JSON for them only: with OFFSET, PostgreSQL would otherwise
    # build (and throw away) the JSON of every skipped row.
    page = sql.SQL(
        "WITH page AS MATERIALIZED (SELECT id FROM enumeration_area WHERE {}"
        " ORDER BY census_round, code LIMIT %(limit)s OFFSET %(offset)s)"
        " SELECT {} FROM page JOIN enumeration_area USING (id)"
        " ORDER BY census_round, code"
    ).format(where, FEATURE_JSON)
    return page, {**params, "limit": limit, "offset": offset}


# ---- census organisation: staff, supervisor areas, assignments (see organise.py) ----

STAFF_COLUMNS = "id, census_round, code, name, role, scope, phone, user_name"


async def insert_staff(conn: psycopg.AsyncConnection, values: dict[str, Any]) -> Row:
    """A new enumerator or supervisor."""
    return await _returning(
        conn,
        sql.SQL(
            "INSERT INTO census_staff (census_round, code, name, role, scope, phone, user_name)"
            " VALUES (%(round)s, %(code)s, %(name)s, %(role)s, %(scope)s, %(phone)s,"
            " %(user_name)s) RETURNING " + STAFF_COLUMNS
        ),
        values,
    )


async def staff_of(
    conn: psycopg.AsyncConnection, census_round: str, codes: list[str] | None
) -> list[Row]:
    """Staff of a round working in the scope (province or commune codes; None: all), by code:
    a commune's staff and its province's."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT " + STAFF_COLUMNS + " FROM census_staff s WHERE census_round = %(round)s"
            " AND (%(codes)s::text[] IS NULL OR scope = ANY(%(codes)s)"
            "  OR left(scope, 2) = ANY(%(codes)s) OR scope IN (SELECT parent_code FROM"
            "  admin_unit WHERE level = 'commune' AND code = ANY(%(codes)s))"
            "  OR EXISTS (SELECT FROM admin_unit c WHERE c.level = 'commune'"
            "   AND c.code = s.scope AND c.parent_code = ANY(%(codes)s)))"
            " ORDER BY code",
            {"round": census_round, "codes": codes},
        )
        return await cur.fetchall()


async def staff_by_code(
    conn: psycopg.AsyncConnection, census_round: str, codes: list[str]
) -> dict[str, Row]:
    """Staff of a round by code."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT " + STAFF_COLUMNS + " FROM census_staff"
            " WHERE census_round = %s AND code = ANY(%s)",
            (census_round, codes),
        )
        return {row["code"]: row for row in await cur.fetchall()}


async def staff_by_id(conn: psycopg.AsyncConnection, ids: list[int]) -> dict[int, Row]:
    """Staff by id."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT " + STAFF_COLUMNS + " FROM census_staff WHERE id = ANY(%s)", (ids,)
        )
        return {row["id"]: row for row in await cur.fetchall()}


async def delete_staff(conn: psycopg.AsyncConnection, staff_id: int) -> None:
    """Remove a staff member (their EAs and areas become unassigned)."""
    await conn.execute("DELETE FROM census_staff WHERE id = %s", (staff_id,))


async def eas_by_code(
    conn: psycopg.AsyncConnection, census_round: str, codes: list[str]
) -> list[Row]:
    """(id, code, commune_code, households) of the round's EAs with these codes."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT e.id, e.code, e.commune_code, e.commune_vintage, e.households,"
            " c.parent_code AS province FROM enumeration_area e JOIN admin_unit c"
            " ON c.vintage = e.commune_vintage AND c.level = 'commune' AND c.code = e.commune_code"
            " WHERE e.census_round = %s AND e.code = ANY(%s)",
            (census_round, codes),
        )
        return await cur.fetchall()


async def shapes(conn: psycopg.AsyncConnection, ids: list[int]) -> dict[int, bytes]:
    """The EAs' geometries (WKB) by id."""
    cur = await conn.execute(
        "SELECT id, ST_AsBinary(geom) FROM enumeration_area WHERE id = ANY(%s)", (ids,)
    )
    return {int(i): bytes(wkb) for i, wkb in await cur.fetchall()}


async def supervisor_areas(
    conn: psycopg.AsyncConnection, census_round: str, commune: str
) -> list[Row]:
    """A commune's supervisor areas with their EAs' codes and ids, and households."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT s.id, s.census_round, s.commune_code, s.code, s.supervisor_id,"
            " coalesce(array_agg(e.code ORDER BY e.code) FILTER (WHERE e.id IS NOT NULL),"
            "  '{}') AS eas, sum(e.households) AS households,"
            " coalesce(array_agg(e.id ORDER BY e.code) FILTER (WHERE e.id IS NOT NULL), '{}')"
            "  AS ea_ids"
            " FROM supervisor_area s LEFT JOIN ea_assignment a ON a.supervisor_area_id = s.id"
            " LEFT JOIN enumeration_area e ON e.id = a.ea_id"
            " WHERE s.census_round = %s AND s.commune_code = %s GROUP BY s.id ORDER BY s.code",
            (census_round, commune),
        )
        return await cur.fetchall()


async def supervisor_area(conn: psycopg.AsyncConnection, area_id: int) -> Row | None:
    """One supervisor area's row."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, census_round, commune_vintage, commune_code, code, supervisor_id"
            " FROM supervisor_area WHERE id = %s",
            (area_id,),
        )
        return await cur.fetchone()


async def next_area_code(conn: psycopg.AsyncConnection, census_round: str, commune: str) -> str:
    """The commune's next free supervisor-area code: 00004-S01, 00004-S02, …"""
    cur = await conn.execute(
        "SELECT coalesce(max(substring(code from '-S([0-9]+)$')::int), 0) + 1"
        " FROM supervisor_area WHERE census_round = %s AND commune_code = %s",
        (census_round, commune),
    )
    row = await cur.fetchone()
    return f"{commune}-S{int(row[0]) if row else 1:02d}"


async def insert_area(conn: psycopg.AsyncConnection, values: dict[str, Any]) -> int:
    """A new supervisor area; its id."""
    cur = await conn.execute(
        "INSERT INTO supervisor_area (census_round, commune_vintage, commune_code, code,"
        " supervisor_id, updated_by) VALUES (%(round)s, %(vintage)s, %(commune)s, %(code)s,"
        " %(supervisor)s, %(user)s) RETURNING id",
        values,
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def update_area(
    conn: psycopg.AsyncConnection, area_id: int, supervisor: int | None, user: str
) -> None:
    """A supervisor area's supervisor."""
    await conn.execute(
        "UPDATE supervisor_area SET supervisor_id = %s, updated_by = %s, updated_at = now()"
        " WHERE id = %s",
        (supervisor, user, area_id),
    )


async def delete_area(conn: psycopg.AsyncConnection, area_id: int) -> None:
    """Remove a supervisor area (its EAs stay, in no area)."""
    await conn.execute("DELETE FROM supervisor_area WHERE id = %s", (area_id,))


async def areas_of_eas(conn: psycopg.AsyncConnection, ids: list[int]) -> dict[int, int]:
    """The supervisor area of each EA that has one."""
    cur = await conn.execute(
        "SELECT ea_id, supervisor_area_id FROM ea_assignment"
        " WHERE ea_id = ANY(%s) AND supervisor_area_id IS NOT NULL",
        (ids,),
    )
    return {int(a): int(b) for a, b in await cur.fetchall()}


async def set_area_members(
    conn: psycopg.AsyncConnection, area_id: int, ids: list[int], user: str
) -> None:
    """The area holds exactly these EAs."""
    await conn.execute(
        "UPDATE ea_assignment SET supervisor_area_id = NULL, updated_by = %s, updated_at = now()"
        " WHERE supervisor_area_id = %s AND NOT ea_id = ANY(%s)",
        (user, area_id, ids),
    )
    await conn.execute(
        "INSERT INTO ea_assignment (ea_id, supervisor_area_id, updated_by)"
        " SELECT unnest(%s::bigint[]), %s, %s ON CONFLICT (ea_id) DO UPDATE SET"
        " supervisor_area_id = excluded.supervisor_area_id, updated_by = excluded.updated_by,"
        " updated_at = now()",
        (ids, area_id, user),
    )


async def assign_enumerators(
    conn: psycopg.AsyncConnection, pairs: list[tuple[int, int | None]], user: str
) -> None:
    """Each EA's enumerator (None: unassigned)."""
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO ea_assignment (ea_id, enumerator_id, updated_by) VALUES (%s, %s, %s)"
            " ON CONFLICT (ea_id) DO UPDATE SET enumerator_id = excluded.enumerator_id,"
            " updated_by = excluded.updated_by, updated_at = now()",
            [(ea, staff, user) for ea, staff in pairs],
        )


WORKLOAD = """
SELECT e.code, e.households, e.listed_households, ST_Area(e.geom::geography) / 1e6 AS km2,
       a.enumerator_id, a.supervisor_area_id
FROM enumeration_area e LEFT JOIN ea_assignment a ON a.ea_id = e.id
WHERE e.census_round = %s AND e.commune_code = %s ORDER BY e.code
"""


async def workload_rows(
    conn: psycopg.AsyncConnection, census_round: str, commune: str
) -> list[Row]:
    """Each EA of the commune with its figures and assignment."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(WORKLOAD, (census_round, commune))
        return await cur.fetchall()


ORGANISE = """
SELECT e.id, e.code, coalesce(e.households, 0) AS households, ST_AsBinary(e.geom) AS wkb,
       s.code AS area, s.id AS area_id, st.code AS enumerator
FROM enumeration_area e LEFT JOIN ea_assignment a ON a.ea_id = e.id
LEFT JOIN supervisor_area s ON s.id = a.supervisor_area_id
LEFT JOIN census_staff st ON st.id = a.enumerator_id
WHERE e.census_round = %s AND e.commune_code = %s ORDER BY e.code
"""


async def organise_rows(
    conn: psycopg.AsyncConnection, census_round: str, commune: str
) -> list[Row]:
    """Each EA of the commune with its shape (WKB), supervisor area and enumerator codes."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(ORGANISE, (census_round, commune))
        return await cur.fetchall()


async def enumerators_elsewhere(
    conn: psycopg.AsyncConnection, census_round: str, commune: str, staff: list[str]
) -> set[str]:
    """Which of these staff codes have EAs assigned in another commune of the round."""
    cur = await conn.execute(
        "SELECT DISTINCT st.code FROM census_staff st JOIN ea_assignment a"
        " ON a.enumerator_id = st.id JOIN enumeration_area e ON e.id = a.ea_id"
        " WHERE st.census_round = %s AND st.code = ANY(%s) AND e.commune_code <> %s",
        (census_round, staff, commune),
    )
    return {str(code) for (code,) in await cur.fetchall()}


async def supervisors_with_areas(conn: psycopg.AsyncConnection, census_round: str) -> set[str]:
    """Codes of the round's supervisors who lead a supervisor area."""
    cur = await conn.execute(
        "SELECT DISTINCT st.code FROM supervisor_area s JOIN census_staff st"
        " ON st.id = s.supervisor_id WHERE s.census_round = %s",
        (census_round,),
    )
    return {str(code) for (code,) in await cur.fetchall()}


async def areas_by_code(
    conn: psycopg.AsyncConnection, census_round: str, commune: str, codes: list[str]
) -> dict[str, int]:
    """Ids of the commune's supervisor areas with these codes."""
    cur = await conn.execute(
        "SELECT code, id FROM supervisor_area WHERE census_round = %s AND commune_code = %s"
        " AND code = ANY(%s)",
        (census_round, commune, codes),
    )
    return {str(code): int(i) for code, i in await cur.fetchall()}


# The communes of a progress read: each code in the boundary vintage the round's EAs of it
# lie in (whose province decides who reads them), the others in the round's vintage (the
# newest its EAs lie in, else the newest with communes); a vintage asked for, all in it.
# (The round's vintages and each candidate code's newest one are index probes on
# (census_round, commune_vintage, commune_code): reading every EA of the round to find
# them took ~100 ms a read with the national 236,690 EAs loaded, twice per progress page.)
PROGRESS_COMMUNES = """
WITH round_vintages AS (
    SELECT v.id, v.valid_from FROM vintage v
    WHERE %(vintage)s::text IS NULL AND EXISTS (
        SELECT 1 FROM enumeration_area e
        WHERE e.census_round = %(round)s AND e.commune_vintage = v.id)
), candidates AS (
    SELECT DISTINCT c.code FROM admin_unit c
    WHERE %(vintage)s::text IS NULL AND c.level = 'commune'
      AND (%(codes)s::text[] IS NULL OR c.code = ANY(%(codes)s)
           OR c.parent_code = ANY(%(codes)s))
), drawn AS (
    SELECT k.code AS commune_code, (
        SELECT rv.id FROM round_vintages rv
        WHERE EXISTS (SELECT 1 FROM enumeration_area e WHERE e.census_round = %(round)s
                      AND e.commune_vintage = rv.id AND e.commune_code = k.code)
        ORDER BY rv.valid_from DESC, rv.id DESC LIMIT 1) AS commune_vintage
    FROM candidates k
), base AS (
    SELECT coalesce(%(vintage)s::text, (
        SELECT rv.id FROM round_vintages rv ORDER BY rv.valid_from DESC, rv.id DESC LIMIT 1), (
        SELECT v.id FROM vintage v WHERE EXISTS (SELECT 1 FROM admin_unit u
            WHERE u.vintage = v.id AND u.level = 'commune')
        ORDER BY v.valid_from DESC, v.id DESC LIMIT 1)) AS vintage
), communes AS (
    SELECT c.* FROM admin_unit c CROSS JOIN base
    LEFT JOIN drawn d ON d.commune_code = c.code
    WHERE c.level = 'commune' AND c.vintage = coalesce(d.commune_vintage, base.vintage)
      AND (%(codes)s::text[] IS NULL OR c.code = ANY(%(codes)s)
           OR c.parent_code = ANY(%(codes)s))
)
"""

PROGRESS = (
    PROGRESS_COMMUNES
    + """
SELECT c.code, c.name, count(e.id) AS eas,
       count(e.id) FILTER (WHERE e.status = 'draft') AS draft,
       count(e.id) FILTER (WHERE e.status = 'submitted') AS submitted,
       count(e.id) FILTER (WHERE e.status = 'approved') AS approved,
       count(e.id) FILTER (WHERE e.status = 'rejected') AS rejected,
       count(a.enumerator_id) AS assigned,
       count(a.supervisor_area_id) AS in_supervisor_areas
FROM communes c
LEFT JOIN enumeration_area e ON e.census_round = %(round)s AND e.commune_vintage = c.vintage
     AND e.commune_code = c.code
LEFT JOIN ea_assignment a ON a.ea_id = e.id
GROUP BY c.code, c.name ORDER BY c.code
"""
)


async def progress(
    conn: psycopg.AsyncConnection, census_round: str, vintage: str | None, codes: list[str] | None
) -> list[Row]:
    """Per commune of the scope: EAs by status, assigned, in supervisor areas (the communes
    as the round's EAs know them unless a vintage is asked for)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(PROGRESS, {"round": census_round, "vintage": vintage, "codes": codes})
        return await cur.fetchall()


PROGRESS_PROVINCES = (
    PROGRESS_COMMUNES
    + """
SELECT DISTINCT p.code, p.name
FROM communes c
JOIN admin_unit p ON p.vintage = c.vintage AND p.level = 'province' AND p.code = c.parent_code
ORDER BY p.code
"""
)


async def progress_provinces(
    conn: psycopg.AsyncConnection, census_round: str, vintage: str | None, codes: list[str] | None
) -> list[Row]:
    """The provinces (code, name) the communes of a progress read belong to."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            PROGRESS_PROVINCES, {"round": census_round, "vintage": vintage, "codes": codes}
        )
        return await cur.fetchall()


REVIEW = """
SELECT e.id, e.code, e.commune_code, e.version, e.households,
       sub.user_name AS submitted_by, sub.at AS submitted_at,
       prev.action AS previous_action, prev.version AS previous_version,
       ST_AsGeoJSON(e.geom, 7)::json AS geometry,
       CASE WHEN prev.g IS NOT NULL AND NOT ST_IsEmpty(d.added)
            THEN ST_AsGeoJSON(d.added, 7)::json END AS added,
       CASE WHEN prev.g IS NOT NULL AND NOT ST_IsEmpty(d.removed)
            THEN ST_AsGeoJSON(d.removed, 7)::json END AS removed
FROM enumeration_area e
JOIN admin_unit c ON c.vintage = e.commune_vintage AND c.level = 'commune'
     AND c.code = e.commune_code
LEFT JOIN LATERAL (SELECT user_name, at FROM ea_history
                   WHERE ea_id = e.id AND action = 'submit' ORDER BY id DESC LIMIT 1) sub ON true
-- the version to compare with: the last approved one, else the first
LEFT JOIN LATERAL (SELECT h.action, h.after -> 'properties' ->> 'version' AS version,
                          ST_SetSRID(ST_GeomFromGeoJSON(h.after -> 'geometry'), 4326) AS g
                   FROM ea_history h WHERE h.ea_id = e.id AND h.after ? 'geometry'
                   ORDER BY (h.action = 'approve') DESC,
                            CASE WHEN h.action = 'approve' THEN -h.id ELSE h.id END
                   LIMIT 1) prev ON true
LEFT JOIN LATERAL (SELECT ST_CollectionExtract(ST_Difference(e.geom, prev.g), 3) AS added,
                          ST_CollectionExtract(ST_Difference(prev.g, e.geom), 3) AS removed) d
     ON true
WHERE e.census_round = %(round)s AND e.status = 'submitted'
  AND (%(codes)s::text[] IS NULL OR c.code = ANY(%(codes)s) OR c.parent_code = ANY(%(codes)s))
ORDER BY sub.at, e.code
LIMIT %(limit)s
"""

STATUS_COUNTS = """
SELECT e.commune_code AS commune, count(*) AS eas,
       count(*) FILTER (WHERE status = 'draft') AS draft,
       count(*) FILTER (WHERE status = 'submitted') AS submitted,
       count(*) FILTER (WHERE status = 'approved') AS approved,
       count(*) FILTER (WHERE status = 'rejected') AS rejected
FROM enumeration_area e
JOIN admin_unit c ON c.vintage = e.commune_vintage AND c.level = 'commune'
     AND c.code = e.commune_code
WHERE e.census_round = %(round)s
  AND (%(codes)s::text[] IS NULL OR c.code = ANY(%(codes)s) OR c.parent_code = ANY(%(codes)s))
GROUP BY e.commune_code ORDER BY e.commune_code
"""


async def review(
    conn: psycopg.AsyncConnection, census_round: str, codes: list[str] | None, limit: int
) -> tuple[list[Row], list[Row]]:
    """(counts by status per commune, the submitted EAs with their change) in the scope."""
    params = {"round": census_round, "codes": codes, "limit": limit}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(STATUS_COUNTS, params)
        counts = await cur.fetchall()
        await cur.execute(REVIEW, params)
        return counts, await cur.fetchall()


async def listing_targets(
    conn: psycopg.AsyncConnection, census_round: str, codes: list[str]
) -> list[Row]:
    """The EAs a listing names, with their commune and province (for the scope check)."""
    return await eas_by_code(conn, census_round, codes)


async def save_listing(
    conn: psycopg.AsyncConnection, rows: list[tuple[int, int | None, int | None]], user: str
) -> None:
    """Listed dwellings and households per EA id, with a history entry each."""
    async with conn.cursor() as cur:
        await cur.executemany(
            "WITH before AS (SELECT listed_dwellings, listed_households FROM enumeration_area"
            "  WHERE id = %(id)s), changed AS (UPDATE enumeration_area SET"
            "  listed_dwellings = %(dwellings)s, listed_households = %(households)s,"
            "  listed_at = now() WHERE id = %(id)s RETURNING id)"
            " INSERT INTO ea_history (ea_id, action, before, after, user_name, reason)"
            " SELECT %(id)s, 'listing', (SELECT to_jsonb(b) FROM before b),"
            "  jsonb_build_object('listed_dwellings', %(dwellings)s::int,"
            "   'listed_households', %(households)s::int), %(user)s, 'field listing'"
            " FROM changed",
            [
                {"id": ea, "dwellings": dwellings, "households": households, "user": user}
                for ea, dwellings, households in rows
            ],
        )


# ---- lines that EA boundaries follow ----

LINE_SHARE = """
WITH c AS (SELECT geom FROM commune_coverage WHERE vintage = %(vintage)s AND code = %(commune)s),
e AS (SELECT ST_UnaryUnion(ST_Collect(ST_Boundary(geom))) AS b FROM enumeration_area
      WHERE census_round = %(round)s AND commune_code = %(commune)s),
-- the EA boundaries inside the commune (the commune's own edge is not drawn by anyone)
inner_edges AS (SELECT ST_Difference(e.b, ST_Buffer(ST_Boundary(c.geom)::geography,
                                                    %(near)s)::geometry) AS g FROM e, c),
l AS (SELECT ST_Buffer(ST_Collect(ST_Intersection(l.geom, ST_Buffer(c.geom, 0.001)))::geography,
                       %(near)s)::geometry AS g
      FROM ea_line l, c WHERE l.geom && c.geom AND ST_Intersects(l.geom, c.geom))
SELECT coalesce(ST_Length(i.g::geography), 0),
       coalesce(ST_Length(ST_Intersection(i.g, l.g)::geography), 0)
FROM inner_edges i LEFT JOIN l ON true
"""


async def line_share(conn: psycopg.AsyncConnection, params: dict[str, Any]) -> tuple[float, float]:
    """(metres of EA boundary inside the commune, metres of it along a loaded line)."""
    row = await (await conn.execute(LINE_SHARE, params)).fetchone()
    if row is None:
        return 0.0, 0.0
    return float(row[0] or 0.0), float(row[1] or 0.0)


def lines_by_commune(
    conn: psycopg.Connection, vintage: str, codes: list[str]
) -> dict[str, list[bytes]]:
    """The loaded lines (WKB, clipped to each commune) that cross the communes listed."""
    rows = conn.execute(
        "SELECT c.code, ST_AsBinary(ST_Intersection(l.geom, c.geom)) FROM commune_coverage c"
        " JOIN ea_line l ON l.geom && c.geom AND ST_Intersects(l.geom, c.geom)"
        " WHERE c.vintage = %s AND c.code = ANY(%s)",
        (vintage, codes),
    ).fetchall()
    found: dict[str, list[bytes]] = {}
    for code, wkb in rows:
        found.setdefault(code, []).append(bytes(wkb))
    return found


async def lines_of_commune(conn: psycopg.AsyncConnection, vintage: str, code: str) -> list[bytes]:
    """The loaded lines (WKB) clipped to one commune."""
    cur = await conn.execute(
        "SELECT ST_AsBinary(ST_Intersection(l.geom, c.geom)) FROM commune_coverage c"
        " JOIN ea_line l ON l.geom && c.geom AND ST_Intersects(l.geom, c.geom)"
        " WHERE c.vintage = %s AND c.code = %s",
        (vintage, code),
    )
    return [bytes(r[0]) for r in await cur.fetchall()]


async def lines_geojson(conn: psycopg.AsyncConnection, vintage: str, code: str) -> str:
    """The loaded lines near a commune as a GeoJSON FeatureCollection (text)."""
    # (only the line parts: a line whose box meets the commune's may miss it, and its
    # intersection is then empty or a point, neither a valid feature of this layer)
    cur = await conn.execute(
        "SELECT json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg("
        " json_build_object('type', 'Feature', 'id', x.id, 'geometry',"
        "  ST_AsGeoJSON(x.g, 6)::json,"
        "  'properties', json_build_object('kind', x.kind, 'name', x.name)) ORDER BY x.id),"
        " '[]'))::text FROM (SELECT l.id, l.kind, l.name, ST_CollectionExtract("
        "  ST_Intersection(l.geom, ST_Expand(c.geom, 0.01)), 2) AS g"
        "  FROM commune_coverage c JOIN ea_line l ON l.geom && ST_Expand(c.geom, 0.01)"
        "  WHERE c.vintage = %s AND c.code = %s) x WHERE NOT ST_IsEmpty(x.g)",
        (vintage, code),
    )
    row = await cur.fetchone()
    return str(row[0]) if row else '{"type": "FeatureCollection", "features": []}'


# ---- exports: EAs with their commune, province and assignment (see outputs/ea_export.py) ----

EXPORT_COLUMNS = (
    "code",
    "census_round",
    "commune_code",
    "commune_name",
    "province_code",
    "province_name",
    "status",
    "households",
    "population",
    "area_km2",
    "urban_rural",
    "boundary_description",
    "landmarks",
    "listed_dwellings",
    "listed_households",
    "enumerator_code",
    "enumerator_name",
    "supervisor_area",
    "supervisor_code",
    "supervisor_name",
    "version",
    "updated_at",
)
_EXPORT = """
SELECT e.code, e.census_round, e.commune_code, c.name AS commune_name,
       c.parent_code AS province_code, p.name AS province_name, e.status,
       round(e.households::numeric)::bigint, e.population,
       round((ST_Area(e.geom::geography) / 1e6)::numeric, 4)::float8,
       e.urban_rural, e.boundary_description, e.landmarks, e.listed_dwellings,
       e.listed_households, en.code, en.name, sa.code, su.code, su.name, e.version,
       to_char(e.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       {geometry}
FROM enumeration_area e
LEFT JOIN admin_unit c ON c.vintage = e.commune_vintage AND c.level = 'commune'
     AND c.code = e.commune_code
LEFT JOIN admin_unit p ON p.vintage = c.vintage AND p.level = 'province' AND p.code = c.parent_code
LEFT JOIN ea_assignment a ON a.ea_id = e.id
LEFT JOIN census_staff en ON en.id = a.enumerator_id
LEFT JOIN supervisor_area sa ON sa.id = a.supervisor_area_id
LEFT JOIN census_staff su ON su.id = sa.supervisor_id
WHERE {where}
ORDER BY e.census_round, e.code
LIMIT %(limit)s OFFSET %(offset)s
"""


def export_sql(
    filters: ListFilter, limit: int | None, offset: int, wkb: bool
) -> tuple[sql.Composed, dict[str, Any]]:
    """EA rows in EXPORT_COLUMNS order, the geometry last (WKB, or GeoJSON text when not
    `wkb`); only EAs of the filters' scope."""
    where, params = filters.where("e")
    geometry = sql.SQL("ST_AsBinary(e.geom)" if wkb else "ST_AsGeoJSON(e.geom, 8)")
    statement = sql.SQL(_EXPORT).format(geometry=geometry, where=where)
    return statement, {**params, "limit": limit, "offset": offset}


async def count_exported(conn: psycopg.AsyncConnection, filters: ListFilter) -> int:
    """How many EAs an export of the filters (within their scope) holds: counted on the EAs
    alone (the export's joins are on keys, one row each), with no geometry, join or sort, so
    a national count is known before anything is built."""
    where, params = filters.where("e")
    counted = sql.SQL("SELECT count(*) FROM enumeration_area e WHERE {}").format(where)
    row = await (await conn.execute(counted, params)).fetchone()
    return int(row[0]) if row else 0


async def export_rows(conn: psycopg.AsyncConnection, filters: ListFilter) -> list[Row]:
    """Every EA the filters match as a dict of EXPORT_COLUMNS and `wkb` (for field maps)."""
    statement, params = export_sql(filters, None, 0, wkb=True)
    cur = await conn.execute(statement, params)
    return [
        {**dict(zip(EXPORT_COLUMNS, row[:-1], strict=True)), "wkb": bytes(row[-1])}
        for row in await cur.fetchall()
    ]


async def round_vintage(
    conn: psycopg.AsyncConnection, commune: str, census_round: str
) -> str | None:
    """The boundary vintage of the commune that the round's EAs of that code belong to (the
    newest, were a round's EAs of one code ever on two), or None."""
    cur = await conn.execute(
        "SELECT e.commune_vintage FROM enumeration_area e"
        " JOIN vintage v ON v.id = e.commune_vintage"
        " WHERE e.census_round = %s AND e.commune_code = %s"
        " ORDER BY v.valid_from DESC, v.id DESC LIMIT 1",
        (census_round, commune),
    )
    row = await cur.fetchone()
    return str(row[0]) if row and row[0] else None


async def commune_rounds(conn: psycopg.AsyncConnection, commune: str) -> list[str]:
    """The census rounds that have EAs in the commune, newest first."""
    cur = await conn.execute(
        "SELECT DISTINCT census_round FROM enumeration_area WHERE commune_code = %s"
        " ORDER BY census_round DESC",
        (commune,),
    )
    return [str(row[0]) for row in await cur.fetchall()]

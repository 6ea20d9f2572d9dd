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

Row = dict[str, Any]

# Full precision (15 decimals): an EA read and sent back unchanged is exactly what is stored;
# rounded coordinates can make a valid sliver or a snapped vertex invalid.
COLUMNS = sql.SQL(
    "id, census_round, code, commune_vintage, commune_code, status, population,"
    " households, version, updated_by, updated_at,"
    " ST_AsGeoJSON(geom, 15) AS geometry"
)
# The Feature `store.as_feature` makes of a row, built by PostgreSQL, so lists stream unparsed.
FEATURE_JSON = sql.SQL("""json_build_object(
    'type', 'Feature', 'id', id, 'geometry', ST_AsGeoJSON(geom, 15)::json,
    'properties', json_build_object(
        'census_round', census_round, 'code', code, 'commune_vintage', commune_vintage,
        'commune_code', commune_code, 'status', status, 'population', population,
        'households', households, 'version', version, 'updated_by', updated_by,
        'updated_at', to_char(updated_at AT TIME ZONE 'UTC',
                              'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')))::text""")


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


async def _returning(conn: psycopg.AsyncConnection, statement: sql.Composed, params: Any) -> Row:
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

    def where(self) -> tuple[sql.Composable, dict[str, Any]]:
        """The WHERE condition and its parameters (only the filters given, so the
        planner sees each one and can use its index)."""
        conditions: list[sql.Composable] = []
        params: dict[str, Any] = {}
        for column, value in (
            ("commune_code", self.commune),
            ("status", self.status),
            ("census_round", self.census_round),
        ):
            if value is not None:
                conditions.append(
                    sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column))
                )
                params[column] = value
        if self.bbox is not None:
            conditions.append(
                sql.SQL("geom && ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 4326)")
            )
            params.update(zip(("x0", "y0", "x1", "y1"), self.bbox, strict=True))
        return sql.SQL(" AND ").join(conditions or [sql.SQL("true")]), params


async def count_and_extent(conn: psycopg.AsyncConnection) -> tuple[int, tuple[float | None, ...]]:
    """How many EAs there are, and the bounding box of all of them (None when empty)."""
    cur = await conn.execute(
        "WITH t AS (SELECT count(*) AS n, ST_Extent(geom) AS e"
        " FROM enumeration_area)"
        " SELECT n, ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM t"
    )
    count, *extent = await cur.fetchone() or (0, None, None, None, None)
    return int(count), tuple(extent)


# ---- communes ----


async def commune_row(
    conn: psycopg.AsyncConnection, code: str, vintage: str | None
) -> tuple[str, str, str | None] | None:
    """(vintage, code, province code) of the commune (latest vintage unless given)."""
    cur = await conn.execute(
        "SELECT vintage, code, parent_code FROM admin_unit WHERE level = 'commune'"
        " AND code = %s AND (%s::text IS NULL OR vintage = %s) ORDER BY vintage DESC LIMIT 1",
        (code, vintage, vintage),
    )
    row = await cur.fetchone()
    return (row[0], row[1], row[2]) if row else None


async def commune_exists(conn: psycopg.AsyncConnection, code: str) -> bool:
    """Whether a commune has the code in any vintage."""
    cur = await conn.execute(
        "SELECT 1 FROM admin_unit WHERE level = 'commune' AND code = %s", (code,)
    )
    return await cur.fetchone() is not None


async def commune_with_province(conn: psycopg.AsyncConnection, code: str) -> dict[str, Any] | None:
    """The commune (latest vintage) with its name and its province's code and name."""
    cur = await conn.execute(
        "SELECT c.vintage, c.code, c.name, c.parent_code, p.name FROM admin_unit c"
        " LEFT JOIN admin_unit p ON p.vintage = c.vintage AND p.level = 'province'"
        "  AND p.code = c.parent_code"
        " WHERE c.level = 'commune' AND c.code = %s ORDER BY c.vintage DESC LIMIT 1",
        (code,),
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
    cur = await conn.execute("SELECT max(vintage) FROM admin_unit WHERE level = 'commune'")
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


# ---- the coverage report ----

COVERAGE = """
WITH c AS (SELECT geom FROM commune_coverage WHERE vintage = %(vintage)s
           AND code = %(commune)s),
e AS (SELECT id, code, geom, households FROM enumeration_area
      WHERE census_round = %(round)s AND commune_code = %(commune)s),
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
) -> None:
    """Append one change with the full states before and after (GeoJSON Features)."""
    await conn.execute(
        "INSERT INTO ea_history (ea_id, action, before, after, user_name, reason)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (
            ea_id,
            action,
            Jsonb(before) if before else None,
            Jsonb(after) if after else None,
            user,
            reason,
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
    -- an EA made by a split carries the geometry of the EA it was cut from
    SELECT (h.before ->> 'id')::bigint FROM ea_history h JOIN lineage l ON h.ea_id = l.id
    WHERE h.action = 'split' AND (h.before ->> 'id')::bigint <> l.id
)
SELECT DISTINCT h.user_name FROM ea_history h JOIN lineage l ON h.ea_id = l.id
WHERE h.action IN ('create', 'update', 'split', 'merge', 'generate')
"""


async def geometry_authors(conn: psycopg.AsyncConnection, ea_id: int) -> set[str]:
    """Everyone who drew or changed the EA's geometry (and that of the EA it was cut from)."""
    cur = await conn.execute(GEOMETRY_AUTHORS, {"ea": ea_id})
    return {str(row[0]) for row in await cur.fetchall()}


# ---- generated drafts ----

GENERATED_HISTORY = """
INSERT INTO ea_history (ea_id, action, after, user_name, reason)
SELECT id, 'generate', jsonb_build_object('type', 'Feature', 'id', id,
       'geometry', ST_AsGeoJSON(geom, 15)::jsonb,
       'properties', jsonb_build_object('code', code, 'census_round', census_round,
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

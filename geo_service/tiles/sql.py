"""Every statement of the tiles domain: MVT tiles of unit collections (the generalised
geometry of the zoom's band) and of enumeration areas, clipped and encoded by PostGIS.

Both read geometry stored as tiles draw it (migrations 0019, 0020): in Web Mercator, the
bands snapped to the tile grid of their zoom, behind a spatial index per band, so a cold
tile is an index search and ST_AsMVTGeom on light geometry, with no ST_Transform."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from geo_core.zoom import FINEST_BAND, band_for_zoom
from geo_service.features.model import ItemQuery
from geo_service.features.sql import BASE_PROPERTIES, indicator_joins, property_expr


@dataclass(frozen=True)
class MvtOptions:
    """Tile encoding settings."""

    extent: int = 4096
    buffer: int = 64
    max_features: int = 20_000


def tile_sql(
    query: ItemQuery, z: int, x: int, y: int, options: MvtOptions
) -> tuple[sql.Composed, dict[str, Any]]:
    """One row: (data epoch, MVT bytes), read in a single snapshot."""
    params: dict[str, Any] = {
        "z": z,
        "x": x,
        "y": y,
        "extent": options.extent,
        "buffer": options.buffer,
        "limit": options.max_features,
        "vintage": query.collection.vintage,
        "level": query.collection.level,
        "layer": query.collection.id,
        # buffer in metres at this zoom, for the index search
        "margin": 40075016.68557849 / (1 << z) * options.buffer / options.extent,
        **_tile_cells(z, x, y, options),
    }
    names = query.tile_properties()
    band = band_for_zoom(z)
    if not query.indicators:  # (the geometry tiles: the same few statements every time)
        return _plain_tile_statement(tuple(names), band), params
    expressions = [property_expr(query, name) for name in names]
    joins = indicator_joins(query, params)
    return _tile_statement(expressions, names, joins, band), params


@functools.lru_cache(maxsize=64)
def _plain_tile_statement(names: tuple[str, ...], band: int) -> sql.Composed:
    """The statement of a tile without indicators, composed once per properties and band."""
    return _tile_statement([BASE_PROPERTIES[name] for name in names], list(names), [], band)


def _tile_statement(
    expressions: list[sql.Composable], names: list[str], joins: list[sql.Composable], band: int
) -> sql.Composed:
    """The tile statement with these property columns, indicator joins and band."""
    columns = [
        sql.SQL("{} AS {}").format(expr, sql.Identifier(name))
        for expr, name in zip(expressions, names, strict=True)
    ]
    return sql.SQL("""
WITH env AS (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS e),
candidates AS MATERIALIZED (
    SELECT g.code, g.geom_3857
    FROM admin_unit_generalised g CROSS JOIN env
    WHERE g.vintage = %(vintage)s AND g.level = %(level)s AND g.band = {band}
      AND g.geom_3857 && ST_Expand(env.e, %(margin)s)
    ORDER BY g.code
    LIMIT %(limit)s
),
features AS MATERIALIZED (
    SELECT coalesce(ST_AsMVTGeom(c.geom_3857, env.e, %(extent)s, %(buffer)s, true),
                    {smaller_than_cell}) AS geom{columns}
    FROM candidates c
    JOIN admin_unit u ON u.vintage = %(vintage)s AND u.level = %(level)s AND u.code = c.code
    {joins}
    CROSS JOIN env
)
SELECT (SELECT epoch FROM tile_epoch), coalesce(ST_AsMVT(f.*, %(layer)s, %(extent)s, 'geom'), '')
FROM features f WHERE f.geom IS NOT NULL
""").format(
        columns=sql.SQL("").join(sql.SQL(", ") + c for c in columns),
        joins=sql.SQL(" ").join(joins),
        smaller_than_cell=_SMALLER_THAN_CELL,
        # (a constant, not a parameter: the planner picks the band's own index only for a
        # band it knows when planning, and a prepared statement's generic plan would not)
        band=sql.Literal(band),
    )


# A unit narrower than a cell of the tile's grid (1/16 of a pixel) collapses when
# ST_AsMVTGeom snaps it to the grid and would vanish from the tile: at z0–z4 hundreds of
# communes are that small. Such a unit is drawn as the grid cell its point on surface lies
# in instead, so every unit is in the tile at every zoom (to colour, to click, to count);
# at that size no neighbour's shared edge can be seen anyway. (Evaluated only for a unit
# whose geometry gave nothing and whose box is that narrow.)
_SMALLER_THAN_CELL = sql.SQL("""
CASE WHEN ST_Area(c.geom_3857) < %(small)s THEN (
    SELECT ST_AsMVTGeom(ST_MakeEnvelope(
               %(west)s + floor((ST_X(p) - %(west)s) / %(cell)s) * %(cell)s,
               %(north)s - (floor((%(north)s - ST_Y(p)) / %(cell)s) + 1) * %(cell)s,
               %(west)s + (floor((ST_X(p) - %(west)s) / %(cell)s) + 1) * %(cell)s,
               %(north)s - floor((%(north)s - ST_Y(p)) / %(cell)s) * %(cell)s, 3857),
           env.e, %(extent)s, %(buffer)s, true)
    FROM ST_PointOnSurface(c.geom_3857) p)
END""")

_HALF_WORLD = 20037508.342789244  # metres: the bounds of ST_TileEnvelope


def _tile_cells(z: int, x: int, y: int, options: MvtOptions) -> dict[str, float]:
    """The tile's west and north edges (EPSG:3857) and the size of a cell of its grid."""
    size = 2 * _HALF_WORLD / (1 << z)
    return {
        "west": -_HALF_WORLD + x * size,
        "north": _HALF_WORLD - y * size,
        "cell": size / options.extent,
        # (a bigger unit that gives nothing lies outside the tile: no point looking)
        "small": (8 * size / options.extent) ** 2,
    }


EA_LAYER = "enumeration-areas"


def ea_tile_sql(
    z: int,
    x: int,
    y: int,
    options: MvtOptions,
    census_round: str | None,
    scope: tuple[str, ...] | None = None,
) -> tuple[sql.Composed, dict[str, Any]]:
    """Enumeration areas, simplified to half a pixel of this zoom, coloured by status: a box
    search on their Web Mercator copy (kept by a trigger, migration 0020), no transform;
    with a `scope` (private reads), only the EAs of those communes or provinces."""
    pixel = 40075016.68557849 / (1 << z) / options.extent
    params: dict[str, Any] = {
        "z": z,
        "x": x,
        "y": y,
        "extent": options.extent,
        "buffer": options.buffer,
        "limit": options.max_features,
        "layer": EA_LAYER,
        "round": census_round,
        "scope": list(scope) if scope is not None else None,
        "margin": pixel * options.buffer * 256 / options.extent * 16,
        "tolerance": pixel * 8,
    }
    statement = sql.SQL("""
WITH env AS (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS e),
features AS MATERIALIZED (
    SELECT ST_AsMVTGeom(ST_Simplify(a.geom_3857, %(tolerance)s, true), env.e,
                        %(extent)s, %(buffer)s, true) AS geom,
           a.id, a.code, a.status, a.commune_code, a.census_round,
           round(a.households)::int AS households, a.version
    FROM enumeration_area a CROSS JOIN env
    WHERE a.geom_3857 && ST_Expand(env.e, %(margin)s)
      AND (%(round)s::text IS NULL OR a.census_round = %(round)s)
      AND (%(scope)s::text[] IS NULL OR a.commune_code = ANY(%(scope)s::text[])
           OR EXISTS (SELECT 1 FROM admin_unit s WHERE s.level = 'commune'
                      AND s.vintage = a.commune_vintage AND s.code = a.commune_code
                      AND s.parent_code = ANY(%(scope)s::text[])))
    ORDER BY a.id
    LIMIT %(limit)s
)
SELECT (SELECT epoch FROM tile_epoch), coalesce(ST_AsMVT(f.*, %(layer)s, %(extent)s, 'geom'), '')
FROM features f WHERE f.geom IS NOT NULL
""")
    return statement.format(), params


_PART_BBOXES = """
SELECT DISTINCT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)
FROM (SELECT Box2D((ST_Dump(geom)).geom) AS b FROM admin_unit_generalised
      WHERE vintage = %s AND level = %s AND band = %s) parts
"""


async def unit_bboxes(
    conn: psycopg.AsyncConnection, vintage: str, level: str
) -> list[tuple[float, float, float, float]]:
    """The lon/lat box of each part of each unit of a collection: a tile no box touches is
    empty (the sea between a coast and its islands is not walked). Boxes of the finest band:
    a simplified band keeps a subset of its vertices, within them."""
    cur = await conn.execute(_PART_BBOXES, (vintage, level, FINEST_BAND))
    return [(float(a), float(b), float(c), float(d)) for a, b, c, d in await cur.fetchall()]


# any constant: the same for every instance pre-rendering into this database's caches
_PRERENDER_LOCK = 25_2026_0001


async def try_prerender_lock(conn: psycopg.AsyncConnection) -> bool:
    """Take the pre-render job's lock for this connection's life; False: another has it."""
    cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (_PRERENDER_LOCK,))
    row = await cur.fetchone()
    return bool(row and row[0])


_EA_PART_BBOXES = """
SELECT DISTINCT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)
FROM (SELECT Box2D((ST_Dump(geom)).geom) AS b FROM enumeration_area) parts
"""


async def ea_bboxes(conn: psycopg.AsyncConnection) -> list[tuple[float, float, float, float]]:
    """The lon/lat box of each part of each enumeration area (of every census round)."""
    cur = await conn.execute(_EA_PART_BBOXES)
    return [(float(a), float(b), float(c), float(d)) for a, b, c, d in await cur.fetchall()]

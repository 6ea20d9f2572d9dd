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

from geo_core.zoom import FINEST_BAND, ZOOM_BANDS, band_for_zoom
from geo_service.features.model import ItemQuery
from geo_service.features.sql import BASE_PROPERTIES, indicator_joins, property_expr

# A tile's statement: composed for its indicators, or the bytes of one composed once
Statement = sql.Composed | bytes


@dataclass(frozen=True)
class MvtOptions:
    """Tile encoding settings."""

    extent: int = 4096
    buffer: int = 64
    # the most features a tile may hold, else it is refused (TooExpensive) rather than
    # drawn in part; 0: no guard (every feature, the cost bounded by generalisation)
    max_features: int = 0


def tile_sql(
    query: ItemQuery, z: int, x: int, y: int, options: MvtOptions
) -> tuple[Statement, dict[str, Any]]:
    """One row: (data epoch, MVT bytes) and, with indicators, those of them withheld while
    their disclosure protection is re-checked (null: none), read in a single snapshot."""
    params: dict[str, Any] = {
        "z": z,
        "x": x,
        "y": y,
        "extent": options.extent,
        "buffer": options.buffer,
        "vintage": query.collection.vintage,
        "level": query.collection.level,
        "layer": query.collection.id,
        # buffer in metres at this zoom, for the index search
        "margin": 40075016.68557849 / (1 << z) * options.buffer / options.extent,
        **_tile_cells(z, x, y, options),
        **_tile_space(z, x, y, options),
        **_guard(options),
    }
    names = query.tile_properties()
    band = band_for_zoom(z)
    if not query.indicators:  # (the geometry tiles: the same few statements every time)
        return _plain_tile_statement(tuple(names), band), params
    expressions = [property_expr(query, name) for name in names]
    joins = indicator_joins(query, params)
    params["withheld_from"] = sorted({i.code for i in query.indicators})
    return _tile_statement(expressions, names, joins, band, _WITHHELD_MVT), params


@functools.lru_cache(maxsize=64)
def _plain_tile_statement(names: tuple[str, ...], band: int) -> bytes:
    """The statement of a tile without indicators, composed once per properties and band
    (as the query's bytes: turning a composed statement into them again for every cold
    tile cost more Python time than sending it)."""
    statement = _tile_statement([BASE_PROPERTIES[name] for name in names], list(names), [], band)
    return statement.as_bytes()


def _tile_statement(
    expressions: list[sql.Composable],
    names: list[str],
    joins: list[sql.Composable],
    band: int,
    mvt: sql.Composed | None = None,
) -> sql.Composed:
    """The tile statement with these property columns, indicator joins, band and answer."""
    columns = [
        sql.SQL("{} AS {}").format(expr, sql.Identifier(name))
        for expr, name in zip(expressions, names, strict=True)
    ]
    drawn: sql.Composable = sql.SQL(
        "coalesce(ST_AsMVTGeom(c.geom_3857, env.e, %(extent)s, %(buffer)s, true), {})"
    ).format(_SMALLER_THAN_CELL)
    if band in _ON_ITS_GRID:
        drawn = sql.SQL("CASE WHEN grid.valid THEN grid.geom ELSE {} END").format(drawn)
    return sql.SQL("""
WITH env AS (SELECT e, ST_Expand(e, %(clip_margin)s) AS unclipped
             FROM ST_TileEnvelope(%(z)s, %(x)s, %(y)s) e),
candidates AS MATERIALIZED (
    SELECT g.code, g.geom_3857
    FROM admin_unit_generalised g CROSS JOIN env
    WHERE g.vintage = %(vintage)s AND g.level = %(level)s AND g.band = {band}
      AND g.geom_3857 && ST_Expand(env.e, %(margin)s)
    ORDER BY g.code  -- (the same data gives the same bytes, and the same ETag)
    LIMIT %(guard_limit)s
),
features AS MATERIALIZED (
    SELECT {drawn} AS geom{columns}
    FROM candidates c
    JOIN admin_unit u ON u.vintage = %(vintage)s AND u.level = %(level)s AND u.code = c.code
    {joins}
    CROSS JOIN env
    {on_the_grid}
)
{mvt}""").format(
        mvt=mvt or _GUARDED_MVT,
        columns=sql.SQL("").join(sql.SQL(", ") + c for c in columns),
        joins=sql.SQL(" ").join(joins),
        drawn=drawn,
        on_the_grid=_UNIT_ON_THE_GRID if band in _ON_ITS_GRID else sql.SQL(""),
        # (a constant, not a parameter: the planner picks the band's own index only for a
        # band it knows when planning, and a prepared statement's generic plan would not)
        band=sql.Literal(band),
    )


# Bands of one zoom, stored snapped to that zoom's tile grid (migration 0019).
_ON_ITS_GRID = frozenset(b.band for b in ZOOM_BANDS if b.min_zoom == b.max_zoom)

# A unit of such a band wholly within the tile's buffer is only mapped onto the tile's
# integer grid, as EAs at z5–z8 are (see _ON_THE_GRID), and not given to ST_AsMVTGeom:
# besides being cheaper, ST_AsMVTGeom's polygon repair (wagyu) cuts off each feature's
# narrow spikes by itself, and a spike lying along a neighbour's edge (a neck of a unit
# narrower than a cell once snapped: 00160 along 00611 at z9) left that neighbour's edge
# unshared, a gap in the tile. The few units whose stored band has a vertex off the grid
# (a node added where the band was made valid) can come out invalid when rounded: those,
# units smaller than the stand-in cell's threshold and units crossing the buffer still go
# through ST_AsMVTGeom.
_UNIT_ON_THE_GRID = sql.SQL("""LEFT JOIN LATERAL (
        SELECT ST_ForcePolygonCCW(s.g) AS geom, (ST_IsValidDetail(s.g)).valid AS valid
        FROM (SELECT ST_SnapToGrid(ST_Affine(c.geom_3857, %(scale)s, 0, 0, %(negative_scale)s,
                                             %(shift_x)s, %(shift_y)s), 1) AS g
              WHERE c.geom_3857 @ env.unclipped AND ST_Area(c.geom_3857) >= %(small)s
              OFFSET 0) s
    ) grid ON true""")


# The answer: the data epoch (of the same snapshot) and the MVT of every feature, or NULL
# when a guard is set and the tile holds more features than it (the caller refuses the
# tile: a tile drawn in part would look complete). With a `feature_id` column, its value is
# each feature's MVT id (and not one of its properties).
# With `withheld`, a third column: the indicators of `withheld_from` withheld while their
# protection is re-checked, read on the snapshot of the values (null: none).
def _mvt(feature_id: str | None = None, withheld: bool = False) -> sql.Composed:
    """The answer's SELECT, reading the CTEs `candidates` and `features`."""
    return sql.SQL("""
SELECT (SELECT epoch FROM tile_epoch),
       CASE WHEN %(guard)s > 0 AND (SELECT count(*) FROM candidates) > %(guard)s THEN NULL
            ELSE (SELECT coalesce(ST_AsMVT(f.*, %(layer)s, %(extent)s, 'geom'{id}), '')
                  FROM features f WHERE f.geom IS NOT NULL)
       END{withheld}
""").format(
        id=sql.SQL(", {}").format(sql.Literal(feature_id)) if feature_id else sql.SQL(""),
        withheld=sql.SQL(_WITHHELD if withheld else ""),
    )


_WITHHELD = """,
       (SELECT array_agg(p.indicator ORDER BY p.indicator) FROM disclosure_pending p
        WHERE p.indicator = ANY(%(withheld_from)s))"""
_GUARDED_MVT = _mvt()
_WITHHELD_MVT = _mvt(withheld=True)


def _guard(options: MvtOptions) -> dict[str, int | None]:
    """The guard's parameters: candidates are read up to one past it (None: all)."""
    guard = options.max_features
    return {"guard": guard, "guard_limit": guard + 1 if guard > 0 else None}


# A unit narrower than a cell of the tile's grid (1/16 of a pixel) collapses when
# ST_AsMVTGeom snaps it to the grid and would vanish from the tile: at z0–z4 hundreds of
# communes are that small. Such a unit is drawn as the grid cell its point on surface lies
# in instead, so every unit is in the tile at every zoom (to colour, to click, to count);
# at that size no neighbour's shared edge can be seen anyway. (Evaluated only for a unit
# whose geometry gave nothing and whose box is that narrow.)
def _cell_of_point_on_surface(column: str) -> sql.Composed:
    """The tile grid's cell in which the point on surface of candidate `c`'s column lies."""
    return sql.SQL("""(
    SELECT ST_AsMVTGeom(ST_MakeEnvelope(
               %(west)s + floor((ST_X(p) - %(west)s) / %(cell)s) * %(cell)s,
               %(north)s - (floor((%(north)s - ST_Y(p)) / %(cell)s) + 1) * %(cell)s,
               %(west)s + (floor((ST_X(p) - %(west)s) / %(cell)s) + 1) * %(cell)s,
               %(north)s - floor((%(north)s - ST_Y(p)) / %(cell)s) * %(cell)s, 3857),
           env.e, %(extent)s, %(buffer)s, true)
    FROM ST_PointOnSurface({}) p)""").format(sql.Identifier("c", column))


_SMALLER_THAN_CELL = sql.SQL("CASE WHEN ST_Area(c.geom_3857) < %(small)s THEN {} END").format(
    _cell_of_point_on_surface("geom_3857")
)

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
# Zooms whose EA geometry is stored generalised (migrations 0022, 0027: geom_z5 … geom_z8,
# geom_z10 … geom_z12, on a grid of half a pixel of that zoom); z9 and z13+ simplify their
# Web Mercator copy per tile to half a pixel of the tile's zoom (z9's five tiles over Hà Nội
# did not pay for a band on every save; from z13 the editor works and wants every vertex).
EA_BAND_ZOOMS = (5, 6, 7, 8, 10, 11, 12)
# EA tiles exist from z5 (a tile request below is a 404, and the tilesets say so): no page
# draws EAs further out, and a z0–z4 tile over a national set of EAs drew every EA of
# the country (8–26 s) as specks a fraction of a pixel wide.
EA_MIN_ZOOM = EA_BAND_ZOOMS[0]

# What an EA tile's features carry, and from which zoom. Every feature's MVT id is the EA's
# id (not a property: as both, it weighed 12 % of a z9 tile gzipped). Up to z8 an EA is a
# few pixels or less and the pages draw only its status colour (the EA editor's tile
# layer): those tiles carry the status, nothing else, since encoding the other five
# properties of 20,000 EAs was most of a dense tile's cost. From z9, where codes can be
# read, the code too: all the editor reads of a tile. The commune, round, households and
# version are in the EA's item, which the editor reads anyway (encoding them was a tenth of
# a z10–z12 tile's database CPU).
EA_DETAIL_ZOOM = 9
_EA_COLUMNS = {
    "code": "c.code",
    "status": "c.status",
}
EA_PROPERTY_ZOOMS = {
    name: EA_MIN_ZOOM if name == "status" else EA_DETAIL_ZOOM for name in _EA_COLUMNS
}


def ea_tile_properties(z: int) -> list[str]:
    """The properties the features of an EA tile at zoom z carry (the feature id aside)."""
    return [name for name, first in EA_PROPERTY_ZOOMS.items() if z >= first]


def ea_tile_sql(
    z: int,
    x: int,
    y: int,
    options: MvtOptions,
    census_round: str | None,
    scope: tuple[str, ...] | None = None,
) -> tuple[Statement, dict[str, Any]]:
    """Every enumeration area in the tile, coloured by status: a box search on their Web
    Mercator copy (migration 0020), drawn from the copy generalised for this zoom up to z8
    (0022) or simplified to half a pixel deeper; an EA too small to draw is drawn as the
    grid cell it lies in. With a `scope` (private reads), only the EAs of those communes or
    provinces."""
    pixel = 40075016.68557849 / (1 << z) / options.extent
    params: dict[str, Any] = {
        "z": z,
        "x": x,
        "y": y,
        "extent": options.extent,
        "buffer": options.buffer,
        "layer": EA_LAYER,
        "round": census_round,
        "scope": list(scope) if scope is not None else None,
        "margin": pixel * options.buffer * 256 / options.extent * 16,
        "tolerance": pixel * 8,
        **_tile_cells(z, x, y, options),
        **_tile_space(z, x, y, options),
        **_guard(options),
    }
    # (every zoom drawn per tile shares one statement: the tolerance is a parameter)
    zoom = z if z in EA_BAND_ZOOMS or z < EA_MIN_ZOOM else EA_DETAIL_ZOOM
    return _ea_tile_statement(zoom, guarded=options.max_features > 0), params


def _tile_space(z: int, x: int, y: int, options: MvtOptions) -> dict[str, float]:
    """The affine map from Web Mercator to the tile's grid (cells, y down) and the buffer
    (metres) of the box within which a feature needs no clipping."""
    size = 2 * _HALF_WORLD / (1 << z)
    scale = options.extent / size
    return {
        "scale": scale,
        "negative_scale": -scale,
        "shift_x": (_HALF_WORLD - x * size) * scale,  # -west / cell
        "shift_y": (_HALF_WORLD - y * size) * scale,  # north / cell
        "clip_margin": options.buffer * size / options.extent,
    }


@functools.lru_cache(maxsize=32)
def _ea_tile_statement(zoom: int, guarded: bool = True) -> bytes:
    """The EA tile statement drawing the stored geometry of this zoom, or (a zoom without
    one) the EA simplified per tile; `guarded`: counting the candidates against the
    feature guard first. (As the query's bytes, like `_plain_tile_statement`.)"""
    if zoom in EA_BAND_ZOOMS or zoom < EA_MIN_ZOOM:
        drawn: sql.Composable = sql.Identifier("a", f"geom_z{max(zoom, EA_MIN_ZOOM)}")
    else:
        drawn = sql.SQL("ST_Simplify(a.geom_3857, %(tolerance)s, true)")
    in_tile_space = _EA_MVT_GEOM
    if zoom in EA_BAND_ZOOMS:  # (the stored geometry is on this tile's grid already)
        in_tile_space = sql.SQL("CASE WHEN c.drawn @ env.unclipped THEN {} ELSE {} END").format(
            _ON_THE_GRID, _EA_MVT_GEOM
        )
    template = _EA_GUARDED if guarded else _EA_UNGUARDED
    statement = sql.SQL(template).format(
        drawn=drawn,
        # (only the columns the tile carries: a dense tile reads 20,000 rows)
        read=sql.SQL("").join(
            sql.SQL(", {}").format(sql.Identifier("a", name))
            for name in dict.fromkeys(["id", *ea_tile_properties(zoom)])
        ),
        in_tile_space=in_tile_space,
        columns=sql.SQL("").join(
            sql.SQL(", {} AS {}").format(sql.SQL(_EA_COLUMNS[name]), sql.Identifier(name))
            for name in ea_tile_properties(zoom)
        ),
        mvt=_mvt("feature_id"),
        scope=sql.SQL(_EA_SCOPE),
    )
    return statement.as_bytes()


_EA_SCOPE = """(%(round)s::text IS NULL OR a.census_round = %(round)s)
      AND (%(scope)s::text[] IS NULL OR a.commune_code = ANY(%(scope)s::text[])
           OR EXISTS (SELECT 1 FROM admin_unit s WHERE s.level = 'commune'
                      AND s.vintage = a.commune_vintage AND s.code = a.commune_code
                      AND s.parent_code = ANY(%(scope)s::text[])))"""

# With the feature guard: the candidates counted before anything is drawn.
_EA_GUARDED = """
WITH env AS (SELECT e, ST_Expand(e, %(clip_margin)s) AS unclipped
             FROM ST_TileEnvelope(%(z)s, %(x)s, %(y)s) e),
candidates AS MATERIALIZED (
    SELECT {drawn} AS drawn{read}
    FROM enumeration_area a CROSS JOIN env
    WHERE a.geom_3857 && ST_Expand(env.e, %(margin)s)
      AND {scope}
    -- (no ORDER BY: nothing is cut any more, and sorting a dense tile's 20,000 rows
    -- spills to disk; the same rows in the same places still give the same bytes)
    LIMIT %(guard_limit)s
),
features AS MATERIALIZED (
    SELECT {in_tile_space} AS geom, c.id AS feature_id{columns}
    FROM candidates c CROSS JOIN env
)
{mvt}"""

# Without a guard (the default): one pass from the index search to the encoding. Each
# materialised CTE wrote a dense tile's 20,000 rows with their geometry to a tuplestore
# (spilling to temporary files past work_mem) to be read once. `OFFSET 0` keeps each
# subquery from being flattened: flattened, the drawn and the tile geometry were computed
# again in every expression that reads them (the filter on NULL drew every EA twice).
_EA_UNGUARDED = """
WITH env AS (SELECT e, ST_Expand(e, %(clip_margin)s) AS unclipped
             FROM ST_TileEnvelope(%(z)s, %(x)s, %(y)s) e)
SELECT (SELECT epoch FROM tile_epoch),
       (SELECT coalesce(ST_AsMVT(f.*, %(layer)s, %(extent)s, 'geom', 'feature_id'), '')
        FROM (SELECT {in_tile_space} AS geom, c.id AS feature_id{columns}
              FROM (SELECT {drawn} AS drawn{read}
                    FROM enumeration_area a CROSS JOIN env
                    WHERE a.geom_3857 && ST_Expand(env.e, %(margin)s)
                      AND {scope}
                    OFFSET 0) c
              CROSS JOIN env
              OFFSET 0) f
        WHERE f.geom IS NOT NULL)
"""


# An EA narrower than a cell of the tile's grid is drawn as the cell its point on surface
# lies in, as a unit is (at z5–z8 the stored geometry already is that cell: migration 0022).
_EA_SMALLER_THAN_CELL = sql.SQL("CASE WHEN ST_Area(c.drawn) < %(small)s THEN {} END").format(
    _cell_of_point_on_surface("drawn")
)
_EA_MVT_GEOM = sql.SQL(
    "coalesce(ST_AsMVTGeom(c.drawn, env.e, %(extent)s, %(buffer)s, true), {})"
).format(_EA_SMALLER_THAN_CELL)

# At z5–z8 an EA's stored geometry lies on the tile grid of its zoom (migration 0022: every
# vertex on a point of it, valid, no collinear vertex, a collapsed EA one of its cells), so
# an EA wholly within the tile's buffer needs none of ST_AsMVTGeom's work (clipping,
# snapping, validating through GEOS: most of a dense tile's cost): it is only mapped onto
# the tile's integer grid (the rounding takes off the float error of the map; grid points
# map to distinct integers, so nothing collapses and it stays valid) and its rings turned
# as ST_AsMVTGeom turns them (exterior clockwise on the screen). It decodes to the same
# shape; ST_AsMVTGeom would also drop a ring's starting vertex where it is collinear.
_ON_THE_GRID = sql.SQL(
    "ST_ForcePolygonCCW(ST_SnapToGrid(ST_Affine(c.drawn, %(scale)s, 0, 0, %(negative_scale)s,"
    " %(shift_x)s, %(shift_y)s), 1))"
)


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

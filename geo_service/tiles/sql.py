"""Every statement of the tiles domain: MVT tiles of unit collections (the generalised
geometry of the zoom's band) and of enumeration areas, clipped and encoded by PostGIS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from geo_core.zoom import band_for_zoom
from geo_service.features.model import ItemQuery
from geo_service.features.sql import indicator_joins, property_expr


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
        "band": band_for_zoom(z),
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
    }
    names = query.tile_properties()
    columns = [
        sql.SQL("{} AS {}").format(property_expr(query, name), sql.Identifier(name))
        for name in names
    ]
    joins = sql.SQL(" ").join(indicator_joins(query, params))
    statement = sql.SQL("""
WITH env AS (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS e),
candidates AS MATERIALIZED (
    SELECT g.code, g.geom_3857
    FROM admin_unit_generalised g CROSS JOIN env
    WHERE g.vintage = %(vintage)s AND g.level = %(level)s AND g.band = %(band)s
      AND g.geom_3857 && ST_Expand(env.e, %(margin)s)
    ORDER BY g.code
    LIMIT %(limit)s
),
features AS (
    SELECT ST_AsMVTGeom(c.geom_3857, env.e, %(extent)s, %(buffer)s, true) AS geom{columns}
    FROM candidates c
    JOIN admin_unit u ON u.vintage = %(vintage)s AND u.level = %(level)s AND u.code = c.code
    {joins}
    CROSS JOIN env
)
SELECT (SELECT epoch FROM tile_epoch), coalesce(ST_AsMVT(f.*, %(layer)s, %(extent)s, 'geom'), '')
FROM features f WHERE f.geom IS NOT NULL
""").format(columns=sql.SQL("").join(sql.SQL(", ") + c for c in columns), joins=joins)
    return statement, params


EA_LAYER = "enumeration-areas"


def ea_tile_sql(
    z: int, x: int, y: int, options: MvtOptions, census_round: str | None
) -> tuple[sql.Composed, dict[str, Any]]:
    """Enumeration areas, simplified to half a pixel of this zoom, coloured by status."""
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
        "margin": pixel * options.buffer * 256 / options.extent * 16,
        "tolerance": pixel * 8,
    }
    statement = sql.SQL("""
WITH env AS (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS e),
features AS (
    SELECT ST_AsMVTGeom(ST_Simplify(ST_Transform(a.geom, 3857), %(tolerance)s, true), env.e,
                        %(extent)s, %(buffer)s, true) AS geom,
           a.id, a.code, a.status, a.commune_code, a.census_round,
           round(a.households)::int AS households, a.version
    FROM enumeration_area a CROSS JOIN env
    WHERE a.geom && ST_Transform(ST_Expand(env.e, %(margin)s), 4326)
      AND (%(round)s::text IS NULL OR a.census_round = %(round)s)
    ORDER BY a.id
    LIMIT %(limit)s
)
SELECT (SELECT epoch FROM tile_epoch), coalesce(ST_AsMVT(f.*, %(layer)s, %(extent)s, 'geom'), '')
FROM features f WHERE f.geom IS NOT NULL
""")
    return statement.format(), params

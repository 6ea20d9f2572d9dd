"""The MVT query: generalised geometry of the zoom's band, clipped in PostGIS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from geo_service.features.items import ItemQuery, indicator_joins, property_expr


@dataclass(frozen=True)
class MvtOptions:
    """Tile encoding settings."""

    extent: int = 4096
    buffer: int = 64
    max_features: int = 20_000


def default_properties(query: ItemQuery) -> list[str]:
    """code, name and every joined indicator's value and status."""
    names = ["code", "name"]
    for ind in query.indicators:
        names += [ind.code, f"{ind.code}_status"]
    return names


def tile_sql(query: ItemQuery, z: int, x: int, y: int, options: MvtOptions
             ) -> tuple[sql.Composed, dict[str, Any]]:
    """One row: (data epoch, MVT bytes), read in a single snapshot."""
    params: dict[str, Any] = {
        "z": z, "x": x, "y": y, "extent": options.extent, "buffer": options.buffer,
        "limit": options.max_features, "vintage": query.collection.vintage,
        "level": query.collection.level, "layer": query.collection.id,
        # buffer in metres at this zoom, for the index search
        "margin": 40075016.68557849 / (1 << z) * options.buffer / options.extent,
    }
    names = query.properties if query.properties is not None else default_properties(query)
    columns = [sql.SQL("{} AS {}").format(property_expr(query, name), sql.Identifier(name))
               for name in names]
    joins = sql.SQL(" ").join(indicator_joins(query.indicators, params))
    statement = sql.SQL("""
WITH env AS (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS e),
features AS (
    SELECT ST_AsMVTGeom(g.geom_3857, env.e, %(extent)s, %(buffer)s, true) AS geom{columns}
    FROM admin_unit_generalised g
    JOIN admin_unit u ON u.vintage = g.vintage AND u.level = g.level AND u.code = g.code
    {joins}
    CROSS JOIN env
    WHERE g.vintage = %(vintage)s AND g.level = %(level)s
      AND g.band = (SELECT band FROM zoom_band WHERE %(z)s BETWEEN min_zoom AND max_zoom)
      AND g.geom_3857 && ST_Expand(env.e, %(margin)s)
    ORDER BY u.code
    LIMIT %(limit)s
)
SELECT (SELECT epoch FROM tile_epoch), coalesce(ST_AsMVT(f.*, %(layer)s, %(extent)s, 'geom'), '')
FROM features f WHERE f.geom IS NOT NULL
""").format(columns=sql.SQL("").join(sql.SQL(", ") + c for c in columns), joins=joins)
    return statement, params

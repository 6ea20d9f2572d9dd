"""How far a commune's EA boundaries follow the loaded lines (roads, rivers, railways)."""

from __future__ import annotations

from typing import Any

import psycopg

from geo_service.ea import sql

NEAR_M = 5.0  # a boundary this close to a line follows it


async def line_share(
    conn: psycopg.AsyncConnection, commune: Any, census_round: str
) -> dict[str, Any]:
    """Length of the EA boundaries inside the commune and of the part along a loaded line."""
    total, along = await sql.line_share(
        conn,
        {
            "vintage": commune.vintage,
            "commune": commune.code,
            "round": census_round,
            "near": NEAR_M,
        },
    )
    return {
        "commune": commune.code,
        "census_round": census_round,
        "boundary_km": round(total / 1000, 3),
        "along_lines_km": round(along / 1000, 3),
        "share": round(along / total, 4) if total > 0 else None,
    }


async def lines_near(conn: psycopg.AsyncConnection, commune: Any) -> str:
    """The loaded lines around a commune, as GeoJSON text (the editor draws them)."""
    return await sql.lines_geojson(conn, commune.vintage, commune.code)

"""Crosswalks between boundary vintages: how one was made and its quality per unit."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from geo_core.text import CODE
from geo_service.http.deps import Conn
from geo_service.http.documents import CrosswalkQuality
from indicators.crosswalk_build import crosswalk_quality

router = APIRouter(prefix="/crosswalks", tags=["crosswalks"])


@router.get(
    "/{from_vintage}/{to_vintage}/{level}",
    summary="How a crosswalk was made and how well the old units cover each new unit",
)
async def get_crosswalk_quality(
    from_vintage: Annotated[str, Path(pattern=CODE)],
    to_vintage: Annotated[str, Path(pattern=CODE)],
    level: Annotated[str, Path(pattern=CODE)],
    conn: Conn,
) -> CrosswalkQuality:
    """Method (computed from geometry or loaded), weights, raster, sliver threshold, time,
    summary figures, and per new unit the covered and sliver shares (404 if not recorded)."""
    return CrosswalkQuality(**await crosswalk_quality(conn, from_vintage, to_vintage, level))

"""`/maps/choropleth`: class breaks, colours and counts for a choropleth, for any client."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from geo_core.text import CODE, NUMBERS
from geo_service.http.deps import Conn
from geo_service.http.documents import Choropleth
from geo_service.viewer.data import choropleth_body

router = APIRouter(prefix="/maps", tags=["maps"])


@router.get(
    "/choropleth",
    summary="Class breaks and colours for a choropleth",
    response_model_exclude_unset=True,
)
async def choropleth(
    conn: Conn,
    collection: Annotated[str, Query(pattern=CODE, description="e.g. commune-2025")],
    indicator: Annotated[str, Query(pattern=CODE)],
    period: Annotated[str | None, Query(max_length=10, pattern=CODE)] = None,
    method: Annotated[
        str,
        Query(
            max_length=20,
            pattern=CODE,
            description="quantiles, equal_interval, natural_breaks, std_mean or manual",
        ),
    ] = "quantiles",
    k: Annotated[int, Query(ge=3, le=7, description="number of classes")] = 5,
    palette: Annotated[
        str | None, Query(max_length=20, pattern=CODE, description="ColorBrewer scheme")
    ] = None,
    breaks: Annotated[
        str | None, Query(max_length=500, pattern=NUMBERS, description="manual breaks")
    ] = None,
    units: Annotated[bool, Query(description="include every unit's value and class")] = False,
) -> Choropleth:
    """Breaks by mapclassify, ColorBrewer colours, counts per class and units without value."""
    return Choropleth(
        **await choropleth_body(
            conn, collection, indicator, period, method, k, palette, breaks, units
        )
    )

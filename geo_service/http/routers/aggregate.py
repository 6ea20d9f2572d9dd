"""`POST /aggregate`: statistics of a drawn area (as jSTAT MAP and SGIS offer planners)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header
from pydantic import BaseModel, Field

from geo_core.crs import check_area_of_use, parse_crs
from geo_core.errors import InvalidParameter, NotFound, PayloadTooLarge
from geo_core.text import CODE, CRS
from geo_service.features.aggregate import AreaLimits, area_statistics, parse_polygon
from geo_service.features.catalogue import read_collection
from geo_service.features.sql import statement_time_limit
from geo_service.http.auth import MaybeUser
from geo_service.http.deps import Conn, ServicesDep, Settings
from geo_service.http.documents import AreaStatistics

router = APIRouter(tags=["features"])


class AggregateRequest(BaseModel):
    """A drawn area and what to compute for it."""

    geometry: dict[str, Any] = Field(description="GeoJSON Polygon/MultiPolygon (or Feature)")
    collection: str = Field(
        "commune-2025", pattern=CODE, description="units whose values are apportioned"
    )
    indicators: list[Annotated[str, Field(pattern=CODE)]] = Field(min_length=1, max_length=20)
    period: str | None = Field(
        None, max_length=10, pattern=CODE, description="default: latest per indicator"
    )
    method: Literal["area", "population"] = "area"
    disclosure: Literal["suppression", "cell-key"] = Field(
        "suppression",
        description="suppression: a touched hidden unit suppresses the result; cell-key "
        "(counts whose catalogue entry offers it): hidden units count with a fixed "
        "perturbation instead",
    )
    crs: str | None = Field(
        None, pattern=CRS, description="CRS of the geometry (or Content-Crs header)"
    )


@router.post("/aggregate", summary="Statistics of a drawn area", response_model_exclude_unset=True)
async def aggregate(
    body: AggregateRequest,
    conn: Conn,
    settings: Settings,
    services: ServicesDep,
    user: MaybeUser,
    content_crs: Annotated[str | None, Header(max_length=120)] = None,
    content_length: Annotated[int | None, Header()] = None,
) -> AreaStatistics:
    """Estimate each indicator for the area, with the contributing units and their shares."""
    if content_length and content_length > settings.max_body_bytes:
        raise PayloadTooLarge(
            f"request body over {settings.max_body_bytes} bytes", parameter="body"
        )
    crs = parse_crs(body.crs or (content_crs or "").strip("<>") or None, "crs")
    limits = AreaLimits(
        settings.aggregate_max_vertices,
        settings.aggregate_max_area_km2,
        settings.aggregate_max_cost,
    )
    area = parse_polygon(body.geometry, crs, limits)
    try:
        collection = await read_collection(conn, body.collection)
    except NotFound as exc:
        raise InvalidParameter(exc.message, parameter="collection") from exc
    check_area_of_use(crs, collection.extent, "crs", collection.id)
    # (anonymous requests get less database time: a heavy one is refused sooner)
    budget = settings.anonymous_statement_timeout_ms if user is None else None
    async with statement_time_limit(conn, budget):
        result = await area_statistics(
            conn,
            collection,
            area,
            body.indicators,
            body.period,
            body.method,
            limits,
            settings.population_raster,
            services.raster_work,
            body.disclosure,
        )
    return AreaStatistics(**result)

"""`POST /aggregate`: statistics of a drawn area (as jSTAT MAP and SGIS offer planners)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, Field
from shapely.geometry.base import BaseGeometry

from geo_core.crs import OutputCrs, check_area_of_use
from geo_core.errors import InvalidParameter, NotFound, PayloadTooLarge
from geo_core.text import CODE, CRS
from geo_service.features.aggregate import (
    AreaLimits,
    area_statistics,
    requested_indicators,
)
from geo_service.features.catalogue import read_collection
from geo_service.features.sql import statement_time_limit
from geo_service.http.area_requests import area_limits, area_request, json_body
from geo_service.http.auth import optional_user
from geo_service.http.deps import Aggregates, Pool, ServicesDep, Settings, client_address
from geo_service.http.documents import AreaStatistics
from geo_service.http.services import Services

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


# The body is read as bytes and decoded in the raster threads (below), so FastAPI does not
# decode it on the event loop; its schema is declared here for the API document.
_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": AggregateRequest.model_json_schema()}},
    }
}


@router.post(
    "/aggregate",
    summary="Statistics of a drawn area",
    response_model=AreaStatistics,
    response_model_exclude_unset=True,
    openapi_extra=_BODY,
)
async def aggregate(
    request: Request,
    pool: Pool,
    settings: Settings,
    services: ServicesDep,
    limits: Aggregates,
    content_crs: Annotated[str | None, Header(max_length=120)] = None,
    content_length: Annotated[int | None, Header(include_in_schema=False)] = None,
) -> AreaStatistics:
    """Estimate each indicator for the area, with the contributing units and their shares."""
    if content_length and content_length > settings.max_body_bytes:
        raise PayloadTooLarge(
            f"request body over {settings.max_body_bytes} bytes", parameter="body"
        )
    # (from the body on: decoding a large area costs CPU too)
    async with limits.slot(client_address(request)):
        return await _aggregate(request, pool, settings, services, content_crs)


async def _aggregate(
    request: Request,
    pool: Pool,
    settings: Settings,
    services: Services,
    content_crs: str | None,
) -> AreaStatistics:
    """Read and check the request, then compute it over one pooled connection."""
    raw = await request.body()
    limits = area_limits(settings)
    # Decoding a body of up to 100,000 vertices and checking its area take the CPU for a
    # while: not on the event loop (where a few drawn areas at once would hold up every other
    # request and /health), in the few threads of the raster work (many threads would starve
    # the loop of the GIL), and before a pooled connection is taken (it needs none).
    body, crs, area = await asyncio.get_running_loop().run_in_executor(
        services.raster_work, _read_request, raw, content_crs, limits
    )
    async with pool.connection() as conn:
        result = await _statistics(conn, request, body, crs, area, limits, services)
    return AreaStatistics(**result)


def _read_request(
    raw: bytes, content_crs: str | None, limits: AreaLimits
) -> tuple[AggregateRequest, OutputCrs, BaseGeometry]:
    """The request, its CRS and its area, checked (a bad body answers as FastAPI's would)."""
    return area_request(json_body(raw), AggregateRequest, content_crs, limits)


async def _statistics(
    conn: psycopg.AsyncConnection,
    request: Request,
    body: AggregateRequest,
    crs: OutputCrs,
    area: BaseGeometry,
    limits: AreaLimits,
    services: Services,
) -> dict[str, Any]:
    """The area's statistics over one connection (the token checked on it too)."""
    user = await optional_user(request, conn, services)
    try:
        collection = await read_collection(conn, body.collection)
    except NotFound as exc:
        raise InvalidParameter(exc.message, parameter="collection") from exc
    check_area_of_use(crs, collection.extent, "crs", collection.id)
    # every cheap check before the overlay: a mistyped indicator costs no overlay
    requested = await requested_indicators(conn, collection, body.indicators, body.period)
    # (anonymous requests get less database time: a heavy one is refused sooner)
    settings = services.settings
    budget = settings.anonymous_statement_timeout_ms if user is None else None
    async with statement_time_limit(conn, budget):
        return await area_statistics(
            conn,
            collection,
            area,
            requested,
            body.method,
            limits,
            settings.population_raster,
            services.raster_work,
            body.disclosure,
        )

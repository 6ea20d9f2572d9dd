"""`/reports/area`: a report on a drawn area or one unit, as PDF or Excel (as jSTAT MAP
offers planners). The report is made in full before its first byte is sent: a failure is a
JSON error naming the parameter, never a truncated file."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from shapely.geometry.base import BaseGeometry

from geo_core.crs import OutputCrs, check_area_of_use
from geo_core.errors import InvalidParameter, NotFound, PayloadTooLarge
from geo_core.text import CODE, CRS
from geo_service.features.aggregate import AreaLimits
from geo_service.features.catalogue import read_collection
from geo_service.features.sql import statement_time_limit
from geo_service.http.area_requests import area_limits, area_request, json_body
from geo_service.http.auth import optional_user
from geo_service.http.deps import Aggregates, Pool, ServicesDep, client_address
from geo_service.http.limits import Slot
from geo_service.http.services import Services
from geo_service.outputs import area_report
from geo_service.outputs.report_pdf import render_pdf
from geo_service.outputs.report_xlsx import render_xlsx

router = APIRouter(tags=["outputs"])

MEDIA = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_FILES = {"content": dict.fromkeys(MEDIA.values(), _BINARY)}


class ReportRequest(BaseModel):
    """A drawn area, as `POST /aggregate` takes it (its figures are that answer's)."""

    model_config = ConfigDict(extra="forbid")

    geometry: dict[str, Any] = Field(description="GeoJSON Polygon/MultiPolygon (or Feature)")
    collection: str = Field(
        "commune-2025", pattern=CODE, description="units whose values are apportioned"
    )
    indicators: list[Annotated[str, Field(pattern=CODE)]] | None = Field(
        None, min_length=1, max_length=50, description="default: every indicator with values"
    )
    method: Literal["area", "population"] = "area"
    crs: str | None = Field(
        None, pattern=CRS, description="CRS of the geometry (or Content-Crs header)"
    )


_BODY = {
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": ReportRequest.model_json_schema()}},
    }
}

Format = Annotated[str, Query(max_length=5, pattern=CODE, description="pdf or xlsx")]
Lang = Annotated[str, Query(max_length=2, pattern=CODE, description="vi or en")]
Unit = Annotated[
    str | None, Query(max_length=20, pattern=CODE, description="a unit's code, instead of a body")
]
Vintage = Annotated[
    str | None, Query(max_length=20, pattern=CODE, description="the unit's boundary vintage")
]


@router.post(
    "/reports/area",
    summary="A report on a drawn area or a unit (PDF or Excel)",
    responses={200: _FILES},
    openapi_extra=_BODY,
)
async def post_area_report(
    request: Request,
    pool: Pool,
    services: ServicesDep,
    limits: Aggregates,
    format: Format = "pdf",
    lang: Lang = "vi",
    unit: Unit = None,
    vintage: Vintage = None,
    content_crs: Annotated[str | None, Header(max_length=120)] = None,
    content_length: Annotated[int | None, Header(include_in_schema=False)] = None,
) -> Response:
    """The area's map (outlined over the units it touches, scale bar, north arrow), every
    indicator with values apportioned as `POST /aggregate` does (covered share and
    disclosure applied), the parent unit and the country, charts over time, sources and
    notes; or the same for one unit (`unit=`, `vintage=`, no body) from its published
    values."""
    area_report.check_output(format, lang)
    settings = services.settings
    if content_length and content_length > settings.max_body_bytes:
        raise PayloadTooLarge(
            f"request body over {settings.max_body_bytes} bytes", parameter="body"
        )
    async with limits.slot(client_address(request)) as held:
        raw = await request.body()
        if unit is not None or vintage is not None:
            if raw.strip():
                raise InvalidParameter(
                    "give either a drawn area (the body) or unit= and vintage=, not both",
                    parameter="unit",
                )
            report = await _unit(request, pool, services, unit, vintage, lang)
        else:
            report = await _drawn(request, pool, services, raw, content_crs, lang)
        return await _rendered(held, report, format, lang)


@router.get(
    "/reports/area",
    summary="A report on one unit (PDF or Excel), for links",
    responses={200: _FILES},
)
async def get_area_report(
    request: Request,
    pool: Pool,
    services: ServicesDep,
    limits: Aggregates,
    unit: Unit = None,
    vintage: Vintage = None,
    format: Format = "pdf",
    lang: Lang = "vi",
) -> Response:
    """A unit's report (`unit=`, `vintage=`), as `POST /reports/area` makes it."""
    area_report.check_output(format, lang)
    async with limits.slot(client_address(request)) as held:
        report = await _unit(request, pool, services, unit, vintage, lang)
        return await _rendered(held, report, format, lang)


async def _rendered(held: Slot, report: area_report.Report, fmt: str, lang: str) -> Response:
    """The report drawn in a worker thread (holding the request's slot until it ends),
    complete, as an attachment."""
    render = render_pdf if fmt == "pdf" else render_xlsx
    content = await held.thread(render, report, lang)
    stem = "bao-cao-khu-vuc" if lang == "vi" else "area-report"
    if report.unit is not None:
        stem += f"-{report.unit['code']}"
    return Response(
        content,
        media_type=MEDIA[fmt],
        headers={"Content-Disposition": f'attachment; filename="{stem}.{fmt}"'},
    )


async def _unit(
    request: Request,
    pool: Pool,
    services: Services,
    unit: str | None,
    vintage: str | None,
    lang: str,
) -> area_report.Report:
    for value, name in ((unit, "unit"), (vintage, "vintage")):
        if not value:
            raise InvalidParameter(
                f"{name} is required for a unit's report (or post a drawn area)",
                parameter=name,
            )
    assert unit is not None and vintage is not None
    async with pool.connection() as conn:
        user = await optional_user(request, conn, services)
        async with statement_time_limit(conn, _budget(services, user)):
            return await area_report.unit_report(conn, unit, vintage, services.settings, lang)


def _budget(services: Services, user: object | None) -> int | None:
    """Anonymous requests get less database time (as `/aggregate`)."""
    return services.settings.anonymous_statement_timeout_ms if user is None else None


async def _drawn(
    request: Request,
    pool: Pool,
    services: Services,
    raw: bytes,
    content_crs: str | None,
    lang: str,
) -> area_report.Report:
    limits = area_limits(services.settings)
    # (decoding a large area takes the CPU: in the raster threads, as /aggregate does)
    body, crs, area = await asyncio.get_running_loop().run_in_executor(
        services.raster_work, _read_body, raw, content_crs, limits
    )
    async with pool.connection() as conn:
        return await _drawn_report(conn, request, body, crs, area, limits, services, lang)


async def _drawn_report(
    conn: psycopg.AsyncConnection,
    request: Request,
    body: ReportRequest,
    crs: OutputCrs,
    area: BaseGeometry,
    limits: AreaLimits,
    services: Services,
    lang: str,
) -> area_report.Report:
    user = await optional_user(request, conn, services)
    try:
        collection = await read_collection(conn, body.collection)
    except NotFound as exc:
        raise InvalidParameter(exc.message, parameter="collection") from exc
    check_area_of_use(crs, collection.extent, "crs", collection.id)
    async with statement_time_limit(conn, _budget(services, user)):
        return await area_report.drawn_area_report(
            conn,
            collection,
            area,
            body.method,
            limits,
            services.settings.population_raster,
            services.raster_work,
            services.settings,
            lang,
            body.indicators,
        )


def _read_body(
    raw: bytes, content_crs: str | None, limits: AreaLimits
) -> tuple[ReportRequest, OutputCrs, BaseGeometry]:
    """The request (a bare GeoJSON geometry or Feature, or `/aggregate`'s body without its
    indicators), its CRS and its area, checked."""
    if not raw.strip():
        raise InvalidParameter(
            "post a GeoJSON area as the body, or give unit= and vintage=", parameter="geometry"
        )
    data = json_body(raw)
    if isinstance(data, dict) and "type" in data:  # a bare GeoJSON geometry or Feature
        data = {"geometry": data}
    return area_request(data, ReportRequest, content_crs, limits)

"""`/reports/area`: a report on a drawn area or one unit, as PDF or Excel (as jSTAT MAP
offers planners). The report is made in full before its first byte is sent: a failure is a
JSON error naming the parameter, never a truncated file."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response
from shapely.geometry.base import BaseGeometry

from geo_core.crs import OutputCrs
from geo_core.errors import InvalidParameter, PayloadTooLarge
from geo_core.text import CODE
from geo_service.features.aggregate import AreaLimits
from geo_service.features.sql import statement_time_limit, units_in_bbox
from geo_service.http.area_requests import (
    ReportRequest,
    area_limits,
    area_request,
    json_body,
    report_collection,
)
from geo_service.http.auth import optional_user
from geo_service.http.deps import Aggregates, Language, Pool, ServicesDep, client_address
from geo_service.http.limits import Slot
from geo_service.http.routers import processes
from geo_service.http.services import Services
from geo_service.jobs import area_reports
from geo_service.outputs import area_report
from geo_service.outputs.report_pdf import render_pdf
from geo_service.outputs.report_xlsx import render_xlsx

router = APIRouter(tags=["outputs"])

MEDIA = area_report.MEDIA_TYPES
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_FILES = {"content": dict.fromkeys(MEDIA.values(), _BINARY)}


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
    language: Language,
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
            return await _rendered(held, report, format, lang)
        drawn = await _drawn(request, pool, services, raw, content_crs, format, lang)
        if isinstance(drawn, area_report.Report):
            return await _rendered(held, drawn, format, lang)
    # (a large area: made as a job, waited for without holding the request's slot)
    job, joined = drawn
    return await processes.answer_by_job(
        request, pool, services.jobs, job, joined, settings, language
    )


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
    unit = report.unit["code"] if report.unit is not None else None
    name = area_report.file_name(unit, fmt, lang)
    return Response(
        content,
        media_type=MEDIA[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
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
    fmt: str,
    lang: str,
) -> area_report.Report | tuple[dict[str, Any], bool]:
    """The drawn area's report; or, when the area reaches more than
    `GEO_SERVICE_AREA_REPORT_SYNC_UNITS` units, the job that makes it (and whether the
    same report was being made already: joined)."""
    settings = services.settings
    limits = area_limits(settings)
    # (decoding a large area takes the CPU: in the raster threads, as /aggregate does)
    body, crs, area = await asyncio.get_running_loop().run_in_executor(
        services.raster_work, _read_body, raw, content_crs, limits
    )
    async with pool.connection() as conn:
        user = await optional_user(request, conn, services)
        collection = await report_collection(conn, body, crs)
        reached = await units_in_bbox(conn, collection.vintage, collection.level, area.bounds)
        if reached > settings.area_report_sync_units:
            asked = await area_reports.drawn_request(
                conn, collection, area, body.method, body.indicators, limits, fmt, lang
            )
            return await services.jobs.submit(conn, asked, processes.client_of(request, user))
        async with statement_time_limit(conn, _budget(services, user)):
            return await area_report.drawn_area_report(
                conn,
                collection,
                area,
                body.method,
                limits,
                settings.population_raster,
                services.raster_work,
                settings,
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

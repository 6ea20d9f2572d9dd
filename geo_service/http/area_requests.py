"""Drawn-area request bodies, read the same way by `/aggregate`, `/reports/area` and the
`area-report` process: JSON decoded as FastAPI would, validated into the route's model, its
CRS and area checked."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Executor
from typing import Annotated, Any, Literal, Protocol, TypeVar, cast

import psycopg
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from shapely.geometry.base import BaseGeometry

from geo_core.crs import OutputCrs, check_area_of_use, parse_crs
from geo_core.errors import InvalidParameter, NotFound
from geo_core.text import CODE, CRS
from geo_service.features.aggregate import AreaLimits, parse_polygon
from geo_service.features.catalogue import read_collection
from geo_service.features.model import Collection
from geo_service.http.documents import AreaReportInputs
from geo_service.jobs import area_reports
from geo_service.settings import ServiceSettings


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


class _AreaBody(Protocol):
    """What every drawn-area model has (besides its own fields)."""

    crs: str | None
    geometry: dict[str, Any]


Body = TypeVar("Body", bound=BaseModel)


def area_limits(settings: ServiceSettings) -> AreaLimits:
    """The configured limits on a drawn area (vertices, area, overlay cost)."""
    return AreaLimits(
        settings.aggregate_max_vertices,
        settings.aggregate_max_area_km2,
        settings.aggregate_max_cost,
    )


def json_body(raw: bytes) -> Any:
    """The body as JSON (a bad body answers as FastAPI's would)."""
    try:
        return json.loads(raw)  # (Python's decoder, as FastAPI's: the same answers)
    except json.JSONDecodeError as exc:
        invalid = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error"}
        raise RequestValidationError([{**invalid, "input": {}, "ctx": {"error": exc.msg}}]) from exc
    except (ValueError, RecursionError) as exc:  # not UTF-8, or nested beyond the stack
        raise InvalidParameter("the body is not JSON", parameter="body") from exc


def area_request(
    data: Any, model: type[Body], content_crs: str | None, limits: AreaLimits
) -> tuple[Body, OutputCrs, BaseGeometry]:
    """The request as `model`, its CRS (the body's, else Content-Crs) and its area, checked."""
    try:
        body = model.model_validate(data)
    except ValidationError as exc:
        errors = [{**err, "loc": ("body", *err["loc"])} for err in exc.errors()]
        raise RequestValidationError(errors) from exc
    fields = cast(_AreaBody, body)
    crs = parse_crs(fields.crs or (content_crs or "").strip("<>") or None, "crs")
    return body, crs, parse_polygon(fields.geometry, crs, limits)


async def report_collection(
    conn: psycopg.AsyncConnection, body: ReportRequest, crs: OutputCrs
) -> Collection:
    """The collection a drawn area's report apportions (400 naming `collection`), the
    area's CRS checked against it."""
    try:
        collection = await read_collection(conn, body.collection)
    except NotFound as exc:
        raise InvalidParameter(exc.message, parameter="collection") from exc
    check_area_of_use(crs, collection.extent, "crs", collection.id)
    return collection


async def area_report_job(
    conn: psycopg.AsyncConnection,
    inputs: AreaReportInputs,
    settings: ServiceSettings,
    work: Executor | None,
) -> area_reports.ReportJob:
    """An `area-report` job's request: a drawn area read as `POST /reports/area` reads its
    body, or a unit; refused (naming the input) before any job is made."""
    fmt, lang = inputs.format, inputs.lang
    if inputs.geometry is None:
        for value, name in ((inputs.unit, "unit"), (inputs.vintage, "vintage")):
            if not value:
                raise InvalidParameter(
                    f"{name} is required for a unit's report (or give a drawn geometry)",
                    parameter=name,
                )
        assert inputs.unit is not None and inputs.vintage is not None
        return await area_reports.unit_request(conn, inputs.unit, inputs.vintage, fmt, lang)
    if inputs.unit is not None or inputs.vintage is not None:
        raise InvalidParameter(
            "give either a drawn geometry or unit and vintage, not both", parameter="unit"
        )
    drawn = inputs.model_dump(
        include={"geometry", "collection", "indicators", "method", "crs"}, exclude_none=True
    )
    limits = area_limits(settings)
    # (decoding a large area takes the CPU: in the raster threads, as /aggregate does)
    body, crs, area = await asyncio.get_running_loop().run_in_executor(
        work, area_request, drawn, ReportRequest, None, limits
    )
    collection = await report_collection(conn, body, crs)
    return await area_reports.drawn_request(
        conn, collection, area, body.method, body.indicators, limits, fmt, lang
    )

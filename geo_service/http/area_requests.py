"""Drawn-area request bodies, read the same way by `/aggregate` and `/reports/area`: JSON
decoded as FastAPI would, validated into the route's model, its CRS and area checked."""

from __future__ import annotations

import json
from typing import Any, Protocol, TypeVar, cast

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from shapely.geometry.base import BaseGeometry

from geo_core.crs import OutputCrs, parse_crs
from geo_core.errors import InvalidParameter
from geo_service.features.aggregate import AreaLimits, parse_polygon
from geo_service.settings import ServiceSettings


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

"""`POST /aggregate`: statistics of a drawn area (as jSTAT MAP and SGIS offer planners)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import shapely
from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, Field

from geo_service.db import Conn
from geo_service.errors import InvalidParameter, NotFound, PayloadTooLarge
from geo_service.features.aggregate import AreaLimits, estimate, parse_polygon, unit_shares
from geo_service.features.collections import get_collection
from geo_service.features.crs import check_area_of_use, parse_crs
from geo_service.indicators import read
from geo_service.text import CODE, CRS

router = APIRouter(tags=["features"])


class AggregateRequest(BaseModel):
    """A drawn area and what to compute for it."""

    geometry: dict[str, Any] = Field(description="GeoJSON Polygon/MultiPolygon (or Feature)")
    collection: str = Field("commune-2025", pattern=CODE,
                            description="units whose values are apportioned")
    indicators: list[Annotated[str, Field(pattern=CODE)]] = Field(min_length=1, max_length=20)
    period: str | None = Field(None, max_length=10, pattern=CODE,
                               description="default: latest per indicator")
    method: Literal["area", "population"] = "area"
    crs: str | None = Field(None, pattern=CRS, description="CRS of the geometry (or "
                                                           "Content-Crs header)")


@router.post("/aggregate", summary="Statistics of a drawn area")
async def aggregate(body: AggregateRequest, request: Request, conn: Conn,
                    content_crs: Annotated[str | None, Header(max_length=120)] = None,
                    content_length: Annotated[int | None, Header()] = None) -> dict[str, Any]:
    """Estimate each indicator for the area, with the contributing units and their shares."""
    settings = request.app.state.settings
    if content_length and content_length > settings.max_body_bytes:
        raise PayloadTooLarge(f"request body over {settings.max_body_bytes} bytes",
                              parameter="body")
    crs = parse_crs(body.crs or (content_crs or "").strip("<>") or None, "crs")
    limits = AreaLimits(settings.aggregate_max_vertices, settings.aggregate_max_area_km2)
    area = parse_polygon(body.geometry, crs, limits)
    try:
        collection = await get_collection(conn, body.collection)
    except NotFound as exc:
        raise InvalidParameter(exc.message, parameter="collection") from exc
    check_area_of_use(crs, collection.extent, "crs", collection.id)
    cur = await conn.execute("SELECT ST_Area(ST_GeomFromWKB(%s, 4326)::geography) / 1e6",
                             (shapely.to_wkb(area),))
    area_km2 = float((await cur.fetchone() or [0.0])[0])
    if area_km2 > limits.max_area_km2:
        raise PayloadTooLarge(f"the area is {area_km2:,.0f} km²; the limit is "
                              f"{limits.max_area_km2:,.0f} km²", parameter="geometry")
    shares = await unit_shares(conn, collection, area, body.method,
                               settings.population_raster)
    results = []
    for code in body.indicators:
        try:
            meta = await read.get_indicator(conn, code)
        except NotFound as exc:
            raise InvalidParameter(exc.message, parameter="indicators") from exc
        periods = _periods(meta, collection.vintage, collection.level)
        if not periods:
            results.append({"indicator": code, "value": None, "status": "not_available",
                            "note": f"no values for {collection.id}"})
            continue
        if body.period is not None and body.period not in periods:
            raise InvalidParameter(f"indicator {code!r} has no period {body.period!r} for "
                                   f"{collection.id}; periods: {', '.join(periods)}",
                                   parameter="period", valid=periods)
        results.append(await estimate(conn, meta, body.period or periods[-1], collection,
                                      shares))
    covered = sum(s["inside_km2"] for s in shares) / area_km2 if area_km2 else 0.0
    return {"collection": collection.id, "method": body.method, "area_km2": round(area_km2, 3),
            # values describe only the part of the area that lies within units
            "covered_share": round(min(covered, 1.0), 6), "results": results, "units": shares}


def _periods(meta: dict[str, Any], vintage: str, level: str) -> list[str]:
    for series in meta["series"]:
        if series["vintage"] == vintage and series["level"] == level:
            return [str(p) for p in series["periods"]]
    return []

"""A unit's values over time beside its parent's and the national value, for a chart."""

from __future__ import annotations

from typing import Any

import psycopg

from boundaries import sql as units
from geo_core.errors import InvalidParameter, NotFound
from geo_service.features import sql as features
from geo_service.features.aggregate import estimate
from geo_service.features.catalogue import read_collection
from geo_service.features.model import Collection
from indicators import read
from indicators.apportion import worst

OK = ("ok", "provisional")


def _series(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"period": r["period"], "value": r["value"], "status": r["status"]}
        for r in rows
        if r["period"] is not None
    ]


def _has_series(meta: dict[str, Any], vintage: str, level: str) -> bool:
    return any(s["vintage"] == vintage and s["level"] == level for s in meta["series"])


async def _unit_series(
    conn: psycopg.AsyncConnection, meta: dict[str, Any], vintage: str, level: str, code: str
) -> list[dict[str, Any]]:
    choice = read.SeriesChoice(meta["code"], vintage, level, None)
    return _series(await read.published_values(conn, choice, unit=code))


async def _national(
    conn: psycopg.AsyncConnection, meta: dict[str, Any], vintage: str, periods: list[str]
) -> dict[str, Any] | None:
    """The indicator for the whole country from the top level's published values: counts
    summed, quotients recomputed, an index as the unweighted mean of the units; hidden as
    soon as one unit is (it would give the hidden one back)."""
    levels = await units.levels_with_units(conn, vintage)
    top = next((lv for lv in levels if _has_series(meta, vintage, lv)), None)
    if top is None:
        return None
    collection = await read_collection(conn, f"{top}-{vintage}")
    codes = await features.level_codes(conn, vintage, top)
    shares = [{"code": c, "share": 1.0} for c in codes]
    series = []
    for period in periods:
        if meta["kind"] == "index":
            series.append(await _mean(conn, meta, collection, period, len(codes)))
        else:
            result = await estimate(conn, meta, period, collection, shares)
            series.append({"period": period, "value": result["value"], "status": result["status"]})
    method = "mean" if meta["kind"] == "index" else "sum" if meta["kind"] == "count" else "ratio"
    return {"level": top, "method": method, "units": len(codes), "series": series}


async def national(
    conn: psycopg.AsyncConnection, meta: dict[str, Any], vintage: str, periods: list[str]
) -> dict[str, Any] | None:
    """The country's value of each period (as `/maps/profile` gives it), or None."""
    return await _national(conn, meta, vintage, periods)


async def _mean(
    conn: psycopg.AsyncConnection,
    meta: dict[str, Any],
    collection: Collection,
    period: str,
    count: int,
) -> dict[str, Any]:
    choice = read.SeriesChoice(meta["code"], collection.vintage, collection.level, period)
    rows = await read.published_values(conn, choice)
    statuses = [r["status"] for r in rows]
    values = [r["value"] for r in rows if r["status"] in OK and r["value"] is not None]
    if "suppressed" in statuses or not values:
        status = "suppressed" if "suppressed" in statuses else "not_available"
        return {"period": period, "value": None, "status": status}
    status = worst(*[s for s in statuses if s in OK])
    return {
        "period": period,
        "value": sum(values) / len(values),
        "status": status,
        "units": len(values),
    }


async def unit_profile(
    conn: psycopg.AsyncConnection, collection_id: str, code: str, indicator: str
) -> dict[str, Any]:
    """The unit's published values over every period, its parent's and the country's."""
    try:
        collection = await read_collection(conn, collection_id)
        meta = await read.get_indicator(conn, indicator)
    except NotFound as exc:
        raise InvalidParameter(exc.message, parameter=exc.parameter or "collection") from exc
    vintage, level = collection.vintage, collection.level
    unit = await features.unit_header(conn, vintage, level, code)
    if unit is None:
        raise InvalidParameter(f"{code!r} is not a unit of {collection.id}", parameter="unit")
    if not _has_series(meta, vintage, level):
        raise InvalidParameter(
            f"{indicator!r} has no values for {collection.id}", parameter="indicator"
        )
    body: dict[str, Any] = {
        "collection": collection.id,
        "indicator": indicator,
        "unit": {**unit, "series": await _unit_series(conn, meta, vintage, level, code)},
        "parent": None,
        "national": None,
    }
    periods = [p["period"] for p in body["unit"]["series"]]
    parent = unit["parent_code"]
    if parent:
        header = await features.unit_header(conn, vintage, None, parent, above=level)
        if header is not None and _has_series(meta, vintage, header["level"]):
            series = await _unit_series(conn, meta, vintage, header["level"], parent)
            body["parent"] = {**header, "series": series}
    body["national"] = await _national(conn, meta, vintage, periods)
    return body

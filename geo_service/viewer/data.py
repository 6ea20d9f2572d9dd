"""The data behind a choropleth: every unit's published value, classified."""

from __future__ import annotations

import math
from typing import Any

from geo_core.errors import InvalidParameter, NotFound
from geo_service.features.catalogue import read_collection
from geo_service.viewer.choropleth import (
    DEFAULT_DIVERGING,
    DEFAULT_SEQUENTIAL,
    METHOD_NAMES,
    classify,
)
from indicators import read
from indicators.sql import Selection, published_values

RAW_COUNT_NOTE = (
    "This indicator is a raw count: larger units tend to have larger values. "
    "Consider a rate or density."
)


def _manual_breaks(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        breaks = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise InvalidParameter(
            "breaks must be comma-separated numbers", parameter="breaks"
        ) from exc
    if not all(math.isfinite(b) and abs(b) < 1e300 for b in breaks):
        raise InvalidParameter("breaks must be finite numbers", parameter="breaks")
    return breaks


async def unit_values(
    conn: Any, collection_id: str, indicator: str, period: str | None
) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
    """Indicator metadata, the chosen period, and every unit's published value and status."""
    try:
        collection = await read_collection(conn, collection_id)
    except NotFound as exc:
        raise InvalidParameter(exc.message, parameter="collection") from exc
    try:
        meta = await read.get_indicator(conn, indicator)
    except NotFound as exc:
        raise InvalidParameter(exc.message, parameter="indicator") from exc
    choice = read.choose_series(meta, collection.vintage, collection.level, period)
    series = next(
        s
        for s in meta["series"]
        if s["vintage"] == collection.vintage and s["level"] == collection.level
    )
    chosen = choice.period or series["periods"][-1]
    rows = [
        {key: r[key] for key in ("code", "name", "value", "status")}
        for r in await published_values(
            conn,
            Selection(indicator, collection.vintage, collection.level, chosen, every_unit=True),
        )
    ]
    return meta, chosen, rows


async def choropleth_body(
    conn: Any,
    collection: str,
    indicator: str,
    period: str | None,
    method: str,
    k: int,
    palette: str | None,
    breaks: str | None,
    units: bool,
) -> dict[str, Any]:
    """The JSON of /maps/choropleth (also embedded in the /map page)."""
    meta, chosen, rows = await unit_values(conn, collection, indicator, period)
    values = [r["value"] for r in rows if r["status"] in ("ok", "provisional")]
    no_value: dict[str, int] = {"suppressed": 0, "not_available": 0}
    for r in rows:
        if r["status"] not in ("ok", "provisional"):
            no_value[r["status"]] += 1
    palette = palette or (DEFAULT_DIVERGING if method == "std_mean" else DEFAULT_SEQUENTIAL)
    result = classify(values, method, k, palette, _manual_breaks(breaks), no_value)
    body: dict[str, Any] = {
        "collection": collection,
        "period": chosen,
        "indicator": {
            key: meta[key]
            for key in ("code", "name_vi", "name_en", "unit", "kind", "decimals", "source")
        },
        "method_name": dict(zip(("vi", "en"), METHOD_NAMES[method], strict=True)),
        **result.as_dict(),
        "warning": RAW_COUNT_NOTE if meta["kind"] == "count" else None,
    }
    if units:
        body["units"] = [
            {
                **r,
                "class": result.class_of(r["value"])
                if r["status"] in ("ok", "provisional")
                else None,
            }
            for r in rows
        ]
    return body

"""Parse and check the query parameters of the items endpoints into an ItemQuery."""

from __future__ import annotations

import math
from dataclasses import dataclass

import psycopg
from pyproj import Transformer

from boundaries.names import fold
from geo_service.errors import InvalidParameter
from geo_service.features.collections import Collection
from geo_service.features.crs import OutputCrs, ensure_srid, parse_crs
from geo_service.features.items import IndicatorJoin, ItemQuery
from geo_service.text import check_text


@dataclass
class RawItemParams:
    """The items query parameters as received (strings, unchecked)."""

    limit: int = 100
    offset: int = 0
    bbox: str | None = None
    bbox_crs: str | None = None
    crs: str | None = None
    properties: str | None = None
    sortby: str | None = None
    parent: str | None = None
    q: str | None = None
    indicator: str | None = None
    period: str | None = None
    zoom: int | None = None
    max_allowable_offset: float | None = None
    precision: int | None = None


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """Four numbers minx,miny,maxx,maxy (six with heights; the heights are ignored)."""
    parts = text.split(",")
    if len(parts) not in (4, 6):
        raise InvalidParameter("bbox needs 4 (or 6) comma-separated numbers", parameter="bbox")
    try:
        numbers = [float(p) for p in parts]
    except ValueError as exc:
        raise InvalidParameter(f"bbox {text!r} has a value that is not a number",
                               parameter="bbox") from exc
    if not all(math.isfinite(n) for n in numbers):
        raise InvalidParameter("bbox values must be finite numbers", parameter="bbox")
    x0, y0, x1, y1 = (numbers[0], numbers[1], numbers[3], numbers[4]) if len(numbers) == 6 \
        else numbers
    if x0 > x1 or y0 > y1:
        raise InvalidParameter("bbox minimum is larger than its maximum", parameter="bbox")
    return x0, y0, x1, y1


def _check_bbox_area(bbox: tuple[float, float, float, float], crs: OutputCrs) -> None:
    """Refuse a bbox whose corners the bbox-crs cannot bring to lon/lat."""
    if crs.srid == 4326:
        return
    x0, y0, x1, y1 = bbox
    xs, ys = [x0, x0, x1, x1], [y0, y1, y0, y1]
    if crs.lat_first:
        xs, ys = ys, xs
    transformer = Transformer.from_crs(f"EPSG:{crs.srid}", "EPSG:4326", always_xy=True)
    lon, lat = transformer.transform(xs, ys, errcheck=False)
    if not all(math.isfinite(v) for v in [*lon, *lat]):
        raise InvalidParameter(f"bbox lies outside the area of EPSG:{crs.srid}",
                               parameter="bbox")


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


async def _indicator_joins(conn: psycopg.AsyncConnection, raw: RawItemParams,
                           collection: Collection) -> list[IndicatorJoin]:
    joins = []
    for code in _split(raw.indicator):
        cur = await conn.execute(
            "SELECT i.code, array(SELECT DISTINCT v.period FROM indicator_value v WHERE"
            " v.indicator = i.code AND v.vintage = %s AND v.level = %s ORDER BY 1)"
            " FROM indicator i WHERE i.code = %s", (collection.vintage, collection.level, code))
        row = await cur.fetchone()
        if row is None:
            raise InvalidParameter(f"unknown indicator {code!r} (see /indicators)",
                                   parameter="indicator")
        periods: list[str] = row[1]
        if not periods:
            raise InvalidParameter(f"indicator {code!r} has no values for {collection.id}",
                                   parameter="indicator")
        period = raw.period or periods[-1]
        if period not in periods:
            raise InvalidParameter(f"indicator {code!r} has no period {period!r} for "
                                   f"{collection.id}; periods: {', '.join(periods)}",
                                   parameter="period", valid=periods)
        joins.append(IndicatorJoin(code, period))
    if raw.period and not joins:
        raise InvalidParameter("period needs indicator=", parameter="period")
    return joins


async def _band(conn: psycopg.AsyncConnection, raw: RawItemParams) -> int | None:
    if raw.zoom is not None:
        cur = await conn.execute("SELECT band FROM zoom_band WHERE %s BETWEEN min_zoom AND"
                                 " max_zoom", (raw.zoom,))
    elif raw.max_allowable_offset is not None:
        # the most generalised band whose tolerance (degrees) does not exceed the offset
        cur = await conn.execute("SELECT band FROM zoom_band WHERE tolerance <= %s"
                                 " ORDER BY tolerance DESC LIMIT 1", (raw.max_allowable_offset,))
    else:
        return None
    row = await cur.fetchone()
    return int(row[0]) if row else None


def _check_names(names: list[str], allowed: list[str], parameter: str) -> None:
    for name in names:
        if name not in allowed:
            raise InvalidParameter(f"unknown {parameter} field {name!r}; fields: "
                                   f"{', '.join(allowed)}", parameter=parameter, valid=allowed)


async def build_item_query(conn: psycopg.AsyncConnection, collection: Collection,
                           raw: RawItemParams) -> ItemQuery:
    """Check every parameter against the collection; raise InvalidParameter naming the bad one."""
    query = ItemQuery(collection, limit=raw.limit, offset=raw.offset,
                      crs=parse_crs(raw.crs, "crs"), bbox_crs=parse_crs(raw.bbox_crs, "bbox-crs"),
                      precision=raw.precision, parent=raw.parent)
    for target, parameter in ((query.crs, "crs"), (query.bbox_crs, "bbox-crs")):
        await ensure_srid(conn, target, parameter)
    if raw.bbox is not None:
        query.bbox = parse_bbox(raw.bbox)
        _check_bbox_area(query.bbox, query.bbox_crs)
    elif raw.bbox_crs is not None:
        raise InvalidParameter("bbox-crs needs bbox", parameter="bbox-crs")
    if raw.parent is not None:
        cur = await conn.execute("SELECT 1 FROM admin_unit WHERE vintage = %s AND code = %s"
                                 " AND level <> %s LIMIT 1",
                                 (collection.vintage, raw.parent, collection.level))
        if await cur.fetchone() is None:
            raise InvalidParameter(f"parent {raw.parent!r} is not a unit of vintage "
                                   f"{collection.vintage}", parameter="parent")
    if raw.q is not None:
        query.search = fold(check_text(raw.q, "q", 100))
        if not query.search:
            raise InvalidParameter("q is empty", parameter="q")
    query.indicators = await _indicator_joins(conn, raw, collection)
    allowed = query.property_names()
    if raw.properties is not None:
        query.properties = _split(raw.properties)
        _check_names(query.properties, allowed, "properties")
    for term in _split(raw.sortby):
        name = term.lstrip("+-")
        _check_names([name], allowed, "sortby")
        query.sortby.append((name, term.startswith("-")))
    query.band = await _band(conn, raw)
    return query

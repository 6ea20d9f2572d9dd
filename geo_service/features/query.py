"""Parse and check the query parameters of the items endpoints into an ItemQuery."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import psycopg
import shapely
from pyproj import Transformer

from geo_core.crs import OutputCrs, check_area_of_use, parse_crs
from geo_core.errors import InvalidParameter
from geo_core.names import fold
from geo_core.text import check_text
from geo_core.zoom import band_for_offset, band_for_zoom
from geo_service.features import sql
from geo_service.features.filter import geometries, parse_filter
from geo_service.features.model import UNIT_PROPERTIES, Collection, IndicatorJoin, ItemQuery
from indicators.sql import series_periods


@dataclass
class RawItemParams:
    """The items query parameters as received (strings, unchecked)."""

    limit: int | None = 100  # None: every matched item (downloads)
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
    datetime: str | None = None
    filter: str | None = None
    filter_lang: str = "cql2-text"
    filter_crs: str | None = None
    compare: str | None = None  # an earlier period: the indicators' change since it


def parse_bbox(text: str, across_antimeridian: bool = False) -> tuple[float, float, float, float]:
    """Four numbers minx,miny,maxx,maxy (six with heights; the heights are ignored).

    With `across_antimeridian`, minx > maxx is allowed (checked by the caller)."""
    parts = text.split(",")
    if len(parts) not in (4, 6):
        raise InvalidParameter("bbox needs 4 (or 6) comma-separated numbers", parameter="bbox")
    try:
        numbers = [float(p) for p in parts]
    except ValueError as exc:
        raise InvalidParameter(
            f"bbox {text!r} has a value that is not a number", parameter="bbox"
        ) from exc
    if not all(math.isfinite(n) for n in numbers):
        raise InvalidParameter("bbox values must be finite numbers", parameter="bbox")
    x0, y0, x1, y1 = (
        (numbers[0], numbers[1], numbers[3], numbers[4]) if len(numbers) == 6 else numbers
    )
    # (with across_antimeridian the caller checks the order, knowing the axes)
    if not across_antimeridian and (x0 > x1 or y0 > y1):
        raise InvalidParameter("bbox minimum is larger than its maximum", parameter="bbox")
    return x0, y0, x1, y1


def _check_bbox_range(bbox: tuple[float, float, float, float], crs: OutputCrs) -> None:
    """Degrees must be degrees; west > east is a box across the antimeridian (geographic
    CRSs only)."""
    x0, y0, x1, y1 = bbox
    if not crs.geographic:
        if x0 > x1 or y0 > y1:
            raise InvalidParameter("bbox minimum is larger than its maximum", parameter="bbox")
        return
    lon0, lat0, lon1, lat1 = (y0, x0, y1, x1) if crs.lat_first else (x0, y0, x1, y1)
    if not (-90 <= lat0 <= 90 and -90 <= lat1 <= 90):
        raise InvalidParameter("bbox latitudes must lie between -90 and 90", parameter="bbox")
    if not (-180 <= lon0 <= 180 and -180 <= lon1 <= 180):
        raise InvalidParameter("bbox longitudes must lie between -180 and 180", parameter="bbox")
    if lat0 > lat1:
        raise InvalidParameter("bbox minimum is larger than its maximum", parameter="bbox")


def _instant(text: str, end: bool) -> datetime | None:
    """One end of a datetime interval in UTC (None when open); a date means that whole day."""
    if text in ("", ".."):
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment.replace(hour=23, minute=59, second=59) if end else moment
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidParameter(
            f"datetime {text!r} is not an RFC 3339 date or date-time "
            "(e.g. 2025-07-01 or 2025-07-01T00:00:00Z)",
            parameter="datetime",
        ) from exc
    try:
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (OverflowError, ValueError) as exc:  # e.g. 9999-12-31T23:59:59-01:00
        raise InvalidParameter(f"datetime {text!r} is out of range", parameter="datetime") from exc


def parse_datetime(text: str) -> tuple[datetime | None, datetime | None]:
    """`datetime` as an instant or an interval `start/end` (`..` or empty for open ends)."""
    start_text, slash, end_text = text.strip().partition("/")
    if not slash:
        moment = _instant(start_text, end=False)
        if moment is None:
            raise InvalidParameter(
                "datetime needs a date, a date-time or an interval", parameter="datetime"
            )
        return moment, (_instant(start_text, end=True) if len(start_text) == 10 else moment)
    start, end = _instant(start_text, end=False), _instant(end_text, end=True)
    if start is None and end is None:
        raise InvalidParameter("datetime interval '../..' has no end", parameter="datetime")
    if start is not None and end is not None and start > end:
        raise InvalidParameter("datetime interval starts after it ends", parameter="datetime")
    return start, end


def in_force(collection: Collection, start: datetime | None, end: datetime | None) -> bool:
    """Whether the collection's vintage was in force at some time of the interval (its
    units carry no dates of their own: each is valid for as long as its vintage)."""
    valid_from = datetime.fromisoformat(collection.valid_from).replace(tzinfo=UTC)
    valid_to = (
        datetime.fromisoformat(collection.valid_to).replace(tzinfo=UTC)
        if collection.valid_to
        else None
    )
    return (end is None or end >= valid_from) and (
        start is None or valid_to is None or start < valid_to
    )


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
        raise InvalidParameter(f"bbox lies outside the area of EPSG:{crs.srid}", parameter="bbox")


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


class NeedsDatabase(Exception):
    """The query cannot be checked from memory alone (see `query_from_memory`)."""


async def _periods(
    conn: psycopg.AsyncConnection | None, collection: Collection, code: str, period: str | None
) -> tuple[str, ...]:
    """The indicator's periods on the collection: from the catalogue's copy when it has the
    one asked for, else from the database (a series loaded a moment ago)."""
    known = collection.periods.get(code)
    if known and (period is None or period in known):
        return known
    if conn is None:
        raise NeedsDatabase(code)
    periods = await series_periods(conn, code, collection.vintage, collection.level)
    if periods is None:
        raise InvalidParameter(
            f"unknown indicator {code!r} (see /indicators)", parameter="indicator"
        )
    return tuple(periods)


async def _indicator_joins(
    conn: psycopg.AsyncConnection | None, raw: RawItemParams, collection: Collection
) -> list[IndicatorJoin]:
    joins = []
    for code in _split(raw.indicator):
        periods = await _periods(conn, collection, code, raw.period)
        if not periods:
            raise InvalidParameter(
                f"indicator {code!r} has no values for {collection.id}", parameter="indicator"
            )
        period = raw.period or periods[-1]
        if raw.compare and raw.compare not in periods:  # (loaded a moment ago?)
            periods = await _periods(conn, collection, code, raw.compare)
        if period not in periods:
            raise InvalidParameter(
                f"indicator {code!r} has no period {period!r} for "
                f"{collection.id}; periods: {', '.join(periods)}",
                parameter="period",
                valid=periods,
            )
        joins.append(IndicatorJoin(code, period, compare=_compared(raw, code, period, periods)))
    if raw.period and not joins:
        raise InvalidParameter("period needs indicator=", parameter="period")
    if raw.compare and not joins:
        raise InvalidParameter("compare needs indicator=", parameter="compare")
    return joins


def _compared(raw: RawItemParams, code: str, period: str, periods: tuple[str, ...]) -> str | None:
    """The checked period to compare an indicator's period with (another of its periods on
    the same units: a period of an older vintage is stored there by `carry-over`)."""
    if raw.compare is None:
        return None
    if raw.compare not in periods or raw.compare == period:
        raise InvalidParameter(
            f"indicator {code!r} has no other period {raw.compare!r} to compare {period} with"
            f"; periods: {', '.join(periods)}",
            parameter="compare",
            valid=periods,
        )
    return raw.compare


async def _add_filter(
    conn: psycopg.AsyncConnection | None, query: ItemQuery, raw: RawItemParams
) -> None:
    """The checked filter, with the indicators it reads joined (in the period of the others:
    `period`, or each one's latest) and its geometries checked against filter-crs."""
    assert raw.filter is not None
    collection = query.collection
    query.filter_crs = parse_crs(raw.filter_crs, "filter-crs")
    check_area_of_use(query.filter_crs, collection.extent, "filter-crs", collection.id)
    query.filter = parse_filter(raw.filter, raw.filter_lang, query.queryables())
    joined = {ind.code for ind in query.indicators}
    for name in query.filter.properties:
        code = name.removesuffix("_status") if name not in collection.periods else name
        if code not in collection.periods or code in joined or code in UNIT_PROPERTIES:
            continue
        periods = await _periods(conn, collection, code, raw.period)
        period = raw.period or periods[-1]
        if period not in periods:
            raise InvalidParameter(
                f"filter: indicator {code!r} has no period {period!r} for {collection.id}; "
                f"periods: {', '.join(periods)}",
                parameter="filter",
            )
        query.indicators.append(IndicatorJoin(code, period, shown=False))
        joined.add(code)
    _check_filter_geometries(query.filter.condition, query.filter_crs)


def _check_filter_geometries(condition: Any, crs: OutputCrs) -> None:
    """Every geometry of the filter must reach longitude/latitude from filter-crs."""
    for wkb in geometries(condition):
        coordinates = shapely.get_coordinates(shapely.from_wkb(wkb))
        xs, ys = coordinates[:, 0], coordinates[:, 1]
        if crs.lat_first:
            xs, ys = ys, xs
        if crs.srid == 4326:
            lon, lat = xs, ys
        else:
            transformer = Transformer.from_crs(f"EPSG:{crs.srid}", "EPSG:4326", always_xy=True)
            lon, lat = transformer.transform(xs, ys, errcheck=False)
        finite = all(math.isfinite(v) for v in [*lon, *lat])
        if (
            not finite
            or not all(-180 <= v <= 180 for v in lon)
            or not all(-90 <= v <= 90 for v in lat)
        ):
            raise InvalidParameter(
                f"filter: a geometry lies outside the area of EPSG:{crs.srid} (filter-crs); "
                "longitudes and latitudes come in the order of the CRS",
                parameter="filter",
            )


def _band(raw: RawItemParams) -> int | None:
    if raw.zoom is not None:
        return band_for_zoom(raw.zoom)
    if raw.max_allowable_offset is not None:
        return band_for_offset(raw.max_allowable_offset)
    return None


def _check_names(names: list[str], allowed: list[str], parameter: str) -> None:
    for name in names:
        if name not in allowed:
            raise InvalidParameter(
                f"unknown {parameter} field {name!r}; fields: {', '.join(allowed)}",
                parameter=parameter,
                valid=allowed,
            )


async def _check_parent(
    conn: psycopg.AsyncConnection | None, collection: Collection, parent: str
) -> None:
    """The parent must be a unit of the collection's vintage at a higher level."""
    if conn is None:
        raise NeedsDatabase(parent)
    found = await sql.parent_rank(conn, collection.vintage, parent, collection.level)
    if found is None:
        raise InvalidParameter(
            f"parent {parent!r} is not a unit of vintage {collection.vintage}", parameter="parent"
        )
    level, above = found
    if not above:
        raise InvalidParameter(
            f"parent {parent!r} is a {level} of vintage "
            f"{collection.vintage}; the parents of {collection.level} units "
            "are units of a higher level",
            parameter="parent",
        )


async def build_item_query(
    conn: psycopg.AsyncConnection | None,
    collection: Collection,
    raw: RawItemParams,
    srids: frozenset[int] = frozenset({4326, 3857}),
) -> ItemQuery:
    """Check every parameter against the collection; raise InvalidParameter naming the bad one.

    `srids` are the CRSs PostGIS has registered (others are transformed by their name).
    """
    query = ItemQuery(
        collection,
        limit=raw.limit,
        offset=raw.offset,
        crs=parse_crs(raw.crs, "crs"),
        bbox_crs=parse_crs(raw.bbox_crs, "bbox-crs"),
        registered_srids=srids,
        precision=raw.precision,
        parent=raw.parent,
    )
    for target, parameter in ((query.crs, "crs"), (query.bbox_crs, "bbox-crs")):
        check_area_of_use(target, collection.extent, parameter, collection.id)
    if raw.bbox is not None:
        query.bbox = parse_bbox(raw.bbox, across_antimeridian=True)
        _check_bbox_range(query.bbox, query.bbox_crs)
        _check_bbox_area(query.bbox, query.bbox_crs)
    elif raw.bbox_crs is not None:
        raise InvalidParameter("bbox-crs needs bbox", parameter="bbox-crs")
    if raw.datetime is not None:
        query.in_force = in_force(collection, *parse_datetime(raw.datetime))
    if raw.parent is not None:
        await _check_parent(conn, collection, raw.parent)
    if raw.q is not None:
        # as in OGC API – Records: comma-separated terms, any of which may match
        query.search = [
            term
            for term in (fold(t).strip() for t in check_text(raw.q, "q", 100).split(","))
            if term
        ]
        if not query.search:
            raise InvalidParameter("q is empty", parameter="q")
    query.indicators = await _indicator_joins(conn, raw, collection)
    if raw.filter is not None:
        await _add_filter(conn, query, raw)
    elif raw.filter_crs is not None:
        raise InvalidParameter("filter-crs needs filter", parameter="filter-crs")
    allowed = query.property_names()
    if raw.properties is not None:
        query.properties = _split(raw.properties)
        _check_names(query.properties, allowed, "properties")
    for term in _split(raw.sortby):
        name = term.lstrip("+-")
        _check_names([name], allowed, "sortby")
        query.sortby.append((name, term.startswith("-")))
    query.band = _band(raw)
    return query


async def query_from_memory(collection: Collection, raw: RawItemParams) -> ItemQuery | None:
    """The checked query when the collection's copy in memory suffices, else None (the
    caller then builds it with a connection, and reports any mistake in it)."""
    try:
        return await build_item_query(None, collection, raw)
    except (NeedsDatabase, InvalidParameter):
        return None

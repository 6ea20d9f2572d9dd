"""Area reports: what the service can say about a drawn area or one unit, gathered once and
rendered as PDF (`report_pdf`) or Excel (`report_xlsx`).

A drawn area's figures come from `features.aggregate.area_statistics`, the code behind
`POST /aggregate` (so a report's figures are that answer's, with its covered share and
disclosure); its other periods from `aggregate.estimate` over the same unit shares. A unit's
figures are its published values. Comparisons (the parent unit and the country) and the
series over time come from `viewer.profile`, the code behind `/maps/profile`. Every value is
read through `published_value`: a hidden value, or one computed from hidden cells, is never
a number here, so no renderer can print it."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import shapely
from shapely.geometry.base import BaseGeometry

from boundaries import sql as boundary_sql
from geo_core.errors import InvalidParameter, NotFound
from geo_core.zoom import FINEST_BAND
from geo_service.features import sql as features
from geo_service.features.aggregate import (
    AreaLimits,
    area_statistics,
    estimate,
    requested_indicators,
)
from geo_service.features.catalogue import read_collection
from geo_service.features.model import Collection, ItemQuery
from geo_service.outputs.maps import band_for
from geo_service.settings import ServiceSettings
from geo_service.viewer.profile import national, unit_profile
from indicators import read

FORMATS = ("pdf", "xlsx")
MEDIA_TYPES = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
LANGS = ("vi", "en")
SHOWN = ("ok", "provisional")  # statuses whose value may be printed
MAP_UNITS = 2500  # units drawn around the area at most (beyond: only those it touches)


def check_output(fmt: str, lang: str) -> None:
    """Refuse a format or language that is not offered (naming the parameter)."""
    for value, allowed, parameter in ((fmt, FORMATS, "format"), (lang, LANGS, "lang")):
        if value not in allowed:
            raise InvalidParameter(
                f"{parameter} must be one of {', '.join(allowed)}, not {value!r}",
                parameter=parameter,
                valid=list(allowed),
            )


def file_name(unit: str | None, fmt: str, lang: str) -> str:
    """The report's file name (a unit's carries its code)."""
    stem = "bao-cao-khu-vuc" if lang == "vi" else "area-report"
    return f"{stem}-{unit}.{fmt}" if unit else f"{stem}.{fmt}"


@dataclass
class Point:
    """One period of a series: its value only when it may be shown."""

    period: str
    value: float | None
    status: str


@dataclass
class Figure:
    """One indicator for the area: the figure, its series and the comparisons."""

    code: str
    meta: dict[str, Any]
    period: str | None
    value: float | None
    status: str
    method: str = ""
    note: str = ""
    series: list[Point] = field(default_factory=list)
    parent: list[Point] = field(default_factory=list)
    country: list[Point] = field(default_factory=list)
    country_method: str = ""

    def at(self, points: list[Point]) -> Point | None:
        """The comparison's point of the figure's period."""
        return next((p for p in points if p.period == self.period), None)


@dataclass
class Report:
    """Everything a report prints, gathered before anything is drawn."""

    kind: str  # "area" (drawn) or "unit"
    name: str
    collection: Collection
    area: BaseGeometry  # lon/lat
    area_km2: float
    covered_share: float
    method: str  # area or population (drawn areas); "published" (a unit)
    figures: list[Figure]
    touched: list[dict[str, Any]]  # units the area touches: code, name, share, inside_km2
    shapes: list[tuple[str, str, BaseGeometry]]  # units around it, for the map
    parent: dict[str, Any] | None
    office: str
    made: date
    unit: dict[str, Any] | None = None


def _points(rows: Sequence[dict[str, Any]]) -> list[Point]:
    return [
        Point(str(r["period"]), r["value"] if r["status"] in SHOWN else None, r["status"])
        for r in rows
    ]


def _periods(meta: dict[str, Any], collection: Collection) -> list[str]:
    for series in meta["series"]:
        if series["vintage"] == collection.vintage and series["level"] == collection.level:
            return [str(p) for p in series["periods"]]
    return []


async def _catalogue(conn: psycopg.AsyncConnection, collection: Collection) -> list[str]:
    """Codes of the indicators with values on the collection, in catalogue order."""
    found = []
    for entry in await read.list_indicators(conn):
        meta = await read.get_indicator(conn, entry["code"])
        if _periods(meta, collection):
            found.append(entry["code"])
    return found


@dataclass
class Surroundings:
    """The collection's units around the area, for the map, and their parents' codes."""

    shapes: list[tuple[str, str, BaseGeometry]]
    parents: dict[str, str | None]


async def _surroundings(
    conn: psycopg.AsyncConnection, collection: Collection, area: BaseGeometry, touched: set[str]
) -> Surroundings:
    """The units around the area (a tenth of its size beyond it), generalised for an A4
    page (beyond MAP_UNITS, only those it touches)."""
    x0, y0, x1, y1 = area.bounds
    # the map's frame is the area's box widened to the A4 map's shape (about 3:2), plus a
    # margin; degrees of longitude are shorter than degrees of latitude by cos(latitude)
    squash = math.cos(math.radians((y0 + y1) / 2))
    half_w = max(x1 - x0, (y1 - y0) * 1.6 / squash) * 0.7 + 0.002
    half_h = max(y1 - y0, (x1 - x0) * squash / 1.4) * 0.7 + 0.002
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    box = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
    query = ItemQuery(
        collection,
        limit=None,
        bbox=box,
        properties=["code", "name", "parent_code"],
        band=band_for(box[2] - box[0], 7.5 * 300),
    )
    statement, params = features.rows_sql(query, wkt=False)
    rows = await (await conn.execute(statement, params)).fetchall()
    if len(rows) > MAP_UNITS:
        rows = [r for r in rows if r[0] in touched]
    return Surroundings(
        [(r[0], r[1], shapely.from_wkb(bytes(r[-1]))) for r in rows],
        {r[0]: r[2] for r in rows},
    )


async def _comparisons(
    conn: psycopg.AsyncConnection,
    figure: Figure,
    collection: Collection,
    parent: dict[str, Any] | None,
    periods: list[str],
) -> None:
    """The parent unit's and the country's published values over the figure's periods."""
    meta = figure.meta
    if parent is not None:
        level = parent["level"]
        if any(s["vintage"] == collection.vintage and s["level"] == level for s in meta["series"]):
            profile = await unit_profile(
                conn, f"{level}-{collection.vintage}", parent["code"], figure.code
            )
            figure.parent = _points(profile["unit"]["series"])
    country = await national(conn, meta, collection.vintage, periods)
    if country is not None:
        figure.country = _points(country["series"])
        figure.country_method = country["method"]


def _office(settings: ServiceSettings, lang: str) -> str:
    return settings.office_name_vi if lang == "vi" else settings.office_name


async def drawn_area_report(
    conn: psycopg.AsyncConnection,
    collection: Collection,
    area: BaseGeometry,
    method: str,
    limits: AreaLimits,
    raster: Path,
    work: Executor | None,
    settings: ServiceSettings,
    lang: str,
    indicators: list[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """A drawn (lon/lat) area: `/aggregate`'s figures for the indicators asked for (every
    indicator with values on the collection unless told), each period estimated over the
    same unit shares, with the parent unit that holds most of the area and the country."""
    codes = indicators or await _catalogue(conn, collection)
    requested = await requested_indicators(conn, collection, codes, None)
    stats = await area_statistics(
        conn, collection, area, requested, method, limits, raster, work, "suppression"
    )
    touched = stats["units"]
    if not touched:
        raise InvalidParameter(
            f"the area lies outside the country: it touches no unit of {collection.id}",
            parameter="geometry",
        )
    around = await _surroundings(conn, collection, area, {u["code"] for u in touched})
    parent = await _main_parent(conn, collection, touched, around.parents)
    figures = []
    for wanted, result in zip(requested, stats["results"], strict=True):
        figure = Figure(
            wanted.meta["code"],
            wanted.meta,
            result.get("period"),
            result["value"],
            result["status"],
            result.get("method", ""),
            result.get("note", ""),
        )
        periods = _periods(wanted.meta, collection)
        for period in periods:
            if period == figure.period:  # the figure itself, exactly as /aggregate gave it
                figure.series.append(Point(period, figure.value, figure.status))
                continue
            other = await estimate(conn, wanted.meta, period, collection, touched)
            figure.series.append(Point(period, other["value"], other["status"]))
        await _comparisons(conn, figure, collection, parent, periods)
        figures.append(figure)
        if progress is not None:  # (a job: one figure is one step of its progress)
            progress(len(figures))
    return Report(
        "area",
        "",
        collection,
        area,
        stats["area_km2"],
        stats["covered_share"],
        method,
        figures,
        touched,
        around.shapes,
        parent,
        _office(settings, lang),
        date.today(),
    )


async def _main_parent(
    conn: psycopg.AsyncConnection,
    collection: Collection,
    touched: list[dict[str, Any]],
    parents: dict[str, str | None],
) -> dict[str, Any] | None:
    """The unit one level up that holds the largest part of the drawn area."""
    inside: dict[str, float] = defaultdict(float)
    for unit in touched:
        parent = parents.get(unit["code"])
        if parent:
            inside[parent] += unit["inside_km2"]
    if not inside:
        return None
    code = max(inside, key=lambda c: inside[c])
    return await features.unit_header(conn, collection.vintage, None, code, above=collection.level)


async def unit_collection(
    conn: psycopg.AsyncConnection, code: str, vintage: str
) -> tuple[dict[str, Any], Collection]:
    """The unit's header and its level's collection (refused naming `vintage` or `unit`)."""
    if not await boundary_sql.levels_with_units(conn, vintage):
        raise InvalidParameter(f"unknown boundary vintage {vintage!r}", parameter="vintage")
    header = await features.unit_header(conn, vintage, None, code)
    if header is None:
        raise InvalidParameter(f"no unit {code!r} in the {vintage} boundaries", parameter="unit")
    try:
        collection = await read_collection(conn, f"{header['level']}-{vintage}")
    except NotFound as exc:
        raise InvalidParameter(exc.message, parameter="unit") from exc
    return header, collection


async def figure_count(
    conn: psycopg.AsyncConnection, collection: Collection, indicators: list[str] | None
) -> int:
    """How many figures a report on the collection prints."""
    return len(indicators) if indicators else len(await _catalogue(conn, collection))


async def unit_report(
    conn: psycopg.AsyncConnection,
    code: str,
    vintage: str,
    settings: ServiceSettings,
    lang: str,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """One unit: its published values of every indicator with values on its level, over
    time, beside its parent's and the country's."""
    header, collection = await unit_collection(conn, code, vintage)
    geometry = await _unit_geometry(conn, collection, code)
    parent = None
    if header["parent_code"]:
        parent = await features.unit_header(
            conn, vintage, None, header["parent_code"], above=header["level"]
        )
    figures = []
    for indicator in await _catalogue(conn, collection):
        profile = await unit_profile(conn, collection.id, code, indicator)
        meta = await read.get_indicator(conn, indicator)
        series = _points(profile["unit"]["series"])
        latest = series[-1] if series else Point("", None, "not_available")
        figure = Figure(
            indicator,
            meta,
            latest.period or None,
            latest.value,
            latest.status,
            "published",
            series=series,
        )
        if profile["parent"] is not None:
            figure.parent = _points(profile["parent"]["series"])
        if profile["national"] is not None:
            figure.country = _points(profile["national"]["series"])
            figure.country_method = profile["national"]["method"]
        figures.append(figure)
        if progress is not None:
            progress(len(figures))
    around = await _surroundings(conn, collection, geometry, {code})
    area_km2 = await features.area_km2(conn, shapely.to_wkb(geometry))
    return Report(
        "unit",
        str(header["name"]),
        collection,
        geometry,
        round(area_km2, 3),
        1.0,
        "published",
        figures,
        [{"code": code, "name": header["name"], "share": 1.0, "inside_km2": area_km2}],
        around.shapes,
        parent,
        _office(settings, lang),
        date.today(),
        unit=header,
    )


async def _unit_geometry(
    conn: psycopg.AsyncConnection, collection: Collection, code: str
) -> BaseGeometry:
    """The unit's cleaned (unsimplified) geometry, lon/lat."""
    query = ItemQuery(
        collection, limit=1, properties=["code"], band=FINEST_BAND, code=code, in_force=True
    )
    statement, params = features.rows_sql(query, wkt=False)
    row = await (await conn.execute(statement, params)).fetchone()
    if row is None:
        raise InvalidParameter(f"no unit {code!r} in {collection.id}", parameter="unit")
    return shapely.from_wkb(bytes(row[-1]))

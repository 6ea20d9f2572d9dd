"""The data behind a map: every unit's published value (or change between two periods) as a
compact table, and its classes for a choropleth, nationally or within a province or view."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from geo_core.errors import InvalidParameter, NotFound
from geo_service.features import sql as features
from geo_service.features.catalogue import read_collection
from geo_service.features.model import Collection
from geo_service.viewer.choropleth import (
    DEFAULT_DIVERGING,
    DEFAULT_SEQUENTIAL,
    METHOD_NAMES,
    classify,
    classify_change,
    skew_advice,
)
from indicators import compare, read
from indicators.partial_sums import incomplete_sums

RAW_COUNT_NOTE = {
    "en": "This indicator is a raw count: larger units tend to have larger values. "
    "Consider a rate or density.",
    "vi": "Chỉ tiêu này là số tuyệt đối: đơn vị lớn thường có giá trị lớn. "
    "Nên dùng tỷ lệ hoặc mật độ.",
}
CHANGES = ("absolute", "percent")
# how a change map's classes were made: each side of zero classified on its own
CHANGE_METHOD_NAMES = {
    "quantiles": ("phân vị mỗi phía", "quantiles each side"),
    "equal_interval": ("khoảng đều mỗi phía", "equal intervals each side"),
    "natural_breaks": ("ngắt tự nhiên mỗi phía", "natural breaks each side"),
    "std_mean": ("độ lệch chuẩn tính từ 0", "standard deviations from zero"),
    "manual": ("ngắt thủ công, 0 là một ngưỡng", "manual breaks, 0 being one"),
}


def change_method_name(method: str) -> dict[str, str]:
    """The legend's name of a change map's classification, in both languages."""
    vi, en = CHANGE_METHOD_NAMES[method]
    return {
        "vi": f"Thay đổi, phân lớp quanh 0 ({vi})",
        "en": f"Change, classes centred on zero ({en})",
    }


OK = ("ok", "provisional")
RECHECKING = "rechecking"  # a map's status for a value withheld while it is re-protected


@dataclass(frozen=True)
class MapQuery:
    """What a map shows: one indicator's values for a period (or their change since another
    period, possibly of an older vintage carried through the crosswalk), and where."""

    collection: str
    indicator: str
    period: str | None = None
    compare: str | None = None  # the earlier period of a change map
    compare_vintage: str | None = None  # its vintage, when older than the collection's
    change: str = "absolute"
    within: str | None = None  # classify within this parent unit (a province)
    bbox: tuple[float, float, float, float] | None = None  # or within this view


@dataclass
class MapValues:
    """Every unit's value (or change) and status, in code order."""

    collection: Collection
    meta: dict[str, Any]
    period: str
    codes: list[str]
    values: list[float | None]
    statuses: list[str]
    compare: dict[str, Any] | None = None
    # indicators withheld while their disclosure protection is recomputed: their hidden
    # values are "being re-checked", not suppressed
    withheld: list[str] = field(default_factory=list)
    # units whose shown figure is a sum with parts missing (None: every figure is whole)
    incomplete: dict[str, Any] | None = None

    def rechecking(self, lang: str) -> dict[str, Any] | None:
        """The re-protection notice in `lang` (None when nothing is withheld)."""
        return read.rechecking_note(self.withheld, lang)

    def status_shown(self, status: str) -> str:
        """A status as the map shows it: a value hidden while it is re-checked is not
        presented as suppressed."""
        return RECHECKING if status == "suppressed" and self.withheld else status

    def unit(self, lang: str) -> str:
        """The unit of the mapped numbers in `lang`."""
        base = str(self.meta.get("unit_vi") or self.meta["unit"]) if lang == "vi" else ""
        base = base or str(self.meta["unit"])
        if self.compare is None:
            return base
        if self.compare["change"] == "percent":
            return "%"
        if self.meta["kind"] in ("rate", "share") and base.strip() == "%":
            return "điểm %" if lang == "vi" else "percentage points"
        return base


def manual_breaks(text: str | None) -> list[float] | None:
    """Manual class limits from "100,500,1000"; an error names `breaks`."""
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


async def _collection(conn: Any, collection_id: str) -> Collection:
    try:
        return await read_collection(conn, collection_id)
    except NotFound as exc:
        raise InvalidParameter(exc.message, parameter="collection") from exc


async def _indicator(conn: Any, code: str) -> dict[str, Any]:
    try:
        return await read.get_indicator(conn, code)
    except NotFound as exc:
        raise InvalidParameter(exc.message, parameter="indicator") from exc


def _periods(meta: dict[str, Any], vintage: str, level: str) -> list[str]:
    return next(
        (
            [str(p) for p in s["periods"]]
            for s in meta["series"]
            if s["vintage"] == vintage and s["level"] == level
        ),
        [],
    )


async def map_values(conn: Any, q: MapQuery) -> MapValues:
    """The published values of every unit of the collection (or their change), checked
    against the series that exist; the period defaults to the latest. The values and the
    indicators withheld for re-protection are read on one snapshot."""
    async with read.one_snapshot(conn):
        return await _map_values(conn, q)


async def _map_values(conn: Any, q: MapQuery) -> MapValues:
    collection = await _collection(conn, q.collection)
    meta = await _indicator(conn, q.indicator)
    choice = read.choose_series(meta, collection.vintage, collection.level, q.period)
    period = choice.period or _periods(meta, collection.vintage, collection.level)[-1]
    now = await compare.period_values(
        conn, meta["code"], collection.vintage, collection.level, period
    )
    codes = sorted(now)
    if q.compare is None:
        values, statuses, described = [now[c][0] for c in codes], [now[c][1] for c in codes], None
    else:
        then = await _compared(conn, q, meta, collection)
        values, statuses = compare.change(now, then, q.change, codes)
        described = {
            "period": q.compare,
            "vintage": q.compare_vintage or collection.vintage,
            "change": q.change,
        }
    read_from = [meta["code"], meta.get("numerator"), meta.get("denominator")]
    withheld = await read.withheld(conn, read_from)
    # (a period compared from another vintage is carried here: its own units are not these)
    shown = [period] + ([q.compare] if q.compare and not q.compare_vintage else [])
    incomplete = incomplete_sums(meta["series"], collection.vintage, collection.level, shown)
    return MapValues(
        collection, meta, period, codes, values, statuses, described, withheld, incomplete
    )


async def _compared(
    conn: Any, q: MapQuery, meta: dict[str, Any], collection: Collection
) -> compare.Values:
    """The values of the earlier period, carried from an older vintage if asked for."""
    if q.change not in CHANGES:
        raise InvalidParameter(
            f"change must be one of {', '.join(CHANGES)}, not {q.change!r}", parameter="change"
        )
    assert q.compare is not None
    vintage = q.compare_vintage or collection.vintage
    periods = _periods(meta, vintage, collection.level)
    if q.compare not in periods:
        raise InvalidParameter(
            f"{meta['code']} has no period {q.compare!r} on {collection.level} {vintage}; "
            f"periods: {', '.join(periods) or 'none'}",
            parameter="compare",
            valid=periods,
        )
    if vintage == collection.vintage:
        return await compare.period_values(conn, meta["code"], vintage, collection.level, q.compare)
    return await compare.carried_values(
        conn, meta, vintage, collection.vintage, collection.level, q.compare
    )


async def _scope_codes(conn: Any, q: MapQuery, collection: Collection) -> set[str] | None:
    """The units a classification is limited to (None: all of them)."""
    if q.within is not None and q.bbox is not None:
        raise InvalidParameter("give within or bbox, not both", parameter="within")
    if q.within is not None:
        table = await features.child_codes(conn, collection.vintage, collection.level, q.within)
        if not table:
            raise InvalidParameter(
                f"{q.within!r} is not a unit above the {collection.level}s of {collection.vintage}",
                parameter="within",
            )
        return set(table)
    if q.bbox is not None:
        return set(await features.codes_in_bbox(conn, collection.vintage, collection.level, q.bbox))
    return None


def compact(value: float, digits: int) -> float:
    """A value as the compact table sends it: rounded to `digits` decimals, or to two
    significant digits where that would make a non-zero value zero (a decrease smaller than
    the precision would be drawn with the increases). The page rounds class limits alike."""
    rounded = round(value, digits)
    if rounded == 0 and value != 0:
        return float(f"{value:.2g}")
    return rounded + 0.0  # (no -0.0: it is no decrease)


def value_table(mv: MapValues, lang: str) -> dict[str, Any]:
    """The compact JSON of every unit's value: codes and values in two arrays (null when
    there is none) and the codes of each status other than ok."""
    percent = mv.compare is not None and mv.compare["change"] == "percent"
    digits = 2 if percent else int(mv.meta["decimals"]) + 2
    by_status: dict[str, list[str]] = {"provisional": [], "suppressed": [], "not_available": []}
    if mv.withheld:
        by_status[RECHECKING] = []
    for code, status in zip(mv.codes, mv.statuses, strict=True):
        if status != "ok":
            by_status[mv.status_shown(status)].append(code)
    return {
        "rechecking": mv.rechecking(lang),
        "collection": mv.collection.id,
        "indicator": mv.meta["code"],
        "period": mv.period,
        "compare": mv.compare,
        "unit": mv.unit(lang),
        "decimals": 1 if percent else int(mv.meta["decimals"]),
        "codes": mv.codes,
        "precision": digits,
        "values": [
            None if v is None or s not in OK else compact(v, digits)
            for v, s in zip(mv.values, mv.statuses, strict=True)
        ],
        "status": by_status,
        "incomplete": mv.incomplete,
    }


async def choropleth_body(
    conn: Any,
    q: MapQuery,
    method: str,
    k: int,
    palette: str | None,
    breaks: str | None,
    units: bool,
    lang: str = "en",
) -> dict[str, Any]:
    """The JSON of /maps/choropleth: classes of the values (or change) of the units in the
    scope (all, a province's, the view's), in `lang` (vi or en)."""
    mv = await map_values(conn, q)
    scope = await _scope_codes(conn, q, mv.collection)
    rows = [
        (c, v, s)
        for c, v, s in zip(mv.codes, mv.values, mv.statuses, strict=True)
        if scope is None or c in scope
    ]
    values = [v for _, v, s in rows if s in OK and v is not None]
    no_value: dict[str, int] = {"suppressed": 0, "not_available": 0}
    if mv.withheld:
        no_value[RECHECKING] = 0
    for _, v, s in rows:
        if s not in OK or v is None:
            no_value[mv.status_shown(s) if s == "suppressed" else "not_available"] += 1
    if mv.compare is not None:
        palette = palette or DEFAULT_DIVERGING
        method = "manual" if breaks else method
        result = classify_change(values, k, palette, manual_breaks(breaks), no_value, method)
        method_name = change_method_name(method)
    else:
        palette = palette or (DEFAULT_DIVERGING if method == "std_mean" else DEFAULT_SEQUENTIAL)
        result = classify(values, method, k, palette, manual_breaks(breaks), no_value)
        method_name = METHOD_NAMES_BY_LANG[method]
    if mv.withheld and not values:  # (not "no unit has a value": they come back shortly)
        result.note = result.note_vi = None
    meta = mv.meta
    body: dict[str, Any] = {
        "collection": mv.collection.id,
        "period": mv.period,
        "indicator": {
            key: meta.get(key)
            for key in ("code", "name_vi", "name_en", "unit", "kind", "decimals", "source")
        },
        "method_name": method_name,
        **result.as_dict(lang),
        "warning": RAW_COUNT_NOTE[lang] if meta["kind"] == "count" and not mv.compare else None,
        "advice": skew_advice(values, result, lang) if mv.compare is None else None,
        "compare": mv.compare,
        "scope": {"within": q.within, "bbox": list(q.bbox) if q.bbox else None, "units": len(rows)},
        "unit": mv.unit(lang),
        "rechecking": mv.rechecking(lang),
        "incomplete": _incomplete_in_scope(mv, rows),
    }
    if units:
        body["units"] = [
            {
                "code": c,
                "value": v,
                "status": mv.status_shown(s),
                "class": result.class_of(v) if s in OK and v is not None else None,
            }
            for c, v, s in rows
        ]
    return body


def _incomplete_in_scope(
    mv: MapValues, rows: list[tuple[str, float | None, str]]
) -> dict[str, Any] | None:
    """How many units in the scope show a sum with parts missing, and how many parts."""
    if mv.incomplete is None:
        return None
    lacking = mv.incomplete["units"]
    shown = [c for c, v, s in rows if c in lacking and s in OK and v is not None]
    if not shown:
        return None
    return {
        "units": len(shown),
        "parts": sum(lacking[c] for c in shown),
        "parts_vintage": mv.incomplete["parts_vintage"],
        "parts_level": mv.incomplete["parts_level"],
    }


METHOD_NAMES_BY_LANG = {
    method: dict(zip(("vi", "en"), names, strict=True)) for method, names in METHOD_NAMES.items()
}

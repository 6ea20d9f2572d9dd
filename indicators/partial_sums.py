"""Sums with parts missing: a unit's figure summed from its parts that have one (the 2009
provinces and districts from their communes, as the source's own totals are) is shown as
incomplete, with how many parts have no figure, never as a silent total.

The record lives in the series' derivation (`units_with_parts_not_available`: code → parts
without a figure, for the derived periods); a series carried over from such sums records,
for each new unit, the missing parts of the old units it draws on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

LACKING = "units_with_parts_not_available"


def lacking_parts(derivation: dict[str, Any] | None) -> dict[str, int]:
    """Code → parts without a figure, from a series' derivation (empty: complete)."""
    found = (derivation or {}).get(LACKING) or {}
    return {str(code): int(n) for code, n in found.items() if int(n) > 0}


def carried_lacking(
    source: dict[str, Any] | None, links: Iterable[tuple[str, str, float]]
) -> dict[str, Any]:
    """What a carried series records of its source's incomplete sums: per new unit, the
    parts missing from the old units it draws on (the parts' vintage and level named);
    nothing when the source's sums are complete."""
    lacking = lacking_parts(source)
    if not lacking or source is None:
        return {}
    carried: dict[str, int] = {}
    for from_code, to_code, share in links:
        if share > 0 and from_code in lacking:
            carried[to_code] = carried.get(to_code, 0) + lacking[from_code]
    if not carried:
        return {}
    return {
        LACKING: dict(sorted(carried.items())),
        "parts_vintage": source.get("parts_vintage") or source.get("from_vintage"),
        "parts_level": source.get("parts_level") or source.get("from_level"),
    }


def incomplete_sums(
    series: Sequence[dict[str, Any]], vintage: str, level: str, periods: Sequence[str]
) -> dict[str, Any] | None:
    """The units of a series whose shown periods include an incomplete sum, with the
    number of parts lacking and what the parts are; None when every shown figure is whole."""
    chosen = next((s for s in series if s["vintage"] == vintage and s["level"] == level), None)
    derivation = (chosen or {}).get("derivation") or {}
    lacking = lacking_parts(derivation)
    derived = {str(p) for p in derivation.get("periods") or []}
    shown = [p for p in periods if p in derived]
    if not lacking or not shown:
        return None
    return {
        "periods": shown,
        "parts_vintage": derivation.get("parts_vintage") or derivation.get("from_vintage"),
        "parts_level": derivation.get("parts_level") or derivation.get("from_level"),
        "units": lacking,
    }


def mark_rows(
    series: Sequence[dict[str, Any]], vintage: str, level: str, rows: list[dict[str, Any]]
) -> None:
    """Set each value row's `parts_missing`: how many parts its sum lacks a figure for
    (None when the figure is whole, as most are)."""
    found = incomplete_sums(series, vintage, level, sorted({str(r["period"]) for r in rows}))
    for row in rows:
        lacking = None
        if found is not None and str(row["period"]) in found["periods"]:
            lacking = found["units"].get(str(row["code"]))
        row["parts_missing"] = lacking

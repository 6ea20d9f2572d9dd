"""Re-express values of old units on new units through a crosswalk.

Counts are apportioned by the crosswalk's area or population shares. Rates, densities,
shares and ratios are recomputed from apportioned numerators and denominators, never
averaged. Indexes cannot be carried over.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import psycopg

from boundaries import sql as units
from geo_core.errors import InvalidParameter, LoaderError
from geo_core.text import first_of
from indicators import sql
from indicators.apportion import Apportioned, worst
from indicators.catalogue import QUOTIENT_KINDS, Indicator, get_indicator
from indicators.partial_sums import carried_lacking
from indicators.values import ValueRow

WEIGHTS = tuple(units.WEIGHT_COLUMNS)


@dataclass(frozen=True)
class Link:
    """One crosswalk link with its weight."""

    from_code: str
    to_code: str
    share: float


def _links(
    conn: psycopg.Connection, from_vintage: str, to_vintage: str, level: str, weight: str
) -> tuple[list[Link], str]:
    column = units.WEIGHT_COLUMNS[weight]
    rows = units.crosswalk_links(conn, from_vintage, to_vintage, level, weight)
    if not rows:
        raise LoaderError(
            f"no crosswalk from {level} {from_vintage} to {to_vintage}", parameter="--from"
        )
    missing = [f"{f} → {t}" for f, t, share, _ in rows if share is None]
    if missing:
        raise LoaderError(
            f"the crosswalk has no {column} for {len(missing)} link(s), e.g. "
            f"{', '.join(missing[:5])}; use another --weight or load the shares",
            parameter="--weight",
        )
    to_levels = {r[3] for r in rows}
    if len(to_levels) != 1:
        raise LoaderError(f"{level} {from_vintage} maps to several levels: {sorted(to_levels)}")
    return [Link(f, t, float(s)) for f, t, s, _ in rows], to_levels.pop()


def _old_values(
    conn: psycopg.Connection, indicator: str, vintage: str, level: str
) -> dict[tuple[str, str], tuple[float | None, str]]:
    # the stored figures: the derived series is protected with the old one, through the
    # equations new unit = Σ share × old unit (indicators.linked), so what it publishes
    # never gives back a hidden old value, whatever the rules are now or become
    rows = sql.series_values(conn, indicator, vintage, level)
    return {(code, period): (value, status) for code, period, value, status in rows}


def apportion(
    links: list[Link], old: dict[tuple[str, str], tuple[float | None, str]]
) -> dict[tuple[str, str], Apportioned]:
    """Apportion counts of old units onto new units, period by period."""
    periods = sorted({period for _, period in old})
    result: dict[tuple[str, str], Apportioned] = defaultdict(Apportioned)
    for period in periods:
        for link in links:
            value, status = old.get((link.from_code, period), (None, "not_available"))
            result[(link.to_code, period)].add(value, status, link.share)
    return result


def _count_rows(counts: dict[tuple[str, str], Apportioned]) -> list[ValueRow]:
    return [
        ValueRow(
            f"carry-over {code} {period}",
            code,
            period,
            a.value if a.status in ("ok", "provisional") else None,
            a.status,
            None,
        )
        for (code, period), a in sorted(counts.items())
    ]


def _quotient_rows(
    indicator: Indicator,
    num: dict[tuple[str, str], Apportioned],
    den: dict[tuple[str, str], Apportioned],
) -> list[ValueRow]:
    rows = []
    for key in sorted(num.keys() | den.keys()):
        n, d = (
            num.get(key, Apportioned(status="not_available")),
            den.get(key, Apportioned(status="not_available")),
        )
        status = worst(n.status, d.status)
        value = None
        if status in ("ok", "provisional"):
            if d.value == 0:
                status = "not_available"
            else:
                value = n.value / d.value * indicator.multiplier
        rows.append(ValueRow(f"carry-over {key[0]} {key[1]}", key[0], key[1], value, status))
    return rows


@dataclass
class CarriedSeries:
    """An indicator's series derived on a new vintage, ready to be stored."""

    level: str
    rows: list[ValueRow]
    derivation: dict[str, Any]
    notes: list[str]


def carried_series(
    conn: psycopg.Connection,
    code: str,
    from_vintage: str,
    to_vintage: str,
    level: str,
    weight: str,
) -> CarriedSeries:
    """Derive the indicator's series on the new vintage (indicators.store stores it)."""
    if weight not in WEIGHTS:
        raise InvalidParameter(
            f"--weight must be one of {', '.join(WEIGHTS)}", parameter="--weight"
        )
    indicator = get_indicator(conn, code)
    if indicator is None:
        raise InvalidParameter(f"unknown indicator {code!r}", parameter="--indicator")
    links, to_level = _links(conn, from_vintage, to_vintage, level, weight)
    derivation = {
        "method": "carry-over",
        "from_vintage": from_vintage,
        "from_level": level,
        "weight": weight,
        "crosswalk": f"{from_vintage}→{to_vintage}",
    }
    derivation |= _crosswalk_provenance(conn, from_vintage, to_vintage, level)
    new_codes = units.unit_codes(conn, to_vintage, to_level)
    notes: list[str] = []
    if indicator.kind == "count":
        old = _old_values(conn, code, from_vintage, level)
        notes = _coverage_notes(links, old, new_codes, weight)
        counts = _complete(apportion(links, old), new_codes, old)
        notes += _totals_notes(old, counts)
        rows = _count_rows(counts)
        # sums of old units with parts missing stay marked as such on the new units
        derivation |= carried_lacking(
            sql.series_derivation(conn, code, from_vintage, level),
            ((link.from_code, link.to_code, link.share) for link in links),
        )
    elif indicator.kind in QUOTIENT_KINDS:
        if not (indicator.numerator and indicator.denominator):
            raise LoaderError(
                f"{code} is a {indicator.kind} without numerator and denominator "
                "in the catalogue; it cannot be recomputed",
                parameter="--indicator",
            )
        old_num = _old_values(conn, indicator.numerator, from_vintage, level)
        notes = _coverage_notes(links, old_num, new_codes, weight)
        num = _complete(apportion(links, old_num), new_codes, old_num)
        den = apportion(links, _old_values(conn, indicator.denominator, from_vintage, level))
        rows = _quotient_rows(indicator, num, den)
        derivation |= {
            "numerator": indicator.numerator,
            "denominator": indicator.denominator,
            "recomputed": "numerator / denominator after apportioning both",
        }
    else:
        raise LoaderError(
            f"{code} is an {indicator.kind}; an index cannot be apportioned between units",
            parameter="--indicator",
        )
    if not rows:
        raise LoaderError(f"{code} has no values on {level} {from_vintage}")
    return CarriedSeries(to_level, rows, derivation, notes)


def _crosswalk_provenance(
    conn: psycopg.Connection, from_vintage: str, to_vintage: str, level: str
) -> dict[str, Any]:
    """How the crosswalk was made and how well the old units cover the new ones, for the
    derivation record (nothing when the crosswalk was loaded without a record)."""
    made = units.crosswalk_provenance(conn, from_vintage, to_vintage, level)
    if made is None:
        return {}
    figures = made["figures"] or {}
    return {
        "crosswalk_method": made["method"],
        "crosswalk_weights": list(made["weights"]),
        "crosswalk_built_at": made["built_at"].isoformat(timespec="seconds"),
        "sliver_threshold": made["sliver_threshold"],
        "covered_median": figures.get("to_covered_median"),
        "covered_below_95": figures.get("to_below_95"),
    }


def _coverage_notes(
    links: list[Link],
    old: dict[tuple[str, str], tuple[float | None, str]],
    new_codes: list[str],
    weight: str,
    shown: int = 10,
) -> list[str]:
    """What the crosswalk leaves out: old units with values but no link (their values are
    lost), old units whose shares do not add up to 1, new units no link reaches."""
    shares: dict[str, float] = defaultdict(float)
    for link in links:
        shares[link.from_code] += link.share
    with_values = sorted({c for (c, _), (v, _) in old.items() if v is not None})
    unlinked = [c for c in with_values if c not in shares]
    uneven = [
        f"{c} ({shares[c]:.3f})" for c in with_values if c in shares and abs(shares[c] - 1) > 1e-3
    ]
    reached = {link.to_code for link in links}
    unreached = [c for c in new_codes if c not in reached]

    notes = []
    if unlinked:
        notes.append(
            f"{len(unlinked)} old unit(s) with values have no crosswalk link; their "
            f"values are not carried: {first_of(unlinked, shown)}"
        )
    if uneven:
        notes.append(
            f"{len(uneven)} old unit(s) whose {weight} shares do not add up to 1: "
            f"{first_of(uneven, shown)}"
        )
    if unreached:
        notes.append(
            f"{len(unreached)} new unit(s) no crosswalk link reaches are not "
            f"available: {first_of(unreached, shown)}"
        )
    return notes


def _complete(
    result: dict[tuple[str, str], Apportioned],
    new_codes: list[str],
    old: dict[tuple[str, str], tuple[float | None, str]],
) -> dict[tuple[str, str], Apportioned]:
    """Every new unit for every period: one no link reaches is not available (not absent)."""
    for period in sorted({p for _, p in old}):
        for code in new_codes:
            result.setdefault((code, period), Apportioned(status="not_available"))
    return result


def _totals_notes(
    old: dict[tuple[str, str], tuple[float | None, str]], new: dict[tuple[str, str], Apportioned]
) -> list[str]:
    """A count's total before and after, per period, when they differ."""
    notes = []
    for period in sorted({p for _, p in old}):
        before = sum(
            v or 0.0 for (_, p), (v, s) in old.items() if p == period and s in ("ok", "provisional")
        )
        after = sum(
            a.value
            for (_, p), a in new.items()
            if p == period and a.status in ("ok", "provisional")
        )
        if abs(after - before) > 1e-6 * max(abs(before), 1.0):
            notes.append(
                f"{period}: total {before:,.1f} before, {after:,.1f} after ({after - before:+,.1f})"
            )
    return notes

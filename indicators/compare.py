"""Values to compare with: another period of the same units, or a period of an older
vintage carried onto these units through the crosswalk (as `carry-over` would store it).

Everything is read from published (disclosure-controlled) values, so a change involving a
hidden value is hidden too.
"""

from __future__ import annotations

from typing import Any

import psycopg

from boundaries import sql as units
from geo_core.errors import InvalidParameter
from indicators import sql
from indicators.apportion import Apportioned, worst
from indicators.carryover import Link, apportion
from indicators.catalogue import QUOTIENT_KINDS

Values = dict[str, tuple[float | None, str]]  # code → (value, status)
OK = ("ok", "provisional")


async def period_values(
    conn: psycopg.AsyncConnection, indicator: str, vintage: str, level: str, period: str
) -> Values:
    """Every unit's published value and status for one period."""
    rows = await sql.published_values(
        conn, sql.Selection(indicator, vintage, level, period, every_unit=True)
    )
    return {r["code"]: (r["value"], r["status"]) for r in rows}


async def _carried(
    conn: psycopg.AsyncConnection,
    indicator: str,
    links: list[Link],
    from_vintage: str,
    level: str,
    period: str,
) -> dict[str, Apportioned]:
    rows = await sql.published_values(
        conn, sql.Selection(indicator, from_vintage, level, period, every_unit=True)
    )
    old = {(r["code"], period): (r["value"], r["status"]) for r in rows}
    return {code: a for (code, _), a in apportion(links, old).items()}


async def carried_values(
    conn: psycopg.AsyncConnection,
    meta: dict[str, Any],
    from_vintage: str,
    to_vintage: str,
    level: str,
    period: str,
    weight: str = "area",
) -> Values:
    """One period of an older vintage on the newer vintage's units: counts apportioned by
    the crosswalk's shares, quotients recomputed from apportioned numerator and
    denominator; units no link reaches are not available."""
    rows = await units.crosswalk_shares(conn, from_vintage, to_vintage, level, weight)
    if not rows:
        raise InvalidParameter(
            f"no crosswalk from {level} {from_vintage} to {to_vintage} with {weight} shares",
            parameter="compare_vintage",
        )
    links = [Link(str(f), str(t), float(s)) for f, t, s in rows]
    if meta["kind"] == "count":
        counts = await _carried(conn, meta["code"], links, from_vintage, level, period)
        return {c: (a.value if a.status in OK else None, a.status) for c, a in counts.items()}
    if meta["kind"] in QUOTIENT_KINDS and meta["numerator"] and meta["denominator"]:
        num = await _carried(conn, meta["numerator"], links, from_vintage, level, period)
        den = await _carried(conn, meta["denominator"], links, from_vintage, level, period)
        result: Values = {}
        for code in num.keys() | den.keys():
            n = num.get(code, Apportioned(status="not_available"))
            d = den.get(code, Apportioned(status="not_available"))
            status = worst(n.status, d.status)
            if status in OK and not d.value:
                status = "not_available"
            value = n.value / d.value * meta["multiplier"] if status in OK else None
            result[code] = (value, status)
        return result
    raise InvalidParameter(
        f"{meta['code']} is a {meta['kind']}: it cannot be carried between vintages",
        parameter="compare_vintage",
    )


def change(
    now: Values, then: Values, how: str, codes: list[str]
) -> tuple[list[float | None], list[str]]:
    """For each code: the change from `then` to `now` ("absolute", or "percent" of the
    earlier value) and its status (the worse of the two; a percent of zero is not
    available)."""
    values: list[float | None] = []
    statuses: list[str] = []
    for code in codes:
        v1, s1 = now.get(code, (None, "not_available"))
        v0, s0 = then.get(code, (None, "not_available"))
        status = worst(s1, s0)
        value = None
        if status in OK and v1 is not None and v0 is not None:
            if how == "percent":
                if v0 == 0:
                    status = "not_available"
                else:
                    value = (v1 - v0) / abs(v0) * 100
            else:
                value = v1 - v0
        values.append(value)
        statuses.append(status)
    return values, statuses

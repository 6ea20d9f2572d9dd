"""Read the catalogue and published (disclosure-controlled) values for the API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from geo_service.errors import InvalidParameter, NotFound
from geo_service.text import like_escape


@dataclass(frozen=True)
class SeriesChoice:
    """A validated (indicator, vintage, level, period) selection."""

    indicator: str
    vintage: str
    level: str
    period: str | None


async def list_indicators(conn: psycopg.AsyncConnection, kind: str | None = None,
                          source: str | None = None) -> list[dict[str, Any]]:
    """Catalogue entries, optionally filtered by kind or by a substring of the source."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT code, name_vi, name_en, kind, unit, decimals, source, licence"
            " FROM indicator WHERE (%(kind)s::text IS NULL OR kind = %(kind)s)"
            " AND (%(source)s::text IS NULL OR source ILIKE '%%' || %(source)s || '%%')"
            " ORDER BY code",
            {"kind": kind, "source": None if source is None else like_escape(source)})
        return await cur.fetchall()


async def get_indicator(conn: psycopg.AsyncConnection, code: str) -> dict[str, Any]:
    """Full metadata of one indicator with its series; NotFound names the code."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM indicator WHERE code = %s", (code,))
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"unknown indicator {code!r}", parameter="code")
        await cur.execute(
            "SELECT s.vintage, s.level, s.derivation,"
            "  array(SELECT DISTINCT period FROM indicator_value v WHERE v.indicator = s.indicator"
            "        AND v.vintage = s.vintage AND v.level = s.level ORDER BY period) AS periods"
            " FROM indicator_series s WHERE s.indicator = %s ORDER BY s.vintage, s.level",
            (code,))
        row["series"] = await cur.fetchall()
    row.pop("created_at", None)
    return row


def _pick(value: str | None, allowed: list[str], parameter: str) -> str:
    if value is None:
        if len(allowed) == 1:
            return allowed[0]
        raise InvalidParameter(f"{parameter} is required; valid values: {', '.join(allowed)}",
                               parameter=parameter, valid=allowed)
    if value not in allowed:
        raise InvalidParameter(f"unknown {parameter} {value!r}; valid values: "
                               f"{', '.join(allowed) or 'none'}", parameter=parameter,
                               valid=allowed)
    return value


def choose_series(meta: dict[str, Any], vintage: str | None, level: str | None,
                  period: str | None) -> SeriesChoice:
    """Validate the selection against the series that exist, naming what is wrong."""
    series = meta["series"]
    vintage = _pick(vintage, sorted({s["vintage"] for s in series}), "vintage")
    level = _pick(level, sorted({s["level"] for s in series if s["vintage"] == vintage}),
                  "level")
    chosen = next(s for s in series if s["vintage"] == vintage and s["level"] == level)
    if period is not None:
        period = _pick(period, chosen["periods"], "period")
    return SeriesChoice(meta["code"], vintage, level, period)


async def published_values(conn: psycopg.AsyncConnection, choice: SeriesChoice,
                           parent: str | None = None, unit: str | None = None
                           ) -> list[dict[str, Any]]:
    """Disclosure-controlled values with unit names, in code and period order."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT v.code, u.name, u.parent_code, v.period, v.value, v.status, v.moe"
            " FROM published_value v JOIN admin_unit u USING (vintage, level, code)"
            " WHERE v.indicator = %(indicator)s AND v.vintage = %(vintage)s"
            " AND v.level = %(level)s AND (%(period)s::text IS NULL OR v.period = %(period)s)"
            " AND (%(parent)s::text IS NULL OR u.parent_code = %(parent)s)"
            " AND (%(unit)s::text IS NULL OR u.code = %(unit)s)"
            " ORDER BY v.code, v.period",
            {"indicator": choice.indicator, "vintage": choice.vintage, "level": choice.level,
             "period": choice.period, "parent": parent, "unit": unit})
        return await cur.fetchall()

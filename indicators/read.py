"""Read the catalogue and published (disclosure-controlled) values for the API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from boundaries import sql as units
from geo_core.errors import InvalidParameter, NotFound
from indicators import sql


@dataclass(frozen=True)
class SeriesChoice:
    """A validated (indicator, vintage, level, period) selection."""

    indicator: str
    vintage: str
    level: str
    period: str | None


async def list_indicators(
    conn: psycopg.AsyncConnection, kind: str | None = None, source: str | None = None
) -> list[dict[str, Any]]:
    """Catalogue entries, optionally filtered by kind or by a substring of the source."""
    return await sql.list_indicators(conn, kind, source)


async def get_indicator(conn: psycopg.AsyncConnection, code: str) -> dict[str, Any]:
    """Full metadata of one indicator with its series; NotFound names the code."""
    row = await sql.indicator_with_series(conn, code)
    if row is None:
        raise NotFound(f"unknown indicator {code!r}", parameter="code")
    row.pop("created_at", None)
    return row


def _pick(value: str | None, allowed: list[str], parameter: str) -> str:
    if value is None:
        if len(allowed) == 1:
            return allowed[0]
        raise InvalidParameter(
            f"{parameter} is required; valid values: {', '.join(allowed)}",
            parameter=parameter,
            valid=allowed,
        )
    if value not in allowed:
        raise InvalidParameter(
            f"unknown {parameter} {value!r}; valid values: {', '.join(allowed) or 'none'}",
            parameter=parameter,
            valid=allowed,
        )
    return value


def choose_series(
    meta: dict[str, Any], vintage: str | None, level: str | None, period: str | None
) -> SeriesChoice:
    """Validate the selection against the series that exist, naming what is wrong."""
    series = meta["series"]
    vintage = _pick(vintage, sorted({s["vintage"] for s in series}), "vintage")
    level = _pick(level, sorted({s["level"] for s in series if s["vintage"] == vintage}), "level")
    chosen = next(s for s in series if s["vintage"] == vintage and s["level"] == level)
    if period is not None:
        period = _pick(period, chosen["periods"], "period")
    return SeriesChoice(meta["code"], vintage, level, period)


async def published_values(
    conn: psycopg.AsyncConnection,
    choice: SeriesChoice,
    parent: str | None = None,
    unit: str | None = None,
) -> list[dict[str, Any]]:
    """Disclosure-controlled values with unit names, in code and period order; a parent or
    unit that the vintage does not have is refused naming it."""
    if parent is not None and not await units.unit_exists(
        conn, choice.vintage, parent, not_level=choice.level
    ):
        raise InvalidParameter(
            f"parent {parent!r} is not a unit of vintage {choice.vintage}", parameter="parent"
        )
    if unit is not None and not await units.unit_exists(
        conn, choice.vintage, unit, level=choice.level
    ):
        raise InvalidParameter(
            f"unit {unit!r} is not a {choice.level} of vintage {choice.vintage}", parameter="unit"
        )
    return await sql.published_values(
        conn,
        sql.Selection(choice.indicator, choice.vintage, choice.level, choice.period, parent, unit),
    )

"""Read the catalogue and published (disclosure-controlled) values for the API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from boundaries import sql as units
from geo_core.errors import BeingRechecked, InvalidParameter, NotFound
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
    await _check_parent_and_unit(conn, choice, parent, unit)
    return await sql.published_values(
        conn,
        sql.Selection(choice.indicator, choice.vintage, choice.level, choice.period, parent, unit),
    )


async def _check_parent_and_unit(
    conn: psycopg.AsyncConnection, choice: SeriesChoice, parent: str | None, unit: str | None
) -> None:
    """Refuse a parent or unit that the choice's vintage does not have, naming it."""
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


async def published_values_withheld(
    conn: psycopg.AsyncConnection,
    choice: SeriesChoice,
    withheld_from: Sequence[str | None],
    parent: str | None = None,
    unit: str | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """`published_values` and which of the indicators `withheld_from` are withheld while
    their protection is recomputed, read by one statement (the values' own snapshot)."""
    await _check_parent_and_unit(conn, choice, parent, unit)
    return await sql.published_values_withheld(
        conn,
        sql.Selection(choice.indicator, choice.vintage, choice.level, choice.period, parent, unit),
        [c for c in withheld_from if c],
    )


# ---- values withheld while their disclosure protection is recomputed ----

RETRY_AFTER_S = 5  # the running service protects a pending indicator within seconds
RECHECKING = {
    "en": "The values of {codes} are being re-checked for disclosure control after a change "
    "and are hidden until then (they are not suppressed): try again in a few seconds.",
    "vi": "Các giá trị của {codes} đang được kiểm tra lại về bảo mật thống kê sau một thay "
    "đổi nên tạm thời bị ẩn (không phải bị bảo mật): vui lòng thử lại sau vài giây.",
}


@asynccontextmanager
async def one_snapshot(conn: psycopg.AsyncConnection) -> AsyncIterator[None]:
    """Run the block's statements on one snapshot of the database (a repeatable-read
    transaction): values and whether they are withheld are then read as of one moment."""
    # (two statements each on their own snapshot could pair values read while pending with
    # a flag read after their protection, or the reverse: "settled" on hidden values)
    if conn.info.transaction_status != TransactionStatus.IDLE:
        yield  # (inside a caller's transaction: its statements decide)
        return
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


async def withheld(conn: psycopg.AsyncConnection, codes: Sequence[str | None]) -> list[str]:
    """Of the indicators, those withheld while their protection is recomputed."""
    return await sql.withheld_indicators(conn, sorted({c for c in codes if c}))


def rechecking_note(withheld: list[str], lang: str = "en") -> dict[str, Any] | None:
    """What a client is told when indicators are withheld while their protection is
    recomputed (None when none is): which ones, when to retry, and why, in `lang`."""
    if not withheld:
        return None
    text = RECHECKING["vi" if lang == "vi" else "en"].format(codes=", ".join(withheld))
    return {"indicators": withheld, "retry_after": RETRY_AFTER_S, "message": text}


async def refuse_while_rechecking(
    conn: psycopg.AsyncConnection, codes: Sequence[str | None]
) -> None:
    """Refuse an export (a file is kept and passed on: it must not show every value hidden)
    while any of the indicators is withheld for re-protection; the client retries shortly."""
    refuse_withheld(await withheld(conn, codes))


def refuse_withheld(withheld: list[str]) -> None:
    """Refuse an export whose values were read while these indicators were withheld (read
    on the values' own snapshot: asked again later, a protection in between would let a
    file with every value hidden through)."""
    note = rechecking_note(withheld)
    if note:
        raise BeingRechecked(
            note["message"],
            parameter="indicator",
            indicators=note["indicators"],
            retry_after=note["retry_after"],
        )

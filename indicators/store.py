"""Storing an indicator's series and what follows from it: declared relations checked, the
series carried over from it derived again, and the linked tables protected, all in the
write's transaction (so nothing unprotected is ever published)."""

from __future__ import annotations

from typing import Any

import psycopg

from indicators import protect, relations, sql
from indicators.carryover import carried_series
from indicators.values import LoadResult, ValueRow, checked_rows, write_series


def store_values(
    conn: psycopg.Connection,
    indicator: str,
    vintage: str,
    level: str,
    rows: list[ValueRow],
    *,
    skip_unknown: bool = False,
    replace: bool = False,
    derivation: dict[str, Any] | None = None,
    what: str = "load",
) -> LoadResult:
    """Check codes and keys, then write the rows of one series in one transaction."""
    rows, result = checked_rows(conn, indicator, vintage, level, rows, skip_unknown, what)
    with conn.transaction():
        write_series(conn, indicator, vintage, level, rows, replace, derivation)
        relations.check(conn, [indicator])
        result.notes += [
            f"re-derived {series} from the new values"
            for series in rederive(conn, indicator, vintage, level)
        ]
        # protected before anyone can read it (the write left it withheld)
        protect.refresh(conn)
        result.notes += relations.likely_undeclared(conn, [indicator])
    sql.analyze_values(conn)
    result.loaded = len(rows)
    result.not_available = sum(r.status == "not_available" for r in rows)
    return result


def carry_over(
    conn: psycopg.Connection,
    code: str,
    from_vintage: str,
    to_vintage: str,
    level: str,
    weight: str,
    replace: bool = False,
) -> LoadResult:
    """Derive the indicator's series on the new vintage and store it with its derivation."""
    carried = carried_series(conn, code, from_vintage, to_vintage, level, weight)
    result = store_values(
        conn,
        code,
        to_vintage,
        carried.level,
        carried.rows,
        replace=replace,
        derivation=carried.derivation,
        what=f"carry-over of {code}",
    )
    result.notes = carried.notes
    return result


def rederive(conn: psycopg.Connection, indicator: str, vintage: str, level: str) -> list[str]:
    """Carry over again every series derived from this one (its figures changed); return
    what was re-derived."""
    done = []
    for code, to_vintage, derivation in sql.carried_from(conn, indicator, vintage, level):
        carry_over(
            conn,
            code,
            vintage,
            to_vintage,
            level,
            str(derivation.get("weight", "area")),
            replace=True,
        )
        done.append(f"{code} {to_vintage}")
    return done

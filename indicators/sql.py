"""Every statement on the indicator tables: the catalogue, series and values.

Values are read only through `published_value` (the database view that applies disclosure
control), and only by the two functions here: `published_join` for queries that carry
values onto units (features, tiles) and `published_values` for tables of values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from geo_core.text import like_escape

Row = tuple[Any, ...]

# ---- the catalogue ----


def save_indicator(
    conn: psycopg.Connection, values: dict[str, Any], updated: Sequence[str]
) -> None:
    """Insert a catalogue entry, or update the `updated` columns of an existing one
    (column names come from the Indicator dataclass, never from input)."""
    columns = list(values)
    statement = sql.SQL(
        "INSERT INTO indicator ({}) VALUES ({}) ON CONFLICT (code) DO UPDATE SET {}"
    ).format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder(c) for c in columns),
        sql.SQL(", ").join(
            sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
            for c in updated
        ),
    )
    conn.execute(statement, values)


def kind_with_values(conn: psycopg.Connection, code: str) -> str | None:
    """The indicator's kind when it has values (None without values or when unknown)."""
    row = conn.execute(
        "SELECT i.kind FROM indicator i WHERE i.code = %s AND EXISTS (SELECT 1"
        " FROM indicator_value v WHERE v.indicator = i.code)",
        (code,),
    ).fetchone()
    return str(row[0]) if row else None


def reference_loop(conn: psycopg.Connection) -> list[str] | None:
    """A loop of numerator/denominator/basis references, as the codes along it, if any."""
    row = conn.execute(
        "WITH RECURSIVE walk(start, code, path) AS ("
        " SELECT i.code, r.ref, ARRAY[i.code] FROM indicator i, unnest(ARRAY[i.numerator,"
        "  i.denominator, i.disclosure_basis]) r(ref) WHERE r.ref IS NOT NULL"
        " UNION ALL"
        " SELECT w.start, r.ref, w.path || w.code FROM walk w JOIN indicator i ON i.code ="
        "  w.code, unnest(ARRAY[i.numerator, i.denominator, i.disclosure_basis]) r(ref)"
        " WHERE r.ref IS NOT NULL AND w.code <> w.start AND NOT w.code = ANY(w.path))"
        " SELECT path || code FROM walk WHERE code = start LIMIT 1"
    ).fetchone()
    return list(row[0]) if row else None


def catalogue_entry(
    conn: psycopg.Connection, code: str, columns: Sequence[str]
) -> dict[str, Any] | None:
    """The named columns of one catalogue entry, or None."""
    statement = sql.SQL("SELECT {} FROM indicator WHERE code = %s").format(
        sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(statement, (code,)).fetchone()


def kind_of(conn: psycopg.Connection, code: str) -> str | None:
    """The indicator's kind, None when it is not in the catalogue."""
    row = conn.execute("SELECT kind FROM indicator WHERE code = %s", (code,)).fetchone()
    return str(row[0]) if row else None


def catalogue_lines(conn: psycopg.Connection) -> list[Row]:
    """(code, kind, English name) of every indicator."""
    return conn.execute("SELECT code, kind, name_en FROM indicator ORDER BY code").fetchall()


async def list_indicators(
    conn: psycopg.AsyncConnection, kind: str | None, source: str | None
) -> list[dict[str, Any]]:
    """Catalogue entries, optionally of one kind or with a text in their source."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT code, name_vi, name_en, kind, unit, decimals, source, licence"
            " FROM indicator WHERE (%(kind)s::text IS NULL OR kind = %(kind)s)"
            " AND (%(source)s::text IS NULL OR source ILIKE '%%' || %(source)s || '%%')"
            " ORDER BY code",
            {"kind": kind, "source": None if source is None else like_escape(source)},
        )
        return await cur.fetchall()


async def indicator_with_series(conn: psycopg.AsyncConnection, code: str) -> dict[str, Any] | None:
    """Every column of one catalogue entry and its series (vintage, level, derivation,
    periods), or None."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM indicator WHERE code = %s", (code,))
        row = await cur.fetchone()
        if row is None:
            return None
        await cur.execute(
            "SELECT s.vintage, s.level, s.derivation,"
            "  array(SELECT DISTINCT period FROM indicator_value v WHERE v.indicator = s.indicator"
            "        AND v.vintage = s.vintage AND v.level = s.level ORDER BY period) AS periods"
            " FROM indicator_series s WHERE s.indicator = %s ORDER BY s.vintage, s.level",
            (code,),
        )
        row["series"] = await cur.fetchall()
        await cur.execute(
            "SELECT array_agg(part ORDER BY part) AS parts FROM indicator_breakdown"
            " WHERE total = %s GROUP BY breakdown ORDER BY breakdown",
            (code,),
        )
        row["breakdowns"] = [r["parts"] for r in await cur.fetchall()]
    return row


async def series_with_names(conn: psycopg.AsyncConnection) -> list[Row]:
    """(vintage, level, indicator, name_vi, name_en) of every series over loaded units."""
    cur = await conn.execute(
        "SELECT s.vintage, s.level, s.indicator, i.name_vi, i.name_en FROM indicator_series s"
        " JOIN indicator i ON i.code = s.indicator JOIN vintage t ON t.id = s.vintage"
        " WHERE EXISTS (SELECT 1 FROM admin_unit u WHERE u.vintage = s.vintage"
        "               AND u.level = s.level)"
        " ORDER BY t.valid_from DESC, s.vintage DESC, s.indicator"
    )
    return await cur.fetchall()


# ---- series and periods ----


async def series_periods(
    conn: psycopg.AsyncConnection, code: str, vintage: str, level: str
) -> list[str] | None:
    """The periods of an indicator's values on (vintage, level); None: no such indicator."""
    cur = await conn.execute(
        "SELECT array(SELECT DISTINCT v.period FROM indicator_value v WHERE"
        " v.indicator = i.code AND v.vintage = %s AND v.level = %s ORDER BY 1)"
        " FROM indicator i WHERE i.code = %s",
        (vintage, level, code),
    )
    row = await cur.fetchone()
    return list(row[0]) if row else None


async def collection_periods(
    conn: psycopg.AsyncConnection, vintage: str, level: str
) -> dict[str, tuple[str, ...]]:
    """indicator → its periods, for every indicator with values on (vintage, level)."""
    cur = await conn.execute(
        "SELECT indicator, array_agg(DISTINCT period ORDER BY period) FROM indicator_value"
        " WHERE vintage = %s AND level = %s GROUP BY indicator",
        (vintage, level),
    )
    return {code: tuple(periods) for code, periods in await cur.fetchall()}


def series_exists(conn: psycopg.Connection, code: str, vintage: str, level: str) -> bool:
    """Whether the indicator has a series on (vintage, level)."""
    return (
        conn.execute(
            "SELECT 1 FROM indicator_series WHERE indicator = %s AND vintage = %s AND level = %s",
            (code, vintage, level),
        ).fetchone()
        is not None
    )


def series_derivation(
    conn: psycopg.Connection, code: str, vintage: str, level: str
) -> dict[str, Any] | None:
    """How the series' derived periods were made (None: observed, or no series)."""
    row = conn.execute(
        "SELECT derivation FROM indicator_series WHERE indicator = %s AND"
        " vintage = %s AND level = %s",
        (code, vintage, level),
    ).fetchone()
    return row[0] if row else None


def stored_periods(conn: psycopg.Connection, code: str, vintage: str, level: str) -> set[str]:
    """The periods with values in the series."""
    return {
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT period FROM indicator_value WHERE indicator = %s AND vintage = %s"
            " AND level = %s",
            (code, vintage, level),
        )
    }


def save_series(
    conn: psycopg.Connection, code: str, vintage: str, level: str, derivation: dict[str, Any] | None
) -> None:
    """Create or update the series, with its derivation."""
    conn.execute(
        "INSERT INTO indicator_series (indicator, vintage, level, derivation)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (indicator, vintage, level)"
        " DO UPDATE SET derivation = EXCLUDED.derivation, loaded_at = now()",
        (code, vintage, level, Jsonb(derivation) if derivation else None),
    )


def count_values(
    conn: psycopg.Connection, code: str, vintage: str, level: str, periods: list[str]
) -> int:
    """Values the series has in the periods."""
    row = conn.execute(
        "SELECT count(*) FROM indicator_value WHERE indicator = %s AND vintage = %s"
        " AND level = %s AND period = ANY(%s)",
        (code, vintage, level, periods),
    ).fetchone()
    return int(row[0]) if row else 0


def delete_values(
    conn: psycopg.Connection, code: str, vintage: str, level: str, periods: list[str]
) -> None:
    """Delete the series' values of the periods."""
    conn.execute(
        "DELETE FROM indicator_value WHERE indicator = %s AND vintage = %s"
        " AND level = %s AND period = ANY(%s)",
        (code, vintage, level, periods),
    )


def copy_values(
    conn: psycopg.Connection,
    code: str,
    vintage: str,
    level: str,
    rows: Iterable[tuple[str, str, float | None, str, float | None]],
) -> None:
    """Write (unit code, period, value, status, moe) rows of one series."""
    with conn.cursor().copy(
        "COPY indicator_value (indicator, vintage, level, code, period,"
        " value, status, moe) FROM STDIN"
    ) as copy:
        for unit, period, value, status, moe in rows:
            copy.write_row((code, vintage, level, unit, period, value, status, moe))


def series_values(conn: psycopg.Connection, code: str, vintage: str, level: str) -> list[Row]:
    """(code, period, value, status) of a series as stored: for deriving other series
    only (carry-over), whose values are protected with their sources."""
    return conn.execute(
        "SELECT code, period, value, status FROM indicator_value WHERE indicator = %s"
        " AND vintage = %s AND level = %s",
        (code, vintage, level),
    ).fetchall()


def carried_from(
    conn: psycopg.Connection, code: str, vintage: str, level: str
) -> list[tuple[str, str, dict[str, Any]]]:
    """(indicator, vintage, derivation) of every series carried over from this one's
    figures: the indicator itself, and quotients with it as numerator or denominator."""
    return [
        (r[0], r[1], r[2])
        for r in conn.execute(
            "SELECT s.indicator, s.vintage, s.derivation FROM indicator_series s"
            " JOIN indicator i ON i.code = s.indicator"
            " WHERE s.derivation->>'method' = 'carry-over' AND s.derivation->>'from_vintage' = %s"
            " AND s.derivation->>'from_level' = %s"
            " AND %s IN (i.code, i.numerator, i.denominator)",
            (vintage, level, code),
        )
    ]


def carried_through(
    conn: psycopg.Connection, from_vintage: str, to_vintage: str, level: str
) -> list[tuple[str, dict[str, Any]]]:
    """(indicator, derivation) of every series carried over through the crosswalk from a
    level of one vintage to another."""
    return [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT indicator, derivation FROM indicator_series"
            " WHERE vintage = %s AND derivation->>'method' = 'carry-over'"
            " AND derivation->>'from_vintage' = %s AND derivation->>'from_level' = %s"
            " ORDER BY indicator",
            (to_vintage, from_vintage, level),
        )
    ]


def analyze_values(conn: psycopg.Connection) -> None:
    """Fresh planner statistics after a load."""
    conn.execute("ANALYZE indicator_value")


# ---- published (disclosure-controlled) values ----


@dataclass(frozen=True)
class Selection:
    """Which published values to read: one series, optionally narrowed."""

    indicator: str
    vintage: str
    level: str
    period: str | None = None  # None: every period
    parent: str | None = None  # children of this unit only
    unit: str | None = None  # this unit only
    codes: list[str] | None = None  # these units only
    every_unit: bool = False  # also units without a value (as not available)


def published_join(
    alias: str, indicator: str, period: str, params: dict[str, Any]
) -> sql.Composable:
    """A LEFT JOIN of one indicator's published values for one period onto units `u`, as
    `alias` (its parameters are added to `params`)."""
    a = sql.Identifier(alias)
    params[f"{alias}_indicator"], params[f"{alias}_period"] = indicator, period
    return sql.SQL(
        "LEFT JOIN published_value {a} ON {a}.indicator = {indicator} AND {a}.vintage ="
        " u.vintage AND {a}.level = u.level AND {a}.code = u.code AND {a}.period = {period}"
    ).format(
        a=a,
        indicator=sql.Placeholder(f"{alias}_indicator"),
        period=sql.Placeholder(f"{alias}_period"),
    )


def _published_sql(selection: Selection) -> tuple[sql.Composed, dict[str, Any]]:
    params: dict[str, Any] = {
        "indicator": selection.indicator,
        "vintage": selection.vintage,
        "level": selection.level,
    }
    on: list[sql.Composable] = [
        sql.SQL(
            "v.indicator = %(indicator)s AND v.vintage = u.vintage"
            " AND v.level = u.level AND v.code = u.code"
        )
    ]
    where: list[sql.Composable] = [sql.SQL("u.vintage = %(vintage)s AND u.level = %(level)s")]
    if selection.period is not None:
        on.append(sql.SQL("v.period = %(period)s"))
        params["period"] = selection.period
    for column, value in (("parent_code", selection.parent), ("code", selection.unit)):
        if value is not None:
            where.append(
                sql.SQL("u.{} = {}").format(sql.Identifier(column), sql.Placeholder(column))
            )
            params[column] = value
    if selection.codes is not None:
        where.append(sql.SQL("u.code = ANY(%(codes)s)"))
        params["codes"] = selection.codes
    if not selection.every_unit:
        where.append(sql.SQL("v.indicator IS NOT NULL"))
    statement = sql.SQL(
        "SELECT u.code, u.name, u.parent_code, v.period, v.value,"
        " coalesce(v.status, 'not_available') AS status, v.moe"
        " FROM admin_unit u LEFT JOIN published_value v ON {on} WHERE {where}"
        " ORDER BY u.code, v.period"
    ).format(on=sql.SQL(" AND ").join(on), where=sql.SQL(" AND ").join(where))
    return statement, params


async def published_values(
    conn: psycopg.AsyncConnection, selection: Selection
) -> list[dict[str, Any]]:
    """Published values (code, name, parent_code, period, value, status, moe) in code and
    period order; a suppressed value is null with status `suppressed`."""
    statement, params = _published_sql(selection)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(statement, params)
        return await cur.fetchall()


async def published_values_withheld(
    conn: psycopg.AsyncConnection, selection: Selection, withheld_from: Sequence[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """`published_values` and, read by the same statement (one snapshot, one round trip),
    which of `withheld_from` are withheld while their protection is recomputed."""
    statement, params = _published_sql(selection)
    params["withheld_from"] = sorted(set(withheld_from))
    # (one row even when no value is selected: the flag comes with it)
    wrapped = sql.SQL(
        "SELECT r.*, w.withheld FROM (SELECT array_agg(p.indicator ORDER BY p.indicator)"
        " AS withheld FROM disclosure_pending p WHERE p.indicator = ANY(%(withheld_from)s)) w"
        " LEFT JOIN LATERAL ({}) r ON true ORDER BY r.code, r.period"
    ).format(statement)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(wrapped, params)
        rows = await cur.fetchall()
    withheld = list(rows[0]["withheld"] or []) if rows else []
    for row in rows:
        del row["withheld"]
    return [row for row in rows if row["code"] is not None], withheld


def published_values_sync(conn: psycopg.Connection, selection: Selection) -> list[dict[str, Any]]:
    """`published_values` for the loaders' (blocking) connections."""
    statement, params = _published_sql(selection)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(statement, params).fetchall()


# ---- the protection engine (indicators/protect.py) and its audit ----
#
# Raw values leave these functions only for the engine, which decides what is hidden; they
# are never served.

PROTECTION_LOCK = "geo_service.suppression"


def lock_protection(conn: psycopg.Connection) -> None:
    """One protection (and write to what it reads) at a time, until the transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (PROTECTION_LOCK,))


def pending_indicators(conn: psycopg.Connection) -> list[str]:
    """Indicators withheld until they are protected again."""
    return [r[0] for r in conn.execute("SELECT indicator FROM disclosure_pending ORDER BY 1")]


async def withheld_indicators(conn: psycopg.AsyncConnection, codes: Sequence[str]) -> list[str]:
    """Of `codes`, the indicators `published_value` withholds while their protection is
    recomputed (marked pending by a write; the running service protects them in seconds)."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT indicator FROM disclosure_pending WHERE indicator = ANY(%s) ORDER BY 1",
            (list(codes),),
        )
        return [r[0] for r in await cur.fetchall()]


def linked_indicators(conn: psycopg.Connection, codes: Sequence[str]) -> list[str]:
    """The indicators linked to `codes` by any rule or relation (them included)."""
    row = conn.execute("SELECT disclosure_component(%s::text[])", (list(codes),)).fetchone()
    return sorted(row[0]) if row else []


def indicators_with_values(conn: psycopg.Connection) -> list[str]:
    """Every indicator that has values."""
    return [r[0] for r in conn.execute("SELECT DISTINCT indicator FROM indicator_value")]


def rules_of(conn: psycopg.Connection, codes: Sequence[str]) -> list[dict[str, Any]]:
    """The disclosure rules and links of the indicators."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT code, kind, numerator, denominator, multiplier, suppress_below,"
            " disclosure_basis, period_aggregation, denominator_period, protection_lower,"
            " protection_upper, protection_absolute, relation_tolerance"
            " FROM indicator WHERE code = ANY(%s) ORDER BY code",
            (list(codes),),
        ).fetchall()


def breakdowns_of(conn: psycopg.Connection, codes: Sequence[str]) -> list[Row]:
    """(total, breakdown, part) of the breakdowns whose total is one of `codes`."""
    return conn.execute(
        "SELECT total, breakdown, part FROM indicator_breakdown WHERE total = ANY(%s)"
        " ORDER BY total, breakdown, part",
        (list(codes),),
    ).fetchall()


def all_breakdowns(conn: psycopg.Connection) -> list[Row]:
    """(total, breakdown, part) of every declared breakdown."""
    return conn.execute(
        "SELECT total, breakdown, part FROM indicator_breakdown ORDER BY total, breakdown, part"
    ).fetchall()


def replace_breakdowns(
    conn: psycopg.Connection, total: str, parts: Sequence[Sequence[str]]
) -> None:
    """Declare the breakdowns of a total (replacing what was declared)."""
    current = [
        tuple(r[1:])
        for r in conn.execute(
            "SELECT total, breakdown, part FROM indicator_breakdown WHERE total = %s"
            " ORDER BY breakdown, part",
            (total,),
        )
    ]
    wanted = [(n, p) for n, group in enumerate(parts, start=1) for p in sorted(group)]
    if current == wanted:
        return  # (unchanged: no needless protection)
    conn.execute("DELETE FROM indicator_breakdown WHERE total = %s", (total,))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO indicator_breakdown (total, breakdown, part) VALUES (%s, %s, %s)",
            [(total, n, p) for n, p in wanted],
        )


def raw_cells(conn: psycopg.Connection, codes: Sequence[str]) -> list[Row]:
    """(indicator, vintage, level, code, period, value, status) of every stored cell of the
    indicators: for the protection engine and its audit only."""
    with conn.cursor(binary=True) as cur:
        return cur.execute(
            "SELECT indicator, vintage, level, code, period, value, status FROM indicator_value"
            " WHERE indicator = ANY(%s)",
            (list(codes),),
        ).fetchall()


def cell_blocks(conn: psycopg.Connection, codes: Sequence[str]) -> list[Row]:
    """(indicator, vintage, level, period, codes, values, statuses) of every stored cell of
    the indicators, one row per series and period: for the protection engine only (an array
    per column is several times quicker to read than a row per cell; the three aggregates
    see a group's rows in the same order)."""
    with conn.cursor(binary=True) as cur:
        return cur.execute(
            "SELECT indicator, vintage, level, period, array_agg(code), array_agg(value),"
            " array_agg(status) FROM indicator_value WHERE indicator = ANY(%s)"
            " GROUP BY indicator, vintage, level, period",
            (list(codes),),
        ).fetchall()


def served_hidden(conn: psycopg.Connection, codes: Sequence[str]) -> list[Row]:
    """(indicator, vintage, level, code, period) of every cell served as suppressed."""
    return conn.execute(
        "SELECT indicator, vintage, level, code, period FROM published_value"
        " WHERE indicator = ANY(%s) AND status = 'suppressed'",
        (list(codes),),
    ).fetchall()


def units_of(conn: psycopg.Connection, vintages: Sequence[str]) -> list[Row]:
    """(vintage, level, code, parent_code) of every unit of the vintages."""
    return conn.execute(
        "SELECT vintage, level, code, parent_code FROM admin_unit WHERE vintage = ANY(%s)",
        (list(vintages),),
    ).fetchall()


def level_ranks(conn: psycopg.Connection) -> dict[str, int]:
    """level → rank (1 = top)."""
    return {r[0]: int(r[1]) for r in conn.execute("SELECT id, rank FROM admin_level")}


def crosswalks_between(conn: psycopg.Connection, vintages: Sequence[str]) -> list[dict[str, Any]]:
    """Every crosswalk link between two of the vintages."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT from_vintage, from_level, from_code, to_vintage, to_level, to_code,"
            " relation, area_share, population_share FROM crosswalk"
            " WHERE from_vintage = ANY(%(v)s) AND to_vintage = ANY(%(v)s)",
            {"v": list(vintages)},
        ).fetchall()


def series_of(conn: psycopg.Connection, codes: Sequence[str]) -> list[Row]:
    """(indicator, vintage, level, derivation) of the indicators' series."""
    return conn.execute(
        "SELECT indicator, vintage, level, derivation FROM indicator_series"
        " WHERE indicator = ANY(%s)",
        (list(codes),),
    ).fetchall()


def stored_intervals(conn: psycopg.Connection, codes: Sequence[str]) -> list[Row]:
    """(indicator, vintage, level, code, period, lower, upper, component) the last protection
    found for the indicators' hidden cells."""
    return conn.execute(
        "SELECT indicator, vintage, level, code, period, lower, upper, component"
        " FROM disclosure_audit WHERE indicator = ANY(%s)",
        (list(codes),),
    ).fetchall()


def stored_hidden(conn: psycopg.Connection, codes: Sequence[str]) -> set[tuple[str, ...]]:
    """The hidden cells of the indicators as last stored."""
    return {
        tuple(r)
        for r in conn.execute(
            "SELECT indicator, vintage, level, code, period FROM suppressed_value"
            " WHERE indicator = ANY(%s)",
            (list(codes),),
        )
    }


def stored_reasons(conn: psycopg.Connection, codes: Sequence[str]) -> list[Row]:
    """(indicator, vintage, level, code, period, reason) of the indicators' hidden cells as
    last stored."""
    return conn.execute(
        "SELECT indicator, vintage, level, code, period, reason FROM suppressed_value"
        " WHERE indicator = ANY(%s)",
        (list(codes),),
    ).fetchall()


def stored_interval_rows(conn: psycopg.Connection, codes: Sequence[str]) -> list[Row]:
    """Every column of the indicators' rows in `disclosure_audit`."""
    return conn.execute(
        "SELECT indicator, vintage, level, code, period, value, lower, upper, required_lower,"
        " required_upper, component FROM disclosure_audit WHERE indicator = ANY(%s)",
        (list(codes),),
    ).fetchall()


def _delete_keys(conn: psycopg.Connection, table: str, keys: Sequence[Sequence[str]]) -> None:
    """Delete the rows of `table` (a literal name from this module) with these cell keys."""
    if not keys:
        return
    conn.execute(
        sql.SQL(
            "DELETE FROM {} t USING unnest(%s::text[], %s::text[], %s::text[], %s::text[],"
            " %s::text[]) AS d(indicator, vintage, level, code, period)"
            " WHERE (t.indicator, t.vintage, t.level, t.code, t.period)"
            " = (d.indicator, d.vintage, d.level, d.code, d.period)"
        ).format(sql.Identifier(table)),
        [[k[i] for k in keys] for i in range(5)],
    )


def update_protection(
    conn: psycopg.Connection,
    codes: Sequence[str],
    unhidden: Sequence[Sequence[str]],
    hidden: Iterable[tuple[str, str, str, str, str, str]],
    stale_intervals: Sequence[Sequence[str]],
    intervals: Iterable[tuple[Any, ...]],
) -> None:
    """Change the stored protection of the indicators by what differs (cells no longer
    hidden or hidden for another reason, cells newly hidden with their reason; audit rows
    gone or changed, and their new rows), and serve them again (no longer pending)."""
    _delete_keys(conn, "suppressed_value", unhidden)
    with conn.cursor().copy(
        "COPY suppressed_value (indicator, vintage, level, code, period, reason) FROM STDIN"
    ) as copy:
        for row in hidden:
            copy.write_row(row)
    _delete_keys(conn, "disclosure_audit", stale_intervals)
    with conn.cursor().copy(
        "COPY disclosure_audit (indicator, vintage, level, code, period, value, lower, upper,"
        " required_lower, required_upper, component) FROM STDIN"
    ) as copy:
        for row in intervals:
            copy.write_row(row)
    conn.execute("DELETE FROM disclosure_pending WHERE indicator = ANY(%s)", (list(codes),))


def structure_fingerprint(
    conn: psycopg.Connection, codes: Sequence[str], vintages: Sequence[str]
) -> str:
    """A hash of what the structure of the indicators' linked table is built from, besides
    which cells exist: their rules and breakdowns, the units and crosswalks of the vintages,
    the level ranks and the series' derivations (each row as its text, NULLs included; the
    many rows of units and crosswalks as two sums of 64-bit hashes, which need no sort)."""
    row = conn.execute(
        "SELECT md5(ARRAY["
        " (SELECT string_agg(i::text, ';' ORDER BY i.code) FROM (SELECT code, kind, numerator,"
        "  denominator, multiplier, suppress_below, disclosure_basis, period_aggregation,"
        "  denominator_period, protection_lower, protection_upper, protection_absolute,"
        "  relation_tolerance FROM indicator WHERE code = ANY(%(codes)s)) i),"
        " (SELECT string_agg(b::text, ';' ORDER BY b.total, b.breakdown, b.part)"
        "  FROM indicator_breakdown b WHERE b.total = ANY(%(codes)s)),"
        " (SELECT string_agg(l::text, ';' ORDER BY l.id) FROM (SELECT id, rank"
        "  FROM admin_level) l),"
        " (SELECT string_agg(s::text, ';' ORDER BY s.indicator, s.vintage, s.level)"
        "  FROM (SELECT indicator, vintage, level, derivation FROM indicator_series"
        "  WHERE indicator = ANY(%(codes)s)) s),"
        " (SELECT concat_ws(',', count(*), sum(hashtextextended(u::text, 0)),"
        "  sum(hashtextextended(u::text, 1))) FROM (SELECT vintage, level, code, parent_code"
        "  FROM admin_unit WHERE vintage = ANY(%(v)s)) u),"
        " (SELECT concat_ws(',', count(*), sum(hashtextextended(c::text, 0)),"
        "  sum(hashtextextended(c::text, 1))) FROM (SELECT from_vintage, from_level,"
        "  from_code, to_vintage, to_level, to_code, area_share, population_share"
        "  FROM crosswalk WHERE from_vintage = ANY(%(v)s) AND to_vintage = ANY(%(v)s)) c)"
        "]::text)",
        {"codes": list(codes), "v": list(vintages)},
    ).fetchone()
    return str(row[0]) if row else ""


def record_collection_changes(conn: psycopg.Connection, collections: Iterable[str]) -> None:
    """Tell the tile caches that these collections' values changed."""
    for layer in sorted(set(collections)):
        conn.execute("SELECT record_tile_change(%s, NULL, 'suppression')", (layer,))


async def cell_key_values(
    conn: psycopg.AsyncConnection,
    selection: Selection,
    noise: int,
) -> list[dict[str, Any]]:
    """(code, value, status, perturbed) of the selected units for one period: published
    values as published, hidden ones perturbed by their fixed cell key (see migration 0011)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT code, value, status, perturbed FROM cell_key_values(%s, %s, %s, %s, %s, %s)",
            (
                selection.indicator,
                selection.vintage,
                selection.level,
                selection.period,
                selection.codes or [],
                noise,
            ),
        )
        return await cur.fetchall()


def counts_beside(conn: psycopg.Connection, codes: Sequence[str], limit: int = 40) -> list[str]:
    """Counts with values on a (vintage, level) where one of `codes` has values (the codes
    that are counts included): where an undeclared relation could hide."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT s.indicator FROM indicator_series s JOIN indicator i"
            " ON i.code = s.indicator WHERE i.kind = 'count' AND (s.vintage, s.level) IN"
            " (SELECT vintage, level FROM indicator_series WHERE indicator = ANY(%s))"
            " ORDER BY 1 LIMIT %s",
            (list(codes), limit),
        )
    ]


async def series_catalogue(conn: psycopg.AsyncConnection) -> list[dict[str, Any]]:
    """Every series over loaded units with its indicator's catalogue entry (both languages),
    its periods, how it was derived and when it was last loaded, newest vintage first."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT s.vintage, s.level, i.code, i.name_vi, i.name_en, i.kind, i.unit, i.unit_vi,"
            " i.decimals, i.description, i.description_vi, i.source, i.source_vi, i.licence,"
            " i.licence_vi, s.derivation, s.loaded_at,"
            " array(SELECT DISTINCT period FROM indicator_value v WHERE v.indicator = s.indicator"
            "       AND v.vintage = s.vintage AND v.level = s.level ORDER BY period) AS periods"
            " FROM indicator_series s JOIN indicator i ON i.code = s.indicator"
            " JOIN vintage t ON t.id = s.vintage"
            " WHERE EXISTS (SELECT 1 FROM admin_unit u WHERE u.vintage = s.vintage"
            "               AND u.level = s.level)"
            " ORDER BY t.valid_from DESC, s.vintage DESC, s.level, i.code"
        )
        return await cur.fetchall()

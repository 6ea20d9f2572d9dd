"""Load indicator values from CSV/Excel (long or wide), checked first, written all or nothing."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg

from boundaries import sql as units
from geo_core.errors import LoaderError
from geo_core.text import as_code
from indicators import sql

STATUSES = ("ok", "provisional", "suppressed", "not_available")
PERIOD = re.compile(r"\d{4}(-(\d{2}(-\d{2})?|Q[1-4]))?", re.ASCII)


@dataclass(frozen=True)
class ValueRow:
    """One value to store; `line` is where it came from (for messages)."""

    line: str
    code: str
    period: str
    value: float | None
    status: str
    moe: float | None = None


@dataclass
class ValueFormat:
    """How to read a table: which columns hold what."""

    code_column: str
    period: str | None = None  # one period for the whole file
    period_column: str | None = None  # long format
    value_column: str | None = None  # long format
    wide: bool = False  # one column per period (columns named like 2019)
    status_column: str | None = None
    moe_column: str | None = None
    na_values: tuple[str, ...] = ()  # extra tokens meaning "not available", e.g. ".."
    sheet: str | None = None


@dataclass
class LoadResult:
    """What a values load did."""

    loaded: int = 0
    not_available: int = 0
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what a reader of the result must know


def read_table(path: Path, sheet: str | None = None, encoding: str | None = None) -> pd.DataFrame:
    """Read CSV or Excel as text cells (nothing is converted or dropped on the way); column
    names are text (an Excel year header 2019 is "2019")."""
    if not path.exists():
        raise LoaderError(f"{path}: no such file")
    if path.suffix.lower() in (".xlsx", ".xlsm", ".xls"):
        frame = _read_excel(path, sheet)
    else:
        frame = _read_csv(path, encoding)
    frame.columns = [_header(c) for c in frame.columns]
    return frame


def _read_excel(path: Path, sheet: str | None) -> pd.DataFrame:
    sheets = [str(name) for name in pd.ExcelFile(path).sheet_names]
    if sheet is None and len(sheets) > 1:
        raise LoaderError(
            f"{path} has {len(sheets)} sheets: {', '.join(sheets)}; say which with --sheet",
            parameter="--sheet",
        )
    try:
        return pd.read_excel(path, sheet_name=sheet or 0, dtype=str).fillna("")
    except ValueError as exc:
        raise LoaderError(f"{path}: {exc}", parameter="--sheet") from exc


def _read_csv(path: Path, encoding: str | None) -> pd.DataFrame:
    if encoding is None:
        start = path.open("rb").read(2)
        encoding = "utf-16" if start in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
    except LookupError as exc:
        raise LoaderError(f"unknown --encoding {encoding!r}", parameter="--encoding") from exc
    except UnicodeDecodeError as exc:
        raise LoaderError(
            f"{path} is not {encoding} text ({exc.reason} at byte {exc.start}); "
            "pass --encoding (e.g. cp1258, utf-16)",
            parameter="--encoding",
        ) from exc


def _header(name: object) -> str:
    if isinstance(name, float) and name.is_integer():
        return str(int(name))
    return str(name).strip()


def _require_columns(frame: pd.DataFrame, fmt: ValueFormat, path: str) -> None:
    wanted = {
        "--code-column": fmt.code_column,
        "--period-column": fmt.period_column,
        "--value-column": fmt.value_column,
        "--status-column": fmt.status_column,
        "--moe-column": fmt.moe_column,
    }
    missing = [
        f"{option} {name!r}"
        for option, name in wanted.items()
        if name and name not in frame.columns
    ]
    if missing:
        raise LoaderError(
            f"{path}: no column {', '.join(missing)}; columns are: "
            f"{', '.join(map(str, frame.columns))}",
            parameter="columns",
        )
    if not fmt.wide and not fmt.value_column:
        raise LoaderError("give --value-column (long format) or --wide", parameter="--wide")
    if not fmt.wide and not (fmt.period or fmt.period_column):
        raise LoaderError("give --period or --period-column", parameter="--period")


# What a number cell may hold: digits with an optional sign, decimal point and exponent
# (float() would also take "1_000", "١٢" and "inf").
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)


def _number(
    text: str, where: str, column: str, fmt: ValueFormat, problems: list[str]
) -> float | None:
    cell = text.strip()
    if cell == "" or cell in fmt.na_values:
        return None
    if not _PLAIN_NUMBER.fullmatch(cell):
        hint = ""
        if re.fullmatch(r"-?\d{1,3}(\.\d{3}){2,}(,\d+)?", cell):
            hint = (
                " (if '.' separates thousands, as in Vietnamese, remove the dots — and "
                "check values such as 854.679, which read as decimals)"
            )
        problems.append(f"{where}, column {column!r}: {cell!r} is not a number{hint}")
        return None
    value = float(cell)
    if not math.isfinite(value):
        problems.append(f"{where}, column {column!r}: {cell!r} is not a finite number")
        return None
    return value


def _cells(frame: pd.DataFrame, fmt: ValueFormat) -> Iterable[tuple[int, dict[Any, Any], str, str]]:
    """(row number, row, period, value column) for every value cell of the table."""
    period_columns = [c for c in frame.columns if PERIOD.fullmatch(str(c).strip())]
    for index, row in enumerate(frame.to_dict("records")):
        line = index + 2  # header is line 1
        if fmt.wide:
            for column in period_columns:
                yield line, row, str(column).strip(), str(column)
        else:
            period = fmt.period or str(row[fmt.period_column]).strip()
            yield line, row, period, str(fmt.value_column)


def is_period(text: str) -> bool:
    """YYYY, YYYY-Qn, or a real month or day: 2019-13 is not a period."""
    if not PERIOD.fullmatch(text):
        return False
    if "Q" in text:
        return True
    try:
        date.fromisoformat(
            text if len(text) == 10 else f"{text}-01" if len(text) == 7 else f"{text}-01-01"
        )
    except ValueError:
        return False
    return True


def parse_values(
    frame: pd.DataFrame, fmt: ValueFormat, source: str
) -> tuple[list[ValueRow], list[str]]:
    """Turn a table into value rows; report every problem with row and column."""
    _require_columns(frame, fmt, source)
    if fmt.wide and not any(PERIOD.fullmatch(str(c).strip()) for c in frame.columns):
        raise LoaderError(
            f"{source}: --wide needs period columns named like 2019", parameter="--wide"
        )
    # (pandas renames a second "2019" column "2019.1")
    twice = sorted(
        {
            str(c).split(".")[0]
            for c in frame.columns
            if re.fullmatch(r"\d{4}(-\d{2}){0,2}\.\d+", str(c))
        }
    )
    if fmt.wide and twice:
        raise LoaderError(
            f"{source}: period column(s) {', '.join(twice)} appear more than once",
            parameter="--wide",
        )
    rows: list[ValueRow] = []
    problems: list[str] = []
    for line, row, period, column in _cells(frame, fmt):
        where = f"{source}: row {line}"
        code = as_code(row[fmt.code_column])
        if code is None:
            problems.append(f"{where}, column {fmt.code_column!r}: no unit code")
            continue
        if not is_period(period):
            problems.append(
                f"{where}: period {period!r} is not YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD"
            )
            continue
        known_problems = len(problems)
        value = _number(str(row[column]), where, column, fmt, problems)
        moe = (
            _number(str(row[fmt.moe_column]), where, fmt.moe_column, fmt, problems)
            if fmt.moe_column
            else None
        )
        if moe is not None and moe < 0:
            problems.append(
                f"{where}, column {fmt.moe_column!r}: a margin of error cannot be "
                f"negative ({moe:g})"
            )
        if len(problems) > known_problems:
            continue
        status = str(row[fmt.status_column]).strip() if fmt.status_column else ""
        if status and status not in STATUSES:
            problems.append(
                f"{where}, column {fmt.status_column!r}: status {status!r} is not "
                f"one of {', '.join(STATUSES)}"
            )
            continue
        status = status or ("ok" if value is not None else "not_available")
        if status in ("ok", "provisional") and value is None:
            problems.append(f"{where}: status {status} needs a value")
            continue
        if status == "not_available":
            value = None
        rows.append(ValueRow(f"{where}", code, period, value, status, moe))
    return rows, problems


def _unknown_codes(
    conn: psycopg.Connection, rows: list[ValueRow], vintage: str, level: str
) -> dict[str, str]:
    """code → reason, for codes that are not units of (vintage, level)."""
    codes = sorted({r.code for r in rows})
    known = units.known_codes(conn, vintage, level, codes)
    unknown = [c for c in codes if c not in known]
    elsewhere: dict[str, list[str]] = {}
    for code, other in units.vintages_of_codes(conn, level, unknown, vintage):
        elsewhere.setdefault(code, []).append(other)
    return {
        code: (
            f"{level} {code} exists only in vintage {', '.join(elsewhere[code])}, not in {vintage}"
            if code in elsewhere
            else f"{level} {code} is not a unit of vintage {vintage}"
        )
        for code in unknown
    }


def _duplicates(rows: list[ValueRow]) -> list[str]:
    seen: dict[tuple[str, str], str] = {}
    problems = []
    for row in rows:
        key = (row.code, row.period)
        if key in seen:
            problems.append(
                f"{row.line}: duplicate of {seen[key]} (code {row.code}, period {row.period})"
            )
        else:
            seen[key] = row.line
    return problems


def _implausible(conn: psycopg.Connection, indicator: str, rows: list[ValueRow]) -> list[str]:
    """Counts that cannot be right: negative ones."""
    if sql.kind_of(conn, indicator) != "count":
        return []
    problems = []
    for r in rows:
        if r.value is None:
            continue
        if r.value < 0:
            problems.append(f"{r.line}: a count cannot be negative ({r.value:g})")
    return problems


def _raise_problems(problems: list[str], what: str) -> None:
    shown = "\n".join(problems[:20])
    more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
    raise LoaderError(
        f"{what}: {len(problems)} problem(s), nothing was written:\n{shown}{more}", errors=problems
    )


def checked_rows(
    conn: psycopg.Connection,
    indicator: str,
    vintage: str,
    level: str,
    rows: list[ValueRow],
    skip_unknown: bool,
    what: str,
) -> tuple[list[ValueRow], LoadResult]:
    """The rows to write (unknown codes left out when `skip_unknown`) and the result so far;
    LoaderError naming every problem otherwise."""
    if sql.kind_of(conn, indicator) is None:
        raise LoaderError(
            f"unknown indicator {indicator!r}; add it to the catalogue first",
            parameter="--indicator",
        )
    result = LoadResult()
    problems = _duplicates(rows) + _implausible(conn, indicator, rows)
    unknown = _unknown_codes(conn, rows, vintage, level)
    if unknown and skip_unknown:
        result.skipped = [
            f"{r.line}: skipped, {unknown[r.code]}" for r in rows if r.code in unknown
        ]
        rows = [r for r in rows if r.code not in unknown]
    else:
        problems += [f"{r.line}: {unknown[r.code]}" for r in rows if r.code in unknown]
    if problems:
        _raise_problems(problems, what)
    return rows, result


def _series_derivation(
    conn: psycopg.Connection,
    indicator: str,
    vintage: str,
    level: str,
    periods: list[str],
    derivation: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """How the series' derived periods were made: observed values loaded for some periods
    leave the others derived (and say so), derived ones add their periods."""
    before = sql.series_derivation(conn, indicator, vintage, level)
    derived: set[str] = set()
    if before and "periods" in before:
        derived = set(before["periods"])
    elif before:  # (recorded before derivations listed their periods: all of them were)
        derived = sql.stored_periods(conn, indicator, vintage, level)
    if derivation is None:  # observed values
        left = sorted(derived - set(periods))
        return {**before, "periods": left} if before and left else None
    return {**derivation, "periods": sorted(derived | set(periods))}


def write_series(
    conn: psycopg.Connection,
    indicator: str,
    vintage: str,
    level: str,
    rows: list[ValueRow],
    replace: bool,
    derivation: dict[str, Any] | None,
) -> None:
    """Write checked rows of one series with its derivation (refused over existing periods
    unless `replace`); the caller holds the transaction."""
    periods = sorted({r.period for r in rows})
    derivation = _series_derivation(conn, indicator, vintage, level, periods, derivation)
    sql.save_series(conn, indicator, vintage, level, derivation)
    existing = sql.count_values(conn, indicator, vintage, level, periods)
    if existing:
        if not replace:
            raise LoaderError(
                f"{indicator} already has {existing} values for {level} "
                f"{vintage} in period(s) {', '.join(periods)}; pass --replace",
                parameter="--replace",
            )
        sql.delete_values(conn, indicator, vintage, level, periods)
    sql.copy_values(
        conn,
        indicator,
        vintage,
        level,
        ((r.code, r.period, r.value, r.status, r.moe) for r in rows),
    )

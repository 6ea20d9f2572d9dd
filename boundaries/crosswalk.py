"""Load an old→new crosswalk between two vintages from CSV (all or nothing)."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from boundaries import sql
from geo_core.errors import LoaderError

REQUIRED_COLUMNS = ("from_level", "from_code", "to_level", "to_code", "relation")
RELATIONS = ("whole", "partial")


@dataclass
class CrosswalkRow:
    """One old unit → new unit link."""

    line: int
    from_level: str
    from_code: str
    to_level: str
    to_code: str
    relation: str
    area_share: float | None
    population_share: float | None


@dataclass
class CrosswalkSummary:
    """What a crosswalk load did."""

    loaded: int = 0
    warnings: list[str] = field(default_factory=list)


def _share(text: str | None, line: int, column: str, errors: list[str]) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        errors.append(f"line {line}: {column} {text!r} is not a number")
        return None
    if not (math.isfinite(value) and 0 <= value <= 1):
        errors.append(f"line {line}: {column} {value} is not between 0 and 1")
        return None
    return value


def read_crosswalk(path: Path) -> tuple[list[CrosswalkRow], list[str]]:
    """Parse the CSV; return rows and the problems found (with line numbers)."""
    if not path.exists():
        raise LoaderError(f"{path}: no such file")
    errors: list[str] = []
    rows: list[CrosswalkRow] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise LoaderError(
                f"{path}: missing column(s) {', '.join(missing)}; columns are: "
                f"{', '.join(reader.fieldnames or [])}"
            )
        for line, raw in enumerate(reader, start=2):
            relation = (raw["relation"] or "").strip()
            if relation not in RELATIONS:
                errors.append(f"line {line}: relation {relation!r} is not one of {RELATIONS}")
            row = CrosswalkRow(
                line,
                raw["from_level"].strip(),
                raw["from_code"].strip(),
                raw["to_level"].strip(),
                raw["to_code"].strip(),
                relation,
                _share(raw.get("area_share"), line, "area_share", errors),
                _share(raw.get("population_share"), line, "population_share", errors),
            )
            if relation == "whole" and row.area_share is None:
                row.area_share = 1.0
            if relation == "whole" and row.area_share != 1.0:
                errors.append(f"line {line}: a whole unit must have area_share 1")
            rows.append(row)
    return rows, errors


def _consistency_problems(rows: list[CrosswalkRow]) -> tuple[list[str], list[str]]:
    """Duplicate links are errors; shares that do not add up are warnings."""
    errors, warnings = [], []
    seen: dict[tuple[str, str, str, str], int] = {}
    by_source: dict[tuple[str, str], list[CrosswalkRow]] = defaultdict(list)
    for row in rows:
        key = (row.from_level, row.from_code, row.to_level, row.to_code)
        if key in seen:
            errors.append(
                f"line {row.line}: duplicate of line {seen[key]} ({row.from_code} → {row.to_code})"
            )
        seen[key] = row.line
        by_source[(row.from_level, row.from_code)].append(row)
    for (level, code), links in sorted(by_source.items()):
        wholes = [r for r in links if r.relation == "whole"]
        if len(wholes) > 1 or (wholes and len(links) > 1):
            lines = ", ".join(str(r.line) for r in links)
            warnings.append(
                f"{level} {code} is 'whole' in one new unit but also linked to "
                f"{len(links) - 1} other(s) (lines {lines})"
            )
        for column in ("area_share", "population_share"):
            shares = [getattr(r, column) for r in links]
            if all(s is not None for s in shares) and abs(sum(shares) - 1) > 0.001:
                warnings.append(f"{level} {code}: {column} values add up to {sum(shares):.4f}")
    return errors, warnings


def _unknown_codes(
    conn: psycopg.Connection, rows: list[CrosswalkRow], side: str, vintage: str
) -> list[str]:
    """Codes missing from a (vintage, level) that has units loaded."""
    problems = []
    levels = {getattr(r, f"{side}_level") for r in rows}
    for level in sorted(levels):
        known = set(sql.unit_codes(conn, vintage, level))
        if not known:
            continue  # that level has no geometry in this vintage; nothing to check against
        for row in rows:
            code = getattr(row, f"{side}_code")
            if getattr(row, f"{side}_level") == level and code not in known:
                problems.append(
                    f"line {row.line}: {level} {code} does not exist in vintage {vintage}"
                )
    return problems


def load_crosswalk(
    conn: psycopg.Connection, path: Path, from_vintage: str, to_vintage: str, replace: bool = False
) -> CrosswalkSummary:
    """Check every row, then replace the crosswalk between the two vintages in one transaction."""
    rows, errors = read_crosswalk(path)
    more_errors, warnings = _consistency_problems(rows)
    errors += more_errors
    for vintage in (from_vintage, to_vintage):
        if not sql.vintage_exists(conn, vintage):
            raise LoaderError(f"unknown vintage {vintage!r}", parameter="--from/--to")
    errors += _unknown_codes(conn, rows, "from", from_vintage)
    errors += _unknown_codes(conn, rows, "to", to_vintage)
    if errors:
        shown = "\n".join(errors[:20]) + (
            f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        )
        raise LoaderError(
            f"{path}: {len(errors)} problem(s), nothing was written:\n{shown}", errors=errors
        )
    if sql.count_crosswalk(conn, from_vintage, to_vintage) and not replace:
        raise LoaderError(
            f"a crosswalk {from_vintage} → {to_vintage} is already loaded; pass --replace",
            parameter="--replace",
        )
    with conn.transaction():
        sql.replace_crosswalk(
            conn,
            from_vintage,
            to_vintage,
            (
                (
                    r.from_level,
                    r.from_code,
                    r.to_level,
                    r.to_code,
                    r.relation,
                    r.area_share,
                    r.population_share,
                )
                for r in rows
            ),
        )
    return CrosswalkSummary(loaded=len(rows), warnings=warnings)

"""Declared relations between indicators: checked against the loaded values, and the likely
ones nobody declared, reported.

An attacker uses every relation the values obey, declared or not; the protection engine
knows only the declared ones (and the geographic hierarchy, vintages and quotients, which
need no declaration). So a declaration the values contradict is refused, and values that
look related without a declaration are reported when they are loaded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations

import psycopg

from geo_core.errors import LoaderError
from geo_core.text import first_of
from indicators import sql
from indicators.linked import coarser_periods, sub_periods

Cell = tuple[str, str, str, str]  # (vintage, level, code, period)
MIN_CELLS = 3  # fewer common cells than this say nothing about a relation
LIKELY_SHARE = 0.9  # a relation holding on this share of the common cells is likely


def _values(conn: psycopg.Connection, codes: Sequence[str]) -> dict[str, dict[Cell, float]]:
    """indicator → cell → value (cells with a figure only)."""
    found: dict[str, dict[Cell, float]] = defaultdict(dict)
    for ind, v, lvl, c, p, value, status in sql.raw_cells(conn, codes):
        if value is not None and status in ("ok", "provisional", "suppressed"):
            found[ind][(v, lvl, c, p)] = float(value)
    return found


def _off(total: float, parts: float, tolerance: float) -> bool:
    return abs(total - parts) > tolerance + 1e-9 * max(1.0, abs(total))


def _where(cell: Cell) -> str:
    vintage, level, code, period = cell
    return f"{level} {code} ({vintage}) {period}"


def check(conn: psycopg.Connection, codes: Sequence[str]) -> None:
    """Refuse declared relations touching `codes` that the loaded values do not meet
    (beyond the total's relation_tolerance), or that join what cannot be added."""
    linked = sql.linked_indicators(conn, codes)
    rules = {r["code"]: r for r in sql.rules_of(conn, linked)}
    groups: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for total, number, part in sql.breakdowns_of(conn, linked):
        groups[total][number].append(part)
    for total, breakdowns in groups.items():
        for parts in breakdowns.values():
            not_counts = [c for c in (total, *parts) if rules[c]["kind"] != "count"]
            if not_counts:
                raise LoaderError(
                    f"{total} = {' + '.join(parts)}: {', '.join(not_counts)} "
                    "cannot be added (not counts)",
                    indicator=total,
                )
    values = _values(conn, linked)
    for total, breakdowns in groups.items():
        tolerance = float(rules[total]["relation_tolerance"] or 0.0)
        for parts in breakdowns.values():
            problems = [
                f"{_where(cell)}: {value:g} ≠ {' + '.join(f'{values[p][cell]:g}' for p in parts)}"
                for cell, value in sorted(values[total].items())
                if all(cell in values[p] for p in parts)
                and _off(value, sum(values[p][cell] for p in parts), tolerance)
            ]
            if problems:
                raise LoaderError(
                    f"{total} = {' + '.join(parts)} does not hold in the loaded values "
                    f"(tolerance {tolerance:g}) for {len(problems)} cell(s): "
                    f"{first_of(problems, 5)}",
                    indicator=total,
                    errors=problems,
                )
    for code in linked:
        if rules[code]["period_aggregation"] == "sum":
            _check_periods(code, values[code], float(rules[code]["relation_tolerance"] or 0.0))


def _check_periods(code: str, values: dict[Cell, float], tolerance: float) -> None:
    problems = []
    for (v, lvl, c, p), value in sorted(values.items()):
        for group in sub_periods(p):
            cells = [(v, lvl, c, q) for q in group]
            if all(cell in values for cell in cells):
                added = sum(values[cell] for cell in cells)
                if _off(value, added, tolerance):
                    problems.append(
                        f"{_where((v, lvl, c, p))}: {value:g} ≠ {added:g} ({group[0]}…)"
                    )
    if problems:
        raise LoaderError(
            f"{code}: periods do not add up (period_aggregation sum, tolerance {tolerance:g}) "
            f"for {len(problems)} cell(s): {first_of(problems, 5)}",
            indicator=code,
            errors=problems,
        )


def breakdown_loop(conn: psycopg.Connection) -> list[str] | None:
    """A loop of breakdowns (a is part of b, which is part of a), as the codes along it."""
    parts: dict[str, list[str]] = defaultdict(list)
    for total, _, part in sql.all_breakdowns(conn):
        parts[total].append(part)
    state: dict[str, str] = {}

    def visit(code: str, chain: list[str]) -> list[str] | None:
        if state.get(code) == "done":
            return None
        if state.get(code) == "visiting":
            return [*chain[chain.index(code) :], code]
        state[code] = "visiting"
        for part in parts.get(code, []):
            if (loop := visit(part, [*chain, code])) is not None:
                return loop
        state[code] = "done"
        return None

    for total in list(parts):
        if (loop := visit(total, [])) is not None:
            return loop
    return None


def likely_undeclared(conn: psycopg.Connection, codes: Sequence[str]) -> list[str]:
    """Relations the values of `codes` obey that nobody declared: a count equal to the sum
    of two others, yearly and finer periods of a count without period_aggregation."""
    counts = sql.counts_beside(conn, codes)
    if not counts:
        return []
    rules = {r["code"]: r for r in sql.rules_of(conn, counts)}
    declared = {
        (total, frozenset(parts))
        for total, groups in _declared(conn, counts).items()
        for parts in groups
    }
    values = _values(conn, counts)
    warnings = []
    for total in counts:
        for a, b in combinations([c for c in counts if c != total], 2):
            if total not in codes and a not in codes and b not in codes:
                continue
            if (total, frozenset((a, b))) in declared:
                continue
            common = values[total].keys() & values[a].keys() & values[b].keys()
            if len(common) < MIN_CELLS:
                continue
            tolerance = float(rules[total]["relation_tolerance"] or 0.0)
            held = sum(
                not _off(values[total][k], values[a][k] + values[b][k], tolerance) for k in common
            )
            if held >= LIKELY_SHARE * len(common):
                warnings.append(
                    f"{total} = {a} + {b} in {held} of {len(common)} cells, but no such "
                    f"breakdown is declared: declare it (sum_of) so that disclosure control "
                    f"protects it; an attacker will use it either way"
                )
    for code in counts:
        if code in codes and rules[code]["period_aggregation"] is None:
            warning = _undeclared_periods(code, values[code])
            if warning:
                warnings.append(warning)
    return warnings


def _declared(conn: psycopg.Connection, codes: Sequence[str]) -> dict[str, list[list[str]]]:
    groups: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for total, number, part in sql.breakdowns_of(conn, codes):
        groups[total][number].append(part)
    return {t: list(g.values()) for t, g in groups.items()}


def _undeclared_periods(code: str, values: dict[Cell, float]) -> str | None:
    periods = {cell[3] for cell in values}
    nested = sorted(p for p in periods if any(c in periods for c in coarser_periods(p)))
    if not nested:
        return None
    return (
        f"{code} has values for periods inside other periods ({first_of(nested, 3)}) "
        "but no period_aggregation: if they add up, declare period_aggregation=sum so "
        "that disclosure control protects the sums; an attacker will use them either way"
    )

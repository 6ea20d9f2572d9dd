"""Disclosure control of linked tables: choose the hidden cells and prove them safe.

For each group of linked indicators (see `indicators.linked`): primary cells come from the
rules; quotients follow the cells they are computed from; an equation with a single hidden
cell gets its cheapest published cell hidden too; then every primary cell's attainable
interval is computed by linear programming over all equations (`indicators.intervals`) and,
while one is narrower than its required protection, the cheapest published cell in an
equation with it that can absorb the required change is hidden, and the audit runs again.

`refresh` protects what the database marked pending (every write marks the indicators it
touches, and `published_value` withholds them until then); the loaders call it in their own
transaction. `audit` recomputes the intervals of what is served, independently of what the
last protection stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from indicators import sql
from indicators.intervals import Intervals
from indicators.linked import Key, Link, LinkedTable, Rule, Series, build

MAX_ROUNDS = 500  # each round hides at least one more cell, so this only bounds the work
TOLERANCE = 1e-6


@dataclass
class Interval:
    """A hidden cell's attainable interval against its required protection."""

    value: float
    lower: float
    upper: float
    required_lower: float
    required_upper: float
    component: str

    @property
    def met(self) -> bool:
        """Whether an attacker cannot narrow the cell below its protection range."""
        slack = TOLERANCE * max(1.0, abs(self.value))
        if np.isnan(self.lower) or np.isnan(self.upper):
            return False
        return self.lower <= self.required_lower + slack and self.upper >= (
            self.required_upper - slack
        )


@dataclass
class Pattern:
    """Which cells are hidden, why, and what an attacker can deduce about each primary one."""

    hidden: np.ndarray
    reason: dict[int, str] = field(default_factory=dict)
    intervals: dict[int, Interval] = field(default_factory=dict)
    revealed: dict[int, str] = field(default_factory=dict)  # cell → how it comes back

    @property
    def failing(self) -> list[int]:
        """Hidden cells below their protection range, or given back by a quotient."""
        return sorted({i for i, iv in self.intervals.items() if not iv.met} | set(self.revealed))


# ---- the pattern ----


def choose_pattern(
    table: LinkedTable,
    solver: Intervals,
    cache: dict[str, dict[Key, tuple[float, float]]],
    start: dict[int, str] | None = None,
) -> Pattern:
    """Hide cells until every primary cell meets its protection range (or nothing is left to
    hide that would help), starting from the primary cells and those of `start` (the last
    pattern: an edit then re-solves only what it changed)."""
    hidden = np.zeros(table.n_cells + table.n_pieces, dtype=bool)
    hidden[: table.n_cells] = table.primary
    pattern = Pattern(hidden, {int(i): "primary" for i in np.flatnonzero(table.primary)})
    for var, reason in (start or {}).items():
        if table.known[var] or table.status[var] == "suppressed":
            _hide(pattern, var, "complementary" if reason == "primary" else reason)
    for _ in range(MAX_ROUNDS):
        if _follow_quotients(table, pattern) or _close_exposed(table, pattern):
            continue
        pattern.intervals = attainable(table, hidden, solver, cache)
        failing = pattern.failing
        if not failing or not _complement(table, pattern, failing):
            break
    return pattern


def _hide(pattern: Pattern, var: int, reason: str) -> None:
    pattern.hidden[var] = True
    pattern.reason.setdefault(var, reason)


def _published(table: LinkedTable, hidden: np.ndarray) -> np.ndarray:
    return table.known & ~hidden


def _follow_quotients(table: LinkedTable, pattern: Pattern) -> bool:
    """A quotient whose source is hidden (or missing, where a rule applies) is hidden; a
    hidden quotient whose sources are all published hides its cheapest numerator."""
    quotient, source, missing_hides = table.source_pairs
    if not len(quotient):
        return False
    hidden, value = pattern.hidden, table.value
    gone = hidden[source] | (missing_hides & table.no_figure[source])
    to_hide = np.unique(quotient[gone & ~hidden[quotient]])
    for q in to_hide.tolist():
        _hide(pattern, q, "inherited")
    unseen_source = np.zeros(len(hidden), dtype=bool)
    unseen_source[quotient[hidden[source] | np.isnan(value[source])]] = True
    changed = bool(len(to_hide))
    for q in np.flatnonzero(hidden[: table.n_cells] & ~unseen_source[: table.n_cells]).tolist():
        sources = table.quotients.get(q)
        if sources is None:
            continue
        numerators = [n for n in sources.numerators if not np.isnan(value[n])]
        if numerators:
            _hide(pattern, min(numerators, key=lambda n: (value[n], table.keys[n])), "inherited")
            changed = True
    return changed


def _close_exposed(table: LinkedTable, pattern: Pattern) -> bool:
    """An equation whose terms are all published but one hidden gives that one back: its
    cheapest published term is hidden with it."""
    matrix = table.equations
    if matrix.shape[0] == 0:
        return False
    hidden = pattern.hidden
    unknown = ~table.known & ~hidden
    n_hidden = table.incidence @ hidden.astype(float)
    n_unknown = table.incidence @ unknown.astype(float)
    changed = False
    for row in np.flatnonzero((n_hidden == 1) & (n_unknown == 0)):
        terms = matrix.indices[matrix.indptr[row] : matrix.indptr[row + 1]]
        if hidden[terms].sum() != 1 or unknown[terms].any():
            continue  # (an earlier fix in this pass changed it)
        candidates = [int(t) for t in terms if not hidden[t]]
        if candidates:
            best = min(candidates, key=lambda t: (table.value[t], table.keys[t]))
            _hide(pattern, best, "complementary")
            changed = True
    return changed


def _complement(table: LinkedTable, pattern: Pattern, failing: list[int]) -> bool:
    """For each cell below its protection range, hide the cheapest published cell of an
    equation with it that can absorb the required change (else the largest); when every
    cell of its equations is hidden already, look one equation further."""
    published = _published(table, pattern.hidden)
    chosen: set[int] = set()
    for var in failing:
        candidates = sorted(_nearest_published(table, var, published) - chosen)
        if not candidates:
            continue
        need = 1.0
        if var in pattern.intervals:
            iv = pattern.intervals[var]
            need = max(iv.required_upper - iv.value, iv.value - iv.required_lower, 0.0)
        enough = [t for t in candidates if table.value[t] >= need]
        if enough:
            best = min(enough, key=lambda t: (table.value[t], table.keys[t]))
        else:
            best = min(candidates, key=lambda t: (-table.value[t], table.keys[t]))
        chosen.add(best)
        _hide(pattern, best, "complementary")
    return bool(chosen)


def _nearest_published(
    table: LinkedTable, var: int, published: np.ndarray, max_steps: int = 6
) -> set[int]:
    """The published cells of the equations nearest to a variable (through unseen ones)."""
    by_column = table.by_column
    rows_of = table.equations
    frontier, seen_vars = {var}, {var}
    seen_rows: set[int] = set()
    for _ in range(max_steps):
        rows = {
            int(r)
            for v in frontier
            for r in by_column.indices[by_column.indptr[v] : by_column.indptr[v + 1]]
        } - seen_rows
        if not rows:
            return set()
        seen_rows |= rows
        terms = {
            int(t) for r in rows for t in rows_of.indices[rows_of.indptr[r] : rows_of.indptr[r + 1]]
        }
        found = {t for t in terms if published[t]}
        if found:
            return found
        frontier = terms - seen_vars
        seen_vars |= frontier
    return set()


# ---- intervals ----


def attainable(
    table: LinkedTable,
    hidden: np.ndarray,
    solver: Intervals,
    cache: dict[str, dict[Key, tuple[float, float]]],
) -> dict[int, Interval]:
    """Each hidden primary cell's attainable interval, solved per connected system of the
    cells an attacker does not see (a system solved before is taken from `cache`)."""
    required = {v: r for v, r in table.required.items() if hidden[v]}
    if not required:
        return {}
    matrix = table.equations
    result = {
        v: Interval(float(table.value[v]), 0.0, float("inf"), lo, hi, "")
        for v, (lo, hi) in required.items()
    }
    if matrix.shape[0] == 0:
        return result
    published = table.known & ~hidden
    unseen = ~published
    rhs_all = -(matrix @ np.where(published, table.figures, 0.0))
    rows = np.flatnonzero(table.incidence @ unseen.astype(float) > 0)
    variables = np.flatnonzero(unseen)
    sub = matrix[rows][:, variables]
    linked = sub.copy()
    linked.data = np.ones_like(linked.data)
    _, labels = connected_components(
        sparse.bmat([[None, linked], [linked.T, None]]).tocsr(), directed=False
    )
    row_label, var_label = labels[: len(rows)], labels[len(rows) :]
    row_order = np.argsort(row_label, kind="stable")
    var_order = np.argsort(var_label, kind="stable")
    blocks = sub[row_order][:, var_order].tocsr()
    sorted_rows, sorted_vars = row_label[row_order], var_label[var_order]
    wanted = {int(var_label[np.searchsorted(variables, v)]) for v in required}
    for label in sorted(wanted):
        r0, r1 = np.searchsorted(sorted_rows, [label, label + 1])
        c0, c1 = np.searchsorted(sorted_vars, [label, label + 1])
        if r0 == r1:
            continue  # in no equation: nothing bounds it
        system = System(
            variables[var_order[c0:c1]],
            blocks[r0:r1][:, c0:c1],
            rhs_all[rows[row_order[r0:r1]]],
        )
        _solve_system(table, hidden, solver, cache, system, required, result)
    return result


@dataclass
class System:
    """One connected system of unseen cells: its variables, equations and what the
    published cells put on the right-hand side."""

    variables: np.ndarray
    matrix: sparse.csr_matrix
    published_rhs: np.ndarray


def _solve_system(
    table: LinkedTable,
    hidden: np.ndarray,
    solver: Intervals,
    cache: dict[str, dict[Key, tuple[float, float]]],
    system: System,
    required: dict[int, tuple[float, float]],
    result: dict[int, Interval],
) -> None:
    comp_vars = system.variables
    truth = np.where(table.known[comp_vars], table.figures[comp_vars], np.nan)
    local = {int(v): i for i, v in enumerate(comp_vars)}
    targets = [v for v in local if v in required]
    signature = _signature(table, comp_vars, system.matrix, truth, system.published_rhs, hidden)
    keys = [table.key_of(v) for v in targets]
    cached = cache.get(signature)
    if cached is not None and all(k in cached for k in keys):
        bounds = [cached[k] for k in keys]
    else:
        rhs = solver.right_hand_sides(system.matrix, truth, system.published_rhs)
        bounds = solver.solve(system.matrix, rhs, [local[v] for v in targets])
        cache[signature] = dict(zip(keys, bounds, strict=True))
    for var, (low, high) in zip(targets, bounds, strict=True):
        lo_req, hi_req = required[var]
        result[var] = Interval(float(table.value[var]), low, high, lo_req, hi_req, signature)


def _signature(
    table: LinkedTable,
    comp_vars: np.ndarray,
    a: sparse.csr_matrix,
    truth: np.ndarray,
    published_rhs: np.ndarray,
    hidden: np.ndarray,
) -> str:
    """What decides a system's intervals: its cells, their figures, equations and what is
    published around them."""
    digest = hashlib.sha1()
    for v in comp_vars:
        digest.update(repr((table.key_of(int(v)), bool(hidden[v]))).encode())
    digest.update(np.nan_to_num(truth, nan=-1.0).tobytes())
    coo = a.tocoo()
    digest.update(np.stack([coo.row, coo.col]).tobytes() + coo.data.tobytes())
    digest.update(np.round(np.asarray(published_rhs, dtype=float), 9).tobytes())
    return digest.hexdigest()[:20]


# ---- the database ----


@dataclass
class GroupReport:
    """What a protection did for one group of linked indicators."""

    indicators: list[str]
    cells: int
    hidden: int
    primary: int
    failing: list[str]


def refresh(conn: psycopg.Connection, *, everything: bool = False) -> list[GroupReport]:
    """Protect every pending indicator (or every one), group by group, in one transaction."""
    reports = []
    with conn.transaction():
        sql.lock_protection(conn)
        todo = sql.indicators_with_values(conn) if everything else sql.pending_indicators(conn)
        if not todo:
            return []
        solver = Intervals()
        for group in groups(conn, todo):
            reports.append(protect_group(conn, group, solver, warm=not everything))
    return reports


def groups(conn: psycopg.Connection, codes: Sequence[str]) -> list[list[str]]:
    """The groups of linked indicators the codes belong to."""
    linked = sql.linked_indicators(conn, codes)
    parent = {c: c for c in linked}

    def root(c: str) -> str:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    pairs = [
        (r["code"], ref)
        for r in sql.rules_of(conn, linked)
        for ref in (r["numerator"], r["denominator"], r["disclosure_basis"])
        if ref in parent
    ]
    pairs += [(t, p) for t, _, p in sql.breakdowns_of(conn, linked) if p in parent]
    for a, b in pairs:
        parent[root(a)] = root(b)
    found: dict[str, list[str]] = {}
    for c in linked:
        found.setdefault(root(c), []).append(c)
    return sorted(sorted(g) for g in found.values())


def load_table(conn: psycopg.Connection, codes: Sequence[str]) -> LinkedTable:
    """The linked table of a group of indicators as stored."""
    rules = {r["code"]: Rule(**r) for r in sql.rules_of(conn, codes)}
    breakdowns: dict[str, dict[int, list[str]]] = {}
    for total, number, part in sql.breakdowns_of(conn, codes):
        breakdowns.setdefault(total, {}).setdefault(number, []).append(part)
    cells = sql.raw_cells(conn, codes)
    vintages = sorted({c[1] for c in cells})
    links = [
        Link(**{k: v for k, v in r.items() if k != "relation"})
        for r in sql.crosswalks_between(conn, vintages)
    ]
    return build(
        rules,
        {t: list(b.values()) for t, b in breakdowns.items()},
        cells,
        sql.units_of(conn, vintages),
        sql.level_ranks(conn),
        links,
        [Series(*row) for row in sql.series_of(conn, codes)],
    )


def protect_group(
    conn: psycopg.Connection, codes: list[str], solver: Intervals, *, warm: bool = True
) -> GroupReport:
    """Choose and store the hidden cells of one group of linked indicators (`warm`: keeping
    the cells hidden before; otherwise from the primary cells alone)."""
    table = load_table(conn, codes)
    index = {key: i for i, key in enumerate(table.keys)}
    start: dict[int, str] = {}
    if warm:
        for ind, vintage, level, code, period, reason in sql.stored_reasons(conn, codes):
            var = index.get((ind, vintage, level, code, period))
            if var is not None:
                start[var] = reason
    cache: dict[str, dict[Key, tuple[float, float]]] = {}
    for ind, vintage, level, code, period, lower, upper, component in sql.stored_intervals(
        conn, codes
    ):
        cache.setdefault(component, {})[(ind, vintage, level, code, period)] = (lower, upper)
    pattern = choose_pattern(table, solver, cache, start)
    stored = [i for i in range(table.n_cells) if table.status[i] != "missing"]
    hidden_rows = [
        (*table.keys[i], pattern.reason.get(i, "complementary"))
        for i in stored
        if pattern.hidden[i]
    ]
    sql.save_protection(conn, codes, hidden_rows, _interval_rows(table, pattern))
    sql.record_collection_changes(conn, {f"{k[2]}-{k[1]}" for k in (table.keys[i] for i in stored)})
    return GroupReport(
        codes,
        len(stored),
        len(hidden_rows),
        int(table.primary.sum()),
        [_name(table.keys[i]) for i in pattern.failing],
    )


def _interval_rows(table: LinkedTable, pattern: Pattern) -> Iterable[tuple[Any, ...]]:
    for var, iv in sorted(pattern.intervals.items()):
        yield (
            *table.keys[var],
            iv.value,
            iv.lower,
            iv.upper,
            iv.required_lower,
            iv.required_upper,
            iv.component,
        )


def _name(key: Key) -> str:
    indicator, vintage, level, code, period = key
    return f"{indicator} {level}-{vintage} {code} {period}"


# ---- the audit of what is served ----


@dataclass
class SeriesAudit:
    """One series' hidden cells and the narrowest interval an attacker gets."""

    indicator: str
    vintage: str
    level: str
    cells: int = 0
    hidden: int = 0
    primary: int = 0
    narrowest: dict[str, Any] | None = None
    below: list[str] = field(default_factory=list)


def audit(conn: psycopg.Connection, indicators: Sequence[str] | None = None) -> list[SeriesAudit]:
    """Recompute, from the values as served, what an attacker can deduce about every hidden
    cell of the indicators' linked tables (all by default)."""
    codes = list(indicators) if indicators else sql.indicators_with_values(conn)
    solver = Intervals()
    found: dict[tuple[str, str, str], SeriesAudit] = {}
    for group in groups(conn, codes) if codes else []:
        table = load_table(conn, group)
        served = set(sql.served_hidden(conn, group))
        hidden = np.zeros(table.n_cells + table.n_pieces, dtype=bool)
        for i, key in enumerate(table.keys):
            hidden[i] = key in served
        intervals = attainable(table, hidden, solver, {})
        problems = _served_problems(table, hidden, intervals)
        for i, key in enumerate(table.keys):
            if table.status[i] == "missing" or (indicators and key[0] not in indicators):
                continue
            series = found.setdefault(key[:3], SeriesAudit(*key[:3]))
            series.cells += 1
            series.hidden += bool(hidden[i])
            series.primary += bool(table.primary[i])
            if i in problems:
                series.below.append(f"{key[3]} {key[4]}: {problems[i]}")
            if i in intervals:
                _narrowest(series, key, intervals[i])
    return [found[k] for k in sorted(found)]


def audit_at(url: str, indicators: Sequence[str] | None = None) -> list[SeriesAudit]:
    """`audit` over a connection of its own."""
    with psycopg.connect(url, autocommit=True) as conn:
        return audit(conn, indicators)


def _served_problems(
    table: LinkedTable, hidden: np.ndarray, intervals: dict[int, Interval]
) -> dict[int, str]:
    """cell → what is wrong with how it is served."""
    problems = {}
    for i in np.flatnonzero(table.primary & ~hidden[: table.n_cells]).tolist():
        problems[i] = "published although its rule hides it"
    for i, iv in intervals.items():
        if not iv.met:
            problems[i] = (
                f"value {iv.value:g} deducible within {iv.lower:g}–{iv.upper:g}, "
                f"protection needs {iv.required_lower:g}–{iv.required_upper:g}"
            )
    for q, sources in table.quotients.items():
        if np.isnan(table.value[q]):
            continue
        shown = [not hidden[s] and not np.isnan(table.value[s]) for s in sources.cells]
        if hidden[q] and all(shown):
            problems[q] = "hidden but computable from its published sources"
        elif not hidden[q] and shown.count(False) == 1:
            gone = sources.cells[shown.index(False)]
            if hidden[gone]:
                problems[gone] = f"computable from published {table.keys[q][0]} and the rest"
    return problems


def _narrowest(series: SeriesAudit, key: Key, iv: Interval) -> None:
    width = iv.upper - iv.lower
    if series.narrowest is None or width < series.narrowest["width"]:
        series.narrowest = {
            "code": key[3],
            "period": key[4],
            "value": iv.value,
            "lower": iv.lower,
            "upper": iv.upper,
            "width": width,
            "required_lower": iv.required_lower,
            "required_upper": iv.required_upper,
        }


# ---- protecting what plain SQL left pending, in a running service ----

log = logging.getLogger("geo_service.disclosure")


def refresh_at(url: str) -> list[GroupReport]:
    """`refresh` over a connection of its own."""
    with psycopg.connect(url, autocommit=True) as conn:
        return refresh(conn)


async def watch_pending(url: str, poll_seconds: float = 30.0) -> None:
    """Protect whatever is pending as soon as a write says so (NOTIFY disclosure_pending),
    and every `poll_seconds` in case a notification was missed; runs until cancelled."""
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await conn.execute("LISTEN disclosure_pending")
                while True:
                    await asyncio.to_thread(refresh_at, url)
                    notices = conn.notifies(timeout=poll_seconds, stop_after=1)
                    async for _ in notices:
                        pass
        except asyncio.CancelledError:
            raise
        except (psycopg.Error, OSError) as exc:
            log.warning("disclosure protection: %s; retrying in %s s", exc, poll_seconds)
            await asyncio.sleep(poll_seconds)

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

An edit is cheap: the table's structure (cells and equations) is kept in the process under a
hash of everything it is built from (rules, relations, units, crosswalks, derivations and
which cells exist), so only the figures are read again; a protection starts from the last
pattern; and each connected system of unseen cells is solved again only when its signature
(its cells, figures, equations and what is published around it) changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from indicators import sql
from indicators.intervals import Intervals
from indicators.linked import (
    Key,
    Link,
    LinkedTable,
    Rule,
    Series,
    Structure,
    build_structure,
    fingerprint,
    mix64,
    with_figures,
)

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
    met: bool = field(init=False)

    def __post_init__(self) -> None:
        """Whether an attacker cannot narrow the cell below its protection range."""
        slack = TOLERANCE * max(1.0, abs(self.value))
        self.met = bool(
            self.lower <= self.required_lower + slack and self.upper >= self.required_upper - slack
        )  # (nan bounds compare false: not met)


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
    exposed = hidden[quotient] & ~unseen_source[quotient]
    pick = np.flatnonzero(exposed & table.structure.numerator & ~np.isnan(value[source]))
    if not len(pick):
        return bool(len(to_hide))
    cell_keys = table.structure.cell_keys
    order = np.lexsort((cell_keys[source[pick]], value[source[pick]], quotient[pick]))
    _, first = np.unique(quotient[pick][order], return_index=True)
    for n in source[pick][order][first].tolist():
        _hide(pattern, n, "inherited")
    return True


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
            best = min(candidates, key=lambda t: (table.value[t], _order(table, t)))
            _hide(pattern, best, "complementary")
            changed = True
    return changed


def _order(table: LinkedTable, var: int) -> int:
    """Ties are broken in key order (a cell's integer key sorts as its key does)."""
    keys = table.structure.cell_keys
    return int(keys[var]) if var < len(keys) else int(keys.max(initial=0)) + var


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
    result = {
        v: Interval(float(table.value[v]), 0.0, float("inf"), lo, hi, "")
        for v, (lo, hi) in required.items()
    }
    if table.equations.shape[0] == 0:
        return result
    systems = Systems(table, hidden)
    for system in systems.of(np.fromiter(required, dtype=np.int64)):
        _solve_system(table, solver, cache, system, required, result)
    return result


_LANES = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xD1B54A32D192ED03))


class Systems:
    """The connected systems of the cells an attacker does not see, each a slice of the
    variables and equations sorted by system, with a signature: two 64-bit sums over its
    variables (what each is, whether hidden, its figure) and its equations (their terms and
    what the published cells put on their right-hand side), mixed into 128 bits. Sums need
    no order within a system, so every system's signature comes from a few array
    operations."""

    def __init__(self, table: LinkedTable, hidden: np.ndarray) -> None:
        s = table.structure
        matrix = table.equations
        n_rows, n_vars = matrix.shape
        self.table, self.hidden, self.n_rows = table, hidden, n_rows
        published = table.known & ~hidden
        unseen = ~published
        self.rhs = -(matrix @ np.where(published, table.figures, 0.0))
        row_of_term = np.repeat(np.arange(n_rows), np.diff(matrix.indptr))
        in_system = unseen[matrix.indices]
        rows, cols = row_of_term[in_system], matrix.indices[in_system]
        graph = sparse.csr_matrix(
            (np.ones(len(rows)), (rows, n_rows + cols)), shape=(n_rows + n_vars,) * 2
        )
        _, self.label = connected_components(graph, directed=False)
        self.rows = np.unique(rows)
        self.rows = self.rows[np.argsort(self.label[self.rows], kind="stable")]
        self.row_label = self.label[self.rows]
        variables = np.flatnonzero(unseen)
        self.variables = variables[np.argsort(self.label[n_rows + variables], kind="stable")]
        self.var_label = self.label[n_rows + self.variables]
        truth = table.figures[self.variables]
        self.truth = np.where(table.known[self.variables], truth, np.nan)
        bits = np.nan_to_num(self.truth, nan=-1.0).view(np.uint64)
        var_terms = mix64(
            s.variable_hashes[self.variables] ^ mix64(bits ^ mix64(hidden[self.variables] + 1))
        )
        rhs_bits = np.round(self.rhs[self.rows], 9).view(np.uint64)
        row_terms = mix64(s.equation_hashes[self.rows] ^ mix64(rhs_bits))
        self.var_sums = [np.cumsum(mix64(var_terms ^ lane), dtype=np.uint64) for lane in _LANES]
        self.row_sums = [np.cumsum(mix64(row_terms ^ lane), dtype=np.uint64) for lane in _LANES]

    def of(self, variables: np.ndarray) -> list[System]:
        """The systems the variables are in (none for a variable in no equation with another
        unseen one)."""
        labels = np.unique(self.label[self.n_rows + variables])
        r0 = np.searchsorted(self.row_label, labels)
        r1 = np.searchsorted(self.row_label, labels + 1)
        c0 = np.searchsorted(self.var_label, labels)
        c1 = np.searchsorted(self.var_label, labels + 1)
        keep = r1 > r0
        spans = [x[keep] for x in (r0, r1, c0, c1)]
        lanes = [
            _segment(var_sums, *spans[2:]) ^ mix64(_segment(row_sums, *spans[:2]) + (r1 - r0)[keep])
            for var_sums, row_sums in zip(self.var_sums, self.row_sums, strict=True)
        ]
        return [
            System(self, a, b, c, d, f"{x:016x}{y:016x}")
            for a, b, c, d, x, y in zip(*(x.tolist() for x in (*spans, *lanes)), strict=True)
        ]


def _segment(cumulative: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Sums of cumulative-sum segments [start, end) (wrapping, as the sums do)."""
    before = np.where(start > 0, cumulative[np.maximum(start - 1, 0)], np.uint64(0))
    with np.errstate(over="ignore"):
        return np.asarray(cumulative[end - 1] - before, dtype=np.uint64)


@dataclass
class System:
    """One connected system of unseen cells: spans of the sorted equations and variables,
    and its signature."""

    systems: Systems
    r0: int
    r1: int
    c0: int
    c1: int
    signature: str

    @property
    def variables(self) -> np.ndarray:
        """Its variables."""
        return self.systems.variables[self.c0 : self.c1]

    @property
    def rows(self) -> np.ndarray:
        """Its equations."""
        return self.systems.rows[self.r0 : self.r1]

    @property
    def truth(self) -> np.ndarray:
        """Its variables' figures (nan where unknown)."""
        return self.systems.truth[self.c0 : self.c1]

    @property
    def published_rhs(self) -> np.ndarray:
        """What the published cells put on its equations' right-hand sides."""
        return self.systems.rhs[self.rows]


def _solve_system(
    table: LinkedTable,
    solver: Intervals,
    cache: dict[str, dict[Key, tuple[float, float]]],
    system: System,
    required: dict[int, tuple[float, float]],
    result: dict[int, Interval],
) -> None:
    local = {int(v): i for i, v in enumerate(system.variables)}
    targets = [v for v in local if v in required]
    keys = [table.key_of(v) for v in targets]
    cached = cache.get(system.signature)
    if cached is not None and all(k in cached for k in keys):
        bounds = [cached[k] for k in keys]
    else:
        matrix = table.equations[system.rows][:, system.variables]
        rhs = solver.right_hand_sides(matrix, system.truth, system.published_rhs)
        bounds = solver.solve(matrix, rhs, [local[v] for v in targets])
        cache[system.signature] = dict(zip(keys, bounds, strict=True))
    for var, (low, high) in zip(targets, bounds, strict=True):
        lo_req, hi_req = required[var]
        result[var] = Interval(float(table.value[var]), low, high, lo_req, hi_req, system.signature)


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


# Structures built lately, by the hash of what they are built from (a structure depends on
# content only, so one database's serves another's identical table too).
_STRUCTURES: OrderedDict[str, Structure] = OrderedDict()
_KEEP_STRUCTURES = 8
# Intervals solved lately, by system signature (a signature hashes everything the intervals
# depend on).
_SOLVED: OrderedDict[str, dict[Key, tuple[float, float]]] = OrderedDict()
_KEEP_SOLVED = 50_000
_lock = threading.Lock()


@dataclass
class StoredCells:
    """The stored cells of a group: their keys as five columns of words, figures, statuses,
    and a hash of which cells exist."""

    columns: list[np.ndarray]
    values: np.ndarray
    statuses: np.ndarray
    digest: str


def read_cells(conn: psycopg.Connection, codes: Sequence[str]) -> StoredCells:
    """Every stored cell of the indicators."""
    blocks = sql.cell_blocks(conn, codes)
    sizes = [len(b[4]) for b in blocks]
    columns = [np.repeat(np.array([b[i] for b in blocks], dtype=object), sizes) for i in (0, 1, 2)]
    columns.append(_joined([np.array(b[4], dtype=object) for b in blocks], object))
    columns.append(np.repeat(np.array([b[3] for b in blocks], dtype=object), sizes))
    values = _joined([np.array(b[5], dtype=float) for b in blocks], float)
    statuses = _joined([np.array(b[6], dtype=object) for b in blocks], object)
    digest = hashlib.sha1()
    for block in sorted(
        (str(b[:4]), len(b[4]), int(pd_hash(b[4]).sum(dtype=np.uint64))) for b in blocks
    ):
        digest.update(repr(block).encode())
    return StoredCells(columns, values, statuses, digest.hexdigest())


def _joined(arrays: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)


def pd_hash(words: Sequence[str]) -> np.ndarray:
    """64-bit hashes of words (pandas' hash, stable across processes)."""
    import pandas as pd

    return np.asarray(pd.util.hash_array(np.asarray(words, dtype=object)), dtype=np.uint64)


def load_table(
    conn: psycopg.Connection, codes: Sequence[str], *, fresh: bool = False
) -> LinkedTable:
    """The linked table of a group of indicators as stored (its structure built again only
    when something it depends on changed, or always when `fresh`)."""
    rules = {r["code"]: Rule(**r) for r in sql.rules_of(conn, codes)}
    cells = read_cells(conn, codes)
    vintages = sorted(set(cells.columns[1].tolist()))
    key = fingerprint(sql.structure_fingerprint(conn, codes, vintages), cells.digest)
    with _lock:
        structure = None if fresh else _STRUCTURES.get(key)
    if structure is not None:
        at = structure.stored_cells(cells.columns)
        if (at >= 0).all() and len(at) == structure.n_stored:
            values = np.full(structure.n_stored, np.nan)
            statuses = np.empty(structure.n_stored, dtype=object)
            values[at], statuses[at] = cells.values, cells.statuses
            return with_figures(structure, rules, values, statuses)
    structure = _build(conn, codes, rules, cells, vintages)
    with _lock:
        _STRUCTURES[key] = structure
        while len(_STRUCTURES) > _KEEP_STRUCTURES:
            _STRUCTURES.popitem(last=False)
    return with_figures(structure, rules, cells.values, cells.statuses)


def _build(
    conn: psycopg.Connection,
    codes: Sequence[str],
    rules: dict[str, Rule],
    cells: StoredCells,
    vintages: list[str],
) -> Structure:
    breakdowns: dict[str, dict[int, list[str]]] = {}
    for total, number, part in sql.breakdowns_of(conn, codes):
        breakdowns.setdefault(total, {}).setdefault(number, []).append(part)
    links = [
        Link(**{k: v for k, v in r.items() if k != "relation"})
        for r in sql.crosswalks_between(conn, vintages)
    ]
    return build_structure(
        rules,
        {t: list(b.values()) for t, b in breakdowns.items()},
        cells.columns,
        sql.units_of(conn, vintages),
        sql.level_ranks(conn),
        links,
        [Series(*row) for row in sql.series_of(conn, codes)],
    )


def _solved(conn: psycopg.Connection, codes: Sequence[str]) -> OrderedDict[str, Any]:
    """The intervals solved lately, with those the last protection stored."""
    with _lock:
        for ind, vintage, level, code, period, lower, upper, component in sql.stored_intervals(
            conn, codes
        ):
            _SOLVED.setdefault(component, {})[(ind, vintage, level, code, period)] = (
                lower,
                upper,
            )
        while len(_SOLVED) > _KEEP_SOLVED:
            _SOLVED.popitem(last=False)
    return _SOLVED


def protect_group(
    conn: psycopg.Connection, codes: list[str], solver: Intervals, *, warm: bool = True
) -> GroupReport:
    """Choose and store the hidden cells of one group of linked indicators (`warm`: keeping
    the cells hidden before and the intervals solved before; otherwise from scratch: the
    structure built again, from the primary cells alone, every system solved)."""
    table = load_table(conn, codes, fresh=not warm)
    s = table.structure
    before = sql.stored_reasons(conn, codes)
    start: dict[int, str] = {}
    if warm and before:
        cells = s.stored_cells([np.array([r[i] for r in before], dtype=object) for i in range(5)])
        start = {int(c): r[5] for c, r in zip(cells, before, strict=True) if c >= 0}
        # A cell hidden by its own rule that the rules no longer hide (a lowered threshold):
        # the last pattern protected what needs no protection now. Kept, it would stay
        # hidden with its complements until `protect --all`; the operator lowered the
        # threshold to publish it, so the group is chosen again from scratch.
        if any(
            reason == "primary" and cell < s.n_cells and not table.primary[cell]
            for cell, reason in start.items()
        ):
            return protect_group(conn, codes, solver, warm=False)
    # (from scratch: every system solved again, nothing taken from earlier protections)
    solved = _solved(conn, codes) if warm else {}
    pattern = choose_pattern(table, solver, solved, start)
    hidden = np.flatnonzero(pattern.hidden[: s.n_stored]).tolist()
    keys = table.keys
    now = {keys[i]: pattern.reason.get(i, "complementary") for i in hidden}
    was = {tuple(r[:5]): r[5] for r in before}
    intervals = {tuple(row[:5]): row for row in _interval_rows(table, pattern)}
    stored = {tuple(row[:5]): row for row in sql.stored_interval_rows(conn, codes)}
    sql.update_protection(
        conn,
        codes,
        [k for k, reason in was.items() if now.get(k) != reason],
        [(*k, reason) for k, reason in now.items() if was.get(k) != reason],
        [k for k, row in stored.items() if intervals.get(k) != row],
        [row for k, row in intervals.items() if stored.get(k) != row],
    )
    sql.record_collection_changes(conn, _collections(table))
    return GroupReport(
        codes,
        s.n_stored,
        len(hidden),
        int(table.primary.sum()),
        [_name(table.key_of(i)) for i in pattern.failing],
    )


def _collections(table: LinkedTable) -> set[str]:
    """The collections (level-vintage) the table's stored cells are on."""
    s = table.structure
    stored = s.cell_keys[: s.n_stored]
    vintage, level = s.codec.part(stored, 1), s.codec.part(stored, 2)
    levels = len(s.codec.words[2])
    found = set()
    for pair in np.unique(vintage * levels + level).tolist():
        v, lvl = divmod(pair, levels)
        found.add(f"{s.codec.words[2][lvl]}-{s.codec.words[1][v]}")
    return found


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
        table = load_table(conn, group, fresh=True)  # (shares nothing with the protection)
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
    quotient, source, _ = table.source_pairs
    pairs = np.unique(np.stack([quotient, source]), axis=1) if len(quotient) else np.zeros((2, 0))
    quotient, source = pairs.astype(np.int64)
    value = table.value
    shown = ~hidden[source] & ~np.isnan(value[source])
    unseen = np.bincount(quotient, weights=~shown, minlength=table.n_cells)[quotient]
    has_value = ~np.isnan(value[quotient])
    for q in np.unique(quotient[has_value & hidden[quotient] & (unseen == 0)]).tolist():
        problems[q] = "hidden but computable from its published sources"
    given_back = has_value & ~hidden[quotient] & (unseen == 1) & ~shown & hidden[source]
    for q, s in zip(quotient[given_back].tolist(), source[given_back].tolist(), strict=True):
        problems[s] = f"computable from published {table.keys[q][0]} and the rest"
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

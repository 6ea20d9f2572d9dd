"""The linked table of a group of indicators: its cells, and every relation an attacker can
use between them.

Relations are linear equations over additive cells (counts): the geographic hierarchy (a
unit = the sum of its units one valued level down), the catalogue's breakdowns (total =
parts), period aggregation (a year = its quarters = its months, a quarter = its months),
the same count on two vintages through their crosswalk (each crosswalk link a piece of
both units) and carried-over series (new unit = Σ share × old units). Quotients (rates,
densities, shares, ratios) are links instead: a quotient is hidden when a cell it is
computed from is, and a hidden quotient needs one of those hidden too.

Cells that are part of an equation but hold no value (not available, not loaded, a
suppressed value loaded without its figure) and the pieces of partial crosswalk links are
unknowns to everyone: variables without a required protection.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

Key = tuple[str, str, str, str, str]  # (indicator, vintage, level, code, period)

QUOTIENT_KINDS = ("rate", "ratio", "density", "share")
PUBLISHABLE = ("ok", "provisional")

YEAR = re.compile(r"\d{4}")
QUARTER = re.compile(r"(\d{4})-Q([1-4])")
MONTH = re.compile(r"(\d{4})-(\d{2})")

DEFAULT_SHARE = 0.1  # ±10 % of the value, each side


@dataclass(frozen=True)
class Rule:
    """One indicator's disclosure rule and links (the catalogue columns the engine reads)."""

    code: str
    kind: str
    numerator: str | None = None
    denominator: str | None = None
    multiplier: float = 1.0
    suppress_below: float | None = None
    disclosure_basis: str | None = None
    period_aggregation: str | None = None
    denominator_period: str | None = None
    protection_lower: float | None = None
    protection_upper: float | None = None
    protection_absolute: float | None = None
    relation_tolerance: float = 0.0

    @property
    def additive(self) -> bool:
        """Whether values add up across units, parts and periods."""
        return self.kind == "count"

    def protection(self, value: float) -> tuple[float, float]:
        """The interval an attacker must not be able to narrow a hidden value below."""
        absolute = self.protection_absolute
        if absolute is None:
            absolute = self.suppress_below / 2 if self.suppress_below else 1.0
        lower = max(value * _or(self.protection_lower, DEFAULT_SHARE), absolute)
        upper = max(value * _or(self.protection_upper, DEFAULT_SHARE), absolute)
        return max(value - lower, 0.0), value + upper


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


@dataclass(frozen=True)
class Link:
    """One crosswalk link between two vintages' units."""

    from_vintage: str
    from_level: str
    from_code: str
    to_vintage: str
    to_level: str
    to_code: str
    area_share: float | None
    population_share: float | None


@dataclass(frozen=True)
class Series:
    """One indicator on one (vintage, level), and how it was derived."""

    indicator: str
    vintage: str
    level: str
    derivation: dict[str, Any] | None


@dataclass
class Sources:
    """The cells a quotient cell is computed from, and which of them are numerators."""

    cells: list[int]
    numerators: list[int]
    missing_hides: bool  # a missing source hides the quotient (a rule applies)


@dataclass
class LinkedTable:
    """Cells (and crosswalk pieces) as variables, equations as rows of a sparse matrix."""

    keys: list[Key]
    value: np.ndarray  # nan: no value
    status: list[str]  # the stored status, or 'missing' for a cell that was never loaded
    primary: np.ndarray  # hidden by its own rule
    n_pieces: int  # extra unknowns after the cells (pieces of partial crosswalk links)
    equations: sparse.csr_matrix
    equation_kinds: list[str]
    quotients: dict[int, Sources] = field(default_factory=dict)
    required: dict[int, tuple[float, float]] = field(default_factory=dict)

    @functools.cached_property
    def by_column(self) -> sparse.csc_matrix:
        """The equations by variable (which equations each variable is in)."""
        return self.equations.tocsc()

    @property
    def n_cells(self) -> int:
        """Number of cells (variables without the pieces)."""
        return len(self.keys)

    @functools.cached_property
    def known(self) -> np.ndarray:
        """Per variable: whether it holds a figure (pieces never do)."""
        return np.concatenate([~np.isnan(self.value), np.zeros(self.n_pieces, dtype=bool)])

    @functools.cached_property
    def figures(self) -> np.ndarray:
        """Per variable: its figure, 0 where it has none."""
        return np.concatenate([np.nan_to_num(self.value, nan=0.0), np.zeros(self.n_pieces)])

    @functools.cached_property
    def incidence(self) -> sparse.csr_matrix:
        """Which variables each equation has (1 where it has them)."""
        pattern = self.equations.copy()
        pattern.data = np.ones_like(pattern.data)
        return pattern

    @functools.cached_property
    def source_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(quotient, source, missing hides the quotient) for every link of a quotient to a
        cell it is computed from, as arrays."""
        pairs = [(q, s, src.missing_hides) for q, src in self.quotients.items() for s in src.cells]
        if not pairs:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0, dtype=bool)
        q, s, m = zip(*pairs, strict=True)
        return np.array(q), np.array(s), np.array(m, dtype=bool)

    @functools.cached_property
    def no_figure(self) -> np.ndarray:
        """Per cell: missing or not available (a suppressed one counts as hidden instead)."""
        suppressed = np.array([s == "suppressed" for s in self.status], dtype=bool)
        return np.isnan(self.value) & ~suppressed

    def key_of(self, var: int) -> Key:
        """A variable's key (pieces get a made-up one)."""
        if var < self.n_cells:
            return self.keys[var]
        return ("", "", "", "", f"piece {var - self.n_cells}")


class _Builder:
    """Collects cells and equations while a LinkedTable is built."""

    def __init__(self, cells: Iterable[Sequence[Any]]) -> None:
        self.index: dict[Key, int] = {}
        self.keys: list[Key] = []
        self.values: list[float] = []
        self.status: list[str] = []
        for indicator, vintage, level, code, period, value, status in cells:
            self.cell((indicator, vintage, level, code, period), value, status)
        self.stored = len(self.keys)
        self.pieces = 0
        self.rows: list[int] = []
        self.cols: list[int] = []
        self.coefs: list[float] = []
        self.kinds: list[str] = []

    def cell(self, key: Key, value: float | None = None, status: str = "missing") -> int:
        """The variable of a cell, added (as never loaded) when new."""
        found = self.index.get(key)
        if found is not None:
            return found
        self.index[key] = len(self.keys)
        self.keys.append(key)
        keep = value is not None and status in (*PUBLISHABLE, "suppressed")
        self.values.append(float(value) if keep and value is not None else np.nan)
        self.status.append(status)
        return len(self.keys) - 1

    def piece(self) -> int:
        """A new unknown (numbered after the cells once they are all known)."""
        self.pieces += 1
        return -self.pieces

    def equation(self, kind: str, terms: Sequence[tuple[Key | int, float]]) -> None:
        """Σ coefficient × term = 0 over cells (by key) and pieces, kept when at least two
        terms are stored cells (only then are cells never loaded added as unknowns)."""
        index = self.index
        stored = 0
        for term, _ in terms:
            var = index.get(term) if isinstance(term, tuple) else term
            stored += var is not None and 0 <= var < self.stored
        if stored < 2:
            return
        row = len(self.kinds)
        for term, coef in terms:
            self.rows.append(row)
            self.cols.append(self.cell(term) if isinstance(term, tuple) else term)
            self.coefs.append(coef)
        self.kinds.append(kind)


def build(
    rules: dict[str, Rule],
    breakdowns: dict[str, list[list[str]]],
    cells: Iterable[Sequence[Any]],
    units: Iterable[Sequence[Any]],
    ranks: dict[str, int],
    links: list[Link],
    series: list[Series],
) -> LinkedTable:
    """The linked table of the indicators in `rules`."""
    b = _Builder(cells)
    stored = list(b.keys)
    parents = {(v, c): (lvl, p) for v, lvl, c, p in units}
    children: dict[tuple[str, str], list[str]] = defaultdict(list)
    for v, lvl, c, _ in units:
        children[(v, lvl)].append(c)
    _hierarchy(b, rules, stored, parents, children, ranks)
    _breakdowns(b, rules, breakdowns, stored)
    _periods(b, rules, stored)
    derived = {(s.indicator, s.vintage, s.level): s for s in series}
    _vintages(b, rules, stored, links, derived)
    quotients = _quotients(b, rules, stored, links, derived)
    return _finish(b, rules, quotients)


def _hierarchy(
    b: _Builder,
    rules: dict[str, Rule],
    stored: list[Key],
    parents: dict[tuple[str, str], tuple[str, str | None]],
    children: dict[tuple[str, str], list[str]],
    ranks: dict[str, int],
) -> None:
    """Each unit of a valued level = the sum of its units at the next valued level down."""
    levels: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for ind, v, lvl, _, p in stored:
        if rules[ind].additive:
            levels[(ind, v, p)].add(lvl)
    ancestors: dict[tuple[str, str, str], dict[str, str]] = {}
    for (ind, v, p), valued in levels.items():
        ordered = sorted(valued, key=lambda name: ranks.get(name, 99))
        for upper, lower in zip(ordered, ordered[1:], strict=False):
            if (v, lower, upper) not in ancestors:
                ancestors[(v, lower, upper)] = _ancestors(v, lower, upper, parents, children)
            groups: dict[str, list[str]] = defaultdict(list)
            for child, ancestor in ancestors[(v, lower, upper)].items():
                groups[ancestor].append(child)
            for ancestor, members in groups.items():
                terms: list[tuple[Key | int, float]] = [((ind, v, upper, ancestor, p), -1.0)]
                terms += [((ind, v, lower, c, p), 1.0) for c in members]
                b.equation("hierarchy", terms)


def _ancestors(
    vintage: str,
    lower: str,
    upper: str,
    parents: dict[tuple[str, str], tuple[str, str | None]],
    children: dict[tuple[str, str], list[str]],
) -> dict[str, str]:
    """Each unit of `lower` → its ancestor at `upper` (walking up the parent codes)."""
    found = {}
    for code in children.get((vintage, lower), []):
        current: str | None = code
        for _ in range(6):
            parent = parents.get((vintage, current)) if current else None
            if parent is None or parent[1] is None:
                break
            current = parent[1]
            level = parents.get((vintage, current), (None, None))[0]
            if level == upper:
                found[code] = current
                break
    return found


def _breakdowns(
    b: _Builder, rules: dict[str, Rule], breakdowns: dict[str, list[list[str]]], stored: list[Key]
) -> None:
    """total = Σ parts, for every unit and period any of them has."""
    places: dict[str, set[tuple[str, str, str, str]]] = defaultdict(set)
    for ind, v, lvl, c, p in stored:
        places[ind].add((v, lvl, c, p))
    for total, groups in breakdowns.items():
        if total not in rules:
            continue
        for parts in groups:
            keys = set(places[total]).union(*(places[part] for part in parts))
            for v, lvl, c, p in sorted(keys):
                terms: list[tuple[Key | int, float]] = [((total, v, lvl, c, p), -1.0)]
                terms += [((part, v, lvl, c, p), 1.0) for part in parts]
                b.equation("breakdown", terms)


def sub_periods(period: str) -> list[list[str]]:
    """The groups of finer periods that add up to a period (a year: its quarters, its
    months; a quarter: its months)."""
    if YEAR.fullmatch(period):
        return [
            [f"{period}-Q{q}" for q in range(1, 5)],
            [f"{period}-{m:02d}" for m in range(1, 13)],
        ]
    if quarter := QUARTER.fullmatch(period):
        year, q = quarter.group(1), int(quarter.group(2))
        return [[f"{year}-{m:02d}" for m in range(3 * q - 2, 3 * q + 1)]]
    return []


def coarser_periods(period: str) -> list[str]:
    """The periods a finer period adds up into."""
    if quarter := QUARTER.fullmatch(period):
        return [quarter.group(1)]
    if month := MONTH.fullmatch(period):
        return [month.group(1), f"{month.group(1)}-Q{(int(month.group(2)) - 1) // 3 + 1}"]
    return []


def _periods(b: _Builder, rules: dict[str, Rule], stored: list[Key]) -> None:
    """A year = its quarters = its months, a quarter = its months (declared per indicator)."""
    wholes: set[Key] = set()
    for ind, v, lvl, c, p in stored:
        if rules[ind].period_aggregation == "sum" and rules[ind].additive:
            wholes.add((ind, v, lvl, c, p))
            wholes.update((ind, v, lvl, c, coarse) for coarse in coarser_periods(p))
    for ind, v, lvl, c, p in sorted(wholes):
        for group in sub_periods(p):
            terms: list[tuple[Key | int, float]] = [((ind, v, lvl, c, p), -1.0)]
            terms += [((ind, v, lvl, c, q), 1.0) for q in group]
            b.equation("period", terms)


def _carried_from(series: Series | None) -> tuple[str, str, str] | None:
    """(from vintage, from level, weight) of a carried-over series."""
    d = series.derivation if series else None
    if not d or d.get("method") != "carry-over":
        return None
    return str(d["from_vintage"]), str(d["from_level"]), str(d.get("weight", "area"))


def _share(link: Link, weight: str) -> float | None:
    return link.population_share if weight == "population" else link.area_share


def _vintages(
    b: _Builder,
    rules: dict[str, Rule],
    stored: list[Key],
    links: list[Link],
    derived: dict[tuple[str, str, str], Series],
) -> None:
    """The same count on two vintages: carried over (new = Σ share × old) or observed on
    both (each crosswalk link a piece of the old and of the new unit)."""
    periods: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for ind, v, lvl, _, p in stored:
        if rules[ind].additive:
            periods[(ind, v, lvl)].add(p)
    pairs: dict[tuple[str, str, str, str], list[Link]] = defaultdict(list)
    for link in links:
        pairs[(link.from_vintage, link.from_level, link.to_vintage, link.to_level)].append(link)
    for (ind, v, lvl), mine in periods.items():
        carried = _carried_from(derived.get((ind, v, lvl)))
        for (fv, fl, tv, tl), group in pairs.items():
            if (tv, tl) != (v, lvl) or (ind, fv, fl) not in periods:
                continue
            common = sorted(mine & periods[(ind, fv, fl)])
            if carried and carried[:2] == (fv, fl):
                _carried_equations(b, ind, group, common, carried[2])
            elif not carried:
                _piece_equations(b, ind, group, common)


def _carried_equations(
    b: _Builder, indicator: str, group: list[Link], periods: list[str], weight: str
) -> None:
    targets: dict[tuple[str, str, str], list[Link]] = defaultdict(list)
    for link in group:
        targets[(link.to_vintage, link.to_level, link.to_code)].append(link)
    for p in periods:
        for (tv, tl, tc), sources in targets.items():
            terms: list[tuple[Key | int, float]] = [((indicator, tv, tl, tc, p), -1.0)]
            for link in sources:
                share = _share(link, weight)
                if share:
                    old = (indicator, link.from_vintage, link.from_level, link.from_code, p)
                    terms.append((old, share))
            b.equation("carry-over", terms)


def _piece_equations(b: _Builder, indicator: str, group: list[Link], periods: list[str]) -> None:
    by_old: dict[str, list[Link]] = defaultdict(list)
    for link in group:
        by_old[link.from_code].append(link)
    for p in periods:
        new_terms: dict[tuple[str, str, str], list[tuple[int, float]]] = defaultdict(list)
        for old_code, out in by_old.items():
            first = out[0]
            old = b.cell((indicator, first.from_vintage, first.from_level, old_code, p))
            if len(out) == 1:  # the whole old unit lies in one new unit
                new_terms[(first.to_vintage, first.to_level, first.to_code)].append((old, 1.0))
                continue
            pieces = [b.piece() for _ in out]
            b.equation("vintage", [(old, -1.0), *((piece, 1.0) for piece in pieces)])
            for link, piece in zip(out, pieces, strict=True):
                new_terms[(link.to_vintage, link.to_level, link.to_code)].append((piece, 1.0))
        for (tv, tl, tc), terms in new_terms.items():
            b.equation("vintage", [(b.cell((indicator, tv, tl, tc, p)), -1.0), *terms])


def _quotients(
    b: _Builder,
    rules: dict[str, Rule],
    stored: list[Key],
    links: list[Link],
    derived: dict[tuple[str, str, str], Series],
) -> dict[int, Sources]:
    """Each quotient (or cell with a disclosure basis) → the cells it is computed from."""
    by_new: dict[tuple[str, str, str], list[Link]] = defaultdict(list)
    for link in links:
        by_new[(link.to_vintage, link.to_level, link.to_code)].append(link)
    result: dict[int, Sources] = {}
    for key in stored:
        ind, v, lvl, c, p = key
        rule = rules[ind]
        refs: list[tuple[str, str]] = []  # (indicator, period)
        if rule.kind in QUOTIENT_KINDS and rule.numerator and rule.denominator:
            refs += [(rule.numerator, p), (rule.denominator, rule.denominator_period or p)]
        if rule.disclosure_basis:
            same = rule.disclosure_basis == rule.denominator
            refs.append((rule.disclosure_basis, (rule.denominator_period or p) if same else p))
        refs = [(r, q) for r, q in refs if r in rules]
        if not refs:
            continue
        carried = _carried_from(derived.get((ind, v, lvl)))
        cells: list[int] = []
        numerators: list[int] = []
        if carried and rule.kind in QUOTIENT_KINDS:
            fv, fl, _ = carried
            olds = [lk.from_code for lk in by_new.get((v, lvl, c), []) if lk.from_vintage == fv]
            for ref, period in refs[:2]:
                ids = [b.cell((ref, fv, fl, old, period)) for old in olds]
                cells += ids
                if ref == rule.numerator:
                    numerators += ids
            refs = refs[2:]
        for ref, period in refs:
            var = b.cell((ref, v, lvl, c, period))
            cells.append(var)
            if ref == rule.numerator:
                numerators.append(var)
        missing_hides = rule.suppress_below is not None or any(
            rules[r].suppress_below is not None for r, _ in refs
        )
        result[b.index[key]] = Sources(cells, numerators, missing_hides)
    return result


def _finish(b: _Builder, rules: dict[str, Rule], quotients: dict[int, Sources]) -> LinkedTable:
    n_cells = len(b.keys)
    cols = [c if c >= 0 else n_cells + (-c - 1) for c in b.cols]
    matrix = sparse.csr_matrix(
        (np.array(b.coefs, dtype=float), (np.array(b.rows, dtype=np.int64), np.array(cols))),
        shape=(len(b.kinds), n_cells + b.pieces),
    )
    value = np.array(b.values, dtype=float)
    primary = np.zeros(n_cells, dtype=bool)
    for i, (ind, v, lvl, c, p) in enumerate(b.keys):
        if i >= b.stored:
            break
        primary[i] = _primary(rules[ind], b, i, (ind, v, lvl, c, p))
    table = LinkedTable(
        b.keys, value, b.status, primary, b.pieces, matrix, b.kinds, quotients=quotients
    )
    for var in np.flatnonzero(primary).tolist():
        rule = rules[b.keys[var][0]]
        if rule.additive and not np.isnan(value[var]):
            table.required[var] = rule.protection(float(value[var]))
    return table


def _primary(rule: Rule, b: _Builder, i: int, key: Key) -> bool:
    """Hidden by its own rule: loaded as suppressed, below the threshold, or a disclosure
    basis below it, missing or suppressed."""
    if b.status[i] == "suppressed":
        return True
    if rule.suppress_below is None or b.status[i] not in PUBLISHABLE:
        return False
    if rule.disclosure_basis is None:
        return bool(b.values[i] < rule.suppress_below)
    ind, v, lvl, c, p = key
    same = rule.disclosure_basis == rule.denominator
    period = (rule.denominator_period or p) if same else p
    j = b.index.get((rule.disclosure_basis, v, lvl, c, period))
    if j is None or b.status[j] not in PUBLISHABLE or np.isnan(b.values[j]):
        return True
    return bool(b.values[j] < rule.suppress_below)

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

The table is built in two parts: its `Structure` (cells and equations) depends only on which
cells exist and on the rules, relations, units and crosswalks, and is built with array
operations over integer-coded keys; the figures (values, statuses, which cells are primary,
their required protection) are laid over it. A structure can so be kept while only figures
change (see `indicators.protect`).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
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

    @property
    def absolute_protection(self) -> float:
        """The least protection of a hidden value, each side."""
        if self.protection_absolute is not None:
            return self.protection_absolute
        return self.suppress_below / 2 if self.suppress_below else 1.0

    def protection(self, value: float) -> tuple[float, float]:
        """The interval an attacker must not be able to narrow a hidden value below."""
        low, high = self.protections(np.array([value], dtype=float))
        return float(low[0]), float(high[0])

    def protections(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`protection` of many values at once."""
        absolute = self.absolute_protection
        lower = np.maximum(values * _or(self.protection_lower, DEFAULT_SHARE), absolute)
        upper = np.maximum(values * _or(self.protection_upper, DEFAULT_SHARE), absolute)
        return np.maximum(values - lower, 0.0), values + upper


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


# ---- keys as integers ----


class Codec:
    """Keys as one integer each: the indicator, vintage, level, code and period's places in
    their vocabularies, the indicator most significant (so `key % stride` is the place)."""

    def __init__(self, words: Sequence[Iterable[str]]) -> None:
        self.words = [sorted(set(w)) for w in words]
        self.lookup = [pd.Index(w) for w in self.words]
        sizes = [max(len(w), 1) for w in self.words]
        self.radix = np.array(
            [int(np.prod(sizes[i + 1 :], dtype=np.int64)) for i in range(5)], dtype=np.int64
        )
        self.stride = int(self.radix[0])  # keys of one indicator span this many integers
        if float(np.prod(sizes, dtype=float)) >= 2**62:
            raise ValueError("too many distinct key parts for 64-bit keys")

    def ids(self, part: int, values: Sequence[str] | np.ndarray) -> np.ndarray:
        """The places of words in one vocabulary (-1 for a word it lacks)."""
        return np.asarray(self.lookup[part].get_indexer(pd.Index(np.asarray(values, dtype=object))))

    def id(self, part: int, word: str) -> int:
        """The place of one word (-1 when absent)."""
        try:
            found = self.lookup[part].get_loc(word)
        except KeyError:
            return -1
        return found if isinstance(found, int) else -1

    def compose(self, parts: Sequence[np.ndarray | int]) -> np.ndarray:
        """Keys from the five parts' places."""
        key = np.zeros(np.broadcast(*parts).shape, dtype=np.int64)
        for radix, part in zip(self.radix, parts, strict=True):
            key += np.asarray(part, dtype=np.int64) * radix
        return key

    def part(self, keys: np.ndarray, part: int) -> np.ndarray:
        """One part's places of integer keys."""
        size = len(self.words[part]) or 1
        return np.asarray((keys // self.radix[part]) % size)

    def split(self, key: int) -> tuple[int, int, int, int, int]:
        """One integer key's five places."""
        places = [0] * 5
        for i in range(4, -1, -1):
            size = len(self.words[i]) or 1
            key, places[i] = divmod(key, size)
        return places[0], places[1], places[2], places[3], places[4]

    def decode(self, keys: np.ndarray) -> list[Key]:
        """The keys as tuples of words."""
        columns = [np.asarray(self.words[i], dtype=object)[self.part(keys, i)] for i in range(5)]
        return list(zip(*columns, strict=True))

    @functools.cached_property
    def word_hashes(self) -> list[np.ndarray]:
        """A 64-bit hash of every word of each vocabulary (stable across processes)."""
        return [
            pd.util.hash_array(np.asarray(w, dtype=object)).astype(np.uint64)
            if w
            else np.zeros(0, dtype=np.uint64)
            for w in self.words
        ]

    def hashes(self, keys: np.ndarray) -> np.ndarray:
        """A 64-bit hash of each key's words (independent of the vocabularies' order)."""
        h = np.zeros(len(keys), dtype=np.uint64)
        for i in range(5):
            h = mix64(h ^ self.word_hashes[i][self.part(keys, i)])
        return h


_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def mix64(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit changes every output bit."""
    h = np.asarray(h).astype(np.uint64, copy=False)
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * _M1
        h = (h ^ (h >> np.uint64(27))) * _M2
        return np.asarray(h ^ (h >> np.uint64(31)))


# ---- the structure ----


@dataclass
class Structure:
    """The cells and equations of a linked table: what does not depend on the figures."""

    codec: Codec
    cell_keys: np.ndarray  # integer keys of the cells: stored ones first, in the given order
    n_stored: int
    n_pieces: int  # extra unknowns after the cells (pieces of partial crosswalk links)
    piece_hashes: np.ndarray  # what each piece is (indicator, link, period), hashed
    equations: sparse.csr_matrix
    equation_kinds: list[str]
    quotient: np.ndarray  # per link of a quotient to a cell it is computed from: the quotient
    source: np.ndarray  # … the cell
    numerator: np.ndarray  # … whether the cell is a numerator
    missing_hides: np.ndarray  # … whether a missing cell hides the quotient (a rule applies)
    basis: np.ndarray  # per stored cell: the cell its rule checks (-2: itself; -1: none)
    sorted_keys: np.ndarray  # the cells' integer keys in order …
    sorted_cells: np.ndarray  # … and the cell each is

    @property
    def n_cells(self) -> int:
        """Number of cells (variables without the pieces)."""
        return len(self.cell_keys)

    @functools.cached_property
    def keys(self) -> list[Key]:
        """Every cell's key."""
        return self.codec.decode(self.cell_keys)

    def cells_of(self, keys: np.ndarray) -> np.ndarray:
        """The cells of integer keys (-1 for a key that is not one)."""
        return _lookup(self.sorted_keys, self.sorted_cells, keys)

    def stored_cells(self, columns: Sequence[np.ndarray]) -> np.ndarray:
        """The cells of keys given as five columns of words (-1 for a key that is not a
        stored cell)."""
        parts = [self.codec.ids(i, column) for i, column in enumerate(columns)]
        missing = np.zeros(len(parts[0]), dtype=bool)
        for part in parts:
            missing |= part < 0
        cells = self.cells_of(self.codec.compose(parts))
        return np.where(missing | (cells >= self.n_stored), -1, cells)

    @functools.cached_property
    def by_column(self) -> sparse.csc_matrix:
        """The equations by variable (which equations each variable is in)."""
        return self.equations.tocsc()

    @functools.cached_property
    def incidence(self) -> sparse.csr_matrix:
        """Which variables each equation has (1 where it has them)."""
        pattern = self.equations.copy()
        pattern.data = np.ones_like(pattern.data)
        return pattern

    @functools.cached_property
    def variable_hashes(self) -> np.ndarray:
        """A 64-bit hash of what each variable is (its key; a piece's link)."""
        return np.concatenate([self.codec.hashes(self.cell_keys), self.piece_hashes])

    @functools.cached_property
    def equation_hashes(self) -> np.ndarray:
        """A 64-bit hash of each equation's terms (its variables and coefficients)."""
        m = self.equations
        if m.shape[0] == 0:
            return np.zeros(0, dtype=np.uint64)
        coefficient = np.round(m.data, 9).astype(np.float64).view(np.uint64)
        term = mix64(self.variable_hashes[m.indices] ^ mix64(coefficient))
        with np.errstate(over="ignore"):
            return np.add.reduceat(term, m.indptr[:-1]).astype(np.uint64)


# ---- the table: a structure and its figures ----


@dataclass
class LinkedTable:
    """Cells (and crosswalk pieces) as variables, equations as rows of a sparse matrix, and
    the cells' figures."""

    structure: Structure
    value: np.ndarray  # nan: no value
    status: list[str]  # the stored status, or 'missing' for a cell that was never loaded
    primary: np.ndarray  # hidden by its own rule
    required: dict[int, tuple[float, float]] = field(default_factory=dict)

    @property
    def keys(self) -> list[Key]:
        """Every cell's key."""
        return self.structure.keys

    @property
    def n_pieces(self) -> int:
        """Unknowns after the cells."""
        return self.structure.n_pieces

    @property
    def n_cells(self) -> int:
        """Number of cells (variables without the pieces)."""
        return self.structure.n_cells

    @property
    def equations(self) -> sparse.csr_matrix:
        """Σ coefficient × variable = 0, one row each."""
        return self.structure.equations

    @property
    def equation_kinds(self) -> list[str]:
        """What relation each equation is."""
        return self.structure.equation_kinds

    @property
    def by_column(self) -> sparse.csc_matrix:
        """The equations by variable."""
        return self.structure.by_column

    @property
    def incidence(self) -> sparse.csr_matrix:
        """Which variables each equation has."""
        return self.structure.incidence

    @functools.cached_property
    def known(self) -> np.ndarray:
        """Per variable: whether it holds a figure (pieces never do)."""
        return np.concatenate([~np.isnan(self.value), np.zeros(self.n_pieces, dtype=bool)])

    @functools.cached_property
    def figures(self) -> np.ndarray:
        """Per variable: its figure, 0 where it has none."""
        return np.concatenate([np.nan_to_num(self.value, nan=0.0), np.zeros(self.n_pieces)])

    @functools.cached_property
    def suppressed(self) -> np.ndarray:
        """Per cell: stored with status suppressed."""
        return np.array([s == "suppressed" for s in self.status], dtype=bool)

    @functools.cached_property
    def no_figure(self) -> np.ndarray:
        """Per cell: missing or not available (a suppressed one counts as hidden instead)."""
        return np.isnan(self.value) & ~self.suppressed

    @property
    def source_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(quotient, source, missing hides the quotient) for every link of a quotient to a
        cell it is computed from, as arrays."""
        s = self.structure
        return s.quotient, s.source, s.missing_hides

    def key_of(self, var: int) -> Key:
        """A variable's key (pieces get a made-up one)."""
        if var < self.n_cells:
            return self.keys[var]
        return ("", "", "", "", f"piece {var - self.n_cells}")


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
    columns = _columns(cells, 7)
    structure = build_structure(rules, breakdowns, columns[:5], list(units), ranks, links, series)
    return with_figures(structure, rules, columns[5], columns[6])


def _columns(rows: Iterable[Sequence[Any]], width: int) -> list[np.ndarray]:
    """Rows as one array per column."""
    listed = list(rows)
    if not listed:
        return [np.zeros(0, dtype=object) for _ in range(width)]
    return [np.asarray(column, dtype=object) for column in zip(*listed, strict=True)]


def with_figures(
    structure: Structure,
    rules: dict[str, Rule],
    values: Sequence[float | None] | np.ndarray,
    statuses: Sequence[str] | np.ndarray,
) -> LinkedTable:
    """The table of a structure whose stored cells (in its order) have these figures."""
    n, stored = structure.n_cells, structure.n_stored
    status = list(statuses) + ["missing"] * (n - stored)
    raw = np.asarray(values, dtype=float) if stored else np.zeros(0)
    keep = np.isin(np.asarray(statuses, dtype=object), (*PUBLISHABLE, "suppressed"))
    value = np.full(n, np.nan)
    value[:stored] = np.where(keep, raw, np.nan)
    table = LinkedTable(structure, value, status, np.zeros(n, dtype=bool))
    table.primary = _primary(table, rules)
    _required(table, rules)
    return table


def _indicator_rules(structure: Structure, rules: dict[str, Rule]) -> list[Rule | None]:
    return [rules.get(word) for word in structure.codec.words[0]]


def _primary(table: LinkedTable, rules: dict[str, Rule]) -> np.ndarray:
    """Hidden by its own rule: loaded as suppressed, below the threshold, or a disclosure
    basis below it, missing or suppressed."""
    s = table.structure
    n = s.n_stored
    primary = np.zeros(s.n_cells, dtype=bool)
    if not n:
        return primary
    thresholds = np.array(
        [
            np.nan if r is None or r.suppress_below is None else r.suppress_below
            for r in _indicator_rules(s, rules)
        ],
        dtype=float,
    )
    threshold = thresholds[s.codec.part(s.cell_keys[:n], 0)]
    publishable = np.isin(np.asarray(table.status, dtype=object), PUBLISHABLE)
    has_basis = s.basis != -2  # (-2: no disclosure basis, the cell itself is checked)
    at = np.maximum(s.basis, 0)
    basis_value = np.where(s.basis >= 0, table.value[at], np.nan)
    basis_published = (s.basis >= 0) & publishable[at] & ~np.isnan(basis_value)
    with np.errstate(invalid="ignore"):
        hides = np.where(
            has_basis, ~basis_published | (basis_value < threshold), table.value[:n] < threshold
        )
    primary[:n] = table.suppressed[:n] | (publishable[:n] & ~np.isnan(threshold) & hides)
    return primary


def _required(table: LinkedTable, rules: dict[str, Rule]) -> None:
    """The protection every primary count needs."""
    s = table.structure
    ind = s.codec.part(s.cell_keys, 0)
    wanted = table.primary & ~np.isnan(table.value)
    for i, rule in enumerate(_indicator_rules(s, rules)):
        if rule is None or not rule.additive:
            continue
        cells = np.flatnonzero(wanted & (ind == i))
        if len(cells):
            low, high = rule.protections(table.value[cells])
            table.required.update(
                zip(cells.tolist(), zip(low.tolist(), high.tolist(), strict=True), strict=True)
            )


# ---- building the structure ----


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


@dataclass
class _Terms:
    """Equations as terms: equation number, variable (integer cell key, or -1 - piece
    number), coefficient; with what each equation is."""

    eq: list[np.ndarray] = field(default_factory=list)
    var: list[np.ndarray] = field(default_factory=list)
    coef: list[np.ndarray] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    always: list[np.ndarray] = field(default_factory=list)  # kept whatever is stored
    n: int = 0

    def add(self, kind: str, eq: np.ndarray, var: np.ndarray, coef: Any, count: int) -> None:
        """Equations 0 … count-1 (numbered within this call) as terms."""
        if count == 0 or len(eq) == 0:
            return
        self.eq.append(np.asarray(eq, dtype=np.int64) + self.n)
        self.var.append(np.asarray(var, dtype=np.int64))
        self.coef.append(np.broadcast_to(np.asarray(coef, dtype=float), len(eq)).copy())
        self.kinds += [kind] * count
        self.always.append(np.full(count, kind == "vintage", dtype=bool))
        self.n += count


def _vocabulary(
    rules: dict[str, Rule],
    breakdowns: dict[str, list[list[str]]],
    stored: Sequence[Iterable[str]],
    units: Sequence[Sequence[Any]],
    links: Sequence[Link],
) -> Codec:
    inds = set(rules) | {p for groups in breakdowns.values() for g in groups for p in g}
    for r in rules.values():
        inds.update(x for x in (r.numerator, r.denominator, r.disclosure_basis) if x)
    vintages = {u[0] for u in units} | {lk.from_vintage for lk in links}
    vintages |= {lk.to_vintage for lk in links}
    levels = {u[1] for u in units} | {lk.from_level for lk in links} | {lk.to_level for lk in links}
    codes = {u[2] for u in units} | {lk.from_code for lk in links} | {lk.to_code for lk in links}
    periods = {r.denominator_period for r in rules.values() if r.denominator_period}
    words = [inds, vintages, levels, codes, periods]
    for found, more in zip(words, stored, strict=True):
        found.update(more)
    for p in list(periods):
        periods.update(coarser_periods(p))
    for p in list(periods):
        for group in sub_periods(p):
            periods.update(group)
    return Codec(words)


def build_structure(
    rules: dict[str, Rule],
    breakdowns: dict[str, list[list[str]]],
    keys: Sequence[np.ndarray],
    units: Sequence[Sequence[Any]],
    ranks: dict[str, int],
    links: list[Link],
    series: list[Series],
) -> Structure:
    """The cells and equations of the indicators in `rules` with these stored cells (their
    keys as five columns: indicator, vintage, level, code, period)."""
    factorized = [pd.factorize(np.asarray(column, dtype=object)) for column in keys]
    codec = _vocabulary(rules, breakdowns, [list(u) for _, u in factorized], units, links)
    stored = codec.compose(
        [codec.ids(i, uniques)[ids] for i, (ids, uniques) in enumerate(factorized)]
    )
    ctx = _Context(codec, rules, stored, units, ranks)
    terms = _Terms()
    _hierarchy(ctx, terms)
    _breakdowns(ctx, breakdowns, terms)
    _periods(ctx, terms)
    derived = {(s.indicator, s.vintage, s.level): s for s in series}
    pieces: list[np.ndarray] = []
    _vintages(ctx, links, derived, terms, pieces)
    quotient_keys = _quotients(ctx, links, derived)
    return _finish(ctx, terms, pieces, quotient_keys)


class _Context:
    """What every family of equations reads: the codec, rules and stored cells."""

    def __init__(
        self,
        codec: Codec,
        rules: dict[str, Rule],
        stored: np.ndarray,
        units: Sequence[Sequence[Any]],
        ranks: dict[str, int],
    ) -> None:
        self.codec, self.rules, self.stored, self.ranks = codec, rules, stored, ranks
        self.units = units
        self.parts = [codec.part(stored, i) for i in range(5)]
        words = codec.words[0]
        self.additive = np.array([w in rules and rules[w].additive for w in words], dtype=bool)
        self.sorted_stored = np.unique(stored)

    def is_stored(self, keys: np.ndarray) -> np.ndarray:
        """Whether integer keys are stored cells."""
        where = np.searchsorted(self.sorted_stored, keys)
        where = np.minimum(where, max(len(self.sorted_stored) - 1, 0))
        if not len(self.sorted_stored):
            return np.zeros(len(keys), dtype=bool)
        return np.asarray(self.sorted_stored[where] == keys)

    def with_period(self, keys: np.ndarray, period: np.ndarray | int) -> np.ndarray:
        """The same cells in another period."""
        radix = self.codec.radix[4]
        return np.asarray(keys - self.codec.part(keys, 4) * radix + np.asarray(period) * radix)

    def with_indicator(self, keys: np.ndarray, indicator: int) -> np.ndarray:
        """The same cells of another indicator."""
        stride = self.codec.stride
        return np.asarray(keys % stride + np.int64(indicator) * stride)


def _hierarchy(ctx: _Context, terms: _Terms) -> None:
    """Each unit of a valued level = the sum of its units at the next valued level down."""
    codec = ctx.codec
    mask = ctx.additive[ctx.parts[0]] if len(ctx.stored) else np.zeros(0, dtype=bool)
    levels: dict[tuple[int, int, int], list[str]] = defaultdict(list)
    for key in _distinct(ctx, mask, 3).tolist():
        i, vv, ll, _, pp = codec.split(key)
        levels[(i, vv, pp)].append(codec.words[2][ll])
    parents = {(u[0], u[2]): (u[1], u[3]) for u in ctx.units}
    children: dict[tuple[str, str], list[str]] = defaultdict(list)
    for u in ctx.units:
        children[(u[0], u[1])].append(u[2])
    groups: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for (i, vv, pp), valued in sorted(levels.items()):
        vintage = codec.words[1][vv]
        ordered = sorted(valued, key=lambda name: (ctx.ranks.get(name, 99), name))
        for upper, lower in zip(ordered, ordered[1:], strict=False):
            if (vintage, lower, upper) not in groups:
                found = _ancestors(vintage, lower, upper, parents, children)
                ancestor, eq = np.unique(codec.ids(3, list(found.values())), return_inverse=True)
                groups[(vintage, lower, upper)] = (codec.ids(3, list(found)), ancestor, eq)
            child, ancestor, eq = groups[(vintage, lower, upper)]
            count = len(ancestor)
            totals = codec.compose([i, vv, codec.id(2, upper), ancestor, pp])
            parts = codec.compose([i, vv, codec.id(2, lower), child, pp])
            terms.add(
                "hierarchy",
                np.concatenate([np.arange(count), eq]),
                np.concatenate([totals, parts]),
                np.concatenate([-np.ones(count), np.ones(len(child))]),
                count,
            )


def _distinct(ctx: _Context, mask: np.ndarray, without: int) -> np.ndarray:
    """The distinct keys of the masked stored cells with one part set to 0."""
    keys = ctx.stored[mask]
    return np.unique(keys - ctx.codec.part(keys, without) * ctx.codec.radix[without])


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


def _breakdowns(ctx: _Context, breakdowns: dict[str, list[list[str]]], terms: _Terms) -> None:
    """total = Σ parts, for every unit and period any of them has."""
    codec, stride = ctx.codec, ctx.codec.stride
    for total in sorted(breakdowns):
        if total not in ctx.rules:
            continue
        for parts in breakdowns[total]:
            members = [codec.id(0, total), *(codec.id(0, part) for part in parts)]
            places = np.unique(ctx.stored[np.isin(ctx.parts[0], members)] % stride)
            n = len(places)
            terms.add(
                "breakdown",
                np.tile(np.arange(n), len(members)),
                np.concatenate([places + np.int64(m) * stride for m in members]),
                np.concatenate([-np.ones(n), np.ones(n * len(parts))]),
                n,
            )


def _periods(ctx: _Context, terms: _Terms) -> None:
    """A year = its quarters = its months, a quarter = its months (declared per indicator)."""
    codec = ctx.codec
    summed = np.array(
        [
            w in ctx.rules and ctx.rules[w].period_aggregation == "sum" and ctx.rules[w].additive
            for w in codec.words[0]
        ],
        dtype=bool,
    )
    base = ctx.stored[summed[ctx.parts[0]]] if len(ctx.stored) else ctx.stored
    period = codec.part(base, 4)
    wholes = [base]
    for pid in np.unique(period).tolist():
        for coarse in coarser_periods(codec.words[4][pid]):
            wholes.append(ctx.with_period(base[period == pid], codec.id(4, coarse)))
    every = np.unique(np.concatenate(wholes))
    period = codec.part(every, 4)
    for pid in np.unique(period).tolist():
        whole = every[period == pid]
        n = len(whole)
        for group in sub_periods(codec.words[4][pid]):
            terms.add(
                "period",
                np.tile(np.arange(n), len(group) + 1),
                np.concatenate([whole, *(ctx.with_period(whole, codec.id(4, q)) for q in group)]),
                np.concatenate([-np.ones(n), np.ones(n * len(group))]),
                n,
            )


def _carried_from(series: Series | None) -> tuple[str, str, str] | None:
    """(from vintage, from level, weight) of a carried-over series."""
    d = series.derivation if series else None
    if not d or d.get("method") != "carry-over":
        return None
    return str(d["from_vintage"]), str(d["from_level"]), str(d.get("weight", "area"))


@dataclass
class _LinkGroup:
    """The crosswalk links from one (vintage, level) to another, as arrays of code ids."""

    from_code: np.ndarray
    to_code: np.ndarray
    area_share: np.ndarray  # nan where not given
    population_share: np.ndarray

    def share(self, weight: str) -> np.ndarray:
        """The links' shares by the weight (nan where not given)."""
        return self.population_share if weight == "population" else self.area_share


def _link_groups(codec: Codec, links: Sequence[Link]) -> dict[tuple[str, ...], _LinkGroup]:
    grouped: dict[tuple[str, ...], list[Link]] = defaultdict(list)
    for link in links:
        pair = (link.from_vintage, link.from_level, link.to_vintage, link.to_level)
        grouped[pair].append(link)
    return {
        pair: _LinkGroup(
            codec.ids(3, [lk.from_code for lk in group]),
            codec.ids(3, [lk.to_code for lk in group]),
            np.array([np.nan if lk.area_share is None else lk.area_share for lk in group]),
            np.array(
                [np.nan if lk.population_share is None else lk.population_share for lk in group]
            ),
        )
        for pair, group in grouped.items()
    }


def _vintages(
    ctx: _Context,
    links: list[Link],
    derived: dict[tuple[str, str, str], Series],
    terms: _Terms,
    pieces: list[np.ndarray],
) -> None:
    """The same count on two vintages: carried over (new = Σ share × old) or observed on
    both (each crosswalk link a piece of the old and of the new unit)."""
    codec = ctx.codec
    mask = ctx.additive[ctx.parts[0]] if len(ctx.stored) else np.zeros(0, dtype=bool)
    periods: dict[tuple[str, str, str], set[int]] = defaultdict(set)
    for key in _distinct(ctx, mask, 3).tolist():
        i, vv, ll, _, pp = codec.split(key)
        periods[(codec.words[0][i], codec.words[1][vv], codec.words[2][ll])].add(pp)
    groups = _link_groups(codec, links)
    for (indicator, vintage, level), mine in sorted(periods.items()):
        carried = _carried_from(derived.get((indicator, vintage, level)))
        for (fv, fl, tv, tl), group in groups.items():
            if (tv, tl) != (vintage, level) or (indicator, fv, fl) not in periods:
                continue
            common = sorted(mine & periods[(indicator, fv, fl)])
            ends = (
                codec.id(0, indicator),
                codec.id(1, fv),
                codec.id(2, fl),
                codec.id(1, tv),
                codec.id(2, tl),
            )
            if carried and carried[:2] == (fv, fl):
                _carried_equations(ctx, ends, group, common, carried[2], terms)
            elif not carried:
                _piece_equations(ctx, ends, group, common, terms, pieces)


def _carried_equations(
    ctx: _Context,
    ends: tuple[int, ...],
    group: _LinkGroup,
    periods: list[int],
    weight: str,
    terms: _Terms,
) -> None:
    i, fv, fl, tv, tl = ends
    targets, eq = np.unique(group.to_code, return_inverse=True)
    share = group.share(weight)
    given = ~np.isnan(share) & (share != 0)
    n = len(targets)
    for pid in periods:
        terms.add(
            "carry-over",
            np.concatenate([np.arange(n), eq[given]]),
            np.concatenate(
                [
                    ctx.codec.compose([i, tv, tl, targets, pid]),
                    ctx.codec.compose([i, fv, fl, group.from_code[given], pid]),
                ]
            ),
            np.concatenate([-np.ones(n), share[given]]),
            n,
        )


def _piece_equations(
    ctx: _Context,
    ends: tuple[int, ...],
    group: _LinkGroup,
    periods: list[int],
    terms: _Terms,
    pieces: list[np.ndarray],
) -> None:
    """An old unit in one new unit is a term of it; an old unit split among several is the
    sum of its pieces, each a term of its new unit. (Kept whatever is stored: the pieces tie
    the old and new units together only through both equations.)"""
    i, fv, fl, tv, tl = ends
    olds, old_of_link, counts = np.unique(group.from_code, return_inverse=True, return_counts=True)
    split = counts[old_of_link] > 1
    split_olds, split_of_link = np.unique(group.from_code[split], return_inverse=True)
    targets, target_of_link = np.unique(group.to_code, return_inverse=True)
    compose = ctx.codec.compose
    for pid in periods:
        first = sum(len(x) for x in pieces)
        numbers = first + np.arange(int(split.sum()))
        old_keys = compose([i, fv, fl, group.from_code[split], pid])
        new_keys = compose([i, tv, tl, group.to_code[split], pid])
        pieces.append(mix64(ctx.codec.hashes(old_keys) ^ mix64(ctx.codec.hashes(new_keys) + 1)))
        terms.add(
            "vintage",
            np.concatenate([np.arange(len(split_olds)), split_of_link]),
            np.concatenate([compose([i, fv, fl, split_olds, pid]), -1 - numbers]),
            np.concatenate([-np.ones(len(split_olds)), np.ones(len(numbers))]),
            len(split_olds),
        )
        terms.add(
            "vintage",
            np.concatenate(
                [np.arange(len(targets)), target_of_link[~split], target_of_link[split]]
            ),
            np.concatenate(
                [
                    compose([i, tv, tl, targets, pid]),
                    compose([i, fv, fl, group.from_code[~split], pid]),
                    -1 - numbers,
                ]
            ),
            np.concatenate([-np.ones(len(targets)), np.ones(len(group.to_code))]),
            len(targets),
        )


@dataclass
class _QuotientLinks:
    """Integer keys of quotient cells and of the cells they are computed from."""

    quotient: list[np.ndarray] = field(default_factory=list)
    source: list[np.ndarray] = field(default_factory=list)
    numerator: list[np.ndarray] = field(default_factory=list)
    missing_hides: list[np.ndarray] = field(default_factory=list)
    basis_of: list[np.ndarray] = field(default_factory=list)  # (stored cell, its basis)
    basis: list[np.ndarray] = field(default_factory=list)

    def add(self, quotient: np.ndarray, source: np.ndarray, numerator: bool, hides: bool) -> None:
        """Each quotient is computed from the source beside it."""
        self.quotient.append(quotient)
        self.source.append(source)
        self.numerator.append(np.full(len(quotient), numerator, dtype=bool))
        self.missing_hides.append(np.full(len(quotient), hides, dtype=bool))


def _refs(rule: Rule, rules: dict[str, Rule]) -> list[tuple[str, str | None]]:
    """(indicator, fixed period or None for the cell's own) of the cells a cell of the rule
    is computed from or checked against."""
    refs: list[tuple[str, str | None]] = []
    if rule.kind in QUOTIENT_KINDS and rule.numerator and rule.denominator:
        refs += [(rule.numerator, None), (rule.denominator, rule.denominator_period)]
    if rule.disclosure_basis:
        same = rule.disclosure_basis == rule.denominator
        refs.append((rule.disclosure_basis, rule.denominator_period if same else None))
    return [(r, q) for r, q in refs if r in rules]


def _quotients(
    ctx: _Context, links: list[Link], derived: dict[tuple[str, str, str], Series]
) -> _QuotientLinks:
    """Each quotient (or cell with a disclosure basis) → the cells it is computed from."""
    codec, found = ctx.codec, _QuotientLinks()
    ind, v, lvl = ctx.parts[0], ctx.parts[1], ctx.parts[2]
    for i, word in enumerate(codec.words[0]):
        rule = ctx.rules.get(word)
        if rule is None:
            continue
        mine = ind == i
        if rule.disclosure_basis:  # (the cell its rule checks; -1 when it has none)
            cells = ctx.stored[mine]
            found.basis_of.append(cells)
            same = rule.disclosure_basis == rule.denominator
            period = rule.denominator_period if same else None
            if rule.disclosure_basis in ctx.rules:
                found.basis.append(_ref_keys(ctx, cells, rule.disclosure_basis, period))
            else:
                found.basis.append(np.full(len(cells), -1, dtype=np.int64))
        refs = _refs(rule, ctx.rules)
        if not refs:
            continue
        hides = rule.suppress_below is not None or any(
            ctx.rules[r].suppress_below is not None for r, _ in refs
        )
        series = v[mine] * len(codec.words[2]) + lvl[mine]
        for both in np.unique(series).tolist():
            vv, ll = divmod(both, len(codec.words[2]))
            cells = ctx.stored[mine & (v == vv) & (lvl == ll)]
            rest = refs
            carried = _carried_from(derived.get((word, codec.words[1][vv], codec.words[2][ll])))
            if carried and rule.kind in QUOTIENT_KINDS:
                _carried_sources(ctx, cells, links, carried, rule, refs[:2], hides, found)
                rest = refs[2:]
            for ref, period in rest:
                found.add(cells, _ref_keys(ctx, cells, ref, period), ref == rule.numerator, hides)
    return found


def _ref_keys(ctx: _Context, cells: np.ndarray, ref: str, period: str | None) -> np.ndarray:
    keys = ctx.with_indicator(cells, ctx.codec.id(0, ref))
    return keys if period is None else ctx.with_period(keys, ctx.codec.id(4, period))


def _carried_sources(
    ctx: _Context,
    cells: np.ndarray,
    links: list[Link],
    carried: tuple[str, str, str],
    rule: Rule,
    refs: list[tuple[str, str | None]],
    hides: bool,
    found: _QuotientLinks,
) -> None:
    """A carried-over quotient is computed from its numerator and denominator on the old
    units its new unit is made of."""
    codec = ctx.codec
    fv, fl, _ = carried
    vintage, level = codec.part(cells[:1], 1), codec.part(cells[:1], 2)
    if not len(cells):
        return
    to_vintage, to_level = codec.words[1][int(vintage[0])], codec.words[2][int(level[0])]
    pairs = [
        (lk.to_code, lk.from_code)
        for lk in links
        if (lk.from_vintage, lk.from_level, lk.to_vintage, lk.to_level)
        == (fv, fl, to_vintage, to_level)
    ]
    if not pairs:
        return
    frame = pd.DataFrame(
        {"code": codec.ids(3, [a for a, _ in pairs]), "old": codec.ids(3, [b for _, b in pairs])}
    )
    mine = pd.DataFrame({"code": codec.part(cells, 3), "cell": np.arange(len(cells))})
    joined = mine.merge(frame, on="code")
    quotient = cells[joined["cell"].to_numpy()]
    old = joined["old"].to_numpy()
    for ref, period in refs:
        pid = codec.part(quotient, 4) if period is None else codec.id(4, period)
        source = codec.compose([codec.id(0, ref), codec.id(1, fv), codec.id(2, fl), old, pid])
        found.add(quotient, source, ref == rule.numerator, hides)


def _concat(arrays: list[np.ndarray], dtype: Any = np.int64) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype=dtype)


def _finish(
    ctx: _Context, terms: _Terms, pieces: list[np.ndarray], quotients: _QuotientLinks
) -> Structure:
    """Keep the equations with at least two stored cells (and every vintage one), add the
    cells they and the quotients need, and number everything."""
    eq, var, coef = _concat(terms.eq), _concat(terms.var), _concat(terms.coef, float)
    is_cell = var >= 0
    stored_term = np.zeros(len(var), dtype=bool)
    stored_term[is_cell] = ctx.is_stored(var[is_cell])
    count = np.bincount(eq, weights=stored_term, minlength=terms.n)
    keep = (count >= 2) | _concat(terms.always, bool)
    term_kept = keep[eq] if len(eq) else np.zeros(0, dtype=bool)
    eq, var, coef, is_cell = eq[term_kept], var[term_kept], coef[term_kept], is_cell[term_kept]
    row = (np.cumsum(keep) - 1)[eq] if len(eq) else eq
    source = _concat(quotients.source)
    needed = np.concatenate([var[is_cell], source])
    extra = np.setdiff1d(np.unique(needed), ctx.sorted_stored, assume_unique=True)
    cell_keys = np.concatenate([ctx.stored, extra])
    order = np.argsort(cell_keys, kind="stable")
    ordered = cell_keys[order]

    def var_of(keys: np.ndarray) -> np.ndarray:
        return _lookup(ordered, order, keys)

    n_cells = len(cell_keys)
    n_pieces = sum(len(x) for x in pieces)
    cols = np.where(is_cell, var_of(var), n_cells + (-var - 1))
    matrix = sparse.csr_matrix(
        (coef, (row, cols)), shape=(int(keep.sum()), n_cells + n_pieces), dtype=float
    )
    basis = np.full(len(ctx.stored), -2, dtype=np.int64)
    for cells, refs in zip(quotients.basis_of, quotients.basis, strict=True):
        basis[var_of(cells)] = var_of(refs)
    return Structure(
        ctx.codec,
        cell_keys,
        len(ctx.stored),
        n_pieces,
        _concat(pieces, np.uint64),
        matrix,
        [k for k, kept in zip(terms.kinds, keep, strict=True) if kept],
        var_of(_concat(quotients.quotient)),
        var_of(source),
        _concat(quotients.numerator, bool),
        _concat(quotients.missing_hides, bool),
        basis,
        ordered,
        order,
    )


def _lookup(ordered: np.ndarray, found: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """found[i] where ordered[i] == key, for each key (-1 where none is)."""
    keys = np.asarray(keys, dtype=np.int64)
    if not len(ordered):
        return np.full(len(keys), -1, dtype=np.int64)
    at = np.minimum(np.searchsorted(ordered, keys), len(ordered) - 1)
    return np.where(ordered[at] == keys, found[at], -1)


def fingerprint(*parts: Any) -> str:
    """A hash of what a structure is built from."""
    digest = hashlib.sha1()
    for part in parts:
        digest.update(repr(part).encode())
        digest.update(b"\x00")
    return digest.hexdigest()

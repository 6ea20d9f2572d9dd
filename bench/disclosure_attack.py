"""The attack of issue #17, rerun from scratch through the HTTP API only.

    .venv/bin/python -m bench.disclosure_attack [--no-cache]

Builds the issue's scenario (`bench.disclosure`: the demo with population hidden below
6,000, TB cases by commune in total, by sex and by quarter hidden below 10, a TB rate per
100,000, maternal deaths on the 2019 and 2025 provinces, new HIV cases carried from 2019 to
2025 and then the threshold raised; relations declared in the catalogue), starts the
service, and then reads only what it publishes: the catalogue and every series' values as
JSON, cross-checked against the same values as CSV and, for the scenario's indicators,
against the items of their collections (CSV, sorted by the indicator both ways). An
independent attacker (it shares no code with `indicators.protect`) writes every linear
relation it knows between the cells — the hierarchy (from the published parent codes), the
declared breakdowns and period sums, a published quotient times its denominator is its
numerator (across periods, as `denominator_period` says), a count observed on two vintages
is split along the published crosswalk (each link an unknown piece), a carried-over series
is Σ share × its source — and bounds every hidden count by linear programming (scipy's
HiGHS), a hidden quotient by the bounds of what it is computed from. A cell counts as
recovered exactly when its interval holds a single integer (counts) or has no width, and
within ±10 % when the interval lies inside 0.9–1.1 × its true value (read from the database
only to score).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.optimize import linprog
from scipy.sparse.csgraph import connected_components

Key = tuple[str, str, str, str, str]  # (indicator, vintage, level, code, period)
Var = Key | tuple[str, str, str, str, str, str]  # a cell, or a crosswalk piece
QUOTIENTS = ("rate", "ratio", "density", "share")
QUARTER = re.compile(r"(\d{4})-Q([1-4])$")
MONTH = re.compile(r"(\d{4})-(\d{2})$")
SCENARIO = ("population", "density", "tb", "tb_m", "tb_f", "tb_rate", "maternal", "hiv")
CROSSWALK = Path(__file__).resolve().parent.parent / "data" / "vn" / "crosswalk-2019-2025.csv"


# ---- what the service publishes ----


def _get(base: str, path: str, **query: str) -> bytes:
    url = f"{base}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    with urllib.request.urlopen(url, timeout=120) as response:
        return bytes(response.read())


@dataclass
class Published:
    """Everything the attacker read: the catalogue, and every series' cells."""

    meta: dict[str, dict]  # indicator code -> its /indicators/{code} document
    value: dict[Key, float | None] = field(default_factory=dict)
    status: dict[Key, str] = field(default_factory=dict)
    parent: dict[tuple[str, str, str], str | None] = field(default_factory=dict)
    requests: int = 0
    mismatches: list[str] = field(default_factory=list)

    def hidden(self) -> list[Key]:
        """The cells published as suppressed."""
        return sorted(k for k, s in self.status.items() if s == "suppressed")


def read_published(base: str, indicators: Iterable[str] | None = None) -> Published:
    """Read the catalogue and every series of the indicators (all when None) as JSON, and
    check the CSV of each series says the same."""
    listing = json.loads(_get(base, "/indicators"))
    codes = [i["code"] for i in listing["indicators"]]
    wanted = sorted(set(indicators) if indicators is not None else codes)
    found = Published({c: json.loads(_get(base, f"/indicators/{c}")) for c in wanted})
    found.requests = 1 + len(wanted)
    for code, meta in found.meta.items():
        for series in meta["series"]:
            vintage, level = series["vintage"], series["level"]
            document = json.loads(
                _get(base, f"/indicators/{code}/values", vintage=vintage, level=level)
            )
            for row in document["values"]:
                key = (code, vintage, level, row["code"], row["period"])
                found.value[key] = row["value"]
                found.status[key] = row["status"]
                found.parent[(vintage, level, row["code"])] = row["parent_code"]
            text = _get(
                base, f"/indicators/{code}/values", vintage=vintage, level=level, f="csv"
            ).decode("utf-8-sig")
            found.requests += 2
            for row in csv.DictReader(io.StringIO(text)):
                key = (code, vintage, level, row["code"], row["period"])
                shown = float(row["value"]) if row["value"] not in ("", None) else None
                if shown != found.value.get(key) and not (
                    shown is not None
                    and found.value.get(key) is not None
                    and math.isclose(shown, found.value[key] or 0.0, rel_tol=1e-9)
                ):
                    found.mismatches.append(f"{key}: CSV {shown}, JSON {found.value.get(key)}")
    return found


def check_items(base: str, published: Published, indicators: Iterable[str] | None = None) -> int:
    """Read every period of the indicators' series again as the items of their collection
    (CSV, sorted by the indicator both ways): a figure the values hide, or hidden cells
    ordered by anything but their code (`sortby` would rank them by their true figures), is
    a mismatch. Returns the number of requests."""
    wanted = set(indicators) if indicators is not None else set(published.meta)
    series: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for ind, vintage, level, _, period in published.status:
        if ind in wanted:
            series[(ind, vintage, level)].add(period)
    requests = 0
    for (ind, vintage, level), periods in sorted(series.items()):
        for period in sorted(periods):
            orders = []
            for sort in (ind, f"-{ind}"):
                text = _get(
                    base,
                    f"/collections/{level}-{vintage}/items",
                    f="csv",
                    indicator=ind,
                    period=period,
                    sortby=sort,
                    limit="10000",
                ).decode("utf-8-sig")
                requests += 1
                rows = list(csv.DictReader(io.StringIO(text)))
                for row in rows:
                    key = (ind, vintage, level, row["code"], period)
                    if key not in published.status:
                        continue
                    shown = float(row[ind]) if row[ind] not in ("", None) else None
                    expected = published.value[key]
                    if (shown is None) != (expected is None) or (
                        shown is not None and not math.isclose(shown, expected or 0.0)
                    ):
                        published.mismatches.append(f"{key}: items {shown}, values {expected}")
                orders.append([r["code"] for r in rows if r[ind] in ("", None)])
            if any(order != sorted(order) for order in orders):
                published.mismatches.append(f"{ind} {vintage} {level} {period}: hidden sorted")
    published.requests += requests
    return requests


def read_crosswalk(
    path: Path = CROSSWALK, vintages: tuple[str, str] = ("2019", "2025")
) -> list[dict]:
    """The published crosswalk (the reform's decisions, shipped as open data)."""
    with path.open(encoding="utf-8") as f:
        return [
            {**row, "from_vintage": vintages[0], "to_vintage": vintages[1]}
            for row in csv.DictReader(f)
        ]


# ---- the relations an attacker knows ----


@dataclass
class System:
    """Linear relations over unknowns: rows of (coefficients by variable, constant) with
    Σ coefficient × variable + constant = 0 (equalities) or ≤ 0 (inequalities)."""

    equalities: list[tuple[dict[Var, float], float]] = field(default_factory=list)
    inequalities: list[tuple[dict[Var, float], float]] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class Relations:
    """Writes the relations between published cells; a published cell is a constant, any
    other cell (hidden, not available, never published) an unknown."""

    def __init__(self, published: Published, crosswalk: list[dict]):
        self.p = published
        self.crosswalk = crosswalk
        self.system = System()
        self.series: dict[tuple[str, str, str], set[str]] = defaultdict(set)  # -> periods
        self.units: dict[tuple[str, str], set[str]] = defaultdict(set)  # (vintage, level)
        for ind, vintage, level, code, period in published.status:
            self.series[(ind, vintage, level)].add(period)
            self.units[(vintage, level)].add(code)

    def known(self, key: Key) -> float | None:
        """A cell's published figure (None when the attacker does not know it)."""
        return self.p.value.get(key)

    def add(self, kind: str, terms: Iterable[tuple[Var, float]], constant: float = 0.0) -> None:
        """Add Σ coefficient × cell + constant = 0, published cells moved to the constant."""
        row: dict[Var, float] = defaultdict(float)
        for var, coefficient in terms:
            figure = self.known(var) if len(var) == 5 else None
            if figure is None:
                row[var] += coefficient
            else:
                constant += coefficient * figure
        row = {v: c for v, c in row.items() if c != 0.0}
        if row:
            self.system.equalities.append((row, constant))
            self.system.kinds[kind] += 1

    def add_band(
        self, kind: str, terms: list[tuple[Var, float]], lower: list[tuple[Var, float]]
    ) -> None:
        """Σ terms ≤ 0 ≤ Σ lower-terms (a relation through a rounded figure)."""
        for sign, row in ((1.0, terms), (-1.0, lower)):
            coefficients: dict[Var, float] = defaultdict(float)
            constant = 0.0
            for var, c in row:
                figure = self.known(var) if len(var) == 5 else None
                if figure is None:
                    coefficients[var] += sign * c
                else:
                    constant += sign * c * figure
            if coefficients:
                self.system.inequalities.append((dict(coefficients), constant))
        self.system.kinds[kind] += 1

    def additive(self, code: str) -> bool:
        """Whether the indicator is a count."""
        return self.p.meta[code]["kind"] == "count"

    def write_all(self) -> System:
        """Every relation the attacker knows."""
        for ind, vintage, level in list(self.series):
            if self.additive(ind):
                self.hierarchy(ind, vintage, level)
                self.periods(ind, vintage, level)
                self.breakdowns(ind, vintage, level)
            elif self.p.meta[ind]["kind"] in QUOTIENTS:
                self.quotient(ind, vintage, level)
        for ind in self.p.meta:
            if self.additive(ind):
                self.vintages(ind)
        return self.system

    def hierarchy(self, ind: str, vintage: str, level: str) -> None:
        """A unit is the sum of its units on the level below (by published parent codes)."""
        children: dict[str, list[str]] = defaultdict(list)
        for code in self.units[(vintage, level)]:
            parent = self.p.parent.get((vintage, level, code))
            if parent:
                children[parent].append(code)
        for upper in {lv for (i, v, lv) in self.series if i == ind and v == vintage}:
            if upper == level or not children.keys() & self.units[(vintage, upper)]:
                continue
            for parent, codes in children.items():
                if parent not in self.units[(vintage, upper)]:
                    continue
                for period in (
                    self.series[(ind, vintage, level)] & self.series[(ind, vintage, upper)]
                ):
                    self.add(
                        "hierarchy",
                        [((ind, vintage, upper, parent, period), -1.0)]
                        + [((ind, vintage, level, c, period), 1.0) for c in codes],
                    )

    def periods(self, ind: str, vintage: str, level: str) -> None:
        """A year is the sum of its quarters, and of its months; a quarter of its months."""
        if self.p.meta[ind].get("period_aggregation") != "sum":
            return
        periods = self.series[(ind, vintage, level)]
        groups: dict[str, list[str]] = defaultdict(list)
        for period in periods:
            if q := QUARTER.match(period):
                groups[q.group(1)].append(period)
            elif m := MONTH.match(period):
                year, month = m.group(1), int(m.group(2))
                groups[f"{year}/m"].append(period)
                groups[f"{year}-Q{(month - 1) // 3 + 1}"].append(period)
        for whole, parts in groups.items():
            total = whole.split("/")[0]
            expected = 12 if whole.endswith("/m") else (4 if "-Q" not in whole else 3)
            if total not in periods or len(parts) != expected:
                continue
            for code in self.units[(vintage, level)]:
                self.add(
                    "periods",
                    [((ind, vintage, level, code, total), -1.0)]
                    + [((ind, vintage, level, code, p), 1.0) for p in parts],
                )

    def breakdowns(self, ind: str, vintage: str, level: str) -> None:
        """A total is the sum of each of its declared breakdowns."""
        for parts in self.p.meta[ind].get("breakdowns", []):
            if not all((p, vintage, level) in self.series for p in parts):
                continue
            for period in self.series[(ind, vintage, level)]:
                for code in self.units[(vintage, level)]:
                    self.add(
                        "breakdowns",
                        [((ind, vintage, level, code, period), -1.0)]
                        + [((p, vintage, level, code, period), 1.0) for p in parts],
                    )

    def quotient(self, ind: str, vintage: str, level: str) -> None:
        """A published quotient q = m × N / D gives N = (q / m) × D, its rounding a band."""
        meta = self.p.meta[ind]
        num, den = meta.get("numerator"), meta.get("denominator")
        if not num or not den or (num, vintage, level) not in self.series:
            return
        step = 0.5 * 10.0 ** -int(meta["decimals"])
        multiplier = float(meta["multiplier"] or 1.0)
        for (i, v, lv, code, period), q in self.p.value.items():
            if (i, v, lv) != (ind, vintage, level) or q is None:
                continue
            den_period = meta.get("denominator_period") or period
            n_key: Key = (num, vintage, level, code, period)
            d_key: Key = (den, vintage, level, code, den_period)
            if (den, vintage, level) not in self.series:
                continue  # (a denominator nobody publishes is no relation between cells)
            rounded = abs(q / (2 * step) - round(q / (2 * step))) < 1e-9
            if not rounded:
                self.add("quotients", [(n_key, 1.0), (d_key, -q / multiplier)])
            else:  # N − (q ± step)/m × D within the band
                self.add_band(
                    "quotients",
                    [(n_key, 1.0), (d_key, -(q + step) / multiplier)],
                    [(n_key, 1.0), (d_key, -(q - step) / multiplier)],
                )

    def vintages(self, ind: str) -> None:
        """A count on two vintages: carried over, new = Σ share × old; observed on both,
        each crosswalk link is an unknown piece of both units."""
        for link_level in {r["from_level"] for r in self.crosswalk}:
            by_vintage = {
                v: self.series.get((ind, v, link_level), set())
                for v in {r[k] for r in self.crosswalk for k in ("from_vintage", "to_vintage")}
            }
            old_v = self.crosswalk[0]["from_vintage"]
            new_v = self.crosswalk[0]["to_vintage"]
            shared = by_vintage.get(old_v, set()) & by_vintage.get(new_v, set())
            new_series = next(
                (
                    s
                    for s in self.p.meta[ind]["series"]
                    if s["vintage"] == new_v and s["level"] == link_level
                ),
                None,
            )
            derivation = (new_series or {}).get("derivation") or {}
            links = [r for r in self.crosswalk if r["from_level"] == link_level]
            for period in sorted(shared):
                if derivation.get("method") == "carry-over":
                    self._carried(ind, old_v, new_v, link_level, period, links, derivation)
                else:
                    self._pieces(ind, old_v, new_v, link_level, period, links)

    def _carried(
        self,
        ind: str,
        old_v: str,
        new_v: str,
        level: str,
        period: str,
        links: list[dict],
        derivation: dict,
    ) -> None:
        weight = "population_share" if derivation.get("weight") == "population" else "area_share"
        into: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for r in links:
            share = r[weight] or r["area_share"]
            into[r["to_code"]].append((r["from_code"], float(share) if share else 1.0))
        for to_code, sources in into.items():
            self.add(
                "carry-over",
                [((ind, new_v, level, to_code, period), -1.0)]
                + [((ind, old_v, level, f, period), s) for f, s in sources],
            )

    def _pieces(
        self, ind: str, old_v: str, new_v: str, level: str, period: str, links: list[dict]
    ) -> None:
        sides: dict[tuple[str, str], list[Var]] = defaultdict(list)
        for r in links:
            piece = ("piece", ind, r["from_code"], r["to_code"], period, level)
            sides[(old_v, r["from_code"])].append(piece)
            sides[(new_v, r["to_code"])].append(piece)
        for (vintage, code), pieces in sides.items():
            self.add(
                "two vintages",
                [((ind, vintage, level, code, period), -1.0)] + [(p, 1.0) for p in pieces],
            )


# ---- the linear programs ----


@dataclass
class Bound:
    """What the attacker can deduce about one hidden cell."""

    key: Key
    lower: float
    upper: float
    how: str  # 'LP', 'sources' (a quotient bounded by its sources' intervals), 'free'


def attack(published: Published, crosswalk: list[dict]) -> tuple[list[Bound], System]:
    """The attainable interval of every hidden cell."""
    system = Relations(published, crosswalk).write_all()
    variables: dict[Var, int] = {}
    for row, _ in system.equalities + system.inequalities:
        for var in row:
            variables.setdefault(var, len(variables))
    n = len(variables)

    def matrix(rows: list[tuple[dict[Var, float], float]]) -> tuple[sparse.csr_matrix, np.ndarray]:
        data, ri, ci = [], [], []
        for i, (row, _) in enumerate(rows):
            for var, c in row.items():
                ri.append(i)
                ci.append(variables[var])
                data.append(c)
        shape = (len(rows), n)
        return sparse.csr_matrix((data, (ri, ci)), shape=shape), np.array(
            [-c for _, c in rows], dtype=float
        )

    a_eq, b_eq = matrix(system.equalities)
    a_ub, b_ub = matrix(system.inequalities)
    together = sparse.vstack([a_eq, a_ub]).tocsr()
    incidence = (abs(together) > 0).astype(float)
    _, label = connected_components(incidence.T @ incidence, directed=False)
    bounds: dict[Key, Bound] = {}
    counts = [k for k in published.hidden() if published.meta[k[0]]["kind"] == "count"]
    by_component: dict[int, list[Key]] = defaultdict(list)
    for key in counts:
        if key in variables:
            by_component[int(label[variables[key]])].append(key)
        else:
            bounds[key] = Bound(key, 0.0, math.inf, "free")
    eq_rows = _rows_by_component(a_eq, label)
    ub_rows = _rows_by_component(a_ub, label)
    for component, keys in by_component.items():
        cols = np.flatnonzero(label == component)
        sub_eq = a_eq[eq_rows.get(component, [])][:, cols]
        sub_ub = a_ub[ub_rows.get(component, [])][:, cols]
        beq = b_eq[eq_rows.get(component, [])]
        bub = b_ub[ub_rows.get(component, [])]
        local = {int(c): i for i, c in enumerate(cols)}
        for key in keys:
            target = local[variables[key]]
            found = []
            for sense in (1.0, -1.0):
                objective = np.zeros(len(cols))
                objective[target] = sense
                result = linprog(
                    objective,
                    A_ub=sub_ub if sub_ub.shape[0] else None,
                    b_ub=bub if sub_ub.shape[0] else None,
                    A_eq=sub_eq if sub_eq.shape[0] else None,
                    b_eq=beq if sub_eq.shape[0] else None,
                    bounds=(0, None),
                    method="highs",
                )
                if result.status == 3:  # unbounded (only upwards: every unknown is ≥ 0)
                    found.append(math.inf)
                elif result.status == 0:
                    found.append(sense * result.fun)
                else:
                    raise RuntimeError(f"the attacker's system is {result.message} at {key}")
            bounds[key] = Bound(key, found[0], found[1], "LP")
    for key in published.hidden():
        if key not in bounds:
            bounds[key] = _quotient_bound(key, published, bounds)
    return [bounds[k] for k in published.hidden()], system


def _rows_by_component(a: sparse.csr_matrix, label: np.ndarray) -> dict[int, list[int]]:
    rows: dict[int, list[int]] = defaultdict(list)
    for i in range(a.shape[0]):
        cols = a.indices[a.indptr[i] : a.indptr[i + 1]]
        if len(cols):
            rows[int(label[cols[0]])].append(i)
    return rows


def _quotient_bound(key: Key, published: Published, bounds: dict[Key, Bound]) -> Bound:
    """q = m × N / D within the bounds of N and D (published figures exact)."""
    meta = published.meta[key[0]]
    num, den = meta.get("numerator"), meta.get("denominator")
    if not num or not den:
        return Bound(key, -math.inf, math.inf, "free")
    ind, vintage, level, code, period = key
    n_key: Key = (num, vintage, level, code, period)
    d_key: Key = (den, vintage, level, code, meta.get("denominator_period") or period)

    def interval(k: Key) -> tuple[float, float]:
        figure = published.value.get(k)
        if figure is not None:
            return figure, figure
        b = bounds.get(k)
        return (b.lower, b.upper) if b else (0.0, math.inf)

    (n_lo, n_hi), (d_lo, d_hi) = interval(n_key), interval(d_key)
    m = float(meta["multiplier"] or 1.0)
    lower = m * n_lo / d_hi if d_hi > 0 else 0.0
    upper = m * n_hi / d_lo if d_lo > 0 else math.inf
    return Bound(key, lower, upper, "sources")


# ---- the score ----


@dataclass
class Score:
    """How many hidden cells the attacker pinned."""

    hidden: int
    exact: list[Bound]
    within_10: list[Bound]
    no_truth: int


def score(bounds: list[Bound], truth: dict[Key, float], counts: set[str]) -> Score:
    """Count the cells recovered exactly, and within ±10 % of their true value."""
    exact, close, no_truth = [], [], 0
    for b in bounds:
        value = truth.get(b.key)
        if value is None:
            no_truth += 1
            continue
        slack = 1e-6 * max(1.0, abs(value))
        if not math.isfinite(b.upper - b.lower):
            pinned = False
        elif b.key[0] in counts:
            pinned = math.ceil(b.lower - slack) >= math.floor(b.upper + slack)
        else:
            pinned = b.upper - b.lower <= slack
        if pinned:
            exact.append(b)
        elif b.lower >= 0.9 * value - slack and b.upper <= 1.1 * value + slack:
            close.append(b)
    return Score(len(bounds), exact, close, no_truth)


def report(bounds: list[Bound], result: Score, system: System, published: Published) -> str:
    """The attack's result as text."""
    lines = [
        f"requests: {published.requests}; cells read: {len(published.status)}; "
        f"hidden: {result.hidden}; CSV/JSON mismatches: {len(published.mismatches)}",
        "relations: "
        + ", ".join(f"{k} {v}" for k, v in sorted(system.kinds.items()))
        + f" ({len(system.equalities)} equations, {len(system.inequalities)} inequalities)",
        f"recovered exactly: {len(result.exact)}; within ±10 %: {len(result.within_10)}",
    ]
    by_indicator: dict[str, list[Bound]] = defaultdict(list)
    for b in bounds:
        by_indicator[b.key[0]].append(b)
    for ind, found in sorted(by_indicator.items()):
        finite = [b for b in found if math.isfinite(b.upper)]
        narrowest = min(finite, key=lambda b: b.upper - b.lower, default=None)
        lines.append(
            f"  {ind}: {len(found)} hidden, {len(finite)} bounded above"
            + (
                f", narrowest {narrowest.key[1:]} {narrowest.lower:g}–{narrowest.upper:g}"
                if narrowest
                else ""
            )
        )
    for b in (result.exact + result.within_10)[:50]:
        lines.append(f"  RECOVERED {b.key}: {b.lower:g}–{b.upper:g} ({b.how})")
    return "\n".join(lines)


# ---- the benchmark ----


def main() -> None:
    """Build the scenario, serve it, attack it through HTTP, print the result."""
    import psycopg

    from bench.common import (
        clean_env,
        loadavg,
        ours_command,
        prepare_database,
        start_server,
        stop_server,
        throwaway_cluster,
    )
    from bench.disclosure import _scenario
    from indicators import protect

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-cache", action="store_true", help="load the demo afresh")
    parser.add_argument("--out", type=Path, help="write every hidden cell's interval (CSV)")
    args = parser.parse_args()
    print(f"load average before {' '.join(loadavg())}", flush=True)
    with throwaway_cluster("bench-attack-", print) as (cluster, workdir):
        url, how = prepare_database(cluster, not args.no_cache, print)
        print(how, flush=True)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE indicator SET suppress_below = 6000 WHERE code = 'population'")
            conn.execute(
                "UPDATE indicator SET suppress_below = 6000, disclosure_basis = 'population'"
                " WHERE code = 'density'"
            )
            protect.refresh(conn, everything=True)
            _scenario(conn, workdir)
            protect.refresh(conn)  # (the raised threshold: what the service's worker does)
            truth = {
                (r[0], r[1], r[2], r[3], r[4]): float(r[5])
                for r in conn.execute(
                    "SELECT indicator, vintage, level, code, period, value"
                    " FROM indicator_value WHERE value IS NOT NULL"
                )
            }
            counts = {r[0] for r in conn.execute("SELECT code FROM indicator WHERE kind = 'count'")}
        home = workdir / "home"
        home.mkdir()
        env = {**clean_env(), "DATABASE_URL": url, "GEO_SERVICE_HOME": str(home)}
        server = start_server("ours", ours_command(), env, "/health", "", workdir)
        try:
            started = time.perf_counter()
            published = read_published(server.base)
            check_items(server.base, published, SCENARIO)
            read_s = time.perf_counter() - started
            started = time.perf_counter()
            bounds, system = attack(published, read_crosswalk())
            attack_s = time.perf_counter() - started
        finally:
            stop_server(server)
        result = score(bounds, truth, counts)
        if args.out:
            with args.out.open("w", newline="", encoding="utf-8") as f:
                out = csv.writer(f)
                out.writerow(["indicator", "vintage", "level", "code", "period", "lower", "upper"])
                out.writerows([*b.key, b.lower, b.upper] for b in bounds)
        print(report(bounds, result, system, published))
        print(f"reading {read_s:.1f} s, linear programs {attack_s:.1f} s")
    print(f"load average after {' '.join(loadavg())}", flush=True)
    if result.exact or result.within_10 or published.mismatches:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

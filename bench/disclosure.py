"""Disclosure control of linked tables: full protection and audit, and one value edit.

    .venv/bin/python -m bench.disclosure [--no-cache] [--profile]

Two data sets in a throwaway cluster: the demo (population hidden below 6,000 in 2025
communes, density following it), and the scenario of issue #17 on top of it: TB cases by
commune as total, male and female, for a year and its four quarters (3,321 × 3 × 5 cells,
hidden below 10, a rate per 100,000 on the 2025 population), maternal deaths observed on
the 2019 and the 2025 provinces, and new HIV cases carried over from 2019 to 2025. The
values are drawn from a seeded generator (Poisson counts, 300 a year per 100,000 people
of each sex), so every
run protects the same tables.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import psycopg

from bench.common import loadavg, prepare_database, throwaway_cluster
from indicators import protect
from indicators.catalogue import load_catalogue
from indicators.store import carry_over, store_values
from indicators.values import ValueRow

CATALOGUE = """code,name_vi,name_en,kind,numerator,denominator,multiplier,suppress_below,\
disclosure_basis,sum_of,period_aggregation,denominator_period
tb_m,Lao phổi (nam),TB cases (male),count,,,,10,,,sum,
tb_f,Lao phổi (nữ),TB cases (female),count,,,,10,,,sum,
tb,Lao phổi,TB cases,count,,,,10,,tb_m + tb_f,sum,
tb_rate,Tỷ lệ lao phổi,TB rate,rate,tb,population,100000,,,,,2025
maternal,Tử vong mẹ,Maternal deaths,count,,,,10,,,,
hiv,HIV mới,New HIV cases,count,,,,5,,,,
"""
PERIODS = ["2024", "2024-Q1", "2024-Q2", "2024-Q3", "2024-Q4"]


def _log(line: str) -> None:
    print(line, flush=True)


def _timed(what: str, results: list[tuple[str, float, str]], action, note: str = "") -> object:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    out = action()
    seconds = time.perf_counter() - started
    results.append((what, seconds, note))
    _log(f"{what}: {seconds:.2f} s {note}")
    return out


def _scenario(conn: psycopg.Connection, tmp: Path) -> int:
    """Load the issue's scenario; return how many cells it adds."""
    path = tmp / "catalogue.csv"
    path.write_text(CATALOGUE, encoding="utf-8")
    load_catalogue(conn, path)
    rng = np.random.default_rng(17)
    pop: dict[str, float] = dict(
        conn.execute(
            "SELECT code, value FROM indicator_value WHERE indicator = 'population'"
            " AND level = 'commune' AND value IS NOT NULL"
        ).fetchall()
    )
    codes = sorted(pop)
    cells = 0
    quarters: dict[str, dict[str, np.ndarray]] = {}
    for sex in ("m", "f"):
        lam = np.array([pop[c] for c in codes]) * 300e-5 / 4  # 300 per 100,000 a year
        quarters[sex] = {p: rng.poisson(lam) for p in PERIODS[1:]}
        quarters[sex]["2024"] = np.sum([quarters[sex][p] for p in PERIODS[1:]], axis=0)
    series = {
        "tb_m": quarters["m"],
        "tb_f": quarters["f"],
        "tb": {p: quarters["m"][p] + quarters["f"][p] for p in PERIODS},
    }
    for code, by_period in series.items():
        rows = [
            ValueRow("bench", c, p, float(by_period[p][i]), "ok")
            for p in PERIODS
            for i, c in enumerate(codes)
        ]
        store_values(conn, code, "2025", "commune", rows)
        cells += len(rows)
    rate = [
        ValueRow("bench", c, p, float(series["tb"][p][i]) / pop[c] * 1e5, "ok")
        for p in PERIODS
        for i, c in enumerate(codes)
        if pop[c]
    ]
    store_values(conn, "tb_rate", "2025", "commune", rate)
    cells += len(rate)
    # the same deaths counted on both vintages: each 2019 province's split among the 2025
    # provinces it went to (by area share)
    links: dict[str, list[tuple[str, float]]] = {}
    for from_code, to_code, share in conn.execute(
        "SELECT from_code, to_code, coalesce(area_share, 1) FROM crosswalk"
        " WHERE from_vintage = '2019' AND to_vintage = '2025' AND from_level = 'province'"
    ):
        links.setdefault(from_code, []).append((to_code, share))
    for period in ("2023", "2024"):
        old_deaths = {code: int(rng.poisson(12)) for code in sorted(links)}
        new_deaths: dict[str, float] = {}
        for code, deaths in old_deaths.items():
            shares = np.array([share for _, share in links[code]])
            split = rng.multinomial(deaths, shares / shares.sum())
            for (to_code, _), part in zip(links[code], split, strict=True):
                new_deaths[to_code] = new_deaths.get(to_code, 0.0) + float(part)
        by_vintage: dict[str, dict[str, float]] = {
            "2019": {k: float(v) for k, v in old_deaths.items()},
            "2025": new_deaths,
        }
        for vintage, counted in by_vintage.items():
            rows = [ValueRow("bench", u, period, v, "ok") for u, v in counted.items()]
            store_values(conn, "maternal", vintage, "province", rows, replace=True)
            cells += len(rows)
    old = [
        r[0]
        for r in conn.execute(
            "SELECT code FROM admin_unit WHERE vintage = '2019' AND level = 'province'"
        )
    ]
    store_values(
        conn,
        "hiv",
        "2019",
        "province",
        [ValueRow("bench", u, "2022", float(rng.poisson(9)), "ok") for u in old],
    )
    carry_over(conn, "hiv", "2019", "2025", "province", "area")
    conn.execute("UPDATE indicator SET suppress_below = 10 WHERE code = 'hiv'")  # raised
    return cells + len(old) + 34


def main() -> None:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-cache", action="store_true", help="load the demo afresh")
    parser.add_argument(
        "--profile", action="store_true", help="print where the edits' protection spends time"
    )
    args = parser.parse_args()
    results: list[tuple[str, float, str]] = []
    load_before = loadavg()
    with throwaway_cluster("bench-disclosure-", _log) as (cluster, workdir):
        url, how = prepare_database(cluster, not args.no_cache, _log)
        _log(how)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE indicator SET suppress_below = 6000 WHERE code = 'population'")
            conn.execute(
                "UPDATE indicator SET suppress_below = 6000, disclosure_basis = 'population'"
                " WHERE code = 'density'"
            )
            _timed("demo: full protection", results, lambda: protect.refresh(conn, everything=True))
            demo = _timed("demo: audit", results, lambda: protect.audit(conn))
            _summary(demo)
            cells = _timed(
                "scenario: load (each load protects)", results, lambda: _scenario(conn, workdir)
            )
            _log(f"scenario cells: {cells}")
            reports = _timed(
                "demo + scenario: full protection",
                results,
                lambda: protect.refresh(conn, everything=True),
            )
            for group in reports:  # type: ignore[attr-defined]
                _log(
                    f"  {', '.join(group.indicators)}: {group.cells} cells, "
                    f"{group.hidden} hidden, {group.primary} primary, "
                    f"{len(group.failing)} below protection"
                )
            full = _timed("demo + scenario: audit", results, lambda: protect.audit(conn))
            _summary(full)
            if args.profile:
                profile = cProfile.Profile()
                profile.enable()
            _incremental(conn, results)
            if args.profile:
                profile.disable()
                pstats.Stats(profile).sort_stats("cumulative").print_stats(45)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _log(f"\nload average before {' '.join(load_before)}, after {' '.join(loadavg())}")
    _log(f"peak memory of this process: {peak:.0f} MiB\n")
    _log("| step | seconds | |\n|---|---:|---|")
    for what, seconds, note in results:
        _log(f"| {what} | {seconds:.2f} | {note} |")


def _summary(report: object) -> None:
    series = list(report)  # type: ignore[call-overload]
    hidden = sum(s.hidden for s in series)
    below = sum(len(s.below) for s in series)
    _log(f"  audit: {len(series)} series, {hidden} hidden cells, {below} below protection")


def _incremental(conn: psycopg.Connection, results: list[tuple[str, float, str]]) -> None:
    """One TB value edited with plain SQL, then the pending table protected (what the
    service does after the NOTIFY), nine times on different communes (the first protection
    after the full one may build the table's structure again: it is timed apart)."""
    codes = [
        r[0]
        for r in conn.execute(
            "SELECT code FROM indicator_value WHERE indicator = 'tb_m' AND period = '2024-Q2'"
            " ORDER BY code LIMIT 10 OFFSET 100"
        )
    ]
    times = []
    for code in codes:
        conn.execute(
            "UPDATE indicator_value SET value = value + 3 WHERE indicator = 'tb_m'"
            " AND code = %s AND period IN ('2024-Q2', '2024')",
            (code,),
        )
        conn.execute(
            "UPDATE indicator_value SET value = value + 3 WHERE indicator = 'tb'"
            " AND code = %s AND period IN ('2024-Q2', '2024')",
            (code,),
        )
        started = time.perf_counter()
        protect.refresh(conn)
        times.append(time.perf_counter() - started)
    first, rest = times[0], times[1:]
    results.append(("first edit after the full protection", first, ""))
    results.append(
        (
            "one edit (TB male, one commune): protection of its linked table",
            statistics.median(rest),
            f"median of {len(rest)}; min {min(rest):.2f}, max {max(rest):.2f}; "
            + ", ".join(f"{t:.2f}" for t in rest),
        )
    )
    _log(f"incremental: {', '.join(f'{t:.2f}' for t in times)} s")


if __name__ == "__main__":
    main()

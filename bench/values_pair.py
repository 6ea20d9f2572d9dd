"""Two running services side by side: the values table (`/indicators/{code}/values`) read
in turns from each, so that a change of the machine's load hits both alike. Prints, per
selection, each side's median and spread (the medians of the rounds: lowest–highest) and
the ratio AFTER / BEFORE of the medians, then the load.

Usage: .venv/bin/python bench/values_pair.py BEFORE_URL AFTER_URL [--rounds 7] [--requests 30]

Start each tree's service over the same database yourself, e.g.
`GEO_SERVICE_HOME=H TREE/.venv/bin/geo-service serve --port N` (the demo's database).

With `--database URL` instead of the two services, the database reads alone, in one
process and in turns: the values and the pending flag by two statements in a
repeatable-read transaction (as before) against one statement reading both (as now).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# a province's communes, every commune of the country, and one unit (the round trips of a
# read weigh most where the answer is small)
SELECTIONS = {
    "3,321 communes": "/indicators/density/values?vintage=2025&level=commune",
    "126 communes of a province": "/indicators/density/values?vintage=2025&level=commune&parent=01",
    "one unit": "/indicators/density/values?vintage=2025&level=province&unit=79",
}


def milliseconds(url: str, n: int) -> float:
    """The median time of n reads of `url`, in ms (the body read in full)."""
    times = []
    for _ in range(n):
        started = time.perf_counter()
        with urllib.request.urlopen(url) as response:
            response.read()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def direct(database: str, rounds: int, n: int) -> None:
    """The two ways of reading the values and their flag, in turns on one connection."""
    import psycopg

    from indicators import read

    linked = ["density", "population", "area_km2"]

    async def snapshot_two_statements(
        conn: psycopg.AsyncConnection, choice: read.SeriesChoice, parent: str | None
    ) -> None:
        async with read.one_snapshot(conn):
            await read.published_values(conn, choice, parent)
            await read.withheld(conn, linked)

    async def one_statement(
        conn: psycopg.AsyncConnection, choice: read.SeriesChoice, parent: str | None
    ) -> None:
        await read.published_values_withheld(conn, choice, linked, parent)

    ways = {"before": snapshot_two_statements, "after": one_statement}
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
        meta = await read.get_indicator(conn, "density")
        for name, parent in (("3,321 communes", None), ("126 communes of a province", "01")):
            choice = read.choose_series(meta, "2025", "commune", None)
            sides: dict[str, list[float]] = {"before": [], "after": []}
            for i in range(rounds + 1):
                order = ["before", "after"] if i % 2 == 0 else ["after", "before"]
                for side in order:
                    times = []
                    for _ in range(n):
                        started = time.perf_counter()
                        await ways[side](conn, choice, parent)
                        times.append((time.perf_counter() - started) * 1000)
                    if i:  # (the first round warms)
                        sides[side].append(statistics.median(times))
            _print(name, sides)


def _print(name: str, sides: dict[str, list[float]]) -> None:
    b, a = statistics.median(sides["before"]), statistics.median(sides["after"])
    print(
        f"{name}: before {b:.2f} ms ({min(sides['before']):.2f}–{max(sides['before']):.2f}),"
        f" after {a:.2f} ms ({min(sides['after']):.2f}–{max(sides['after']):.2f}),"
        f" after/before {a / b:.2f}"
    )


def main() -> None:
    """Read each selection from both services in alternating order, round after round."""
    parser = argparse.ArgumentParser()
    parser.add_argument("before", nargs="?")
    parser.add_argument("after", nargs="?")
    parser.add_argument("--database", help="read the database directly (see above)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    print(f"load at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.database:
        asyncio.run(direct(args.database, args.rounds, args.requests))
        print(f"load at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return
    for name, path in SELECTIONS.items():
        sides: dict[str, list[float]] = {"before": [], "after": []}
        for base in (args.before, args.after):  # (warm: connections, plans, caches)
            milliseconds(base + path, 3)
        for i in range(args.rounds):
            order = ["before", "after"] if i % 2 == 0 else ["after", "before"]
            for side in order:
                sides[side].append(milliseconds(getattr(args, side) + path, args.requests))
        _print(name, sides)
    print(f"load at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

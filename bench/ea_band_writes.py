"""What writes to `enumeration_area` cost with each way of keeping the low-zoom band columns
(issue #25, migrations 0022 and 0023): the database backend's own CPU seconds per write,
read from /proc (the cluster must run on this machine), so other work on the machine moves
the figures less than wall times. Each write is rolled back; the databases are measured in
turn, `--repeat` times.

    PYTHONPATH=. .venv/bin/python -m bench.ea_band_writes LABEL=URL [LABEL=URL ...]

Each URL is a database holding EAs (e.g. the benchmark's demo + Hà Nội's 20,088 drafts)."""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from bench.common import loadavg

_COLUMNS = (
    "census_round, code, commune_vintage, commune_code, status, population, households,"
    " geom, updated_by"
)
_DRAFTS = f"SELECT '2035', {_COLUMNS.split(', ', 1)[1]} FROM enumeration_area"
_SINGLE_ROWS = 3000


def _ticks(pid: int) -> int:
    """User + system clock ticks of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _copy(conn: psycopg.Connection, rows: bytes) -> None:
    """The generator's bulk path: COPY of draft rows."""
    with conn.cursor().copy(f"COPY enumeration_area ({_COLUMNS}) FROM STDIN") as copy:
        copy.write(rows)


def _single_rows(statement: str) -> Callable[[psycopg.Connection, bytes], None]:
    """A write repeated for the first rows, one statement per row (an editor's saves)."""

    def run(conn: psycopg.Connection, _: bytes) -> None:
        cur = conn.execute(f"SELECT id FROM enumeration_area ORDER BY id LIMIT {_SINGLE_ROWS}")
        for (ea_id,) in cur.fetchall():
            conn.execute(statement, (ea_id,))

    return run


WRITES: dict[str, Callable[[psycopg.Connection, bytes], object]] = {
    "COPY of every EA again (the generator)": _copy,
    "INSERT … SELECT of every EA again": lambda conn, _: conn.execute(
        f"INSERT INTO enumeration_area ({_COLUMNS}) {_DRAFTS}"
    ),
    "status of every EA, one UPDATE": lambda conn, _: conn.execute(
        "UPDATE enumeration_area SET status = 'submitted', version = version + 1"
    ),
    f"{_SINGLE_ROWS:,} status changes, one a statement": _single_rows(
        "UPDATE enumeration_area SET status = 'approved', version = version + 1 WHERE id = %s"
    ),
    f"{_SINGLE_ROWS:,} moves, one a statement": _single_rows(
        "UPDATE enumeration_area SET geom = ST_Multi(ST_Translate(geom, 0.0001, 0)) WHERE id = %s"
    ),
}


def measure(url: str) -> dict[str, tuple[float, float]]:
    """(backend CPU s, wall s) of each write on this database, each rolled back."""
    with psycopg.connect(url) as conn:
        pid = conn.info.backend_pid
        buffer = bytearray()
        with conn.cursor().copy(f"COPY ({_DRAFTS}) TO STDOUT") as copy:
            for block in copy:
                buffer += block
        conn.rollback()
        rows = bytes(buffer)
        tick = os.sysconf("SC_CLK_TCK")
        result = {}
        for name, write in WRITES.items():
            ticks, started = _ticks(pid), time.perf_counter()
            write(conn, rows)
            result[name] = ((_ticks(pid) - ticks) / tick, time.perf_counter() - started)
            conn.rollback()
    return result


def main() -> None:
    """Measure every database `--repeat` times in turn and print medians and ranges."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("databases", nargs="+", help="LABEL=URL")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    targets = [d.split("=", 1) for d in args.databases]
    runs: dict[str, list[dict[str, tuple[float, float]]]] = {label: [] for label, _ in targets}
    print(f"load average before: {' '.join(loadavg())}")
    for _ in range(args.repeat):
        for label, url in targets:
            runs[label].append(measure(url))
    print(f"load average after: {' '.join(loadavg())}")
    print("| write | " + " | ".join(label for label, _ in targets) + " |")
    print("|---|" + "---:|" * len(targets))
    for name in WRITES:
        cells = []
        for label, _ in targets:
            cpu = [run[name][0] for run in runs[label]]
            wall = [run[name][1] for run in runs[label]]
            cells.append(
                f"{statistics.median(cpu):.2f} s CPU ({min(cpu):.2f}–{max(cpu):.2f}),"
                f" {statistics.median(wall):.2f} s wall"
            )
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

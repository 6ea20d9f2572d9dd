"""One single-connection walk over a tile list, with the CPU it cost the server and PostgreSQL.

Usage: .venv/bin/python -m bench.walk_cpu SERVER_PID BASE_URL TILE_PREFIX
       [--postmaster PID] [--list bench/results/tile_list.txt] [--empty-sqlite FILE]

CPU seconds (utime + stime of every thread of the server process and of the PostgreSQL
backends, children of `--postmaster`) change much less with other work on the machine than
wall-clock time: on a shared machine compare these, run back to back.
`--empty-sqlite` empties a SQLite tile cache first (a cold walk of a server using it).
"""

from __future__ import annotations

import argparse
import http.client
import os
import sqlite3
import sys
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.tiles import TILE_LIST  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


def _cpu(stat_path: str) -> float:
    try:
        fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def process_cpu(pid: int) -> float:
    """CPU seconds of every thread of a process."""
    tasks = Path(f"/proc/{pid}/task")
    return sum(_cpu(str(t / "stat")) for t in tasks.iterdir()) if tasks.exists() else 0.0


def started(pid: int) -> int | None:
    """When a process started (clock ticks since boot), None when it is gone: a pid taken
    by a new process between two readings is not the same backend."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def children(parent: int) -> list[int]:
    """The processes whose parent is `parent` (a postmaster's backends)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.append(int(entry.name))
    return found


def main() -> None:
    """Walk the list once and print wall seconds and CPU seconds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("pid", type=int)
    parser.add_argument("base")
    parser.add_argument("prefix")
    parser.add_argument("--postmaster", type=int)
    parser.add_argument("--list", type=Path, default=TILE_LIST)
    parser.add_argument("--empty-sqlite", type=Path)
    args = parser.parse_args()
    if args.empty_sqlite:
        db = sqlite3.connect(args.empty_sqlite, timeout=30)
        with db:
            db.execute("DELETE FROM tile")
        db.close()
    tiles = [line.strip() for line in args.list.read_text().splitlines() if line.strip()]
    url = urllib.parse.urlparse(args.base)
    client = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port)
    backends = children(args.postmaster) if args.postmaster else []
    server_before = process_cpu(args.pid)
    pg_before = {pid: (started(pid), process_cpu(pid)) for pid in backends}
    began = time.perf_counter()
    for tile in tiles:
        client.request("GET", f"{args.prefix}/{tile}")
        response = client.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"{tile}: HTTP {response.status}")
    wall = time.perf_counter() - began
    time.sleep(0.3)  # (work after the answers: tiles being kept in a cache)
    server = process_cpu(args.pid) - server_before
    # (backends that ended during the walk, or started during it, are not counted)
    pg = sum(
        process_cpu(pid) - cpu
        for pid, (start, cpu) in pg_before.items()
        if start is not None and started(pid) == start
    )
    load = Path("/proc/loadavg").read_text().split()[0]
    print(
        f"{len(tiles)} tiles: wall {wall:.2f} s, server CPU {server:.2f} s, "
        f"PostgreSQL CPU {pg:.2f} s, load average {load}"
    )


if __name__ == "__main__":
    main()

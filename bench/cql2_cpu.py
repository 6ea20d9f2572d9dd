"""CPU per CQL2-filtered page of 100 communes, servers side by side: the server process (and its
workers) plus every PostgreSQL backend, from /proc (utime + stime), over N sequential requests
on one keep-alive connection, servers interleaved in rounds. CPU time is disturbed far less
than a request rate by other work on the machine.

Usage: python -m bench.cql2_cpu --postmaster PM_PID [--rounds 3] [--requests 100]
           NAME=PORT:PID ...   (a NAME of `tipg` reads `bench.communes`, others `commune-2025`)
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import time
from pathlib import Path

from bench.features import SCENARIOS

TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants (those still alive)."""
    total = 0.0
    try:
        total = _cpu(pid)
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (FileNotFoundError, ProcessLookupError):
        return total
    return total + sum(tree_cpu(int(child)) for child in children)


def _get_all(port: int, path: str, n: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for _ in range(n):
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise SystemExit(f"{port}{path}: HTTP {response.status} {body[:200]!r}")
    finally:
        conn.close()


def main() -> None:
    """Measure and print one line per server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--postmaster", type=int, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("servers", nargs="+", help="NAME=PORT:PID")
    args = parser.parse_args()
    scenario = next(s for s in SCENARIOS if s.key == "cql2")
    servers = []
    for spec in args.servers:
        name, rest = spec.split("=")
        port, pid = (int(v) for v in rest.split(":"))
        items = "/collections/bench.communes/items" if name == "tipg" else None
        path = scenario.paths(items or "/collections/commune-2025/items")[0]
        servers.append((name, port, pid, path))
        _get_all(port, path, 20)  # warm
    measured: dict[str, list[tuple[float, float, float]]] = {s[0]: [] for s in servers}
    print("load before:", Path("/proc/loadavg").read_text().strip())
    for r in range(args.rounds):
        for name, port, pid, path in servers if r % 2 == 0 else servers[::-1]:
            s0, d0, t0 = tree_cpu(pid), tree_cpu(args.postmaster), time.perf_counter()
            _get_all(port, path, args.requests)
            s1, d1, t1 = tree_cpu(pid), tree_cpu(args.postmaster), time.perf_counter()
            n = args.requests
            measured[name].append(((s1 - s0) * 1e3 / n, (d1 - d0) * 1e3 / n, (t1 - t0) * 1e3 / n))
    print("load after:", Path("/proc/loadavg").read_text().strip())
    for name, runs in measured.items():
        server = statistics.median(r[0] for r in runs)
        database = statistics.median(r[1] for r in runs)
        wall = statistics.median(r[2] for r in runs)
        each = ", ".join(f"{a + b:.2f}" for a, b, _ in runs)
        print(
            f"{name}: server CPU {server:.2f} ms + PostgreSQL CPU {database:.2f} ms ="
            f" {server + database:.2f} ms per request; wall {wall:.1f} ms (runs: {each})"
        )


if __name__ == "__main__":
    main()

"""Benchmark: our OGC API Features endpoints against tipg 1.6.1 on the 3,321 communes of 2025.

Usage: .venv/bin/python bench/features.py [--short] [--duration 30] [--repeat 3]
       [--connections 8] [--no-cache] [--output FILE]

Everything runs on one throwaway PostgreSQL + PostGIS cluster started in a temporary folder
and destroyed at the end, with the demo loaded (`migrate` then `load_demo`; the loaded
database is kept as a `pg_dump` in the cache folder, keyed by the git trees of the data and
the code that loads it, and restored on later runs unless `--no-cache`). In the same
database the table `bench.communes` (the 2025 communes of `admin_unit`, primary key on
`code`, GiST index on `geom`) is what tipg serves.

Two servers run side by side, each a single uvicorn process (`--workers 1`, so uvicorn's
40 ms Nagle stall with several workers does not apply) on the same loop and HTTP parser
(uvloop + httptools), access log off, on free loopback ports:

- ours: `uvicorn geo_service.http.app:create_app --factory` (collection `commune-2025`);
- tipg 1.6.1 in its own virtualenv in the cache folder (collection `bench.communes`),
  started from an empty folder (tipg reads a `.env` from its working folder).

Measured:

1. sanity: every URL below returns the same number of features, with the same ids in the
   same order, from both servers;
2. streaming memory: peak RSS of each server process (VmHWM, reset through
   /proc/PID/clear_refs, and VmRSS sampled every 5 ms) during 5 sequential full downloads,
   against its idle RSS after start-up and one small request; target < 100 MiB for ours;
3. throughput with wrk (a Lua script cycles through the URL list; same connections and
   duration for both; servers interleaved, `--repeat` times, medians): GeoJSON pages of 100
   (offsets 0, 100, ..., 3200) and of 1,000 communes (offsets 0, 100, ..., 2300) with full
   geometry, and the full download of all communes (`limit=10000`).

The Markdown report is printed and written to bench/results/features.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import statistics
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    COMMUNES,
    REPO,
    TIPG,
    TIPG_VERSION,
    WRK_LUA,
    Server,
    WrkRun,
    clean_env,
    describe,
    ensure_tipg,
    ensure_wrk,
    loadavg,
    ours_command,
    prepare_database,
    run_wrk,
    shown,
    start_server,
    stop_server,
    throwaway_cluster,
    tipg_command,
)

RESULTS = REPO / "bench" / "results" / "features.md"
OURS = "ours"
DOWNLOADS = 5  # sequential full downloads in the memory test
MEMORY_TARGET_MIB = 100
SHORT_DURATION = 5


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One list of item requests, cycled through by wrk."""

    key: str
    label: str
    limit: int
    offsets: tuple[int, ...]
    filter: str | None = None  # CQL2 text (both servers: same queryable names)

    def paths(self, items_path: str) -> list[str]:
        """The request paths for a server whose items endpoint is `items_path`."""
        tail = ""
        if self.filter:
            tail = "&" + urllib.parse.urlencode({"filter": self.filter, "filter-lang": "cql2-text"})
        if not self.offsets:
            return [f"{items_path}?limit={self.limit}{tail}"]
        return [f"{items_path}?limit={self.limit}&offset={o}{tail}" for o in self.offsets]


SCENARIOS = (
    Scenario("page100", "GeoJSON pages of 100", 100, tuple(range(0, COMMUNES - 100 + 1, 100))),
    Scenario("page1000", "GeoJSON pages of 1,000", 1000, tuple(range(0, COMMUNES - 1000 + 1, 100))),
    Scenario("full", "all 3,321 communes (limit=10000)", 10_000, ()),
    # ours reads density through the disclosure-controlled view; tipg a column of its table
    Scenario(
        "cql2",
        "CQL2-filtered page of 100",
        100,
        (),
        "density > 1000 AND parent_code IN ('01', '79', '31', '48', '92')",
    ),
)


@dataclasses.dataclass
class Memory:
    """RSS of a server process around sequential full downloads."""

    started_mib: float
    idle_mib: float
    peak_mib: float
    after_mib: float
    seconds: list[float]
    megabytes: float

    @property
    def growth_mib(self) -> float:
        """Peak minus idle."""
        return self.peak_mib - self.idle_mib


@dataclasses.dataclass
class Sanity:
    """What the check of every URL found."""

    urls: int
    same: bool
    features: dict[str, float]  # scenario → mean features per response
    kilobytes: dict[tuple[str, str], float]  # (scenario, server) → mean KB per response
    problems: list[str]


@contextmanager
def running_servers(db_url: str, tipg_python: Path, workdir: Path) -> Iterator[list[Server]]:
    """Ours and tipg, both started, stopped on exit."""
    clean = clean_env()
    servers: list[Server] = []
    try:
        servers.append(
            start_server(
                OURS,
                ours_command(),
                {**clean, "DATABASE_URL": db_url, "GEO_SERVICE_HOME": str(workdir / "home")},
                "/health",
                "/collections/commune-2025/items",
                workdir,
            )
        )
        servers.append(
            start_server(
                TIPG,
                tipg_command(tipg_python),
                {**clean, "DATABASE_URL": db_url, "TIPG_DB_SCHEMAS": '["bench"]'},
                "/healthz",
                "/collections/bench.communes/items",
                workdir,
            )
        )
        yield servers
    finally:
        for server in servers:
            stop_server(server)


# ------------------------------------------------------------------------------ measures


def _get(url: str, timeout: float = 120) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        if response.status != 200:
            raise SystemExit(f"{url}: HTTP {response.status}")
        return bytes(response.read())


def check_same_features(
    servers: list[Server], scenarios: tuple[Scenario, ...] = SCENARIOS
) -> Sanity:
    """Every URL of every scenario: same count and ids, in the same order, on both."""
    problems: list[str] = []
    features: dict[str, float] = {}
    kilobytes: dict[tuple[str, str], float] = {}
    urls = 0
    for scenario in scenarios:
        counts: list[int] = []
        sizes: dict[str, list[int]] = {s.name: [] for s in servers}
        lists = [scenario.paths(s.items_path) for s in servers]
        for paths in zip(*lists, strict=True):
            ids: list[list[str]] = []
            for server, path in zip(servers, paths, strict=True):
                body = _get(server.base + path)
                sizes[server.name].append(len(body))
                ids.append([str(f["id"]) for f in json.loads(body)["features"]])
            urls += 1
            counts.append(len(ids[0]))
            if len(ids[0]) != len(ids[1]):
                problems.append(f"{paths[0]}: {len(ids[0])} features vs {len(ids[1])}")
            elif ids[0] != ids[1]:
                problems.append(f"{paths[0]}: same count, different ids or order")
            expected = min(
                scenario.limit,
                COMMUNES - (scenario.offsets[len(counts) - 1] if scenario.offsets else 0),
            )  # (the filter matches more than a page)
            if len(ids[0]) != expected:
                problems.append(f"{paths[0]}: {len(ids[0])} features, expected {expected}")
        features[scenario.key] = statistics.mean(counts)
        for name, values in sizes.items():
            kilobytes[(scenario.key, name)] = statistics.mean(values) / 1e3
    return Sanity(urls, not problems, features, kilobytes, problems)


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def measure_memory(server: Server, started_kib: int) -> Memory:
    """Peak RSS growth of the server process during sequential full downloads."""
    pid = server.process.pid
    _get(server.base + server.items_path + "?limit=1")
    time.sleep(0.5)
    idle = _status_kib(pid, "VmRSS")
    try:  # reset VmHWM to the current RSS (Linux ≥ 4.0)
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass
    peak = idle
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            try:
                peak = max(peak, _status_kib(pid, "VmRSS"))
            except (OSError, RuntimeError):
                return
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    seconds: list[float] = []
    size = 0
    path = next(s for s in SCENARIOS if s.key == "full").paths(server.items_path)[0]
    try:
        for _ in range(DOWNLOADS):
            t0 = time.perf_counter()
            size = len(_get(server.base + path))
            seconds.append(time.perf_counter() - t0)
    finally:
        stop.set()
        sampler.join()
    hwm = _status_kib(pid, "VmHWM")
    time.sleep(0.5)
    after = _status_kib(pid, "VmRSS")
    return Memory(
        started_kib / 1024, idle / 1024, max(peak, hwm) / 1024, after / 1024, seconds, size / 1e6
    )


# -------------------------------------------------------------------------------- report


def _median(values: list[float]) -> float:
    return statistics.median(values)


def throughput_table(
    runs: dict[tuple[str, str], list[WrkRun]], sanity: Sanity, names: list[str], connections: int
) -> str:
    """Medians per scenario and server, with the ratio ours / tipg.

    † marks a rate where some run completed fewer requests than there are connections:
    requests still waiting at the end are neither counted nor errors, so a stall hides.
    """
    header = [
        "Requests",
        "server",
        "req/s",
        "features/s",
        "p50 ms",
        "p99 ms",
        "MB/s",
        "KB/response",
        "errors",
        "ours / tipg (req/s)",
    ]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|",
    ]
    for scenario in [sc for sc in SCENARIOS if (sc.key, names[0]) in runs]:
        rps = {n: _median([r.rps for r in runs[(scenario.key, n)]]) for n in names}
        for name in names:
            measured = runs[(scenario.key, name)]
            rate = rps[name]
            ratio = f"**{rps[OURS] / rps[TIPG]:.2f}**" if name == OURS and rps[TIPG] else ""
            few = any(r.requests < connections for r in measured)
            shown = (f"{rate:.2f}" if rate < 10 else f"{rate:.1f}") + (" †" if few else "")
            cells = [
                scenario.label if name == names[0] else "",
                name,
                shown,
                f"{rate * sanity.features[scenario.key]:,.0f}",
                f"{_median([r.p50_ms for r in measured]):,.0f}",
                f"{_median([r.p99_ms for r in measured]):,.0f}",
                f"{_median([r.mb_per_s for r in measured]):.1f}",
                f"{sanity.kilobytes[(scenario.key, name)]:,.0f}",
                str(sum(r.error_count for r in measured)),
                ratio,
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def memory_table(memory: dict[str, Memory]) -> str:
    """Idle, peak and growth of RSS per server."""
    header = [
        "server",
        "RSS after start MiB",
        "idle RSS MiB",
        "peak RSS MiB",
        "growth MiB",
        f"target < {MEMORY_TARGET_MIB} MiB",
        "s per download (median)",
        "MB per download",
        "RSS after MiB",
    ]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for name, m in memory.items():
        target = (
            ("yes" if m.growth_mib < MEMORY_TARGET_MIB else "**no**")
            if name == OURS
            else "(reference)"
        )
        cells = [
            name,
            f"{m.started_mib:.0f}",
            f"{m.idle_mib:.0f}",
            f"{m.peak_mib:.0f}",
            f"**{m.growth_mib:.0f}**" if name == OURS else f"{m.growth_mib:.0f}",
            target,
            f"{_median(m.seconds):.2f}",
            f"{m.megabytes:.1f}",
            f"{m.after_mib:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detail_table(runs: dict[tuple[str, str], list[WrkRun]]) -> str:
    """Every wrk run."""
    header = [
        "Requests",
        "server",
        "run",
        "requests",
        "s",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "MB/s",
        "errors (connect/read/write/status/timeout)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for (key, name), measured in runs.items():
        for i, r in enumerate(measured, 1):
            errors = "/".join(
                str(r.errors[k]) for k in ("connect", "read", "write", "status", "timeout")
            )
            lines.append(
                "| "
                + " | ".join(
                    [
                        key,
                        name,
                        str(i),
                        str(r.requests),
                        f"{r.seconds:.1f}",
                        f"{r.rps:.2f}",
                        f"{r.p50_ms:.0f}",
                        f"{r.p90_ms:.0f}",
                        f"{r.p99_ms:.0f}",
                        f"{r.max_ms:.0f}",
                        f"{r.mb_per_s:.1f}",
                        errors,
                    ]
                )
                + " |"
            )
    return "\n".join(lines)


def report(
    args: argparse.Namespace,
    header: str,
    how: str,
    servers: list[Server],
    sanity: Sanity,
    memory: dict[str, Memory],
    runs: dict[tuple[str, str], list[WrkRun]],
    seconds: float,
) -> str:
    """The whole Markdown report."""
    names = [s.name for s in servers]
    errors = sum(r.error_count for measured in runs.values() for r in measured)
    same = (
        f"yes: all {sanity.urls} URLs return the same number of features with the same "
        f"ids in the same order"
        if sanity.same
        else "**no**: " + "; ".join(sanity.problems[:10])
    )
    mode = "short mode, " if args.short else ""
    commands = "\n".join(f"- {s.name}: `{shown(s.command)}`" for s in servers)
    return f"""# OGC API Features: ours vs tipg {TIPG_VERSION}

{header}

Setup: one throwaway PostGIS cluster, {how}; tipg serves `bench.communes` (the same 3,321
communes copied from `admin_unit`, primary key `code`, GiST index), ours serves
`commune-2025`. One uvicorn worker each (a single process: no 40 ms Nagle stall),
uvloop + httptools, access log off:
{commands}

wrk: {args.connections} keep-alive connections, {min(2, args.connections)} threads,
{args.duration} s per measurement, servers interleaved, {args.repeat} repeat(s), medians;
a Lua script cycles through the URL list (pages of 100: offsets 0, 100, …, 3200; pages of
1,000: offsets 0, 100, …, 2300; full download: `limit=10000`, all properties and full
geometry). {mode}Whole run {seconds / 60:.1f} min.

Sanity (same features from both): {same}.
wrk errors (socket, timeouts, HTTP ≥ 400) over all runs: **{errors}**.

## Throughput

{throughput_table(runs, sanity, names, args.connections)}

† some run completed fewer requests than there are connections: requests still in flight
when wrk stops are neither counted nor errors, so a slow or stalled server shows up only as a
low rate; lengthen `--duration`. features/s = req/s × features per response; MB/s counts
the bytes wrk read (10^6 bytes, headers included). Ours writes coordinates with 6 decimals
(~10 cm), tipg with `ST_AsGeoJSON`'s default of 9, so its responses are larger for the same
features.

## Streaming memory

RSS of each server process (`/proc/PID/status`; VmHWM reset before, and VmRSS sampled every
5 ms) during {DOWNLOADS} sequential full downloads of all 3,321 communes, measured before the
throughput runs; idle = after start-up and one `limit=1` request; growth = peak − idle.

{memory_table(memory)}

## Every wrk run

{detail_table(runs)}
"""


# ---------------------------------------------------------------------------------- main


def run(args: argparse.Namespace, log: Callable[[str], None] = print) -> str:
    """Set everything up, measure, tear it down; return the Markdown report."""
    started = time.perf_counter()
    wrk = ensure_wrk(log)
    tipg_python = ensure_tipg(log)
    load = loadavg()[0]
    if float(load) > 0.5:
        log(f"warning: load average {load} before starting; other work may skew the figures")
    with throwaway_cluster("geo-service-bench-features-", log) as (cluster, workdir):
        db_url, how = prepare_database(cluster, not args.no_cache, log)
        header = describe(cluster, tipg_python, wrk)
        lua = workdir / "cycle.lua"
        lua.write_text(WRK_LUA)
        with running_servers(db_url, tipg_python, workdir) as servers:
            for s in servers:
                log(f"{s.name}: {s.base} (pid {s.process.pid}, 1 worker)")
            startup = {s.name: _status_kib(s.process.pid, "VmRSS") for s in servers}
            memory = {}
            for s in servers:
                memory[s.name] = measure_memory(s, startup[s.name])
                m = memory[s.name]
                log(
                    f"memory {s.name}: idle {m.idle_mib:.0f} MiB, peak {m.peak_mib:.0f} MiB, "
                    f"growth {m.growth_mib:.0f} MiB, {_median(m.seconds):.2f} s per download"
                )
            scenarios = tuple(sc for sc in SCENARIOS if sc.key in args.scenarios)
            sanity = check_same_features(servers, scenarios)
            log(f"sanity: {sanity.urls} URLs, same features: {sanity.same}")
            for problem in sanity.problems:
                log(f"  {problem}")
            files: dict[tuple[str, str], Path] = {}
            for scenario in scenarios:
                for s in servers:
                    path = workdir / f"{scenario.key}-{s.name.split()[0]}.txt"
                    path.write_text("\n".join(scenario.paths(s.items_path)) + "\n")
                    files[(scenario.key, s.name)] = path
            runs: dict[tuple[str, str], list[WrkRun]] = {
                (sc.key, s.name): [] for sc in scenarios for s in servers
            }
            for i in range(args.repeat):
                for scenario in scenarios:
                    order = servers if i % 2 == 0 else servers[::-1]
                    for s in order:
                        result = run_wrk(
                            wrk,
                            lua,
                            s.base,
                            files[(scenario.key, s.name)],
                            args.connections,
                            args.duration,
                            f"{s.name} {scenario.key}",
                        )
                        runs[(scenario.key, s.name)].append(result)
                        log(
                            f"run {i + 1}/{args.repeat} {scenario.key} {s.name}: "
                            f"{result.rps:.2f} req/s, p50 {result.p50_ms:.0f} ms, "
                            f"p99 {result.p99_ms:.0f} ms, errors {result.errors}"
                        )
            for s in servers:
                if s.process.poll() is not None:
                    raise SystemExit(f"{s.name} died: {s.log.read_text()[-2000:]}")
            runs = {(sc.key, s.name): runs[(sc.key, s.name)] for sc in scenarios for s in servers}
            header += f" Load average (1 min) {load} before the run, {loadavg()[0]} at its end."
            return report(
                args, header, how, servers, sanity, memory, runs, time.perf_counter() - started
            )


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run, print the report and write it to the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--short",
        action="store_true",
        help=f"about a minute: {SHORT_DURATION} s per measurement, 1 repeat",
    )
    parser.add_argument(
        "--duration", type=int, default=None, help="seconds per wrk measurement (default 30)"
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="measurements per server and URL list (default 3)"
    )
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="load the demo afresh instead of restoring the cached dump",
    )
    parser.add_argument(
        "--scenario",
        dest="scenarios",
        action="append",
        choices=[sc.key for sc in SCENARIOS],
        help="measure only this scenario (repeatable; default: all)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="Markdown file to write")
    args = parser.parse_args(argv)
    args.scenarios = args.scenarios or [sc.key for sc in SCENARIOS]
    args.duration = args.duration or (SHORT_DURATION if args.short else 30)
    args.repeat = args.repeat or (1 if args.short else 3)
    if args.duration < 1 or args.repeat < 1 or args.connections < 1:
        parser.error("--duration, --repeat and --connections must be at least 1")
    # Interrupted (Ctrl-C, kill, or SIGINT to a background run): stop the servers and the
    # cluster on the way out.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    text = run(args)
    print()
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

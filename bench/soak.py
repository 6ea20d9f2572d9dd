"""Soak test: minutes of mixed read/write load on a running service (not run in CI).

Usage: .venv/bin/python bench/soak.py [--minutes 10] [--readers 6] [--writers 2]
       [--slow-clients 0] [--url http://127.0.0.1:8000 --pid PID [--token TOKEN]] [--output FILE]

Without `--url` it starts its own service: a throwaway PostgreSQL + PostGIS cluster with the
demo loaded (`bench/features.py`'s `prepare_database`, from its cached dump when there is
one), one uvicorn process as `geo-service serve` runs it (JSON access log on, to a file), and
an editor created with `geo-service users add`. With `--url` it loads that service instead;
`--pid` names its process for the memory figures (found from the port when left out), and
without `--token` an editor is created with `geo-service users add` in the current
environment (so `DATABASE_URL` / `GEO_SERVICE_HOME` must reach the service's database).

Readers loop over GeoJSON pages of communes and provinces, commune vector tiles around Hà Nội
and Hồ Chí Minh City (z8-z13), `POST /aggregate` of random boxes and `/metrics`. Each writer
owns one commune of Hà Nội and repeats: create a 200 m square EA (census round picked at
random in 2100-2999, so runs never collide), shrink it with PATCH + If-Match, read its EA
tile, delete it with If-Match. Slow clients (`--slow-clients`) ask for the whole commune
layer as GeoJSON and read it at 32 KiB/s with a small receive buffer, giving up after 20 s
(as a phone on a bad line would), so the readers' figures show whether they hold the
service. Every request is bounded by a 30 s timeout; the run stops by
itself after `--minutes`.

Reported: requests and errors (5xx, connection failures, unexpected 4xx) per kind, p50/p99
latency and RSS of the service process per minute, and RSS growth from the end of a warm-up
(the first minute, or a fifth of a shorter run) to the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shapely.geometry import box, mapping, shape

from geo_core import grid
from geo_service.localdb import LocalCluster, free_port

RESULTS = Path(__file__).resolve().parent / "results"
TIMEOUT_S = 30
ROUND_RANGE = (2100, 2999)
TILE_AREAS = {
    "Hà Nội": (105.70, 20.90, 106.00, 21.15),
    "Hồ Chí Minh City": (106.55, 10.70, 106.85, 10.90),
}
VIETNAM = (102.2, 8.6, 109.4, 23.4)


@dataclass
class Sample:
    """One request: seconds since the start, kind, status (0: no answer), duration."""

    at: float
    kind: str
    status: int
    seconds: float


@dataclass
class Run:
    """What the workers record; appends from several threads (list.append is atomic)."""

    base: str
    started: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    problems: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)


class Client:
    """One keep-alive HTTP connection of one worker thread."""

    def __init__(self, run: Run, source: str | None = None):
        self.run = run
        parts = urlsplit(run.base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        # (a loopback address of its own: the service's per-client limits see one user)
        self.source = (source, 0) if source and self.host == "127.0.0.1" else None
        self.conn: http.client.HTTPConnection | None = None

    def request(
        self,
        kind: str,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request, record it, and return status, headers and body."""
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        t0 = time.monotonic()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(
                    self.host, self.port, timeout=TIMEOUT_S, source_address=self.source
                )
            self.conn.request(method, path, body=data, headers=headers)
            response = self.conn.getresponse()
            content = response.read()
            status, got = response.status, {k.lower(): v for k, v in response.getheaders()}
        except (OSError, http.client.HTTPException) as exc:
            self.conn = None
            status, got, content = 0, {}, b""
            self.run.problems[f"{kind}: {type(exc).__name__}"] += 1
        seconds = time.monotonic() - t0
        self.run.samples.append(Sample(t0 - self.run.started, kind, status, seconds))
        if status and status not in expect:
            self.run.problems[f"{kind}: HTTP {status} {content[:120]!r}"] += 1
        return status, got, content


def reader(run: Run, seed: int) -> None:
    """Read pages, tiles, area statistics and metrics until told to stop."""
    rng = random.Random(seed)
    # each reader stands for one user: at most a few drawn areas at once from one address
    client = Client(run, f"127.0.2.{seed % 250 + 1}")
    tiles = [
        (z, x, y)
        for area in TILE_AREAS.values()
        for z in range(8, 14)
        for x, y in grid.tiles_in(area, z)
    ]
    while not run.stop.is_set():
        choice = rng.random()
        if choice < 0.35:
            offset = rng.randrange(0, 3300, 100)
            client.request(
                "items",
                "GET",
                f"/collections/commune-2025/items?limit=100"
                f"&offset={offset}&zoom={rng.choice([6, 9, 12])}",
            )
        elif choice < 0.40:
            client.request("items", "GET", "/collections/province-2025/items?limit=34&zoom=5")
        elif choice < 0.85:
            z, x, y = rng.choice(tiles)
            client.request(
                "tiles",
                "GET",
                f"/collections/commune-2025/tiles/WebMercatorQuad/{z}/{x}/{y}",
                headers={"Accept-Encoding": "gzip"},
                expect=(200, 204),
            )
        elif choice < 0.97:
            w = rng.uniform(VIETNAM[0] + 1, VIETNAM[2] - 1.5)
            s = rng.uniform(VIETNAM[1] + 1, VIETNAM[3] - 1.5)
            size = rng.uniform(0.05, 0.5)
            client.request(
                "aggregate",
                "POST",
                "/aggregate",
                body={
                    "geometry": mapping(box(w, s, w + size, s + size)),
                    "indicators": ["population"],
                    "method": rng.choice(["area", "population"]),
                },
            )
        else:
            client.request("metrics", "GET", "/metrics")


SLOW_READ_BYTES = 8 * 1024  # per quarter second: 32 KiB/s
SLOW_GIVE_UP_S = 20.0


def slow_client(run: Run, seed: int) -> None:
    """Download the whole commune layer slowly, give up after a while, and again."""
    parts = urlsplit(run.base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    rng = random.Random(seed)
    while not run.stop.is_set():
        t0 = time.monotonic()
        status, got = 0, 0
        try:
            # each from an address of its own (any 127.x.y.z is this machine): the per-client
            # download limit is for one client, and these are many phones
            source = (f"127.0.1.{seed % 250 + 1}", 0) if host == "127.0.0.1" else None
            with socket.create_connection(
                (host, port), timeout=TIMEOUT_S, source_address=source
            ) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
                sock.sendall(
                    b"GET /collections/commune-2025/items?limit=10000&f=json HTTP/1.1\r\n"
                    + f"Host: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
                )
                while time.monotonic() - t0 < SLOW_GIVE_UP_S and not run.stop.is_set():
                    chunk = sock.recv(SLOW_READ_BYTES)
                    if not chunk:
                        break
                    if not got:
                        status = int(chunk.split(b" ", 2)[1])
                    got += len(chunk)
                    time.sleep(0.25)
        except (OSError, ValueError, IndexError) as exc:
            run.problems[f"slow download: {type(exc).__name__}"] += 1
        run.samples.append(Sample(t0 - run.started, "slow download", status, time.monotonic() - t0))
        if status not in (200, 429, 503):
            run.problems[f"slow download: HTTP {status}"] += 1
        run.stop.wait(rng.uniform(0.5, 2.0))


def _commune_squares(base: str, count: int) -> list[tuple[str, Any]]:
    """A 200 m square inside each of `count` communes of Hà Nội (province 01)."""
    client = Client(Run(base))
    _, _, body = client.request(
        "setup", "GET", "/collections/commune-2025/items?parent=01&limit=100&properties=code"
    )
    squares = []
    for feature in json.loads(body)["features"]:
        geom = shape(feature["geometry"])
        point = geom.buffer(-0.002).representative_point()
        square = box(point.x - 0.0009, point.y - 0.0009, point.x + 0.0009, point.y + 0.0009)
        if not geom.buffer(-0.0005).is_empty and geom.buffer(-0.0003).contains(square):
            squares.append((feature["id"], square))
        if len(squares) == count:
            return squares
    raise SystemExit(f"found only {len(squares)} communes with room for a test EA")


def writer(run: Run, token: str, commune: str, square: Any, census_round: str) -> None:
    """Create, change, look at and delete one EA, again and again."""
    client = Client(run)
    auth = {"Authorization": f"Bearer {token}"}
    items = "/collections/enumeration-areas/items"
    centre = square.centroid
    z = 14
    x, y = next(grid.tiles_in((centre.x, centre.y, centre.x, centre.y), z))
    while not run.stop.is_set():
        status, headers, body = client.request(
            "ea write",
            "POST",
            items,
            headers=auth,
            expect=(201,),
            body={
                "type": "Feature",
                "geometry": mapping(square),
                "properties": {"census_round": census_round, "commune_code": commune},
            },
        )
        if status != 201:
            time.sleep(1)  # an error is recorded; do not spin on it
            continue
        ea_id, etag = json.loads(body)["id"], headers["etag"]
        status, headers, _ = client.request(
            "ea write",
            "PATCH",
            f"{items}/{ea_id}",
            headers={**auth, "If-Match": etag},
            body={"type": "Feature", "geometry": mapping(square.buffer(-0.0001)), "properties": {}},
        )
        etag = headers.get("etag", etag)
        client.request("ea read", "GET", f"{items}/{ea_id}")
        client.request(
            "ea tiles",
            "GET",
            f"/collections/enumeration-areas/tiles/WebMercatorQuad/{z}/{x}/{y}"
            f"?round={census_round}",
            expect=(200, 204),
        )
        client.request(
            "ea write",
            "DELETE",
            f"{items}/{ea_id}",
            headers={**auth, "If-Match": etag},
            expect=(204,),
        )


def rss_mib(pid: int) -> float:
    """Resident memory of a process (MiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def pid_listening_on(port: int) -> int:
    """The process with a listening TCP socket on this local port (Linux /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                inodes.add(fields[9])
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return int(proc.name)
        except OSError:
            continue
    raise SystemExit(f"no process found listening on port {port}; pass --pid")


def create_token(env: dict[str, str]) -> str:
    """A new editor for Hà Nội via `geo-service users add`; returns its token."""
    name = f"soak-{datetime.now(UTC):%Y%m%d%H%M%S}-{random.randrange(10**6)}"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "geo_service",
            "users",
            "add",
            name,
            "--role",
            "editor",
            "--scope",
            "01",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip().splitlines()[-1]


def percentile(values: list[float], share: float) -> float:
    """The `share` quantile (nearest rank) of the values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def report(
    run: Run, minutes: float, rss: list[tuple[float, float]], warmup_s: float, how: str
) -> str:
    """The Markdown report of a finished run."""
    per_minute: dict[int, list[Sample]] = defaultdict(list)
    last = max(0, int(minutes * 60 - 1e-9) // 60)
    for sample in run.samples:  # the writers' last cycles end after the time is up
        if sample.kind != "slow download":  # (the others' figures: slow ones are summed below)
            per_minute[min(last, int(sample.at // 60))].append(sample)
    lines = [
        f"Soak run of {minutes:g} min, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {how}",
        "",
        "| minute | requests | errors | p50 ms | p99 ms | p99 tiles ms | p99 items ms "
        "| p99 aggregate ms | p99 EA writes ms | RSS MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for minute, samples in sorted(per_minute.items()):

        def p99(kind: str, samples: list[Sample] = samples) -> str:
            values = [s.seconds for s in samples if s.kind == kind]
            return f"{percentile(values, 0.99) * 1000:.0f}" if values else "—"

        all_s = [s.seconds for s in samples]
        errors = sum(1 for s in samples if s.status == 0 or s.status >= 500)
        in_minute = [m for t, m in rss if minute * 60 <= t < (minute + 1) * 60]
        lines.append(
            f"| {minute + 1} | {len(samples)} | {errors} "
            f"| {statistics.median(all_s) * 1000:.0f} "
            f"| {percentile(all_s, 0.99) * 1000:.0f} | {p99('tiles')} | {p99('items')} "
            f"| {p99('aggregate')} | {p99('ea write')} "
            f"| {max(in_minute) if in_minute else float('nan'):.0f} |"
        )
    kinds = Counter(s.kind for s in run.samples)
    baseline = next((m for t, m in rss if t >= warmup_s), rss[0][1])
    growth = (rss[-1][1] - baseline) / baseline * 100
    lines += [
        "",
        "Requests by kind: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()),
        *_slow_summary(run),
        f"RSS: {rss[0][1]:.0f} MiB before the load, {baseline:.0f} MiB after "
        f"{warmup_s:.0f} s of warm-up, {rss[-1][1]:.0f} MiB at the end: "
        f"**{growth:+.1f} %** after warm-up.",
        f"Errors (5xx, no answer, unexpected status): {sum(run.problems.values())}",
    ]
    lines += [f"- {n} × {what}" for what, n in run.problems.most_common(20)]
    return "\n".join(lines) + "\n"


def _slow_summary(run: Run) -> list[str]:
    """What the slow clients got: a line, or none when there were none."""
    slow = Counter(s.status for s in run.samples if s.kind == "slow download")
    if not slow:
        return []
    answers = ", ".join(f"{n} × {status or 'no answer'}" for status, n in sorted(slow.items()))
    return [f"Slow downloads (given up after {SLOW_GIVE_UP_S:g} s): {answers}"]


def soak(
    base: str, pid: int, token: str, args: argparse.Namespace, how: str, log: Callable[[str], None]
) -> str:
    """Run the load for `args.minutes` and return the report."""
    duration = args.minutes * 60
    warmup_s = min(60.0, duration / 5)
    squares = _commune_squares(base, args.writers)
    census_round = str(random.randint(*ROUND_RANGE))
    run = Run(base)
    rss = [(0.0, rss_mib(pid))]
    threads = [threading.Thread(target=reader, args=(run, i)) for i in range(args.readers)]
    threads += [
        threading.Thread(target=writer, args=(run, token, code, square, census_round))
        for code, square in squares
    ]
    threads += [
        threading.Thread(target=slow_client, args=(run, 1000 + i)) for i in range(args.slow_clients)
    ]
    log(
        f"{args.readers} readers, {args.writers} writers, {args.slow_clients} slow clients "
        f"(communes "
        f"{', '.join(c for c, _ in squares)}, round {census_round}) for {args.minutes:g} min"
    )
    for thread in threads:
        thread.start()
    try:
        while (elapsed := time.monotonic() - run.started) < duration:
            time.sleep(min(5.0, duration - elapsed))
            rss.append((time.monotonic() - run.started, rss_mib(pid)))
            if int(elapsed) // 60 != int(elapsed + 5) // 60:
                log(
                    f"  {elapsed / 60:.1f} min: {len(run.samples)} requests, "
                    f"{sum(run.problems.values())} errors, RSS {rss[-1][1]:.0f} MiB"
                )
    finally:
        run.stop.set()
        for thread in threads:
            thread.join(timeout=TIMEOUT_S * 3)
    rss.append((time.monotonic() - run.started, rss_mib(pid)))
    return report(run, args.minutes, rss, warmup_s, how)


def own_service(args: argparse.Namespace, log: Callable[[str], None]) -> str:
    """Start a cluster and a service of our own, soak them, and clean up."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from features import prepare_database

    workdir = Path(tempfile.mkdtemp(prefix="geo-service-soak-"))
    workdir.chmod(0o755)  # the postgres user must reach the data folder when run as root
    cluster = LocalCluster(workdir, database="postgres")
    process: subprocess.Popen[bytes] | None = None
    try:
        cluster.start()
        url, made = prepare_database(cluster, use_cache=not args.no_cache, log=log)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "GEO_SERVICE_"))}
        env.update(DATABASE_URL=url, GEO_SERVICE_HOME=str(workdir / "home"))
        port = free_port()
        log_file = workdir / "service.log"
        with log_file.open("wb") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "geo_service.http.app:create_app",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--no-access-log",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        client = Client(Run(base))
        for _ in range(300):
            if client.request("setup", "GET", "/health")[0] == 200:
                break
            time.sleep(0.2)
        else:
            raise SystemExit(f"the service did not start; see {log_file}")
        token = create_token(env)
        how = f"own service (one uvicorn process, SQLite tile cache, JSON access log on), {made}"
        return soak(base, process.pid, token, args, how, log)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        cluster.destroy()


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the soak, print and save the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--readers", type=int, default=6)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--slow-clients", type=int, default=0)
    parser.add_argument("--url", help="a running service (default: start one)")
    parser.add_argument("--pid", type=int, help="the service's process id")
    parser.add_argument("--token", help="an editor's token for Hà Nội (province 01)")
    parser.add_argument("--no-cache", action="store_true", help="load the demo afresh")
    parser.add_argument("--output", type=Path, default=RESULTS / "soak.md")
    args = parser.parse_args(argv)
    if args.url:
        base = args.url.rstrip("/")
        pid = args.pid or pid_listening_on(urlsplit(base).port or 80)
        token = args.token or create_token(dict(os.environ))
        text = soak(base, pid, token, args, f"service at {base} (pid {pid})", print)
    else:
        text = own_service(args, print)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

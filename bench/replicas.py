"""Read replicas side by side: uncached vector tiles and GeoJSON pages through two service
instances with every read on the primary, then with reads on a hot standby of it (same
machine: CPU-bound, the standby competes for the same cores), and the read-your-writes wait
after an EA save (how long the standby takes to replay the save's WAL position, and what a
read carrying it then costs).

    python -m bench.replicas [--seconds 10] [--saves 30]

The primary and its standby are made as the tests make them (tests/replication.py:
pg_basebackup -R of a small primary), with the 3,321 communes of 2025 loaded on the primary
afterwards (streamed to the standby). Prints Markdown tables; record them in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import shapely
from shapely.geometry import box, mapping

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from bench.common import (  # noqa: E402
    WRK_LUA,
    WrkRun,
    clean_env,
    ensure_wrk,
    loadavg,
    ours_command,
    run_wrk,
    served_commit,
    start_server,
    stop_server,
)
from boundaries.checks import FieldMap  # noqa: E402
from boundaries.generalise import DEMO_GAP_WIDTH  # noqa: E402
from boundaries.load import LoadOptions, load_boundaries, read_recode_file  # noqa: E402
from geo_core import grid  # noqa: E402
from geo_service.users import add_user  # noqa: E402
from tests.replication import Replication, replicated  # noqa: E402

DATA = ROOT / "data" / "vn"
COMMUNE = "00004"  # Phường Ba Đình, Hà Nội
VIETNAM = (102.1, 8.4, 109.5, 23.4)
CONNECTIONS = 8  # per instance
HEADER = "X-Geo-Service-LSN"


def log(message: str) -> None:
    """Progress on stderr (the tables go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def server_env() -> dict[str, str]:
    """The instances' environment: this checkout's code, whatever the virtualenv's editable
    install is."""
    return {**clean_env(), "PYTHONPATH": str(ROOT)}


def load_communes(url: str) -> None:
    """The 3,321 communes of 2025 on the primary, as the demo loads them."""
    wards = sorted(
        p for p in (DATA / "vietnam-3d-map-2025" / "wards").glob("*.json") if p.name != "index.json"
    )
    options = LoadOptions(
        "2025",
        "commune",
        FieldMap("id", "name", "provinceId", "type"),
        recode=read_recode_file(DATA / "code-corrections-2025.csv"),
        gap_width=DEMO_GAP_WIDTH,
    )
    with psycopg.connect(url, autocommit=True) as conn:
        load_boundaries(conn, wards, options)
        conn.execute("VACUUM ANALYZE")


def url_lists(workdir: Path) -> dict[str, Path]:
    """The tile list (communes, z5–z9 over Vietnam) and the GeoJSON pages of 100."""
    tiles = []
    for z in range(5, 10):
        x0, y0, x1, y1 = grid.tile_range(VIETNAM, z)
        tiles += [
            f"/collections/commune-2025/tiles/WebMercatorQuad/{z}/{x}/{y}"
            for x in range(x0, x1 + 1)
            for y in range(y0, y1 + 1)
        ]
    pages = [f"/collections/commune-2025/items?limit=100&offset={n * 100}" for n in range(34)]
    lists = {"vector tiles z5–z9, uncached": tiles, "GeoJSON pages of 100": pages}
    paths = {}
    for n, (name, urls) in enumerate(lists.items()):
        path = workdir / f"list-{n}.txt"
        path.write_text("\n".join(urls) + "\n")
        paths[name] = path
    return paths


def both_at_once(wrk: str, lua: Path, bases: list[str], paths: Path, seconds: float) -> WrkRun:
    """wrk against each instance at the same time; the runs added up."""
    runs: list[WrkRun] = []

    def one(base: str) -> None:
        runs.append(run_wrk(wrk, lua, base, paths, CONNECTIONS, seconds, base))

    threads = [threading.Thread(target=one, args=(b,)) for b in bases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return WrkRun(
        requests=sum(r.requests for r in runs),
        seconds=max(r.seconds for r in runs),
        bytes=sum(r.bytes for r in runs),
        errors={k: sum(r.errors[k] for r in runs) for k in runs[0].errors},
        p50_ms=max(r.p50_ms for r in runs),
        p90_ms=max(r.p90_ms for r in runs),
        p99_ms=max(r.p99_ms for r in runs),
        max_ms=max(r.max_ms for r in runs),
    )


def request(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request; (status, headers, body)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as response:
        headers = {k.lower(): v for k, v in response.headers.items()}
        return response.status, headers, response.read()


def commune_halves(url: str) -> tuple[Any, Any]:
    """The west and east halves of the benchmark's commune."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT ST_AsBinary(geom) FROM commune_coverage WHERE vintage = '2025' AND code = %s",
            (COMMUNE,),
        ).fetchone()
    assert row is not None
    geom: Any = shapely.from_wkb(row[0])
    x0, y0, x1, y1 = geom.bounds
    middle = (x0 + x1) / 2
    return (
        geom.intersection(box(x0 - 1, y0 - 1, middle, y1 + 1)),
        geom.intersection(box(middle, y0 - 1, x1 + 1, y1 + 1)),
    )


def ea_saves(base: str, rep: Replication, token: str, saves: int) -> dict[str, list[float]]:
    """Save one EA `saves` times (over its whole commune); per save, how long the
    standby took to replay the answer's WAL position, and the latency of a replica-routed
    read carrying it, sent at once."""
    items = f"{base}/collections/enumeration-areas/items"
    auth = {"Authorization": f"Bearer {token}"}
    halves = commune_halves(rep.primary_url)

    whole = halves[0].union(halves[1])

    def feature(n: int) -> dict[str, Any]:
        # created over the west half, then saved over the whole commune (a save that gives
        # land back to no EA is refused as a gap; saving the same shape again still writes)
        return {
            "type": "Feature",
            "geometry": mapping(halves[0] if n == 0 else whole),
            "properties": {"census_round": "2029", "commune_code": COMMUNE},
        }

    _, headers, body = request("POST", items, feature(0), auth)
    ea_id, etag = json.loads(body)["id"], headers["etag"]
    waits: dict[str, list[float]] = {"replay": [], "read": []}
    with psycopg.connect(rep.standby_url, autocommit=True) as standby:
        for n in range(1, saves + 1):
            _, headers, _ = request(
                "PUT", f"{items}/{ea_id}", feature(n), {**auth, "If-Match": etag}
            )
            saved_at = time.perf_counter()
            etag, position = headers["etag"], headers[HEADER.lower()]
            read = threading.Thread(target=_read_with, args=(base, position, waits["read"]))
            read.start()
            # (the header is the position, a dot and the service's signature of it)
            replayed_to = position.partition(".")[0]
            while not standby.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (replayed_to,)
            ).fetchone()[0]:  # type: ignore[index]
                time.sleep(0.0005)
            waits["replay"].append((time.perf_counter() - saved_at) * 1000)
            read.join()
    return waits


def _read_with(base: str, position: str, latencies: list[float]) -> None:
    started = time.perf_counter()
    request("GET", f"{base}/collections/commune-2025/items/{COMMUNE}", headers={HEADER: position})
    latencies.append((time.perf_counter() - started) * 1000)


def wait_streaming(base: str) -> None:
    """Wait until the instance's replica is in rotation."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, _, body = request("GET", f"{base}/health")
        if [r["state"] for r in json.loads(body).get("replicas", [])] == ["streaming"]:
            return
        time.sleep(0.2)
    raise SystemExit("the replica did not stream within 60 s")


def main() -> None:
    """Measure and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per wrk run")
    parser.add_argument("--saves", type=int, default=30, help="EA saves timed")
    args = parser.parse_args()
    wrk = ensure_wrk(log)
    before = loadavg()
    log(f"load average before: {' '.join(before)}")
    rows: list[str] = []
    with replicated() as rep:
        log("loading the 3,321 communes on the primary")
        load_communes(rep.primary_url)
        rep.wait_streaming()
        with psycopg.connect(rep.primary_url, autocommit=True) as conn:
            token = add_user(conn, "bench-editor", "editor", ["01"])
        workdir = Path(tempfile.mkdtemp(prefix="geo-service-bench-replicas-"))
        lua = workdir / "cycle.lua"
        lua.write_text(WRK_LUA)
        lists = url_lists(workdir)
        figures: dict[tuple[str, str], WrkRun] = {}
        waits: dict[str, list[float]] = {}
        # (instances behind one balancer sign write positions with one key)
        lsn_secret = secrets.token_urlsafe(32)
        for mode, replicas in (("primary only", ""), ("primary + replica", rep.standby_url)):
            servers = []
            for n in (1, 2):
                env = {
                    **server_env(),
                    "DATABASE_URL": rep.primary_url,
                    "GEO_SERVICE_HOME": str(workdir / f"home-{len(figures)}-{n}"),
                    "GEO_SERVICE_TILE_CACHE": "none",
                    "GEO_SERVICE_REPLICA_URLS": replicas,
                    "GEO_SERVICE_LSN_SECRET": lsn_secret,
                }
                name = f"{mode} {n}"
                servers.append(start_server(name, ours_command(), env, "/health", "/", workdir))
            try:
                bases = [s.base for s in servers]
                if replicas:
                    for base in bases:
                        wait_streaming(base)
                for what, paths in lists.items():
                    log(f"{mode}: {what}")
                    both_at_once(wrk, lua, bases, paths, 1.0)  # (warm-up)
                    run = both_at_once(wrk, lua, bases, paths, args.seconds)
                    figures[(what, mode)] = run
                    log(f"  {run.rps:,.1f} req/s, p50 {run.p50_ms:.1f} ms")
                if replicas:
                    log(f"{mode}: {args.saves} EA saves")
                    waits = ea_saves(bases[0], rep, token, args.saves)
            finally:
                for server in servers:
                    stop_server(server)
    after = loadavg()
    rows.append("| URL list | reads on | req/s (2 instances) | p50 ms | p99 ms | errors |")
    rows.append("|---|---|---:|---:|---:|---:|")
    for (what, mode), run in figures.items():
        rows.append(
            f"| {what} | {mode} | {run.rps:,.1f} | {run.p50_ms:.1f} | {run.p99_ms:.1f} |"
            f" {run.error_count} |"
        )
    rows.append("")
    rows.append(f"| After an EA save (n = {len(waits['replay'])}) | median ms | max ms |")
    rows.append("|---|---:|---:|")
    for key, label in (
        ("replay", "standby has replayed the save's WAL position"),
        ("read", "a read carrying the position, answered"),
    ):
        values = waits[key]
        rows.append(f"| {label} | {statistics.median(values):.1f} | {max(values):.1f} |")
    rows.append("")
    rows.append(
        f"commit {served_commit(server_env())}; load average before {' '.join(before)},"
        f" after {' '.join(after)}; {args.seconds:g} s per wrk run, {CONNECTIONS}"
        " connections per instance"
    )
    print("\n".join(rows))


if __name__ == "__main__":
    main()

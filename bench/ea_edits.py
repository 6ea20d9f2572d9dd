"""EA benchmark: generate the EAs of all Vietnam through the CLI, then time single EA edits.

    python -m bench.ea_edits            # all 3,321 communes (~200,000 EAs), 300 edits
    python -m bench.ea_edits --short    # one province's communes, 100 edits

The edit is what a cartographer's "save" does: GET the EA (its ETag), then PUT a geometry with
If-Match. The server snaps it, checks every rule against the commune and the neighbouring EAs,
estimates households from the raster, writes the row and its history and records the tile
change, in one transaction. Target (issue #7): p95 < 50 ms with ~200,000 EAs loaded.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from bench.features import _cpu_model, _git, prepare_database, start_server, stop_server
from geo_service.auth import add_user
from geo_service.localdb import LocalCluster

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "ea_edits.md"
SHORT_PROVINCE = "01"  # Hà Nội: 126 communes
TARGET_P95_MS = 50.0


def generate(db_url: str, communes: list[str] | None) -> tuple[float, int]:
    """Run `geo-service ea generate` as a user would; its wall time and the EAs stored."""
    command = [str(Path(sys.executable).parent / "geo-service"), "ea", "generate", "--round",
               "2029"]
    for code in communes or []:
        command += ["--commune", code]
    env = {**os.environ, "DATABASE_URL": db_url}
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM enumeration_area").fetchone()
    return seconds, int(row[0]) if row else 0


def _request(conn: http.client.HTTPConnection, method: str, path: str, headers: dict[str, str],
             body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def time_edits(base: str, token: str, ids: list[int]) -> tuple[list[float], int]:
    """Milliseconds of each PUT (the save), and how many were refused."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    auth = {"Authorization": f"Bearer {token}"}
    times, refused = [], 0
    for ea_id in ids:
        path = f"/collections/enumeration-areas/items/{ea_id}"
        status, headers, body = _request(conn, "GET", path, auth)
        assert status == 200, body[:300]
        feature = json.loads(body)
        edit = {"type": "Feature", "geometry": feature["geometry"],
                "properties": {"reason": "benchmark edit"}}
        payload = json.dumps(edit).encode()
        put_headers = {**auth, "If-Match": headers["etag"], "Content-Type": "application/json"}
        started = time.perf_counter()
        status, _, body = _request(conn, "PUT", path, put_headers, payload)
        times.append((time.perf_counter() - started) * 1000)
        if status != 200:
            refused += 1
            print(f"EA {ea_id}: {status} {body[:200]!r}", file=sys.stderr)
    conn.close()
    return times, refused


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _machine() -> str:
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = Path("/proc/loadavg").read_text().split()[0]
    return (f"{when}, commit {commit}, {os.cpu_count()} CPUs ({_cpu_model()}), load average"
            f" {load} at the end (other work shares the machine).")


def report(args: argparse.Namespace, machine: str, how: str, generate_s: float, eas: int,
           communes: int, times: list[float], refused: int) -> str:
    """The results as Markdown."""
    p95 = _percentile(times, 95)
    verdict = "met" if p95 < TARGET_P95_MS else "NOT met"
    return "\n".join([
        f"# EA benchmark ({'short' if args.short else 'full'} mode)", "", machine, "",
        f"Database: {how}.", "",
        "| measure | value |", "|---|---|",
        f"| communes generated | {communes:,} |",
        f"| EAs stored | {eas:,} |",
        f"| `geo-service ea generate` wall time | {generate_s:.1f} s |",
        f"| edits timed (sequential, one editor) | {len(times)} ({refused} refused) |",
        f"| save (PUT) p50 | {statistics.median(times):.1f} ms |",
        f"| save (PUT) p95 | {p95:.1f} ms (target < {TARGET_P95_MS:.0f} ms: {verdict}) |",
        f"| save (PUT) p99 | {_percentile(times, 99):.1f} ms |",
        f"| save (PUT) max | {max(times):.1f} ms |", ""])


def run(args: argparse.Namespace) -> str:
    """Set up, generate, edit, report."""
    work = Path(tempfile.mkdtemp(prefix="geo-service-bench-ea-"))
    work.chmod(0o755)
    cluster = LocalCluster(work / "pg", database="postgres")
    cluster.start(extra_options="-c max_wal_size=4GB")
    try:
        db_url, how = prepare_database(cluster, use_cache=not args.no_cache, log=print)
        with psycopg.connect(db_url, autocommit=True) as conn:
            codes = [r[0] for r in conn.execute(
                "SELECT code FROM admin_unit WHERE vintage = '2025' AND level = 'commune'"
                " AND (%s::text IS NULL OR parent_code = %s) ORDER BY code",
                (SHORT_PROVINCE if args.short else None,) * 2)]
            token = add_user(conn, "bench", "admin", [])
        print(f"generating the EAs of {len(codes):,} communes through the CLI …")
        generate_s, eas = generate(db_url, codes if args.short else None)
        print(f"{eas:,} EAs in {generate_s:.1f} s")
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE enumeration_area")
            ids = [r[0] for r in conn.execute("SELECT id FROM enumeration_area ORDER BY id")]
        sample = random.Random(2029).sample(ids, min(args.edits, len(ids)))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PG", "GEO_SERVICE_", "DATABASE_URL"))}
        server = start_server(
            "ours", [sys.executable, "-m", "uvicorn", "geo_service.main:create_app", "--factory"],
            {**env, "DATABASE_URL": db_url, "GEO_SERVICE_HOME": str(work / "home")},
            "/health", "/collections/enumeration-areas/items", work)
        try:
            time_edits(server.base, token, sample[:10])  # warm the pool and the caches
            times, refused = time_edits(server.base, token, sample[10:])
        finally:
            stop_server(server)
        text = report(args, _machine(), how, generate_s, eas, len(codes), times, refused)
    finally:
        cluster.destroy()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="one province, fewer edits")
    parser.add_argument("--edits", type=int, default=None, help="edits to time")
    parser.add_argument("--no-cache", action="store_true", help="load the demo afresh")
    args = parser.parse_args(argv)
    if args.edits is None:
        args.edits = 110 if args.short else 310
    print(run(args))  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

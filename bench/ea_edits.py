"""EA benchmark: generate the EAs of all Vietnam through the CLI, then time single EA edits.

    python -m bench.ea_edits            # all 3,321 communes (~200,000 EAs), 300 edits
    python -m bench.ea_edits --short    # one province's communes, 100 edits

The database with the generated EAs is cached (pg_dump, ~/.cache/geo-service-bench) like the
demo; a run that restores it reports the generation time measured when the dump was made.
`--no-cache` generates afresh.

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
from collections.abc import Callable
from pathlib import Path

import psycopg

from bench.common import (
    CACHE,
    Extra,
    clean_env,
    cpu_model,
    git_commit,
    ours_command,
    prepare_database,
    start_server,
    stop_server,
)
from geo_service.localdb import LocalCluster
from geo_service.users import add_user

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "ea_edits.md"
SHORT_PROVINCE = "01"  # Hà Nội: 126 communes
TARGET_P95_MS = 50.0
PROGRESS_SCOPE = "01"  # the progress of a province of 126 communes
TARGET_PROGRESS_MS = 300.0


def generation(short: bool) -> Extra:
    """Generate the EAs through the CLI, as a user would, before the database is cached."""
    which = SHORT_PROVINCE if short else "all"

    def run(db_url: str, log: Callable[[str], None]) -> None:
        command = [
            str(Path(sys.executable).parent / "geo-service"),
            "ea",
            "generate",
            "--round",
            "2029",
        ]
        with psycopg.connect(db_url) as conn:
            for (code,) in (
                conn.execute(
                    "SELECT code FROM admin_unit WHERE vintage = '2025' AND level = 'commune'"
                    " AND parent_code = %s ORDER BY code",
                    (SHORT_PROVINCE,),
                )
                if short
                else []
            ):
                command += ["--commune", code]
        log(f"geo-service ea generate ({which}) …")
        started = time.perf_counter()
        subprocess.run(
            command,
            check=True,
            env={**clean_env(), "DATABASE_URL": db_url},
            stdout=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - started
        log(f"  {seconds:.1f} s")
        _timing_file(which).write_text(json.dumps({"seconds": seconds, "at": _now()}))

    return Extra(
        f"ea-cli-{which}",
        f"ea-cli:{which}",
        ("geo_service/ea", "boundaries/ea_generate.py", "geo_service/settings.py"),
        run,
    )


def _timing_file(which: str) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    return CACHE / f"ea-cli-{which}-generate.json"


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def _request(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
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
        edit = {
            "type": "Feature",
            "geometry": feature["geometry"],
            "properties": {"reason": "benchmark edit"},
        }
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


def time_progress(base: str, token: str, count: int = 30) -> list[float]:
    """Milliseconds of each read of a province's progress (what /map/ea/progress shows)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    auth = {"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"}
    path = f"/census/2029/progress?scope={PROGRESS_SCOPE}"
    times = []
    for _ in range(count):
        started = time.perf_counter()
        status, _, body = _request(conn, "GET", path, auth)
        times.append((time.perf_counter() - started) * 1000)
        assert status == 200, body[:300]
    conn.close()
    return times


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _machine() -> str:
    load = Path("/proc/loadavg").read_text().split()[0]
    return (
        f"{_now()}, commit {git_commit()}, {os.cpu_count()} CPUs ({cpu_model()}), load"
        f" average {load} at the end (other work shares the machine)."
    )


def report(
    args: argparse.Namespace,
    machine: str,
    how: str,
    generated: str,
    eas: int,
    communes: int,
    times: list[float],
    refused: int,
    progress: list[float],
) -> str:
    """The results as Markdown."""
    p95 = _percentile(times, 95)
    verdict = "met" if p95 < TARGET_P95_MS else "NOT met"
    progress_p95 = _percentile(progress, 95)
    progress_verdict = "met" if progress_p95 < TARGET_PROGRESS_MS else "NOT met"
    return "\n".join(
        [
            f"# EA benchmark ({'short' if args.short else 'full'} mode)",
            "",
            machine,
            "",
            f"Database: {how}.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| communes generated | {communes:,} |",
            f"| EAs stored | {eas:,} |",
            f"| `geo-service ea generate` wall time | {generated} |",
            f"| edits timed (sequential, one editor) | {len(times)} ({refused} refused) |",
            f"| save (PUT) p50 | {statistics.median(times):.1f} ms |",
            f"| save (PUT) p95 | {p95:.1f} ms (target < {TARGET_P95_MS:.0f} ms: {verdict}) |",
            f"| save (PUT) p99 | {_percentile(times, 99):.1f} ms |",
            f"| save (PUT) max | {max(times):.1f} ms |",
            f"| progress of province {PROGRESS_SCOPE} (GET, {len(progress)} reads) p50 |"
            f" {statistics.median(progress):.1f} ms |",
            f"| progress p95 | {progress_p95:.1f} ms (target < {TARGET_PROGRESS_MS:.0f} ms:"
            f" {progress_verdict}) |",
            "",
        ]
    )


def run(args: argparse.Namespace) -> str:
    """Set up (or restore), edit, report."""
    work = Path(tempfile.mkdtemp(prefix="geo-service-bench-ea-"))
    work.chmod(0o755)
    cluster = LocalCluster(work / "pg", database="postgres")
    # Durable settings (fsync on), unlike the throughput benchmarks: a save includes its commit.
    cluster.start(extra_options="-c max_wal_size=4GB")
    which = SHORT_PROVINCE if args.short else "all"
    try:
        db_url, how = prepare_database(
            cluster, use_cache=not args.no_cache, log=print, extra=generation(args.short)
        )
        timing = (
            json.loads(_timing_file(which).read_text()) if _timing_file(which).exists() else None
        )
        generated = f"{timing['seconds']:.1f} s (measured {timing['at']})" if timing else "?"
        with psycopg.connect(db_url, autocommit=True) as conn:
            token = add_user(conn, "bench", "admin", [])
            conn.execute("VACUUM ANALYZE enumeration_area")
            ids = [r[0] for r in conn.execute("SELECT id FROM enumeration_area ORDER BY id")]
            communes = conn.execute(
                "SELECT count(DISTINCT commune_code) FROM enumeration_area"
            ).fetchone()
        sample = random.Random(2029).sample(ids, min(args.edits, len(ids)))
        server = start_server(
            "ours",
            ours_command(),
            {
                **clean_env(),
                "DATABASE_URL": db_url,
                "GEO_SERVICE_HOME": str(work / "home"),
                "GEO_SERVICE_ACCESS_LOG": "false",
            },
            "/health",
            "/collections/enumeration-areas/items",
            work,
        )
        try:
            time_edits(server.base, token, sample[:10])  # warm the pool and the caches
            times, refused = time_edits(server.base, token, sample[10:])
            time_progress(server.base, token, 3)  # warm
            progress = time_progress(server.base, token)
        finally:
            stop_server(server)
        text = report(
            args,
            _machine(),
            how,
            generated,
            len(ids),
            int(communes[0]) if communes else 0,
            times,
            refused,
            progress,
        )
    finally:
        cluster.destroy()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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

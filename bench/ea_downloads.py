"""National EA downloads (issue #18): CSV and GeoJSON of every EA, as a planner or a CAPI
system asks for them, timed to the first byte and to the last, from two source trees side
by side over one database (e.g. this branch and /work/main).

The database is the demo with synthetic EAs: `--per-commune` vertical strips of each of the
3,321 communes (72: about 239,000 EAs, near the 236,690 of a national generation; a
strip across a gap of a commune in parts is left out). Each tree runs
in its own service process with the default response deadline (60 s); the requests go one at
a time, alternating trees. A download answered 202 (a job) is followed to its file: "first
byte" is then the 202's, "total" the time until the file has been read.

    .venv/bin/python -m bench.ea_downloads --tree /work/main [--per-commune 72] [--port 18950]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg

from bench.common import loadavg, prepare_database, throwaway_cluster

REPO = Path(__file__).resolve().parent.parent
ALL_STRIPS = """
INSERT INTO enumeration_area (census_round, code, commune_vintage, commune_code, status,
                              households, geom, updated_by)
SELECT '2029', code || '-' || lpad(i::text, 3, '0'), vintage, code, 'draft', 100 + i, geom,
       'bench'
FROM (SELECT c.code, c.vintage, i, ST_Multi(ST_CollectionExtract(ST_Intersection(c.geom,
             ST_MakeEnvelope(
                 ST_XMin(c.geom) + (i - 1) * (ST_XMax(c.geom) - ST_XMin(c.geom)) / %(n)s,
                 ST_YMin(c.geom),
                 ST_XMin(c.geom) + i * (ST_XMax(c.geom) - ST_XMin(c.geom)) / %(n)s,
                 ST_YMax(c.geom), 4326)), 3)) AS geom
      FROM commune_coverage c, generate_series(1, %(n)s) i
      WHERE c.vintage = '2025') strips
WHERE NOT ST_IsEmpty(geom)  -- (a strip across a gap of a commune in parts)
"""


def _log(text: str) -> None:
    print(f"[ea_downloads] {text}", file=sys.stderr, flush=True)


def _download(url: str) -> dict[str, Any]:
    """Status, seconds to the first byte and to the end, bytes (a job followed to its file)."""
    start = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=3600) as answer:
            first = answer.read(1)
            first_s = time.monotonic() - start
            size = len(first) + sum(len(c) for c in iter(lambda: answer.read(1 << 20), b""))
            status, location = answer.status, answer.headers.get("Location")
    except urllib.error.HTTPError as refused:
        return {"status": refused.code, "first_byte_s": round(time.monotonic() - start, 1)}
    result = {"status": status, "first_byte_s": round(first_s, 1)}
    while status == 202 and location:
        time.sleep(1)
        with urllib.request.urlopen(location, timeout=60) as answer:
            job = json.loads(answer.read())
        if job["status"] == "successful":
            with urllib.request.urlopen(location + "/results", timeout=3600) as answer:
                size = sum(len(c) for c in iter(lambda: answer.read(1 << 20), b""))
                status = answer.status
            result["job"] = "successful"
            break
        if job["status"] not in ("accepted", "running"):
            result["job"] = job["status"]
            break
    return {**result, "total_s": round(time.monotonic() - start, 1), "mib": round(size / 2**20)}


def _serve(tree: Path, url: str, port: int, workers: bool) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "GEO_SERVICE_HOME": tempfile.mkdtemp(prefix="bench-ea-downloads-home-"),
        "GEO_SERVICE_PRERENDER_MAX_ZOOM": "0",
        "GEO_SERVICE_ACCESS_LOG": "false",
        "PYTHONPATH": str(tree),
        # (only the first tree's service makes jobs: another tree's could not make them all)
        "GEO_SERVICE_JOB_WORKERS": "1" if workers else "0",
    }
    python = tree / ".venv" / "bin" / "python"
    command = [str(python if python.exists() else sys.executable), "-m", "uvicorn"]
    command += ["geo_service.http.app:create_app", "--factory", "--port", str(port)]
    return subprocess.Popen([*command, "--log-level", "warning"], env=env, cwd=tree)


def _wait(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 600  # (importing the app is slow on a busy machine)
    while True:
        try:
            with urllib.request.urlopen(base + "/health", timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise
            time.sleep(0.5)


def _commit(tree: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()


def main() -> None:
    """Time each format on each tree; print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, action="append", help="a source tree (repeat)")
    parser.add_argument("--per-commune", type=int, default=72, help="EA strips per commune")
    parser.add_argument("--formats", default="csv,geojson")
    parser.add_argument("--port", type=int, default=18950, help="the first service's port")
    parser.add_argument("--no-cache", action="store_true")
    args = parser.parse_args()
    trees = [REPO, *(args.tree or [])]
    with throwaway_cluster("bench-ea-downloads-", _log) as (cluster, _):
        url, how = prepare_database(cluster, not args.no_cache, _log)
        _log(how)
        with psycopg.connect(url, autocommit=True) as conn:
            started = time.monotonic()
            conn.execute(ALL_STRIPS, {"n": args.per_commune})
            conn.execute("ANALYZE enumeration_area")
            row = conn.execute("SELECT count(*) FROM enumeration_area").fetchone()
            eas = row[0] if row else 0
        _log(f"{eas} EAs in {time.monotonic() - started:.0f} s")
        servers = [_serve(t, url, args.port + i, i == 0) for i, t in enumerate(trees)]
        bases = [f"http://127.0.0.1:{args.port + i}" for i in range(len(trees))]
        results: list[dict[str, Any]] = []
        try:
            for base, server in zip(bases, servers, strict=True):
                _wait(base, server)
            for fmt in args.formats.split(","):
                for tree, base in zip(trees, bases, strict=True):
                    load = loadavg()
                    _log(f"{fmt} from {tree}")
                    got = _download(f"{base}/collections/enumeration-areas/items?f={fmt}")
                    results.append(
                        {
                            "tree": str(tree),
                            "commit": _commit(tree),
                            "format": fmt,
                            **got,
                            "load_before": load,
                            "load_after": loadavg(),
                        }  # fmt: skip
                    )
                    _log(json.dumps(results[-1]))
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=30)
    print(json.dumps({"eas": eas, "results": results}, indent=1))


if __name__ == "__main__":
    main()

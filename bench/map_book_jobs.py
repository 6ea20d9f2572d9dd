"""Map books beside interactive drawings (issues #18/#24): two large map books asked for at
once by the same client address (renders per client raised to 2, as two clients behind one
office NAT would be), then field maps asked for one after the other by another client (a
signed-in viewer) while the books are drawn. Before jobs, the two books held both render
slots and the field maps waited for a slot, then got 503; with jobs, books take at most one
slot and run one after the other.

The service runs from the tree given (`--tree`, e.g. /work/main for the code before jobs)
in its own process over a throwaway demo database; the figures are the books' and the field
maps' status and wall time, and the service process's CPU seconds.

    .venv/bin/python -m bench.map_book_jobs [--tree /work/main] [--eas 64] [--maps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg

from bench.common import loadavg, prepare_database, throwaway_cluster
from bench.outputs import STRIPS
from geo_service.localdb import free_port
from geo_service.users import add_user

REPO = Path(__file__).resolve().parent.parent


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _get(url: str, timeout: float = 900, token: str | None = None) -> tuple[int, float, int]:
    """Status, wall seconds and body bytes of a GET (following a 202's job to its end)."""
    start = time.monotonic()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        ) as answer:
            body = answer.read()
            status = answer.status
            location = answer.headers.get("Location")
    except urllib.error.HTTPError as refused:
        return refused.code, time.monotonic() - start, 0
    while status == 202 and location:  # (a job: follow it until its result is there)
        time.sleep(1)
        with urllib.request.urlopen(location, timeout=60) as answer:
            job = json.loads(answer.read())
        if job["status"] == "successful":
            return _get(location + "/results")[0], time.monotonic() - start, 0
        if job["status"] not in ("accepted", "running"):
            return 500, time.monotonic() - start, 0
    return status, time.monotonic() - start, len(body)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    """Run the case once against the tree and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=REPO, help="the service's source tree")
    parser.add_argument("--eas", type=int, default=64, help="EAs of each of the two books")
    parser.add_argument("--maps", type=int, default=5, help="field maps asked meanwhile")
    parser.add_argument("--no-cache", action="store_true")
    args = parser.parse_args()
    with throwaway_cluster("bench-book-jobs-", _log) as (cluster, workdir):
        url, how = prepare_database(cluster, not args.no_cache, _log)
        _log(how)
        with psycopg.connect(url, autocommit=True) as conn:
            communes = [
                r[0]
                for r in conn.execute(
                    "SELECT code FROM admin_unit WHERE vintage = '2025' AND level = 'commune'"
                    " AND parent_code = '01' ORDER BY code LIMIT 3"
                )
            ]
            for code in communes[:2]:
                conn.execute(STRIPS, {"round": "2029", "n": args.eas, "commune": code})
            conn.execute(STRIPS, {"round": "2029", "n": 4, "commune": communes[2]})
            row = conn.execute(
                "SELECT id FROM enumeration_area WHERE commune_code = %s LIMIT 1", (communes[2],)
            ).fetchone()
            # (the field maps come from another client than the books: a signed-in viewer)
            token = add_user(conn, "bench-viewer", "viewer", [])
        assert row is not None
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "GEO_SERVICE_HOME": tempfile.mkdtemp(prefix="bench-book-jobs-home-"),
            "GEO_SERVICE_RENDERS_PER_CLIENT": "2",
            "GEO_SERVICE_RESPONSE_DEADLINE_S": "900",
            "GEO_SERVICE_PRERENDER_MAX_ZOOM": "0",
            "GEO_SERVICE_ACCESS_LOG": "false",
            "PYTHONPATH": str(args.tree),
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "geo_service.http.app:create_app", "--factory"]
            + ["--port", str(port), "--log-level", "warning"],
            env=env,
            cwd=args.tree,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            # (importing the app takes a minute or more on a saturated machine)
            deadline = time.monotonic() + 600
            while True:
                try:
                    with urllib.request.urlopen(base + "/health", timeout=5):
                        break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise
                    time.sleep(0.2)
            # (one field map first: fonts and caches warm, as in a running service)
            field_map = f"{base}/collections/enumeration-areas/items/{row[0]}/field-map.pdf"
            _get(field_map, token=token)
            load_before, cpu_before = loadavg(), _cpu_s(server.pid)
            books: list[Any] = [None, None]

            def book(i: int) -> None:
                books[i] = _get(f"{base}/communes/{communes[i]}/ea-map-book.pdf?round=2029")

            threads = [threading.Thread(target=book, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            time.sleep(3)
            maps = [_get(field_map, token=token)[:2] for _ in range(args.maps)]
            for thread in threads:
                thread.join()
            result = {
                "tree": str(args.tree),
                "commit": subprocess.run(
                    ["git", "-C", str(args.tree), "rev-parse", "--short", "HEAD"],
                    capture_output=True,
                    text=True,
                ).stdout.strip(),
                "eas_per_book": args.eas,
                "books": [{"status": b[0], "wall_s": round(b[1], 1)} for b in books],
                "field_maps": [{"status": s, "wall_s": round(w, 2)} for s, w in maps],
                "service_cpu_s": round(_cpu_s(server.pid) - cpu_before, 1),
                "load_before": load_before,
                "load_after": loadavg(),
            }
            print(json.dumps(result, indent=1))
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()

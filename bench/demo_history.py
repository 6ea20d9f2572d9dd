"""Benchmark: how long `geo-service demo` takes to set up, and how long `--history` adds.

Usage: .venv/bin/python bench/demo_history.py

On a throwaway PostgreSQL + PostGIS cluster: a migrated database, then `load_demo` (and the
protection the command runs after it), then `load_history`, each timed, with every step of
the history printed with the seconds since it started and the load average before and after.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from geo_service.demo import load_demo, load_history  # noqa: E402
from geo_service.localdb import LocalCluster  # noqa: E402
from geo_service.migrate import migrate  # noqa: E402
from indicators.protect import refresh  # noqa: E402


def main() -> int:
    """Time the demo's set-up without and with the history."""
    home = Path(tempfile.mkdtemp(prefix="geo-service-bench-demo-"))
    home.chmod(0o755)  # the postgres user must reach the data folder when we run as root
    cluster = LocalCluster(home, database="postgres")
    try:
        cluster.start()
        print(f"load average before {os.getloadavg()}")
        with psycopg.connect(cluster.url(database="postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE demo")
        with psycopg.connect(cluster.url(database="demo"), autocommit=True) as conn:
            migrate(conn)
            started = time.perf_counter()
            for _ in load_demo(conn):
                pass
            list(refresh(conn))
            print(f"demo: {time.perf_counter() - started:.1f} s")
            started, cpu = time.perf_counter(), time.process_time()
            for line in load_history(conn):
                # wall seconds and this process's CPU seconds (all threads; the database
                # server's work is not in it) since the history started
                print(
                    f"{time.perf_counter() - started:6.1f} s  "
                    f"CPU {time.process_time() - cpu:6.1f} s  {line}"
                )
            list(refresh(conn))
            print(f"history: {time.perf_counter() - started:.1f} s")
        print(f"load average after {os.getloadavg()}")
    finally:
        cluster.destroy()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

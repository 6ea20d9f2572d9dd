"""National EA generation alone: the demo restored from the bench dump into a throwaway
cluster, then every commune generated as `geo-service ea generate --round 2029` does.

    PYTHONPATH=. .venv/bin/python -m bench.ea_national LABEL

Prints wall time, the workers' and the main process's CPU seconds, EAs and the share along
lines (bench/ea_edits.py does the same generation, then times saves)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from bench.common import prepare_database
from geo_service.ea.generate import generate
from geo_service.localdb import LocalCluster
from geo_service.settings import DEMO_RASTER


def load() -> list[str]:
    """The load averages over 1, 5 and 15 minutes."""
    return Path("/proc/loadavg").read_text().split()[:3]


def main(label: str) -> None:
    """Generate every commune once and print what it cost."""
    work = Path(tempfile.mkdtemp(prefix="ea-national-"))
    work.chmod(0o755)
    cluster = LocalCluster(work / "pg", database="postgres")
    cluster.start(extra_options="-c max_wal_size=4GB")
    try:
        url, _ = prepare_database(cluster, use_cache=True, log=print)
        with psycopg.connect(url) as conn:
            before, started, times = load(), time.perf_counter(), os.times()
            summary = generate(conn, "2025", "2029", None, DEMO_RASTER, 120, 3.5, True)
            wall, after, done = time.perf_counter() - started, load(), os.times()
        main_cpu = done.user - times.user + done.system - times.system
        workers_cpu = (
            done.children_user - times.children_user + done.children_system - times.children_system
        )
        print(
            f"{label}: load {before} -> {after}; communes {summary.communes} EAs {summary.eas} "
            f"wall {wall:.1f} s, main CPU {main_cpu:.1f} s, workers' CPU {workers_cpu:.1f} s, "
            f"share along lines {summary.along_lines_share:.5f}"
        )
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "run")

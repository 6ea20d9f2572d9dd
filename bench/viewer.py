"""Page-ready time of /map in headless Chromium: navigation → every unit drawn.

Usage: .venv/bin/python bench/viewer.py [--repeat 5] [--output FILE]

Starts a throwaway PostGIS with the demo (restored from bench/features.py's cached dump when
there is one), one service process, and Chromium through Playwright; for provinces (GeoJSON)
and communes (vector tiles) it times from `page.goto` to the moment the viewer reports every
unit of the level drawn (3,321 communes, 34 provinces), with a fresh browser context (empty
HTTP cache) each time and the service's tile cache off, so every tile is rendered.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    clean_env,
    ours_command,
    prepare_database,
    start_server,
    stop_server,
)
from geo_service.localdb import LocalCluster  # noqa: E402

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
CASES = (
    ("provinces (GeoJSON)", "level=province&indicator=density", 34),
    ("communes (vector tiles)", "level=commune&indicator=density", 3321),
)


def time_page(browser: object, url: str, units: int) -> float:
    """Seconds from navigation until the viewer has drawn `units` distinct units."""
    context = browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": 1280, "height": 900},
        bypass_csp=True,
    )
    page = context.new_page()
    started = time.perf_counter()
    page.goto(url)
    page.wait_for_function(
        f"window.geoViewer && window.geoViewer.drawnCount() >= {units}", timeout=120_000, polling=20
    )
    elapsed = time.perf_counter() - started
    context.close()
    return elapsed


def main() -> int:
    """Run the measurement and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "viewer.md"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="geo-service-bench-viewer-"))
    workdir.chmod(0o755)
    cluster = LocalCluster(workdir / "cluster", database="postgres")
    cluster.start(extra_options="-c fsync=off -c synchronous_commit=off")
    server = None
    try:
        db_url, _ = prepare_database(cluster, True, print)
        server = start_server(
            "ours",
            ours_command(),
            {
                **clean_env(),
                "DATABASE_URL": db_url,
                "GEO_SERVICE_TILE_CACHE": "none",
                "GEO_SERVICE_HOME": str(workdir / "home"),
            },
            "/health",
            "/map",
            workdir,
        )
        rows = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            for name, query, units in CASES:
                times = [
                    time_page(browser, f"{server.base}/map?{query}", units)
                    for _ in range(args.repeat)
                ]
                rows.append(
                    f"| {name} | {units} | {statistics.median(times):.2f} | "
                    f"{min(times):.2f}–{max(times):.2f} |"
                )
                print(rows[-1])
            browser.close()
        table = (
            "| /map level | units drawn | median s | min–max s |\n|---|---:|---:|---:|\n"
            + "\n".join(rows)
            + "\n"
        )
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(f"# Viewer page-ready time ({args.repeat} runs each)\n\n" + table)
        print(table)
    finally:
        if server is not None:
            stop_server(server)
        cluster.destroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

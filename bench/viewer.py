"""The map viewer in headless Chromium: page-ready time, and a change of indicator until
the map is re-coloured.

Usage: .venv/bin/python bench/viewer.py [--repeat 5] [--before TREE] [--output FILE]

`--before TREE` measures another source tree's service (e.g. the previous commit, from
`git archive`) side by side with this one, over the same database, taking turns.

Starts a throwaway PostGIS with the demo (restored from bench/features.py's cached dump when
there is one), one service process, and Chromium through Playwright.

* Page-ready: for provinces and communes, from `page.goto` to the moment the viewer has its
  values and classes and has drawn every unit of the level (34 provinces, 3,321 communes),
  with a fresh browser context (empty HTTP cache) each time and the service's tile cache off,
  so every tile is rendered. Targets: under 1 s and 1.5 s.
* Re-colour: on the commune map, from a change of indicator (as the indicator list makes it)
  to the map re-coloured (every drawn unit's fill set, next frame painted), counting the
  tile requests made meanwhile (target: under 300 ms and none). The first change to an
  indicator fetches its value table; a change back to one already seen does not.
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
    Server,
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
    ("provinces", "level=province&indicator=density", 34),
    ("communes", "level=commune&indicator=density", 3321),
    # the same page opened again in the same context: what the HTTP cache saves a planner
    # coming back (static files kept for good under their versioned path)
    ("communes, second visit", "level=commune&indicator=density", 3321),
)
# The commune map's indicators, switched in turn (twice: fetched, then seen before).
SWITCHES = ("population", "pop_worldpop", "area_km2", "density")

# In the page: change the indicator, wait for the re-colouring and the next painted frame;
# milliseconds taken and tile requests made meanwhile.
_RECOLOUR = """async (indicator) => {
  const before = window.geoViewer.recoloured;
  const seen = performance.getEntriesByType("resource").length;
  const started = performance.now();
  window.geoViewer.set({ indicator });
  await new Promise((done) => {
    const check = () => window.geoViewer.recoloured > before ? requestAnimationFrame(() => done())
      : setTimeout(check, 1);
    check();
  });
  const ms = performance.now() - started;
  const tiles = performance.getEntriesByType("resource").slice(seen)
    .filter((e) => e.name.includes("/tiles/")).length;
  return [ms, tiles];
}"""


def time_page(browser: object, url: str, units: int, visits: int = 1) -> float:
    """Seconds from navigation until the viewer has drawn `units` distinct units, on the
    last of `visits` visits in one fresh context (empty HTTP cache before the first)."""
    context = browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": 1280, "height": 900},
        bypass_csp=True,
    )
    page = context.new_page()
    elapsed = 0.0
    for _ in range(visits):
        started = time.perf_counter()
        page.goto(url)
        page.wait_for_function(
            "window.geoViewer && window.geoViewer.ready && "
            f"window.geoViewer.drawnCount() >= {units}",
            timeout=120_000,
            polling=20,
        )
        elapsed = time.perf_counter() - started
    context.close()
    return elapsed


def time_recolour(browser: object, base: str) -> dict[str, list[tuple[float, int]]]:
    """(ms, tile requests) of each change of indicator on the commune map: the first change
    to each indicator ("fetched") and the second ("seen before")."""
    context = browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": 1280, "height": 900},
        bypass_csp=True,
    )
    page = context.new_page()
    page.goto(f"{base}/map?level=commune&indicator=density")
    page.wait_for_function(
        "window.geoViewer && window.geoViewer.ready && window.geoViewer.drawnCount() >= 3321",
        timeout=120_000,
    )
    page.wait_for_load_state("networkidle")
    result: dict[str, list[tuple[float, int]]] = {"fetched": [], "seen before": []}
    for round_name in ("fetched", "seen before"):
        for indicator in SWITCHES:
            ms, tiles = page.evaluate(_RECOLOUR, indicator)
            result[round_name].append((float(ms), int(tiles)))
    context.close()
    return result


def recolour_rows(measured: list[dict[str, list[tuple[float, int]]]]) -> list[str]:
    """Markdown rows: median and range of the re-colouring time, and the tile requests."""
    rows = []
    for name in ("fetched", "seen before"):
        ms = [m for run in measured for m, _ in run[name]]
        tiles = sum(t for run in measured for _, t in run[name])
        rows.append(
            f"| change of indicator, {name} | {statistics.median(ms):.0f} | "
            f"{min(ms):.0f}–{max(ms):.0f} | {tiles} | {len(ms)} |"
        )
    return rows


REPO = Path(__file__).resolve().parent.parent


def _server(name: str, tree: Path, db_url: str, workdir: Path) -> Server:
    """One service process running the code of the source tree `tree` (this checkout, or
    another one for a side-by-side comparison) over the benchmark database."""
    return start_server(
        name,
        ours_command(),
        {
            **clean_env(),
            # (the code of `tree`, whatever the virtualenv's editable install points at)
            "PYTHONPATH": str(tree),
            "DATABASE_URL": db_url,
            "GEO_SERVICE_TILE_CACHE": "none",
            "GEO_SERVICE_HOME": str(workdir / f"home-{name}"),
        },
        "/health",
        "/map",
        workdir,
    )


def page_rows(
    browser: object, servers: list[Server], repeat: int
) -> dict[tuple[str, str], list[float]]:
    """Page-ready seconds per (server, level), the servers taking turns (first one, then the
    other, then the other way round) so that a change of load hits both alike."""
    times: dict[tuple[str, str], list[float]] = {}
    for run in range(repeat):
        order = servers if run % 2 == 0 else servers[::-1]
        for name, query, units in CASES:
            for server in order:
                visits = 2 if "second visit" in name else 1
                seconds = time_page(browser, f"{server.base}/map?{query}", units, visits)
                times.setdefault((server.name, name), []).append(seconds)
    return times


def main() -> int:
    """Run the measurement and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="another source tree (e.g. `git archive main`) measured side by side, in turns",
    )
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "viewer.md"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="geo-service-bench-viewer-"))
    workdir.chmod(0o755)
    cluster = LocalCluster(workdir / "cluster", database="postgres")
    cluster.start(extra_options="-c fsync=off -c synchronous_commit=off")
    servers: list[Server] = []
    try:
        db_url, _ = prepare_database(cluster, True, print)
        if args.before is not None:
            servers.append(_server("before", args.before.resolve(), db_url, workdir))
        servers.append(_server("ours", REPO, db_url, workdir))
        ours = servers[-1]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            times = page_rows(browser, servers, args.repeat)
            recolour = recolour_rows(
                [time_recolour(browser, ours.base) for _ in range(args.repeat)]
            )
            browser.close()
        rows = [
            f"| {name} | {units} | {server.name} | "
            f"{statistics.median(times[(server.name, name)]):.2f} | "
            f"{min(times[(server.name, name)]):.2f}–{max(times[(server.name, name)]):.2f} |"
            for name, _, units in CASES
            for server in servers
        ]
        table = (
            "| /map level | units drawn | code | median s | min–max s |\n"
            "|---|---:|---|---:|---:|\n"
            + "\n".join(rows)
            + "\n\n| communes (3,321) | median ms | min–max ms | tile requests | changes |\n"
            "|---|---:|---:|---:|---:|\n" + "\n".join(recolour) + "\n"
        )
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(f"# Map viewer ({args.repeat} runs each)\n\n" + table)
        print(table)
    finally:
        for server in servers:
            stop_server(server)
        cluster.destroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Two running services side by side in headless Chromium: the `/map` HTML and page-ready
time of each, in turns (one first, then the other, then the other way round), so that a
change of the machine's load hits both alike.

Usage: .venv/bin/python bench/viewer_pair.py BEFORE_URL AFTER_URL [--repeat 3]

For services over a database `bench/viewer.py` does not build (e.g. the demo with its
history, `geo-service demo --history`): start each tree's service yourself, e.g.
`PYTHONPATH=TREE GEO_SERVICE_TILE_CACHE=none python -m uvicorn
geo_service.http.app:create_app --factory --port N`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.viewer import CASES, CHROMIUM_ARGS, time_page  # noqa: E402


def html_seconds(base: str) -> float:
    """Seconds until the whole `/map` page (provinces) has arrived."""
    started = time.perf_counter()
    with urllib.request.urlopen(f"{base}/map?level=province") as response:
        response.read()
    return time.perf_counter() - started


def _summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def main() -> int:
    """Measure both services in turns and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    servers = {"before": args.before.rstrip("/"), "after": args.after.rstrip("/")}
    html: dict[str, list[float]] = {name: [] for name in servers}
    ready: dict[tuple[str, str], list[float]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for run in range(args.repeat):
            order = list(servers.items())
            order = order if run % 2 == 0 else order[::-1]
            for name, base in order:
                html[name].append(html_seconds(base))
            for case, query, units in CASES:
                for name, base in order:
                    seconds = time_page(browser, f"{base}/map?{query}", units)
                    ready.setdefault((name, case), []).append(seconds)
        browser.close()
    print("| measure | before median s (min–max) | after median s (min–max) |")
    print("|---|---:|---:|")
    print(f"| /map HTML | {_summary(html['before'])} | {_summary(html['after'])} |")
    for case, _, units in CASES:
        print(
            f"| page-ready, {case} ({units}) | {_summary(ready[('before', case)])} | "
            f"{_summary(ready[('after', case)])} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

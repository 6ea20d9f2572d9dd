"""Outputs (issue #18): map export PNG and PDF of the 3,321 communes, an area report (PDF and
Excel) of a drawn district-sized area of Hà Nội, the area report (PDF) of a province (Hà
Nội), one EA field map, and map books of 60 and 180 EAs (memory should not grow with the
number of pages).

Each case runs in its own process under `/usr/bin/time -v` (peak memory is that process's
maximum resident set size), calling the same domain code the routes call; the time is the
median of the runs after one warm-up run (fonts, caches, the map book's worker processes).
Map books are drawn with the service's page workers (`GEO_SERVICE_MAP_BOOK_WORKERS`, within
`renders_at_once`) when the code under test has them; their processes' peak memory is
reported beside the main one's.

    .venv/bin/python -m bench.outputs [--repeat 3] [--cases area-report-pdf,area-report-xlsx]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.common import loadavg, prepare_database, throwaway_cluster

CASES = (
    "export-png",
    "export-pdf",
    "area-report-pdf",
    "area-report-xlsx",
    "area-report-unit",
    "field-map",
    "map-book-60",
    "map-book-180",
)
# a district-sized rectangle over central Hà Nội (24 wards; as tests/test_area_report.py)
DRAWN = {
    "type": "Polygon",
    "coordinates": [
        [[105.80, 21.00], [105.87, 21.00], [105.87, 21.06], [105.80, 21.06], [105.80, 21.00]]
    ],
}
COMMUNE = "00004"
PROVINCE = "01"  # Hà Nội: the unit report of a province (its detailed outline, every series)
WORKERS: list[Any] = []  # the map books' page workers, kept from the warm-up to the runs
STRIPS = """
INSERT INTO enumeration_area (census_round, code, commune_vintage, commune_code, status,
                              households, geom, updated_by)
SELECT %(round)s, c.code || '-' || lpad(i::text, 3, '0'), c.vintage, c.code, 'draft', 100 + i,
       ST_Multi(ST_CollectionExtract(ST_Intersection(c.geom, ST_MakeEnvelope(
           ST_XMin(c.geom) + (i - 1) * (ST_XMax(c.geom) - ST_XMin(c.geom)) / %(n)s,
           ST_YMin(c.geom),
           ST_XMin(c.geom) + i * (ST_XMax(c.geom) - ST_XMin(c.geom)) / %(n)s,
           ST_YMax(c.geom), 4326)), 3)), 'bench'
FROM commune_coverage c, generate_series(1, %(n)s) i
WHERE c.vintage = '2025' AND c.code = %(commune)s
"""


def _log(line: str) -> None:
    print(f"[outputs] {line}", file=sys.stderr, flush=True)


async def _one(case: str, url: str) -> None:
    """Make one output once (inside the measured process)."""
    from psycopg import AsyncConnection

    from geo_service.ea.service import fetch
    from geo_service.outputs import field_maps
    from geo_service.outputs import maps as maps_outputs
    from geo_service.settings import ServiceSettings
    from geo_service.viewer.data import MapQuery

    settings = ServiceSettings()
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        if case.startswith("export"):
            fmt = case.split("-")[1]
            request = maps_outputs.ExportRequest(
                MapQuery("commune-2025", "density"),
                layout="slide" if fmt == "png" else "a4",
                fmt=fmt,
            )
            made = await maps_outputs.export_map(conn, request, settings)
            assert len(made.content) > 10_000
        elif case == "area-report-unit":
            await _unit_report(conn, settings)
        elif case.startswith("area-report"):
            await _area_report(conn, case.rsplit("-", 1)[1], settings)
        elif case == "field-map":
            cur = await conn.execute(
                "SELECT id FROM enumeration_area WHERE census_round = '2029' ORDER BY code"
                " OFFSET 90 LIMIT 1"
            )
            row = await cur.fetchone()
            assert row is not None
            ea = await fetch(conn, int(row[0]))
            assert (await field_maps.field_map(conn, ea, settings, "vi"))[:4] == b"%PDF"
        else:
            census_round = "2029" if case.endswith("180") else "2030"
            sheet = await field_maps.commune_sheet(conn, COMMUNE, census_round, settings, "vi")
            path = await asyncio.to_thread(field_maps.map_book_file, sheet, *_workers(settings))
            assert path.stat().st_size > 0
            path.unlink()
            path.parent.rmdir()


def _workers(settings: Any) -> list[Any]:
    """The page workers to pass to `map_book_file`, when the code under test has them."""
    try:
        from geo_service.outputs.page_workers import PageWorkers
    except ImportError:  # (before the map book drew its pages in worker processes)
        return []
    if not WORKERS:  # (as the service makes them: GEO_SERVICE_MAP_BOOK_WORKERS)
        WORKERS.append(PageWorkers(min(settings.map_book_workers, settings.renders_at_once)))
    return WORKERS


async def _unit_report(conn: Any, settings: Any) -> None:
    """What `GET /reports/area?unit=01` does: gather, then render the PDF."""
    from geo_service.outputs import area_report
    from geo_service.outputs.report_pdf import render_pdf

    report = await area_report.unit_report(conn, PROVINCE, "2025", settings, "vi")
    content = await asyncio.to_thread(render_pdf, report, "vi")
    assert len(content) > 5_000


async def _area_report(conn: Any, fmt: str, settings: Any) -> None:
    """What `POST /reports/area` does for a drawn area: gather, then render."""
    from geo_core.crs import parse_crs
    from geo_service.features.aggregate import AreaLimits, parse_polygon
    from geo_service.features.catalogue import read_collection
    from geo_service.outputs import area_report
    from geo_service.outputs.report_pdf import render_pdf
    from geo_service.outputs.report_xlsx import render_xlsx

    limits = AreaLimits()
    area = parse_polygon(DRAWN, parse_crs(None, "crs"), limits)
    collection = await read_collection(conn, "commune-2025")
    report = await area_report.drawn_area_report(
        conn, collection, area, "area", limits, settings.population_raster, None, settings, "vi"
    )
    render = render_pdf if fmt == "pdf" else render_xlsx
    content = await asyncio.to_thread(render, report, "vi")
    assert len(content) > 5_000


def _inner(case: str, url: str, repeat: int) -> None:
    """The measured process: one warm-up, then `repeat` timed runs; prints JSON."""
    times, cpu = [], []
    for i in range(repeat + 1):
        start, used = time.perf_counter(), _cpu_s()
        asyncio.run(_one(case, url))
        if i:
            times.append(time.perf_counter() - start)
            cpu.append(_cpu_s() - used)
    workers = _descendants_peak_mb()
    for pool in WORKERS:
        pool.close()
    print(json.dumps({"case": case, "times": times, "cpu": cpu, "workers_peak_mb": workers}))


def _descendants() -> list[int]:
    """Every process started below this one (the page workers and their server)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    mine, found = {os.getpid()}, True
    while found:
        found = False
        for pid, parent in parents.items():
            if parent in mine and pid not in mine:
                mine.add(pid)
                found = True
    return sorted(mine - {os.getpid()})


def _cpu_s() -> float:
    """CPU seconds used by this process and the processes below it (the page workers: the
    machine is shared, so CPU time says more than wall time about the work itself)."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = time.process_time()
    for pid in _descendants():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return used


def _descendants_peak_mb() -> list[float]:
    """Peak resident memory (VmHWM, MB) of every process started below this one (the page
    workers and their server), which /usr/bin/time does not count."""
    peaks = []
    for pid in _descendants():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        peak = re.search(r"VmHWM:\s+(\d+) kB", status)
        if peak:
            peaks.append(round(int(peak.group(1)) / 1024, 1))
    return peaks


def _measure(case: str, url: str, repeat: int) -> dict[str, Any]:
    """Run a case in its own process under /usr/bin/time -v."""
    command = [
        "/usr/bin/time",
        "-v",
        sys.executable,
        "-m",
        "bench.outputs",
        "--inner",
        case,
        "--url",
        url,
        "--repeat",
        str(repeat),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    result["peak_mb"] = int(peak.group(1)) / 1024 if peak else None
    return result


def main() -> None:
    """Prepare the database, run every case, print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-cache", action="store_true", help="load the demo afresh")
    parser.add_argument(
        "--cases", default=",".join(CASES), help="comma-separated cases (default: all)"
    )
    parser.add_argument("--inner", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        _inner(args.inner, args.url, args.repeat)
        return
    load_before = loadavg()
    with throwaway_cluster("bench-outputs-", _log) as (cluster, _):
        url, how = prepare_database(cluster, not args.no_cache, _log)
        _log(how)
        with psycopg.connect(url, autocommit=True) as conn:
            for census_round, n in (("2029", 180), ("2030", 60)):
                conn.execute(STRIPS, {"round": census_round, "n": n, "commune": COMMUNE})
        rows = []
        for case in [c for c in args.cases.split(",") if c in CASES]:
            _log(f"measuring {case}")
            repeat = 1 if case.startswith("map-book") else args.repeat
            result = _measure(case, url, repeat)
            rows.append(result)
    load_after = loadavg()
    print(
        "| Case | Median time (s) | Runs (s) | CPU (s) | Peak memory (MB) |"
        " Worker processes' peaks (MB) |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        runs = ", ".join(f"{t:.2f}" for t in r["times"])
        workers = ", ".join(f"{m:.0f}" for m in r.get("workers_peak_mb") or []) or "—"
        cpu = statistics.median(r["cpu"])
        print(
            f"| {r['case']} | {statistics.median(r['times']):.2f} | {runs} | {cpu:.2f}"
            f" | {r['peak_mb']:.0f} | {workers} |"
        )
    print(f"\nLoad average before: {' '.join(load_before)}; after: {' '.join(load_after)}")


if __name__ == "__main__":
    main()

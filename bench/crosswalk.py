"""Benchmark: the crosswalk 2009 communes → 2025 communes (11,163 × 3,321) computed from
geometry, side by side with geopandas' `overlay` and PostGIS; and the load of the 11,163
communes of 2009 against ogr2ogr.

Usage: .venv/bin/python bench/crosswalk.py [--repeat 3]

A throwaway PostgreSQL + PostGIS cluster is started in a temporary folder and destroyed at
the end. The 2025 provinces and communes and the 2009 communes are loaded as the demo loads
them (`geo-service demo --history`); the loads of the 2009 communes are timed against
`ogr2ogr` loading the same file as it is. Then each overlay runs in a fresh Python process
(so its peak memory is its own), on the same two cleaned coverages read from the database
once and written to a GeoPackage (not timed):

1. ours, area weights: `indicators.crosswalk_build.compute_crosswalk` (STRtree, vectorised
   intersections, areas on EPSG:6933, slivers, quality figures);
2. ours, area and population weights (the WorldPop raster, fractional pixel coverage);
3. geopandas `overlay(how="intersection")` of the same frames, then the areas on EPSG:6933;
4. PostGIS: one statement joining the two coverages on `&&` and `ST_Intersects`, returning
   every piece's codes, `ST_Area(ST_Transform(ST_Intersection(...), 6933))` and geometry
   (what the builder needs of the overlay).

Peak memory is the process's maximum resident set (ru_maxrss), with what it held after
reading its input beside it. Medians of `--repeat` runs; the Markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO  # noqa: E402
from bench.load_boundaries import (  # noqa: E402
    TEMPLATE,
    _create_database,
    _drop_database,
    _prepare_template,
    describe_run,
    time_ogr2ogr,
)
from boundaries.checks import FieldMap  # noqa: E402
from boundaries.load import LoadOptions, load_boundaries  # noqa: E402
from boundaries.vintages import add_vintage  # noqa: E402
from geo_service.demo import COMMUNES_2009, DATA_DIR, HISTORY_VINTAGE, RASTER, _boundary_loads
from geo_service.localdb import LocalCluster

VARIANTS = ("ours-area", "ours-area-population", "geopandas-overlay", "postgis")
# every piece with its area and geometry, as the builder needs them (population shares are
# summed over the pieces' geometries)
OVERLAY_SQL = (
    "SELECT o.code, n.code, ST_Area(ST_Transform(x.g, 6933)), ST_AsBinary(x.g)"
    " FROM admin_unit_generalised o JOIN admin_unit_generalised n"
    "  ON n.vintage = '2025' AND n.level = 'commune' AND n.band = %s"
    "  AND o.geom && n.geom AND ST_Intersects(o.geom, n.geom),"
    " LATERAL (SELECT ST_Intersection(o.geom, n.geom) AS g) x"
    " WHERE o.vintage = '2009' AND o.level = 'commune' AND o.band = %s"
)
HISTORY_OPTIONS = LoadOptions(
    HISTORY_VINTAGE.id, "commune", FieldMap("code", "name", None, "type"), code_pattern=r"\d{7}"
)


def _rss_mib() -> float:
    """This process's peak resident memory. (`ru_maxrss` keeps the parent's peak across the
    fork and exec that start a child: every child reported the bench's own 849–944 MiB.)"""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(variant: str, gpkg: Path, url: str) -> dict[str, Any]:
    """One overlay in this process: seconds, peak memory above the input, pieces."""
    import geopandas as gpd

    from geo_core.zoom import FINEST_BAND
    from indicators.crosswalk_build import compute_crosswalk

    old = gpd.read_file(gpkg, layer="old")
    new = gpd.read_file(gpkg, layer="new")
    base = _rss_mib()
    started, cpu = time.perf_counter(), time.process_time()
    if variant.startswith("ours"):
        weights = ("area", "population") if variant.endswith("population") else ("area",)
        build = compute_crosswalk(old, new, weights=weights, raster=DATA_DIR / RASTER)
        pieces = build.figures["pieces"]
    elif variant == "geopandas-overlay":
        result = gpd.overlay(old, new, how="intersection", keep_geom_type=True)
        result["area"] = result.to_crs("EPSG:6933").area
        pieces = int((result["area"] > 0).sum())
    else:
        with psycopg.connect(url) as conn:
            rows = conn.execute(OVERLAY_SQL, (FINEST_BAND, FINEST_BAND)).fetchall()
        pieces = sum(1 for r in rows if r[2] > 0)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu  # (of every thread: on a loaded machine the fairer figure)
    # the whole process's peak (reading the GeoPackage may be the largest part of it: the
    # resident size after reading is given beside it)
    return {
        "seconds": seconds,
        "cpu": cpu,
        "peak_mib": _rss_mib(),
        "input_mib": base,
        "pieces": pieces,
    }


def _prepare(cluster: LocalCluster, home: Path, repeat: int) -> tuple[str, dict[str, list[float]]]:
    """The database with both vintages' communes; the 2009 loads timed against ogr2ogr."""
    _prepare_template(cluster)
    url = _create_database(cluster, "bench_xw", TEMPLATE)
    with psycopg.connect(url, autocommit=True) as conn:
        add_vintage(conn, HISTORY_VINTAGE)
        for paths, options in _boundary_loads(DATA_DIR):
            if (options.vintage, options.level) == ("2025", "commune"):
                load_boundaries(conn, paths, options)
    with psycopg.connect(cluster.url(database=TEMPLATE), autocommit=True) as conn:
        add_vintage(conn, HISTORY_VINTAGE)
    loads: dict[str, list[float]] = {"ours": [], "ogr2ogr": []}
    source = DATA_DIR / COMMUNES_2009
    plain = home / "communes-2009.geojson"
    subprocess.run(["ogr2ogr", "-f", "GeoJSON", str(plain), f"/vsigzip/{source}"], check=True)
    _create_database(cluster, "bench_ogr", TEMPLATE)
    for i in range(repeat):
        name = f"bench_load_{i}"
        target = _create_database(cluster, name, TEMPLATE)
        with psycopg.connect(target, autocommit=True) as conn:
            started = time.perf_counter()
            load_boundaries(conn, [source], HISTORY_OPTIONS)
            loads["ours"].append(time.perf_counter() - started)
        _drop_database(cluster, name)
        loads["ogr2ogr"].append(time_ogr2ogr(cluster, "bench_ogr", plain, 11_163).seconds)
        print(f"load {i + 1}/{repeat}: ours {loads['ours'][-1]:.1f} s, "
              f"ogr2ogr {loads['ogr2ogr'][-1]:.1f} s")  # fmt: skip
    with psycopg.connect(url, autocommit=True) as conn:
        load_boundaries(conn, [source], HISTORY_OPTIONS)
    return url, loads


def _export(url: str, gpkg: Path) -> None:
    """The two cleaned coverages (what the builder reads) as two GeoPackage layers."""
    import geopandas as gpd

    from indicators.crosswalk_build import _coverage

    with psycopg.connect(url) as conn:
        for layer, vintage in (("old", "2009"), ("new", "2025")):
            frame: gpd.GeoDataFrame = _coverage(conn, vintage, "commune")
            frame.to_file(gpkg, layer=layer, driver="GPKG")


def run(repeat: int) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[float]]]:
    """Start a throwaway cluster, measure, destroy it."""
    home = Path(tempfile.mkdtemp(prefix="geo-service-bench-xw-"))
    home.chmod(0o755)
    cluster = LocalCluster(home, database="postgres")
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    try:
        cluster.start()
        url, loads = _prepare(cluster, home, repeat)
        gpkg = home / "coverages.gpkg"
        _export(url, gpkg)
        for i in range(repeat):
            for variant in VARIANTS:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", variant, str(gpkg), url],
                    check=True, capture_output=True, text=True, cwd=REPO,
                )  # fmt: skip
                results[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
                r = results[variant][-1]
                print(f"run {i + 1}/{repeat} {variant}: {r['seconds']:.2f} s, "
                      f"CPU {r['cpu']:.2f} s, {r['peak_mib']:.0f} MiB, "
                      f"{r['pieces']} pieces")  # fmt: skip
    finally:
        cluster.destroy()
        shutil.rmtree(home, ignore_errors=True)
    return results, loads


def table(results: dict[str, list[dict[str, Any]]], loads: dict[str, list[float]]) -> str:
    """Medians as Markdown: the overlays against geopandas, the loads against ogr2ogr."""
    base = statistics.median(r["seconds"] for r in results["geopandas-overlay"])
    lines = [
        "| Crosswalk 11,163 × 3,321 communes | median s | min–max s | × geopandas"
        " | CPU s | peak MiB | pieces |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for variant, runs in results.items():
        seconds = [r["seconds"] for r in runs]
        median = statistics.median(seconds)
        lines.append(
            f"| {variant} | {median:.1f} | {min(seconds):.1f}–{max(seconds):.1f} | "
            f"{median / base:.2f} | {statistics.median(r['cpu'] for r in runs):.2f} | "
            f"{statistics.median(r['peak_mib'] for r in runs):.0f} | "
            f"{runs[0]['pieces']:,} |"
        )
    ogr = statistics.median(loads["ogr2ogr"])
    lines += ["", "| Load of the 11,163 communes of 2009 | median s | min–max s | × ogr2ogr |",
              "|---|---:|---:|---:|"]  # fmt: skip
    for label, seconds in loads.items():
        lines.append(
            f"| {label} | {statistics.median(seconds):.1f} | {min(seconds):.1f}–"
            f"{max(seconds):.1f} | {statistics.median(seconds) / ogr:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with --child, one overlay) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=3, metavar=("VARIANT", "GPKG", "URL"))
    args = parser.parse_args(argv)
    if args.child:
        variant, gpkg, url = args.child
        print(json.dumps(child(variant, Path(gpkg), url)))
        return 0
    load_before = os.getloadavg()
    results, loads = run(args.repeat)
    print(describe_run(args.repeat))
    print(f"load average before {load_before}, after {os.getloadavg()}")
    print(table(results, loads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

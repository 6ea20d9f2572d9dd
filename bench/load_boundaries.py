"""Benchmark: our boundary loader against ogr2ogr on the 3,321 communes of 2025.

Usage: .venv/bin/python bench/load_boundaries.py [--repeat 3] [--output FILE]

Everything runs on one throwaway PostgreSQL + PostGIS cluster started in a temporary folder
and destroyed at the end. Measured, each `--repeat` times (interleaved, so drift hits all
three alike), medians reported:

1. ours: `load_boundaries` loading the communes with exactly the options of the demo
   (`geo_service.demo`: recode file, gap width), including checks and generalisation, into a
   fresh migrated database that already holds the 2025 provinces (not timed);
2. ours on a source that is already a clean coverage: the same communes after our cleaning
   (written once to a GeoJSON file, not timed), loaded with the same options, so the
   loader finds nothing to clean and only checks, closes no gaps and simplifies;
3. `ogr2ogr -f PostgreSQL ... -nlt PROMOTE_TO_MULTI` loading the same features (written once to
   a GeoJSON file beforehand, not timed) as they are: no checks, no generalisation.

Our load is split into the phases of its main thread (read, check, write units, bands, finish;
see `StageClock.split`); generalisation runs beside them in a second thread, and "waiting"
says how long the main thread waited for it. The Markdown table is printed and
written to bench/results/load_boundaries.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
import pyogrio
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, cpu_model, git_commit, memory_gib  # noqa: E402
from boundaries.checks import FieldMap, check_features
from boundaries.generalise import DEMO_GAP_WIDTH, clean_coverage
from boundaries.load import LoadOptions, LoadSummary, load_boundaries
from boundaries.readers import FEATURE_INDEX, SOURCE_FILE, read_boundaries
from boundaries.vintages import add_vintage
from geo_service.demo import DATA_DIR, VINTAGES, _boundary_loads
from geo_service.localdb import LocalCluster
from geo_service.migrate import migrate

RESULTS = REPO / "bench" / "results" / "load_boundaries.md"
EXPECTED_COMMUNES = 3321
# Our load's phases in its main thread (see StageClock.split); generalisation runs in a second
# thread from the end of the feature checks on, and "waiting" is how long the main thread
# waited for it.
STAGES = ("read", "check", "write units", "bands", "finish", "waiting")
TEMPLATE = "bench_template"
OGR_TABLE = "communes_ogr"


@dataclasses.dataclass
class Run:
    """One timed load: total seconds and, for ours, seconds per loader stage."""

    seconds: float
    stages: dict[str, float] = dataclasses.field(default_factory=dict)


class StageClock:
    """A progress callback that records when each stage reports."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, int, float]] = []

    def __call__(self, stage: str, done: int, total: int) -> None:
        """Remember the stage, its progress and the time."""
        self.events.append((stage, done, total, time.perf_counter()))

    def _first(self, stage: str) -> float:
        return next(t for s, _, _, t in self.events if s == stage)

    def _last(self, stage: str) -> float:
        return [t for s, _, _, t in self.events if s == stage][-1]

    def split(self, started: float, ended: float) -> dict[str, float]:
        """Seconds per phase of the main thread; all but "waiting" add up to the whole load.

        read: start → file read (includes the vintage/level check); check: → parents checked
        (codes, names, geometries, repairs, parents and overlap with them); write units: →
        first band awaited (COPY of the units, area, INSERT into admin_unit); bands: waiting
        for each band's generalisation and COPYing it into admin_unit_generalised; finish: the
        rest (COMMIT, ANALYZE of the tables). waiting: the part of "bands" spent waiting.
        """
        bounds = [
            started,
            self._last("read"),
            self._last("check"),
            self._first("generalise"),
            self._last("write bands"),
            ended,
        ]
        phases = {stage: bounds[i + 1] - bounds[i] for i, stage in enumerate(STAGES[:-1])}
        waits = zip(
            [t for s, _, _, t in self.events if s == "generalise"],
            [t for s, _, _, t in self.events if s == "write bands"],
            strict=True,
        )
        phases["waiting"] = sum(ready - asked for asked, ready in waits)
        return phases


def _demo_load(vintage: str, level: str) -> tuple[list[Path], LoadOptions]:
    """The paths and options `geo_service.demo` uses for this layer."""
    for paths, options in _boundary_loads(DATA_DIR):
        if options.vintage == vintage and options.level == level:
            return paths, options
    raise SystemExit(f"the demo has no {level} layer of vintage {vintage}")


def _create_database(cluster: LocalCluster, name: str, template: str | None = None) -> str:
    with psycopg.connect(cluster.url(database="postgres"), autocommit=True) as conn:
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(query)
    return cluster.url(database=name)


def _drop_database(cluster: LocalCluster, name: str) -> None:
    with psycopg.connect(cluster.url(database="postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _prepare_template(cluster: LocalCluster) -> None:
    """A migrated database with the vintages and the 2025 provinces (the communes' parents)."""
    url = _create_database(cluster, TEMPLATE)
    paths, options = _demo_load("2025", "province")
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        for vintage in VINTAGES:
            add_vintage(conn, vintage)
        load_boundaries(conn, paths, options)


def _write_geojson(paths: list[Path], options: LoadOptions, target: Path) -> int:
    """The communes as parsed by our reader, with the same codes, as GeoJSON in EPSG:4326."""
    frame = read_boundaries(paths)
    fields = options.fields
    codes = [options.recode.get(str(c), (str(c), ""))[0] for c in frame[fields.code]]
    out = frame[["geometry"]].copy()
    out["code"] = codes
    out["name"] = frame[fields.name]
    out["parent_code"] = frame[fields.parent] if fields.parent else None
    out["unit_type"] = frame[fields.unit_type] if fields.unit_type else None
    pyogrio.write_dataframe(out.to_crs("EPSG:4326"), target, driver="GeoJSON")
    return len(out)


def time_ours(
    cluster: LocalCluster,
    name: str,
    paths: list[Path],
    options: LoadOptions,
    expected: int = EXPECTED_COMMUNES,
) -> Run:
    """Load the communes into a fresh copy of the template; time only the load."""
    url = _create_database(cluster, name, TEMPLATE)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            clock = StageClock()
            started = time.perf_counter()
            summary: LoadSummary = load_boundaries(conn, paths, options, progress=clock)
            ended = time.perf_counter()
        if summary.loaded != expected:
            raise SystemExit(f"our loader loaded {summary.loaded} communes, expected {expected}")
        return Run(ended - started, clock.split(started, ended))
    finally:
        _drop_database(cluster, name)


def time_ogr2ogr(
    cluster: LocalCluster, database: str, geojson: Path, expected: int = EXPECTED_COMMUNES
) -> Run:
    """Load the GeoJSON with ogr2ogr into `database` (table dropped first); time the command."""
    state = cluster.load_state()
    assert state is not None
    url = cluster.url(database=database)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(OGR_TABLE)))
    # The password goes through the environment, not the command line.
    env = {**os.environ, "PGPASSWORD": state.password}
    pg = f"PG:host=127.0.0.1 port={state.port} user=postgres dbname={database}"
    cmd = [
        "ogr2ogr",
        "-f",
        "PostgreSQL",
        pg,
        str(geojson),
        "-nln",
        OGR_TABLE,
        "-lco",
        "GEOMETRY_NAME=geom",
        "-nlt",
        "PROMOTE_TO_MULTI",
    ]
    started = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    ended = time.perf_counter()
    if result.returncode != 0:
        raise SystemExit(f"ogr2ogr failed: {result.stderr.strip()}")
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(OGR_TABLE))
        ).fetchone()
    if not row or row[0] != expected:
        raise SystemExit(f"ogr2ogr loaded {row[0] if row else 0} communes, expected {expected}")
    return Run(ended - started)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def markdown_table(results: dict[str, list[Run]], peer: str) -> str:
    """Medians: total, ratio to the peer, then the per-stage split of our loads."""
    base = _median([r.seconds for r in results[peer]])
    header = ["Load of 3,321 communes", "median s", "min–max s", f"× {peer}", *STAGES]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for label, runs in results.items():
        totals = [r.seconds for r in runs]
        median = _median(totals)
        stages = [
            f"{_median([r.stages[s] for r in runs]):.2f}" if runs[0].stages else "—" for s in STAGES
        ]
        cells = [
            label,
            f"{median:.2f}",
            f"{min(totals):.2f}–{max(totals):.2f}",
            f"{median / base:.1f}",
            *stages,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ogr2ogr_version() -> str:
    result = subprocess.run(["ogr2ogr", "--version"], capture_output=True, text=True)
    return result.stdout.strip().split(",")[0] or "ogr2ogr"


def describe_run(repeat: int) -> str:
    """One line: when, which commit, on what machine."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    commit = git_commit(("boundaries", "geo_service"))
    return (
        f"{now}, commit {commit}, {os.cpu_count()} CPUs ({cpu_model()}), "
        f"{memory_gib():.0f} GiB RAM, Python {platform.python_version()}, "
        f"{_ogr2ogr_version()}; median of {repeat} runs"
    )


def _write_clean_geojson(source: Path, target: Path) -> None:
    """The communes of `source` (GeoJSON) after our coverage cleaning, as GeoJSON."""
    frame = pyogrio.read_dataframe(source)
    frame[SOURCE_FILE], frame[FEATURE_INDEX] = str(source), range(len(frame))
    units, _ = check_features(frame, FieldMap("code", "name", "parent_code", "unit_type"), ".+")
    geoms = np.asarray(units.geometry.values, dtype=object)
    units = units.set_geometry(list(clean_coverage(geoms, DEMO_GAP_WIDTH)), crs="EPSG:4326")
    pyogrio.write_dataframe(
        units.drop(columns=[SOURCE_FILE, FEATURE_INDEX]), target, driver="GeoJSON"
    )


def run(repeat: int, log: Callable[[str], None] = print) -> dict[str, list[Run]]:
    """Start a throwaway cluster, measure, destroy it; return every run."""
    paths, options = _demo_load("2025", "commune")
    peer = "ogr2ogr (as is)"
    clean_label = "ours, source already a clean coverage (same checks + generalisation)"
    labels = [f"ours (checks + generalisation, gap_width={options.gap_width:g})", clean_label]
    results: dict[str, list[Run]] = {label: [] for label in [*labels, peer]}
    home = Path(tempfile.mkdtemp(prefix="geo-service-bench-"))
    home.chmod(0o755)  # the postgres user must reach the data folder when we run as root
    cluster = LocalCluster(home, database="postgres")
    try:
        log(f"starting a throwaway cluster in {home}")
        cluster.start()
        _prepare_template(cluster)
        geojson = home / "communes.geojson"
        count = _write_geojson(paths, options, geojson)
        log(f"wrote {count} communes to {geojson.name} ({geojson.stat().st_size / 1e6:.1f} MB)")
        clean = home / "communes-clean.geojson"
        _write_clean_geojson(geojson, clean)
        clean_options = dataclasses.replace(
            options, fields=FieldMap("code", "name", "parent_code", "unit_type"), recode={}
        )
        variants = {labels[0]: (paths, options), clean_label: ([clean], clean_options)}
        _create_database(cluster, "bench_ogr", TEMPLATE)
        for i in range(repeat):
            for n, (label, (files, opts)) in enumerate(variants.items()):
                result = time_ours(cluster, f"bench_ours_{i}_{n}", files, opts)
                results[label].append(result)
                log(f"run {i + 1}/{repeat} {label}: {result.seconds:.2f} s")
            result = time_ogr2ogr(cluster, "bench_ogr", geojson)
            results[peer].append(result)
            log(f"run {i + 1}/{repeat} {peer}: {result.seconds:.2f} s")
    finally:
        cluster.destroy()
        shutil.rmtree(home, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and write it to the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (default 3)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="Markdown file to write")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    results = run(args.repeat)
    peer = list(results)[-1]
    table = markdown_table(results, peer)
    text = (
        f"# Boundary load: ours vs ogr2ogr\n\n{describe_run(args.repeat)}\n\n{table}\n\n"
        "Stage columns: medians in seconds of our loader's progress stages (in each run "
        "they add up to the total; their medians roughly do).\n"
    )
    print()
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where a national EA generation's time goes, by stage and by kind of commune.

    PYTHONPATH=. .venv/bin/python -m bench.ea_profile OUT.json [--workers 2] [--no-write]
        [--communes 01001,...] [--check]

The demo restored from the bench dump into a throwaway cluster (as bench/ea_national.py),
then every commune generated as `geo_service.ea.generate.generate` does (same communes, same
lines, batches of 50 written with `sql.replace_drafts`), with in each worker the CPU time of
every commune and of each stage (exclusive: a stage's CPU without the stages it calls), and
in the parent the time spent writing and the database backend's CPU. Writes one JSON record
per commune to OUT.json and prints the split by kind of commune and by stage. `--check`
also checks every commune's EAs (a valid coverage with no gap or overlap against the
commune, the workload band, the smallest area, one piece per piece of commune), outside the
commune's CPU figure but inside the workers' total: time a run without it.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import shapely

from bench.common import prepare_database
from geo_service.ea import blocks, delineate, sql
from geo_service.ea.generate import BATCH, GENERATOR, _communes, _rows
from geo_service.ea.rules import EaRules
from geo_service.localdb import LocalCluster
from geo_service.settings import DEMO_RASTER

# (module, function) pairs timed in the workers; a stage's time excludes the stages it calls.
STAGES: list[tuple[Any, str]] = [
    (delineate, "_read_grid"),
    (delineate, "_boundary_band"),
    (delineate, "_touched"),
    (delineate, "_boundary_faces"),
    (delineate, "_units"),
    (delineate, "_adjacency"),
    (delineate, "_partition"),
    (delineate, "_cut_level"),
    (delineate, "_mend"),
    (delineate, "_assemble"),
    (delineate, "generate_on_grid"),
    (blocks, "cut_into_blocks"),
    (blocks, "simplify_within"),
    (blocks, "_group"),
    (blocks, "as_coverage"),
    (blocks, "boundary_share"),
    (blocks, "generate_along_lines"),
]

_spent: dict[str, float] = defaultdict(float)
_calls: dict[str, int] = defaultdict(int)
_stack: list[float] = []  # CPU of the stages called so far by each open stage
_checking = [False]  # whether each commune's EAs are checked against the rules (--check)


def _timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """The function, its exclusive CPU time added to _spent[name]."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        _stack.append(0.0)
        try:
            return function(*args, **kwargs)
        finally:
            inner = _stack.pop()
            took = time.process_time() - started
            _spent[name] += took - inner
            _calls[name] += 1
            if _stack:
                _stack[-1] += took

    return wrapper


def _install(variant: tuple[int, int] | None = None, check: bool = False) -> None:
    """Wrap the stages in this process (a pool initializer); `variant`: measure other
    (_MAX_CELLS_PER_EA, _MIN_CELLS_PER_PIXEL) than the code's (EAs change); `check`: check
    every commune's EAs."""
    _checking[0] = check
    if variant:
        delineate._MAX_CELLS_PER_EA, delineate._MIN_CELLS_PER_PIXEL = variant
    for module, name in STAGES:
        wrapped = _timed(name, getattr(module, name))
        setattr(module, name, wrapped)
        # (blocks imported these by name from delineate)
        if module is delineate and hasattr(blocks, name):
            setattr(blocks, name, wrapped)


def _job(job: blocks.Job) -> tuple[blocks.Result, dict[str, Any]]:
    """One commune's result, with its CPU time by stage."""
    _spent.clear()
    _calls.clear()
    started = time.process_time()
    result = blocks._job(job)
    cpu = time.process_time() - started
    code, geometry, lines = job[0], job[1], job[2]
    digest = hashlib.sha256()
    for draft in result[1]:
        digest.update(f"{draft.serial} {draft.population!r} {draft.households!r}".encode())
        digest.update(shapely.to_wkb(draft.geometry))
    n_blocks = _calls.get("generate_on_grid", 0) if lines else 1
    facts = {
        "code": code,
        "cpu": cpu,
        "pid": os.getpid(),
        "eas": len(result[1]),
        "lines": len(lines),
        "blocks": n_blocks,
        "vertices": int(shapely.get_num_coordinates(geometry)),
        "digest": digest.hexdigest(),  # the EAs, byte for byte (to compare two trees)
        "share": result[2],
        # EAs outside the rules' default band of 60-240 households (where there are several)
        "out_of_band": sum(1 for d in result[1] if not 60 <= d.households <= 240)
        if len(result[1]) > 1
        else 0,
        "stages": dict(_spent),
        "calls": dict(_calls),
    }
    if _checking[0]:
        facts["check"] = check(result[1], geometry)
    return result, facts


def check(drafts: list[delineate.DraftEA], commune: Any) -> dict[str, Any]:
    """What a commune's EAs break: coverage (invalid edges, gap and overlap against the
    commune, in m²), EAs outside the households band, under the smallest area, or in more
    pieces than the commune has there."""
    rules = EaRules()
    area = delineate._polygonal(commune)
    geoms = np.asarray([d.geometry for d in drafts], dtype=object)
    metres = 111_320.0 * 110_574.0 * math.cos(math.radians(area.centroid.y))
    invalid = int((~shapely.is_empty(shapely.coverage_invalid_edges(geoms))).sum())
    # (a coverage union refuses EAs whose shared edges do not match)
    union = shapely.union_all(geoms) if invalid else shapely.coverage_union_all(geoms)
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    pairs = left < right
    overlap = float(
        shapely.area(shapely.intersection(geoms[left[pairs]], geoms[right[pairs]])).sum()
    )
    households = np.asarray([d.households for d in drafts])
    several = len(drafts) > 1
    return {
        "invalid_edges": invalid,
        "gap_m2": float(shapely.difference(area, union).area) * metres,
        "outside_m2": float(shapely.difference(union, area).area) * metres,
        "overlap_m2": overlap * metres,
        "out_of_band": int(
            ((households < rules.households_min) | (households > rules.households_max)).sum()
        )
        if several
        else 0,
        "small": int((shapely.area(geoms) * metres < rules.min_area_m2).sum()) if several else 0,
        "split": sum(1 for d in drafts if not _one_piece_per_part(d.geometry, area)),
    }


def _one_piece_per_part(ea: Any, commune: Any) -> bool:
    """Whether each piece of a multi-part EA lies in a different piece of the commune (an
    island too small for an EA of its own joins the nearest EA)."""
    pieces = shapely.get_parts(ea)
    if len(pieces) == 1:
        return True
    parts = shapely.get_parts(commune)
    owners = [int(np.argmax(shapely.area(shapely.intersection(parts, p)))) for p in pieces]
    return len(set(owners)) == len(owners)


def _results(
    todo: list[tuple[str, Any, list[Any]]],
    workers: int,
    variant: tuple[int, int] | None,
    checking: bool = False,
) -> Iterator[Any]:
    """Each commune's (result, facts), in order, from one pool as generate() uses."""
    jobs = (
        (code, geometry, lines, Path(DEMO_RASTER), 120.0, 3.5, 100.0)
        for code, geometry, lines in todo
    )
    with ProcessPoolExecutor(
        max_workers=workers, initializer=_install, initargs=(variant, checking)
    ) as pool:
        yield from pool.map(_job, jobs, chunksize=1)


def _in_lists(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    """The items in lists of `size` (the last one shorter), as generate() batches them."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _backend_cpu(pid: int) -> float:
    """User + system CPU seconds of a process on this machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _kind(facts: dict[str, Any], unit_type: str) -> str:
    """Block-dominated (cut along lines), grid; urban wards (phường) apart."""
    urban = unit_type == "Phường"
    if facts["blocks"] > 1:
        return "lines, blocks" + (" (phường)" if urban else " (xã)")
    return "grid" + (" (phường)" if urban else " (xã)")


def run(
    out: Path,
    workers: int,
    write: bool,
    codes: list[str] | None,
    variant: tuple[int, int] | None = None,
    checking: bool = False,
) -> None:
    """Profile a national generation and write the records."""
    work = Path(tempfile.mkdtemp(prefix="ea-profile-"))
    work.chmod(0o755)
    cluster = LocalCluster(work / "pg", database="postgres")
    cluster.start(extra_options="-c max_wal_size=4GB")
    try:
        url, _ = prepare_database(cluster, use_cache=True, log=print)
        with psycopg.connect(url) as conn:
            names: dict[str, str] = dict(
                conn.execute(
                    "SELECT code, unit_type FROM admin_unit"
                    " WHERE vintage = '2025' AND level = 'commune'"
                ).fetchall()
            )
            backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
            started, times, db0 = time.perf_counter(), os.times(), _backend_cpu(backend)
            communes = _communes(conn, "2025", codes)
            lines = {
                code: list(shapely.from_wkb(wkbs))
                for code, wkbs in sql.lines_by_commune(
                    conn, "2025", [c for c, _ in communes]
                ).items()
            }
            loaded = time.perf_counter() - started
            records: list[dict[str, Any]] = []
            writing = waiting = 0.0
            made = _results(
                [(c, g, lines.get(c, [])) for c, g in communes], workers, variant, checking
            )
            mark = time.perf_counter()
            for batch in _in_lists(made, BATCH):
                got = time.perf_counter()
                waiting += got - mark
                drafts = {result[0]: result[1] for result, _ in batch}
                records += [facts for _, facts in batch]
                if write:
                    with conn.transaction():
                        sql.replace_drafts(
                            conn,
                            "2029",
                            list(drafts),
                            _rows("2025", "2029", drafts, GENERATOR),
                            GENERATOR,
                            "generated, 120 households per EA",
                        )
                mark = time.perf_counter()
                writing += mark - got
            wall = time.perf_counter() - started
            done, db1 = os.times(), _backend_cpu(backend)
    finally:
        cluster.destroy()
    for facts in records:
        facts["type"] = names.get(facts["code"], "")
        facts["kind"] = _kind(facts, facts["type"])
    out.write_text(json.dumps(records))
    summary = {
        "wall": wall,
        "loading": loaded,
        "parent waiting for workers": waiting,
        "parent writing": writing,
        "parent CPU": done.user - times.user + done.system - times.system,
        "workers' CPU": done.children_user
        - times.children_user
        + done.children_system
        - times.children_system,
        "database backend CPU": db1 - db0,
        "EAs": sum(f["eas"] for f in records),
    }
    print(json.dumps(summary, indent=1))
    report(records)


def report(records: list[dict[str, Any]]) -> None:
    """The split by kind of commune and by stage."""
    total = sum(f["cpu"] for f in records)
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for facts in records:
        by_kind[facts["kind"]].append(facts)
    print(f"\nworkers' CPU inside jobs {total:.1f} s, {len(records)} communes")
    print("kind | communes | EAs | CPU s | share | ms per EA")
    for kind, group in sorted(by_kind.items()):
        cpu = sum(f["cpu"] for f in group)
        eas = sum(f["eas"] for f in group)
        print(
            f"{kind} | {len(group)} | {eas} | {cpu:.1f} | {cpu / total:.1%} | "
            f"{1000 * cpu / max(eas, 1):.2f}"
        )
    stages: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for facts in records:
        for stage, cpu in facts["stages"].items():
            stages[stage][facts["kind"]] += cpu
    kinds = sorted(by_kind)
    print("\nstage | all | " + " | ".join(kinds))
    for stage, split in sorted(stages.items(), key=lambda s: -sum(s[1].values())):
        print(
            f"{stage} | {sum(split.values()):.1f} | "
            + " | ".join(f"{split.get(k, 0.0):.1f}" for k in kinds)
        )
    checked = [f for f in records if "check" in f]
    if checked:
        print(f"\nchecked {len(checked)} communes, {sum(f['eas'] for f in checked)} EAs:")
        for what in ("invalid_edges", "out_of_band", "small", "split"):
            broken = [f for f in checked if f["check"][what]]
            total = sum(f["check"][what] for f in broken)
            print(
                f"{what}: {total} EAs in {len(broken)} communes {[f['code'] for f in broken][:20]}"
            )
        for what in ("gap_m2", "outside_m2", "overlap_m2"):
            worst = max(checked, key=lambda f: f["check"][what])
            over = sum(1 for f in checked if f["check"][what] > 1e-3)
            print(
                f"{what}: largest {worst['check'][what]:.3g} ({worst['code']}),"
                f" {over} communes above 0.001 m²"
            )
    slowest = sorted(records, key=lambda f: -f["cpu"])[:15]
    print("\nslowest communes: code kind EAs blocks CPU s")
    for facts in slowest:
        print(facts["code"], facts["kind"], facts["eas"], facts["blocks"], f"{facts['cpu']:.2f}")


def compare(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    """How many communes have byte-identical EAs in two runs, and which do not."""
    first = {f["code"]: f for f in a}
    second = {f["code"]: f for f in b}
    same = [c for c in first if c in second and first[c]["digest"] == second[c]["digest"]]
    differ = sorted(c for c in first if c in second and first[c]["digest"] != second[c]["digest"])
    print(
        f"communes {len(first)} / {len(second)}: identical {len(same)}, different {len(differ)};"
        f" EAs {sum(f['eas'] for f in a)} / {sum(f['eas'] for f in b)}"
    )
    for code in differ[:50]:
        print(code, first[code]["eas"], second[code]["eas"], first[code]["kind"])


def main() -> None:
    """Parse the arguments and run (or only report on a file written before)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--communes")
    parser.add_argument(
        "--variant",
        help="CELLS_PER_EA,CELLS_PER_PIXEL: measure other grid limits than the code's",
    )
    parser.add_argument("--check", action="store_true", help="check every commune's EAs")
    parser.add_argument("--report", action="store_true", help="only report on OUT")
    parser.add_argument("--compare", help="another OUT: which communes' EAs differ")
    args = parser.parse_args()
    if args.compare:
        compare(json.loads(Path(args.out).read_text()), json.loads(Path(args.compare).read_text()))
        return
    if args.report:
        report(json.loads(Path(args.out).read_text()))
        return
    codes = args.communes.split(",") if args.communes else None
    variant = tuple(int(v) for v in args.variant.split(",")) if args.variant else None
    run(Path(args.out), args.workers, not args.no_write, codes, variant, args.check)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()

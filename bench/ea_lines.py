"""Time EA generation along the demo's lines on some provinces, without a database.

    .venv/bin/python -m bench.ea_lines --provinces 01,79 [--workers 2] [--profile out.prof]
    .venv/bin/python -m bench.ea_lines --provinces all --every 10 --stages

`--provinces all`: every province of the ward files; `--every N`: every Nth commune of them;
`--stages`: in one process, the exclusive CPU seconds of each stage of generation (the
timers of bench/ea_profile.py, without its database).

Communes come from data/vn/vietnam-3d-map-2025 (as loaded, not coverage-cleaned), lines from
data/vn/lines/transport.geojson clipped to each commune (as `sql.lines_by_commune` does), the
population from the demo raster. Prints communes, communes with lines, EAs and seconds.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import time

import shapely
from shapely import STRtree
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geo_service.ea.blocks import boundary_share, generate_many_along_lines
from geo_service.settings import DATA_DIR, DEMO_RASTER


def communes(provinces: list[str]) -> list[tuple[str, BaseGeometry]]:
    """(code, geometry) of the provinces' communes."""
    found = []
    for province in provinces:
        wards = json.loads(
            (DATA_DIR / "vietnam-3d-map-2025" / "wards" / f"{province}.json").read_text()
        )
        for ward in wards["wards"]:
            rings = ward["polygons"]
            geometry = shapely.make_valid(
                shapely.union_all(
                    shapely.make_valid([shapely.Polygon(r) for r in rings if len(r) >= 4])
                )
            )
            found.append((ward["id"], geometry))
    return found


def provinces(names: str) -> list[str]:
    """The provinces named (comma-separated), or every province of the ward files ("all")."""
    if names != "all":
        return names.split(",")
    wards = DATA_DIR / "vietnam-3d-map-2025" / "wards"
    return sorted(path.stem for path in wards.glob("*.json") if path.stem.isdigit())


def lines() -> list[BaseGeometry]:
    """The demo's roads and railways."""
    data = json.loads((DATA_DIR / "lines" / "transport.geojson").read_text())
    return [shape(f["geometry"]) for f in data["features"]]


def clipped(
    units: list[tuple[str, BaseGeometry]],
) -> list[tuple[str, BaseGeometry, list[BaseGeometry]]]:
    """Each commune with the lines that cross it, clipped to it."""
    every = lines()
    tree = STRtree(every)
    jobs = []
    for code, geometry in units:
        near = [every[i] for i in tree.query(geometry, predicate="intersects")]
        cut = [shapely.intersection(line, geometry) for line in near]
        jobs.append((code, geometry, [c for c in cut if not c.is_empty]))
    return jobs


def run(jobs: list[tuple[str, BaseGeometry, list[BaseGeometry]]], workers: int) -> int:
    """Generate the communes' EAs and measure their share along lines, as `ea generate` does."""
    drafts = generate_many_along_lines(jobs, DEMO_RASTER, workers=workers)
    for code, geometry, near in jobs:
        if near:
            boundary_share(drafts[code], geometry, near)
    return sum(len(d) for d in drafts.values())


def stages(jobs: list[tuple[str, BaseGeometry, list[BaseGeometry]]]) -> None:
    """Generate in this process and print the exclusive CPU of each stage."""
    from bench import ea_profile  # (its timers; it needs no database for this)
    from geo_service.ea import delineate

    # The bisection's steps too (inside _cut_level).
    ea_profile.STAGES += [
        (delineate, name)
        for name in ("_axes", "_quantile_cut", "_make_contiguous", "_cut_errors", "_halves")
    ]
    ea_profile._install()
    started = time.process_time()
    eas = run(jobs, 1)
    total = time.process_time() - started
    print(f"communes {len(jobs)}, EAs {eas}, CPU {total:.2f} s")
    for name, spent in sorted(ea_profile._spent.items(), key=lambda item: -item[1]):
        print(f"{name:24} {spent:7.2f} s {spent / total:6.1%}")


def main() -> None:
    """Run and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--provinces", default="01")
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--profile")
    parser.add_argument("--stages", action="store_true")
    args = parser.parse_args()
    jobs = clipped(communes(provinces(args.provinces))[:: args.every])
    if args.stages:
        stages(jobs)
        return
    started = time.perf_counter()
    if args.profile:
        profiler = cProfile.Profile()
        eas = profiler.runcall(run, jobs, 1)
        profiler.dump_stats(args.profile)
    else:
        eas = run(jobs, args.workers)
    seconds = time.perf_counter() - started
    print(
        f"communes {len(jobs)}, with lines {sum(1 for j in jobs if j[2])},"
        f" EAs {eas}, {seconds:.1f} s"
    )


if __name__ == "__main__":
    main()

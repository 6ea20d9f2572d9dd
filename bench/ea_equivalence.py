"""Whether two trees generate equivalent EAs, and what each run cost.

    PYTHONPATH=TREE TREE/.venv/bin/python bench/ea_equivalence.py dump OUT.pickle
        [--provinces 01,04,79 | all] [--every N] [--workers 2]
    .venv/bin/python -m bench.ea_equivalence compare MAIN.pickle BRANCH.pickle

`dump` generates the provinces' communes along the demo's lines as bench/ea_lines.py does
(no database; run it with each tree's code on its path: it imports only what main has too)
and writes every commune's EAs, with the run's wall and CPU seconds and the load; `--every
N` keeps every Nth commune (by province, then as listed), e.g. `--provinces all --every 10`
for a sample of the country whose rural communes weigh as they do in a national run.

`compare` checks the second run against the first, commune by commune: the same number of
EAs; every rule met by the second (a valid coverage with no gap, overlap or land outside the
commune, the households band, the smallest area, one piece per piece of commune), never
more EAs outside the band than the first; the same population (households per EA from the
same grid); the symmetric difference between EAs of the same serial, as a share of the
commune's area; and the share of EA boundary along lines, not lower.
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import shapely

# The tree whose code runs is the one on PYTHONPATH (this file may come from another).
from bench.ea_lines import clipped, communes
from geo_service.ea.blocks import iter_along_lines
from geo_service.settings import DATA_DIR, DEMO_RASTER

# Symmetric difference per commune, as a share of its area, that still counts as the same.
TOLERANCE = 0.005


def _load() -> str:
    """The load averages over 1, 5 and 15 minutes."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _provinces(names: str) -> list[str]:
    """The provinces named, or every province of the shipped ward files ("all"). (As
    bench.ea_lines.provinces, repeated here: run with main's tree on the path, this script
    imports main's bench.ea_lines.)"""
    if names != "all":
        return names.split(",")
    wards = DATA_DIR / "vietnam-3d-map-2025" / "wards"
    return sorted(path.stem for path in wards.glob("*.json") if path.stem.isdigit())


def dump(out: Path, provinces: list[str], workers: int, every: int = 1) -> None:
    """Generate the provinces' EAs (every `every`th commune) and write them with what the
    run cost."""
    jobs = clipped(communes(provinces)[::every])
    before, started, times = _load(), time.perf_counter(), os.times()
    found = list(iter_along_lines(jobs, DEMO_RASTER, workers=workers))
    wall, done, after = time.perf_counter() - started, os.times(), _load()
    run = {
        "wall": wall,
        "workers_cpu": done.children_user
        - times.children_user
        + done.children_system
        - times.children_system,
        "main_cpu": done.user - times.user + done.system - times.system,
        "load": f"{before} -> {after}",
    }
    geometry = {code: shapely.to_wkb(g) for code, g, _ in jobs}
    communes_out: dict[str, dict[str, Any]] = {
        code: {
            "commune": geometry[code],
            "eas": [
                (d.serial, shapely.to_wkb(d.geometry), d.population, d.households) for d in drafts
            ],
            "share": share,
        }
        for code, drafts, share in found
    }
    out.write_bytes(pickle.dumps({"run": run, "communes": communes_out}))
    eas = sum(len(drafts) for _, drafts, _ in found)
    figures = ", ".join(f"{k} {v}" for k, v in run.items())
    print(f"{out}: communes {len(found)}, EAs {eas}, {figures}")


def _rules(eas: list[Any], commune: Any) -> dict[str, Any]:
    """What the EAs break (bench.ea_profile.check, from this tree)."""
    from bench.ea_profile import check
    from geo_service.ea.delineate import DraftEA

    drafts = [DraftEA(s, shapely.from_wkb(w), p, h) for s, w, p, h in eas]
    return check(drafts, commune)


def compare_one(code: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """How commune `code`'s EAs in run b differ from run a."""
    commune = shapely.from_wkb(a["commune"])
    area = shapely.area(commune)
    geoms_a = shapely.from_wkb([w for _, w, _, _ in a["eas"]])
    geoms_b = shapely.from_wkb([w for _, w, _, _ in b["eas"]])
    same_count = len(geoms_a) == len(geoms_b)
    symdiff = (
        float(shapely.area(shapely.symmetric_difference(geoms_a, geoms_b)).sum()) / 2 / area
        if same_count and area > 0
        else math.nan
    )
    pop_a = sum(p for _, _, p, _ in a["eas"])
    pop_b = sum(p for _, _, p, _ in b["eas"])
    households = (
        max(abs(x[3] - y[3]) for x, y in zip(a["eas"], b["eas"], strict=True))
        if same_count and a["eas"]
        else math.nan
    )
    return {
        "code": code,
        "eas": (len(geoms_a), len(geoms_b)),
        "symdiff": symdiff,
        "population": abs(pop_a - pop_b) / max(pop_a, 1e-9),
        "households": households,
        "rules_a": _rules(a["eas"], commune),
        "rules_b": _rules(b["eas"], commune),
        "share": (a["share"], b["share"]),
    }


def _share(records: list[dict[str, Any]], side: int) -> float:
    """The share of EA boundary along lines over all communes with lines (a ward file's
    commune that is a GeometryCollection after repair, such as 06922, has no length: left
    out, in both runs alike)."""
    pairs = [
        r["share"][side]
        for r in records
        if r["share"][side] and all(math.isfinite(x) for x in r["share"][side])
    ]
    total = sum(t for t, _ in pairs)
    return sum(a for _, a in pairs) / total if total else 0.0


def compare(first: Path, second: Path) -> bool:
    """Print how run `second` differs from run `first`; whether it is equivalent."""
    a, b = pickle.loads(first.read_bytes()), pickle.loads(second.read_bytes())
    for name, run in ((first, a["run"]), (second, b["run"])):
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in run.items()))
    records = [compare_one(c, a["communes"][c], b["communes"][c]) for c in sorted(a["communes"])]
    missing = sorted(set(a["communes"]) ^ set(b["communes"]))
    count = [r for r in records if r["eas"][0] != r["eas"][1]]
    sym = np.array([r["symdiff"] for r in records if not math.isnan(r["symdiff"])])
    over = [r for r in records if r["symdiff"] > TOLERANCE]
    broken = {
        what: [
            r["code"]
            for r in records
            if r["rules_b"][what] > (1e-3 if what.endswith("_m2") else 0)
            and r["rules_b"][what] > r["rules_a"][what]
        ]
        for what in (records[0]["rules_b"] if records else [])
    }
    band = (
        sum(r["rules_a"]["out_of_band"] for r in records),
        sum(r["rules_b"]["out_of_band"] for r in records),
    )
    share = (_share(records, 0), _share(records, 1))
    population = max((r["population"] for r in records), default=0.0)
    households = np.nanmax([r["households"] for r in records]) if records else 0.0
    print(
        f"communes {len(records)} (only in one run: {missing}); "
        f"EAs {sum(r['eas'][0] for r in records)} / {sum(r['eas'][1] for r in records)}; "
        f"communes with another EA count: {[(r['code'], r['eas']) for r in count]}"
    )
    print(
        f"symmetric difference / commune area: median {np.median(sym):.2e}, "
        f"95th {np.quantile(sym, 0.95):.2e}, max {sym.max():.2e}"
        f" ({max(records, key=lambda r: np.nan_to_num(r['symdiff']))['code']}); "
        f"communes above {TOLERANCE:.1%}: {[(r['code'], round(r['symdiff'], 4)) for r in over]}"
    )
    print(
        f"population: largest relative difference {population:.1e}; households per EA: "
        f"largest difference {households:.2e}"
    )
    print(f"rules broken in the second run and not the first: {broken}")
    print(f"EAs outside the households band: {band[0]} / {band[1]}")
    print(f"share of EA boundary along lines: {share[0]:.5f} / {share[1]:.5f}")
    equivalent = (
        not missing
        and not count
        and not over
        and not any(broken.values())
        and band[1] <= band[0]
        and share[1] >= share[0] - 1e-9
        and population < 1e-9
    )
    print("EQUIVALENT" if equivalent else "NOT EQUIVALENT")
    return equivalent


def main() -> None:
    """Parse the arguments and dump or compare."""
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("out")
    d.add_argument("--provinces", default="01,04,79")
    d.add_argument("--workers", type=int, default=2)
    d.add_argument("--every", type=int, default=1)
    c = sub.add_parser("compare")
    c.add_argument("first")
    c.add_argument("second")
    args = parser.parse_args()
    if args.command == "dump":
        dump(Path(args.out), _provinces(args.provinces), args.workers, args.every)
    else:
        sys.exit(0 if compare(Path(args.first), Path(args.second)) else 1)


if __name__ == "__main__":
    main()

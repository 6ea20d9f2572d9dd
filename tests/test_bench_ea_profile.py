"""The national EA profile (bench/ea_profile.py): its stage timers change no EA, and the
exclusive stage times add up to the commune's CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from shapely.geometry import MultiPolygon, Polygon, box

from bench.ea_profile import check, compare
from geo_service.ea.delineate import DraftEA

REPO = Path(__file__).resolve().parent.parent

# In a process of its own: the timers wrap module functions for the rest of the process.
SCRIPT = """
import json, sys
from pathlib import Path
from typing import Any
import shapely
from bench import ea_profile
from bench.ea_lines import clipped, communes
from geo_service.ea import blocks
from geo_service.settings import DEMO_RASTER

[(code, geometry, lines)] = [j for j in clipped(communes(["01"])) if j[0] == sys.argv[1]]
job = (code, geometry, lines, Path(DEMO_RASTER), 120.0, 3.5, 100.0)
plain = blocks._job(job)
ea_profile._install()
(timed, facts) = ea_profile._job(job)
same = len(plain[1]) == len(timed[1]) and all(
    shapely.to_wkb(a.geometry) == shapely.to_wkb(b.geometry) and a.population == b.population
    for a, b in zip(plain[1], timed[1])
)
print(json.dumps({"same": same, "share": plain[2] == timed[2], "facts": facts}))
"""


def profile(code: str) -> dict[str, Any]:
    """The profiler's record of one Hà Nội commune, and whether its EAs equal the plain run's."""
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_stage_timers_change_no_ea_and_add_up() -> None:
    """09552 is crossed by national roads: cut into blocks, each split on the grid."""
    found = profile("09552")
    assert found["same"] and found["share"]
    facts = found["facts"]
    assert facts["eas"] == 112 and facts["blocks"] > 1 and facts["lines"] > 0
    stages = facts["stages"]
    for stage in ("_boundary_faces", "_cut_level", "_assemble", "_adjacency", "_group"):
        assert stages[stage] > 0, stage
    # Exclusive times: each CPU second is counted once, in the innermost stage running.
    assert 0.9 * facts["cpu"] <= sum(stages.values()) <= facts["cpu"] + 1e-6
    assert facts["calls"]["generate_on_grid"] == facts["blocks"]


def test_compare_names_the_communes_whose_eas_differ(capsys: pytest.CaptureFixture[str]) -> None:
    """Two runs compared commune by commune by their digests."""
    first = [
        {"code": "00001", "digest": "a", "eas": 3, "kind": "grid (xã)"},
        {"code": "00002", "digest": "b", "eas": 4, "kind": "grid (phường)"},
    ]
    second = [{**first[0]}, {**first[1], "digest": "c", "eas": 5}]
    compare(first, second)
    out = capsys.readouterr().out
    assert "identical 1, different 1" in out
    assert "00002 4 5 grid (phường)" in out
    assert "00001" not in out.split("\n", 1)[1]


def _ea(serial: int, geometry: Polygon, households: float = 120.0) -> DraftEA:
    return DraftEA(serial, MultiPolygon([geometry]), households * 3.5, households)


def test_check_names_what_each_kind_of_broken_coverage_breaks() -> None:
    """The national check (--check) counts invalid edges, gaps, overlaps, EAs outside the
    band, too small or in pieces; a clean coverage breaks nothing."""
    commune = box(105.0, 21.0, 105.02, 21.01)  # ~2 × 1 km
    west, east = box(105.0, 21.0, 105.01, 21.01), box(105.01, 21.0, 105.02, 21.01)
    clean = check([_ea(1, west), _ea(2, east)], commune)
    assert clean == {
        "invalid_edges": 0,
        "gap_m2": 0.0,
        "outside_m2": 0.0,
        "overlap_m2": 0.0,
        "out_of_band": 0,
        "small": 0,
        "split": 0,
    }
    # the shared edge's middle vertex on one side only, a last digit off the line
    kinked = Polygon([(105.01, 21.0), (105.02, 21.0), (105.02, 21.01), (105.01, 21.01),
                      (105.01 + 1e-15, 21.005)])  # fmt: skip
    assert check([_ea(1, west), _ea(2, kinked)], commune)["invalid_edges"] == 2
    gapped = check([_ea(1, west), _ea(2, box(105.0101, 21.0, 105.02, 21.01))], commune)
    assert gapped["gap_m2"] > 1000
    overlapping = check([_ea(1, west), _ea(2, box(105.0099, 21.0, 105.02, 21.01))], commune)
    assert overlapping["overlap_m2"] > 1000
    pieces = MultiPolygon([box(105.0, 21.0, 105.005, 21.01), box(105.015, 21.0, 105.02, 21.01)])
    middle = box(105.005, 21.0, 105.015, 21.01)
    split = check(
        [DraftEA(1, pieces, 420.0, 120.0), _ea(2, middle, 10.0), _ea(3, box(0, 0, 1e-6, 1e-6))],
        commune,
    )
    assert split["split"] == 1 and split["out_of_band"] == 1 and split["small"] == 1

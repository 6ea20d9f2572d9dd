"""The benchmark harness works: a dry run produces the ratio table (no figure is judged)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bench import features as feat
from bench import run as bench
from bench import tiles as tl
from bench.common import TIPG, WrkRun, clean_env, served_commit, served_tree

REPO = Path(__file__).resolve().parent.parent
HTTP_ROWS = [
    "tiles_uncached",
    "tiles_cached",
    "tiles_front",
    "page100",
    "page1000",
    "full",
    "cql2",
    "ea_tiles",
    "ea_page1000",
]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict, str]:
    out = tmp_path_factory.mktemp("bench")
    result = subprocess.run(
        # (two seconds per wrk run: one second on a loaded machine has completed no request)
        [sys.executable, "-m", "bench", "--dry-run", "--duration", "2", "--output-dir", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads((out / "bench-dry-run.json").read_text())
    return result.stdout, data, (out / "bench-dry-run.md").read_text()


def test_dry_run_prints_and_writes_the_ratio_table(dry_run: tuple[str, dict, str]) -> None:
    stdout, data, md = dry_run
    assert [r["key"] for r in data["ratios"]] == [*HTTP_ROWS, "memory"]
    for text in (stdout, md):
        assert "## Ratios" in text and "## Throughput (wrk)" in text
        for row in data["ratios"]:
            assert row["measure"] in text
    assert data["meta"]["mode"] == "dry-run"
    assert data["meta"]["cpus"] >= 1 and data["meta"]["commit"]


def test_dry_run_values_are_sane(dry_run: tuple[str, dict, str]) -> None:
    _, data, _ = dry_run
    for row in data["ratios"]:
        assert row["met"] is None  # stub figures are not judged against targets
        if row["key"] in HTTP_ROWS:
            assert row["ours"] > 0 and row["peer"] > 0
            assert math.isclose(row["ratio"], row["ours"] / row["peer"])
    memory = next(r for r in data["ratios"] if r["key"] == "memory")
    assert memory["ours"] >= 0 and memory["peer"] >= 0
    for pair in data["pairs"]:
        for side in ("ours", "peer"):
            (run,) = pair["runs"][side]
            assert run["requests"] > 0 and sum(run["errors"].values()) == 0
            assert 0 < run["p50_ms"] <= run["p99_ms"] <= run["max_ms"]
    assert data["sanity"]["same"] and data["sanity"]["urls"] == 59


def _runs(rps: float) -> list[WrkRun]:
    return [
        WrkRun(
            int(rps * 10),
            10.0,
            1000,
            dict.fromkeys(("connect", "read", "write", "status", "timeout"), 0),
            1.0,
            2.0,
            3.0,
            4.0,
        )
    ]


def test_ratio_rows_judge_each_target() -> None:
    pairs = bench.url_pairs([(5, 25, 14), (6, 51, 28)], [], 0)
    runs = {}
    for pair in pairs:
        runs[(pair.key, "ours")] = _runs(300)
        runs[(pair.key, "peer")] = _runs(100 if pair.peer == TIPG else 1000)
    results = bench.Results({"mode": "short"}, pairs, runs)
    results.memory = {
        bench.OURS: feat.Memory(200, 280, 300, 290, [1.0], 10),
        TIPG: feat.Memory(200, 280, 380, 290, [1.0], 11),
    }
    results.edits = tl.Edits("strict", [40.0, 60.0, 50.0], [1, 1, 1], 0)
    results.edits_front = tl.Edits("nginx front", [20.0, 900.0, 1500.0], [1, 9, 15], 1)
    results.viewer = {"communes (vector tiles)": [1.5, 1.7, 1.6]}
    results.load = {"ours": [30.0, 34.0, 32.0], "ogr2ogr": [1.0, 1.0, 1.0]}
    # five walks each: ours 2,110 tiles in 2–4 s, tipg in 6–10 s
    results.cold = tl.ColdWalks(
        2110, [2.0, 3.0, 4.0, 3.0, 3.0], [6.0, 10.0, 8.0, 7.0, 6.0], Counter()
    )
    results.prerender, results.prerender_tiles = [200.0, 400.0, 250.0], 7205
    rows = {r["key"]: r for r in bench.ratio_rows(results)}
    # the cold walk as tiles per second: 2,110 / 3 s vs 2,110 / 7 s; runs 3×, 3.33×, 2×, ...
    assert rows["tiles_cold_walk"]["ratio"] == pytest.approx(7 / 3)
    assert rows["tiles_cold_walk"]["ratio_min"] == pytest.approx(2.0)
    assert rows["tiles_cold_walk"]["ratio_max"] == pytest.approx(10 / 3)
    assert rows["tiles_cold_walk"]["met"] is True
    assert rows["prerender"]["ours"] == pytest.approx(250) and rows["prerender"]["met"] is True
    assert rows["tiles_uncached"]["ratio"] == pytest.approx(3.0)
    assert rows["tiles_uncached"]["met"] is True
    assert rows["tiles_cached"]["ratio"] == pytest.approx(0.3)
    assert rows["tiles_cached"]["met"] is False
    assert rows["full"]["met"] is None  # no target
    assert rows["memory"]["ours"] == pytest.approx(20) and rows["memory"]["met"] is True
    assert rows["tiles_front"]["ratio"] == pytest.approx(0.3)
    assert rows["tiles_front"]["met"] is False
    assert rows["edit_fresh"]["ours"] == pytest.approx(50) and rows["edit_fresh"]["met"]
    assert rows["edit_fresh_max"]["ours"] == pytest.approx(60)
    assert rows["edit_fresh_front"]["ours"] == pytest.approx(900)
    assert rows["edit_fresh_front"]["met"] is False  # a failed edit fails the target
    assert rows["edit_fresh_front_max"]["ours"] == pytest.approx(1500)
    assert rows["viewer_communes"]["ours"] == pytest.approx(1.6)
    assert rows["load"]["ratio"] == pytest.approx(32) and rows["load"]["met"] is False
    table = bench.ratio_table(list(rows.values()))
    assert table.count("\n") == len(rows) + 1
    assert "**2.33×** (2.00×–3.33×)" in table


def test_the_spread_pairs_runs_made_side_by_side() -> None:
    pairs = bench.url_pairs([(5, 25, 14)], [], 0, features=False)
    assert [p.key for p in pairs] == ["tiles_uncached", "tiles_cached", "tiles_front"]
    runs = {(p.key, side): _runs(100) for p in pairs for side in ("ours", "peer")}
    runs[("tiles_uncached", "ours")] = [r for rps in (300, 200, 330) for r in _runs(rps)]
    runs[("tiles_uncached", "peer")] = [r for rps in (100, 100, 110) for r in _runs(rps)]
    rows = {r["key"]: r for r in bench.ratio_rows(bench.Results({"mode": "full"}, pairs, runs))}
    row = rows["tiles_uncached"]
    assert row["ratio"] == pytest.approx(3.0)  # medians 300 / 100
    assert (row["ratio_min"], row["ratio_max"]) == (pytest.approx(2.0), pytest.approx(3.0))
    assert row["met"] is True  # (3× is the target)


def test_pairs_ask_both_servers_for_the_same_distinct_urls() -> None:
    tiles = bench.dry_tiles()
    pairs = bench.url_pairs(tiles, tiles[:5], 4321)
    assert [p.key for p in pairs] == HTTP_ROWS
    for pair in pairs:
        assert len(pair.ours_paths) == len(pair.peer_paths) > 0
        assert len(set(pair.ours_paths)) == len(pair.ours_paths)
    ea_pages = pairs[-1].ours_paths
    assert ea_pages[0].endswith("offset=0") and ea_pages[-1].endswith("offset=3321")


def test_options() -> None:
    args, mode = bench.parse(["--short", "--skip", "load,viewer"])
    assert mode.name == "short" and args.duration == 4 and args.skip == ["load", "viewer"]
    args, mode = bench.parse([])
    assert mode.name == "full" and args.repeat == 5 and args.duration == 30
    assert not args.replicas  # (it makes a standby of its own: asked for, not by default)
    assert bench.parse(["--short", "--replicas"])[0].replicas
    with pytest.raises(SystemExit):
        bench.parse(["--skip", "everything"])


def test_the_stamp_names_the_code_the_servers_run(tmp_path: Path) -> None:
    # (a harness run from one checkout whose servers import another one's geo_service, as
    # a virtualenv's editable install makes them do, stamped the harness's commit)
    other = tmp_path / "other-checkout"
    (other / "geo_service").mkdir(parents=True)
    (other / "geo_service" / "__init__.py").write_text('"""Another checkout."""\n')
    git = ["git", "-C", str(other), "-c", "user.name=b", "-c", "user.email=b@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "another"], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    env = {**clean_env(), "PYTHONPATH": str(other)}
    assert served_tree(env) == other.resolve()
    stamp = served_commit(env)
    assert stamp.startswith(commit) and str(other.resolve()) in stamp
    # the harness's own code: its commit, nothing more to say
    here = {**clean_env(), "PYTHONPATH": str(REPO)}
    assert served_tree(here) == REPO and "servers' code" not in served_commit(here)

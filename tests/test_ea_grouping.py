"""Automatic organisation of a commune's EAs (issue #24): supervisor areas proposed as
contiguous groups balanced by households within a band of EAs, islands explained, the same
answer every time; enumerators proposed within their supervisor areas, balanced."""

from __future__ import annotations

import random
from functools import cache

import pytest
import shapely
from shapely.geometry import box

from geo_service.ea.delineate import generate_commune_eas
from geo_service.ea.grouping import (
    Pick,
    Unit,
    adjacency,
    is_contiguous,
    propose_assignments,
    propose_groups,
)
from tests.test_ea_generate import WORLDPOP, commune_of, real_data


@cache
def shipped_units(province: str, code: str) -> tuple[Unit, ...]:
    """Draft EAs generated from the shipped ward outline and population raster."""
    eas = generate_commune_eas(commune_of(province, code), WORLDPOP)
    return tuple(Unit(f"{code}-{ea.serial:03d}", ea.households, ea.geometry) for ea in eas)


def codes(units: list[Unit] | tuple[Unit, ...], groups: list) -> list[list[str]]:
    return [[units[i].code for i in g.members] for g in groups]


def assert_partition_of_contiguous_groups(units: tuple[Unit, ...], groups: list) -> None:
    """Every EA in exactly one group; each group linked through shared edges, and, where its
    EAs are each one polygon, one polygon when they are dissolved."""
    members = [i for g in groups for i in g.members]
    assert sorted(members) == list(range(len(units)))
    neighbours = adjacency(list(units))
    for g in groups:
        assert is_contiguous(g.members, neighbours), codes(units, [g])
        if all(len(shapely.get_parts(units[i].geometry)) == 1 for i in g.members):
            union = shapely.union_all([units[i].geometry for i in g.members])
            assert union.geom_type == "Polygon", codes(units, [g])


@real_data
def test_supervisor_areas_of_ba_dinh_are_contiguous_balanced_and_in_the_band() -> None:
    units = shipped_units("01", "00004")
    assert len(units) > 150
    groups = propose_groups(list(units), 3, 8)
    assert_partition_of_contiguous_groups(units, groups)
    assert all(3 <= len(g.members) <= 8 and not g.notes for g in groups)
    # near the middle of the band (5–6 EAs), households within a quarter of the mean
    assert len(groups) == round(len(units) / 5.5)
    mean = sum(g.households for g in groups) / len(groups)
    assert all(abs(g.households - mean) <= 0.25 * mean for g in groups)
    assert sum(g.households for g in groups) == pytest.approx(sum(u.households for u in units))


@real_data
def test_the_grouping_is_the_same_whatever_the_order_of_the_eas() -> None:
    units = list(shipped_units("01", "00004"))
    first = codes(units, propose_groups(units, 4, 8))
    shuffled = units[:]
    random.Random(7).shuffle(shuffled)
    assert codes(shuffled, propose_groups(shuffled, 4, 8)) == first
    assert codes(units, propose_groups(units, 4, 8)) == first


@real_data
def test_a_band_set_by_the_user_is_kept() -> None:
    units = shipped_units("01", "00004")
    groups = propose_groups(list(units), 6, 7)
    assert_partition_of_contiguous_groups(units, groups)
    assert all(6 <= len(g.members) <= 7 for g in groups)


@real_data
def test_an_island_commune_gets_its_islands_as_groups_of_their_own_with_a_reason() -> None:
    """Cô Tô (07192, 33 islands): EAs on different islands share no edge; no group may mix
    islands, and a group below the band says why, naming its EAs."""
    units = shipped_units("22", "07192")
    groups = propose_groups(list(units), 3, 8)
    assert_partition_of_contiguous_groups(units, groups)
    small = [g for g in groups if len(g.members) < 3]
    assert small
    for g in small:
        [note] = g.notes
        assert note.key == "group_island"
        assert all(units[i].code in note for i in g.members)
        assert "đảo" in note.in_language("vi")
    # Tuần Châu: one islet EA among 41 connected ones
    units = shipped_units("22", "06706")
    groups = propose_groups(list(units), 3, 8)
    assert_partition_of_contiguous_groups(units, groups)
    alone = [g for g in groups if g.notes]
    assert [len(g.members) for g in alone] == [1]
    assert all(3 <= len(g.members) <= 8 for g in groups if g not in alone)


def test_a_corner_is_not_a_shared_edge() -> None:
    """Two squares meeting at a corner are not neighbours (their union is two pieces)."""
    units = [
        Unit("1", 100, box(0, 0, 0.01, 0.01)),
        Unit("2", 100, box(0.01, 0.01, 0.02, 0.02)),
        Unit("3", 100, box(0.01, 0, 0.02, 0.01)),
    ]
    assert adjacency(units) == [{2}, {2}, {0, 1}]


def test_a_row_of_eas_is_cut_into_runs() -> None:
    """Twelve EAs in a row, the third heavy: two contiguous runs, the heavy one's shorter."""
    households = [100.0] * 12
    households[2] = 400.0
    units = [
        Unit(f"00001-{i:03d}", h, box(i * 0.01, 0, (i + 1) * 0.01, 0.01))
        for i, h in enumerate(households, 1)
    ]
    groups = propose_groups(units, 3, 8)
    runs = [[int(c[-3:]) for c in g] for g in codes(units, groups)]
    # 1,500 households in two runs: as near 750 each as whole EAs allow
    assert runs == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11, 12]]
    assert [g.households for g in groups] == [800.0, 700.0]


def test_enumerators_get_one_ea_each_while_they_last() -> None:
    picks = [Pick(f"e{i}", 100.0 + i, "S01") for i in range(4)]
    made = propose_assignments(picks, ["a", "b", "c", "d", "e"], {}, 240)
    assert sorted(made.enumerator_of.values()) == ["a", "b", "c", "d"]
    assert made.unassigned == [] and made.notes == []


def test_enumerators_share_an_area_within_the_workload_band_and_never_cross_areas() -> None:
    """Ten EAs in two areas, three free enumerators and one already in S02: an enumerator
    takes a second EA of their area only within 240 households (the band's top), the
    lightest first; what nobody can take is named, not piled on someone."""
    picks = [Pick(f"a{i}", h, "S01") for i, h in enumerate([150, 120, 110, 100, 90, 80])]
    picks += [Pick(f"b{i}", h, "S02") for i, h in enumerate([130, 120, 60, 50])]
    current = {"z": [Pick("b9", 100.0, "S02")]}
    made = propose_assignments(picks, ["w", "x", "y", "z"], current, 240)
    assert made.enumerator_of == {
        "a0": "w", "a5": "w", "a1": "x", "a2": "x", "a3": "y", "a4": "y", "b0": "z",
    }  # fmt: skip
    households = {p.code: p.households for p in picks} | {"b9": 100.0}
    loads: dict[str, float] = {"z": 100.0}
    for ea, who in made.enumerator_of.items():
        loads[who] = loads.get(who, 0.0) + households[ea]
    assert max(loads.values()) <= 240
    assert made.unassigned == ["b1", "b2", "b3"]
    [note] = made.notes
    assert all(code in note for code in made.unassigned) and "240" in note
    assert "điều tra viên" in note.in_language("vi")
    assert made == propose_assignments(picks, ["w", "x", "y", "z"], current, 240)


def test_an_ea_above_the_band_goes_alone_to_a_free_enumerator() -> None:
    picks = [Pick("big", 400.0, "S01"), Pick("small", 50.0, "S01")]
    made = propose_assignments(picks, ["x", "y"], {}, 240)
    assert made.enumerator_of == {"big": "x", "small": "y"}
    made = propose_assignments(picks, ["x"], {}, 240)
    assert made.enumerator_of == {"big": "x"} and made.unassigned == ["small"]

"""Sums with parts missing are marked as incomplete, and stay marked when carried over."""

from __future__ import annotations

from indicators.partial_sums import carried_lacking, incomplete_sums, lacking_parts, mark_rows

SUMS = {
    "method": "sum",
    "from_vintage": "2009",
    "from_level": "commune",
    "parts_vintage": "2009",
    "parts_level": "commune",
    "units_with_parts_not_available": {"101": 14, "102": 0, "103": 2},
    "periods": ["2009"],
}


def test_the_parts_lacking_are_read_from_the_derivation() -> None:
    assert lacking_parts(SUMS) == {"101": 14, "103": 2}
    assert lacking_parts(None) == {} and lacking_parts({"method": "sum"}) == {}


def test_a_carried_series_names_the_parts_missing_from_what_it_draws_on() -> None:
    links = [("101", "01", 1.0), ("103", "01", 0.4), ("103", "02", 0.6), ("104", "03", 1.0)]
    carried = carried_lacking(SUMS, links)
    assert carried == {
        "units_with_parts_not_available": {"01": 16, "02": 2},
        "parts_vintage": "2009",
        "parts_level": "commune",
    }
    # complete sums (or observed values) carry no mark
    assert carried_lacking({"method": "sum"}, links) == {}
    assert carried_lacking(None, links) == {}


def test_only_the_shown_derived_periods_are_incomplete() -> None:
    series = [{"vintage": "2009", "level": "province", "derivation": SUMS}]
    found = incomplete_sums(series, "2009", "province", ["2009"])
    assert found == {
        "periods": ["2009"],
        "parts_vintage": "2009",
        "parts_level": "commune",
        "units": {"101": 14, "103": 2},
    }
    assert incomplete_sums(series, "2009", "province", ["2025"]) is None
    assert incomplete_sums(series, "2009", "district", ["2009"]) is None
    # a change 2009 → 2025 shows the 2009 figure too
    assert incomplete_sums(series, "2009", "province", ["2025", "2009"]) is not None


def test_each_value_row_of_an_incomplete_sum_says_how_many_parts_it_lacks() -> None:
    series = [{"vintage": "2009", "level": "province", "derivation": SUMS}]
    rows = [
        {"code": "101", "period": "2009"},
        {"code": "102", "period": "2009"},
        {"code": "101", "period": "2019"},
    ]
    mark_rows(series, "2009", "province", rows)
    assert [r["parts_missing"] for r in rows] == [14, None, None]
    mark_rows(series, "2009", "district", rows)
    assert all(r["parts_missing"] is None for r in rows)

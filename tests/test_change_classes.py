"""A change map's classes are split at zero for every method: no class holds both a decrease
and an increase (only an odd k's middle class, in the neutral colour, straddles zero), the
legend's limits show zero as a limit, and decreases and increases take the two halves of the
diverging palette."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest

from geo_service.viewer.choropleth import (
    DIVERGING,
    Classification,
    classify_change,
    palette_colours,
)
from tests.browser import Viewer
from tests.conftest import PgCluster, serve
from tests.helpers import wait_protected

# real-looking changes: more increases than decreases, a few exact zeros, a long tail
SKEWED = [-3.0, -1.0, -0.4, 0.0, 0.0, 0.2, 0.5, 1.0, 2.0, 2.0, 3.0, 5.0, 8.0, 13.0, 40.0]
FEW_DECREASES = [-3.0, 2.0, 5.0, 7.0, 9.0, 11.0]
TWO_VALUES = [-3.0, 2.0, 2.0]
METHODS = ("quantiles", "equal_interval", "natural_breaks", "std_mean")


def _check_split_at_zero(values: list[float], result: Classification, k: int | None) -> None:
    """`k`: the classes asked for (an odd k has a middle class), None for manual limits."""
    neutral = palette_colours(result.palette, k)[k // 2] if k and k % 2 else None
    legend = result.as_dict()["classes"]
    members: dict[int, list[float]] = {}
    for v in values:
        members.setdefault(result.class_of(v), []).append(v)
    straddling = 0
    for i, row in enumerate(legend):
        inside = members.get(i, [])
        assert row["count"] == len(inside)
        assert all(row["lower"] <= v <= row["upper"] for v in inside), (row, inside)
        if neutral and row["lower"] < 0 < row["upper"]:
            # an odd k's middle class: centred on zero, in the palette's middle colour
            assert row["lower"] == pytest.approx(-row["upper"]), row
            assert row["colour"] == neutral
            straddling += 1
            continue
        # a decrease and an increase never share a class, nor does the legend say so
        assert not (min(inside, default=0) < 0 < max(inside, default=0)), (row, inside)
        assert not (row["lower"] < 0 < row["upper"]), row
    assert straddling <= 1
    # the two sides of zero take the two halves of the palette
    decreasing = {row["colour"] for row in legend if row["upper"] < 0}
    increasing = {row["colour"] for row in legend if row["lower"] >= 0 and row["upper"] > 0}
    assert not decreasing & increasing


@pytest.mark.parametrize(
    "values", [SKEWED, FEW_DECREASES, TWO_VALUES], ids=["skewed", "few", "two"]
)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("k", [3, 4, 5, 6, 7])
def test_every_method_splits_at_zero(values: list[float], method: str, k: int) -> None:
    result = classify_change(values, k, "RdBu", method=method)
    _check_split_at_zero(values, result, k)
    limits = [row["lower"] for row in result.as_dict()["classes"]] + result.breaks
    has_neutral = any(row["lower"] < 0 < row["upper"] for row in result.as_dict()["classes"])
    # zero is a limit between the sides, or the centre of the middle class
    assert has_neutral or 0.0 in limits or min(values) >= 0 or max(values) < 0


def test_a_unit_that_grew_is_never_coloured_as_a_decline() -> None:
    # (before: the first increase class read "−3 – 9" in the legend, and a manual limit above
    # zero put growth and decline in one class)
    for method in METHODS:
        result = classify_change(FEW_DECREASES, 4, "RdBu", method=method)
        four = palette_colours("RdBu", 4)
        assert result.colours[result.class_of(-3.0)] in four[:2]
        for grew in (2.0, 5.0, 11.0):
            assert result.colours[result.class_of(grew)] in four[2:], (method, grew)
        assert result.as_dict()["classes"][1]["lower"] == 0.0


@pytest.mark.parametrize("breaks", [[5.0, 10.0], [-2.0, 3.0], [-5.0, 0.0, 5.0, 10.0], [-1.0]])
def test_manual_limits_of_a_change_keep_zero_as_a_limit(breaks: list[float]) -> None:
    result = classify_change(SKEWED, 5, "PuOr", manual=breaks)
    assert result.method == "manual"
    _check_split_at_zero(SKEWED, result, None)
    legend = result.as_dict()["classes"]
    assert any(row["lower"] == 0.0 for row in legend)
    # the user's limits are kept on their side
    for b in breaks:
        if b != 0 and min(SKEWED) <= b < max(SKEWED):
            assert b in result.breaks


def test_odd_classes_have_a_neutral_middle_around_zero() -> None:
    result = classify_change(SKEWED, 5, "BrBG")
    five = palette_colours("BrBG", 5)
    zero = result.class_of(0.0)
    assert result.colours[zero] == five[2]
    row = result.as_dict()["classes"][zero]
    assert row["lower"] == pytest.approx(-row["upper"]) and row["upper"] >= 0
    # σ bands measured from zero: the middle class is ±1σ of the changes around 0
    sd = classify_change(SKEWED, 5, "BrBG", method="std_mean")
    sigma = float(np.sqrt(np.mean(np.square(SKEWED))))
    middle = sd.as_dict()["classes"][sd.class_of(0.0)]
    assert middle["upper"] == pytest.approx(sigma) and middle["lower"] == pytest.approx(-sigma)


@pytest.mark.parametrize("palette", DIVERGING)
def test_only_increases_keep_the_increase_colours(palette: str) -> None:
    result = classify_change([0.5, 1.0, 2.0, 3.0, 5.0, 8.0], 6, palette, method="natural_breaks")
    six = palette_colours(palette, 6)
    assert set(result.colours) <= set(six[3:])


# ---- in the page (headless Chromium), on the demo's PAPI scores 2011 → 2024 ----

CHANGE_URL = "vintage=2019&level=province&indicator=papi_sc11&period=2024&compare=2011&lang=vi"


@pytest.mark.parametrize(
    "how", ["method=natural_breaks&k=4", "method=std_mean&k=5", "method=manual&breaks=0.05"]
)
def test_the_change_map_colours_growth_and_decline_apart(
    browser: Any, live_server: str, how: str
) -> None:
    viewer = Viewer(browser, live_server)
    try:
        viewer.open(f"{CHANGE_URL}&{how}")
        legend = viewer.js(
            "[...document.querySelectorAll('.gv-legend .gv-rows .gv-row[data-upper]')]"
            ".map(r => [Number(r.dataset.upper), r.querySelector('.gv-swatch').style.background,"
            " r.querySelector('.gv-range').textContent])"
        )
        units = viewer.js(
            "[...window.geoViewer.app.lookup].filter(([c, [v, s]]) => v !== null)"
            ".map(([c, [v, s]]) => [c, v, window.geoViewer.fillOf(c)])"
        )
        classes = viewer.js("window.geoViewer.app.classes")
        assert classes["compare"]["period"] == "2011" and len(units) > 40
        assert [u for u, _, _ in legend] == pytest.approx([c["upper"] for c in classes["classes"]])
        neutral = next((c for c in classes["classes"] if c["lower"] < 0 < c["upper"]), None)
        if neutral:  # an odd k's middle class is centred on zero
            assert neutral["lower"] == pytest.approx(-neutral["upper"])
        else:  # zero is a limit: the legend has a class starting at 0
            assert any(c["lower"] == 0 for c in classes["classes"])
            lowers = [text.split(" – ")[0] for _, _, text in legend]
            assert any(re.fullmatch(r"0(,0+)?", low) for low in lowers), legend
        colour = {c["colour"]: c for c in classes["classes"]}
        grew = [u for u in units if u[1] > 0 and colour[u[2]] is not neutral]
        fell = [u for u in units if u[1] < 0 and colour[u[2]] is not neutral]
        assert grew and fell, units
        decline = {c["colour"] for c in classes["classes"] if c["upper"] < 0}
        for code, value, fill in grew:
            assert fill not in decline, (code, value, fill)
            assert colour[fill]["lower"] >= 0
        for code, value, fill in fell:
            assert fill in decline, (code, value, fill)
        assert not viewer.errors, viewer.errors
    finally:
        viewer.close()


# ---- small decreases: drawn and written as decreases, in both languages ----

# decreases 2011 → 2024 of PAPI scores (2 decimals, kept to 4 in the value table): smaller
# than the value table's precision, and smaller than half the legend's last decimal
SMALL = {"tiny": 0.00004, "small": 0.003}


@pytest.fixture(scope="module")
def small_decreases(pg: PgCluster, demo_template: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A live service whose demo data has two provinces with very small PAPI decreases."""
    url = pg.create_database(demo_template)
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT code FROM indicator_value WHERE indicator = 'papi_sc11' AND vintage = '2019'"
            " AND level = 'province' AND period IN ('2011', '2024') AND status = 'ok'"
            " GROUP BY code HAVING count(*) = 2 ORDER BY code LIMIT 2"
        ).fetchall()
        codes = dict(zip(SMALL, (code for (code,) in rows), strict=True))
        for name, code in codes.items():
            conn.execute(
                "UPDATE indicator_value AS t SET value = n.value + %s FROM indicator_value n"
                " WHERE t.indicator = 'papi_sc11' AND t.vintage = '2019' AND t.level ="
                " 'province' AND t.code = %s AND t.period = '2011' AND n.indicator ="
                " t.indicator AND n.vintage = t.vintage AND n.level = t.level AND n.code ="
                " t.code AND n.period = '2024'",
                (SMALL[name], code),
            )
    try:
        with serve(url) as live:
            wait_protected(url)  # (the service protects the updated indicator as it starts)
            yield live, codes
    finally:
        pg.drop_database(url)


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("vi", {"tiny": "−0,00004", "small": "−0,003"}),
        ("en", {"tiny": "−0.00004", "small": "−0.003"}),
    ],
)
def test_a_small_decrease_is_drawn_and_written_as_a_decrease(
    browser: Any, small_decreases: tuple[str, dict[str, str]], lang: str, expected: dict[str, str]
) -> None:
    live, codes = small_decreases
    viewer = Viewer(browser, live)
    try:
        viewer.open(
            CHANGE_URL.replace("lang=vi", f"lang={lang}") + "&method=natural_breaks&k=4&tab=table"
        )
        classes = viewer.js("window.geoViewer.app.classes")["classes"]
        decline = {c["colour"] for c in classes if c["upper"] < 0}
        for name, code in codes.items():
            fill = viewer.js("(c) => window.geoViewer.fillOf(c)", code)
            assert fill in decline, (name, code, fill, classes)
        viewer.page.wait_for_selector(f"tr[data-code='{codes['small']}']")
        shown = viewer.js(
            "(codes) => codes.map(c => document.querySelector(`tr[data-code='${c}'] td:last-child`)"
            ".textContent)",
            list(codes.values()),
        )
        assert dict(zip(codes, shown, strict=True)) == expected
        # a class limit never reads "−0,00" (a decrease as no change) nor "-0"
        ranges = viewer.js(
            "[...document.querySelectorAll('.gv-legend .gv-range')].map(r => r.textContent)"
        )
        limits = [limit for text in ranges for limit in text.split(" – ")]
        assert limits and not [x for x in limits if re.fullmatch(r"[−-]0([,.]0*)?", x)], ranges
        decimal = "," if lang == "vi" else "."
        assert all(decimal in x or x == "0" for x in limits), ranges
        assert not viewer.errors, viewer.errors
    finally:
        viewer.close()

"""What the Done-when walks of the viewer and the EA workflow found: a legend that says when
fewer classes than asked are possible, in the page's language."""

from __future__ import annotations

from typing import Any

import pytest

from geo_service.viewer.choropleth import classify, classify_change
from tests.test_viewer import Viewer

pytest.importorskip("playwright.sync_api")

# PAPI SC51 rose in every province from 2011 to 2024: a change map has no class below zero
NO_DECREASE = (
    "vintage=2019&level=province&indicator=papi_sc51&period=2024&compare=2011&method=quantiles&k=5"
)
FEWER = {
    "vi": "5 lớp được yêu cầu, chỉ có 3 lớp: không đơn vị nào giảm",
    "en": "5 classes asked for, only 3 possible: no unit decreased",
}


def test_tied_values_that_merge_classes_are_explained() -> None:
    # half the units share one value: quantile limits coincide and 5 classes become 2
    result = classify([1.0] * 50 + [2.0, 3.0, 4.0, 5.0, 6.0], "quantiles", 5, "Blues")
    assert result.k < 5
    assert result.note and result.note.startswith(f"5 classes asked for, only {result.k}")
    assert result.note_vi and result.note_vi.startswith(f"5 lớp được yêu cầu, chỉ có {result.k}")


def test_a_change_map_without_decreases_says_why_it_has_fewer_classes() -> None:
    result = classify_change([0.5, 1.0, 2.0, 3.0, 5.0, 8.0], 5, "RdBu")
    assert result.k == 3 and result.note and result.note.startswith(FEWER["en"])
    assert result.note_vi and result.note_vi.startswith(FEWER["vi"])
    # every class asked for is possible: no note
    assert classify_change([-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0], 4, "RdBu").note is None


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_the_legend_says_when_fewer_classes_than_asked_are_possible(
    browser: Any, live_server: str, lang: str
) -> None:
    viewer = Viewer(browser, live_server)
    try:
        viewer.open(f"{NO_DECREASE}&lang={lang}")
        viewer.page.wait_for_selector(".gv-legend .gv-note")
        rows = viewer.js("document.querySelectorAll('.gv-legend .gv-row[data-upper]').length")
        note = viewer.js("document.querySelector('.gv-legend .gv-note').textContent")
        assert rows == 3 and note.startswith(FEWER[lang]), note
        viewer.screenshot(f"walk-fewer-classes-{lang}")
        assert not viewer.errors, viewer.errors
    finally:
        viewer.close()

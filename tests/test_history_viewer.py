"""The commune change map 2009 → 2025 in the viewer and the API, over the demo with its
history loaded (`geo-service demo --history`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pandas as pd
import pytest

from tests.browser import Viewer
from tests.conftest import History, serve

pytest.importorskip("playwright.sync_api")

CHANGE = "vintage=2025&level=commune&indicator=population&period=2025&compare=2009"


@pytest.fixture(scope="module")
def history_server(history: History) -> Iterator[str]:
    url = history.pg.create_database("tmpl_history")
    with serve(url) as base:
        yield base
    history.pg.drop_database(url)


def _get(base: str, path: str, **params: str) -> Any:
    with urllib.request.urlopen(f"{base}{path}?{urlencode(params)}") as response:
        return json.load(response)


def test_change_2009_2025_is_served_through_the_published_values(history_server: str) -> None:
    params = {"collection": "commune-2025", "indicator": "population", "period": "2025"}
    now = _get(history_server, "/maps/values", **params)
    then = _get(history_server, "/maps/values", **params | {"period": "2009"})
    change = _get(history_server, "/maps/values", **params | {"compare": "2009"})
    percent = _get(
        history_server, "/maps/values", **params | {"compare": "2009", "change": "percent"}
    )
    assert len(change["codes"]) == 3321
    i = change["codes"].index(now["codes"][0])
    j = then["codes"].index(now["codes"][0])
    if change["values"][i] is not None:
        # (the compact table rounds: a count to its decimals, a percent to two)
        assert change["values"][i] == pytest.approx(now["values"][0] - then["values"][j], abs=1)
        assert percent["values"][i] == pytest.approx(
            (now["values"][0] - then["values"][j]) / then["values"][j] * 100, abs=0.01
        )
    # the 2025 communes with a part whose 2009 population is not available are not available
    assert sum(1 for v in then["values"] if v is None) > 0
    quality = _get(history_server, "/crosswalks/2009/2025/commune")
    assert quality["method"] == "computed" and quality["weights"] == ["area", "population"]
    assert len(quality["codes"]) == 3321 and all(0 <= s <= 1 for s in quality["covered_share"])
    with pytest.raises(urllib.error.HTTPError) as missing:
        _get(history_server, "/crosswalks/2019/2025/commune")
    assert missing.value.code == 404
    series = _get(history_server, "/indicators/population")
    carried = [s for s in series["series"] if s["vintage"] == "2025" and s["level"] == "commune"]
    assert carried[0]["derivation"]["crosswalk_method"] == "computed"
    assert carried[0]["derivation"]["periods"] == ["2009"]


@pytest.mark.parametrize(("width", "height", "name"), [(1366, 768, "desktop"), (390, 844, "phone")])
def test_the_change_map_shows_method_and_quality(
    browser: Any, history_server: str, width: int, height: int, name: str
) -> None:
    viewer = Viewer(browser, history_server, width, height)
    viewer.open(CHANGE + "&change=percent&lang=vi&unit=00004&tab=unit")
    if width < 600:  # a phone's panel opens from its folded bar
        viewer.page.click(".gv-toggle")
    viewer.page.wait_for_selector(".gv-covered", timeout=60_000)
    covered = viewer.page.locator(".gv-covered").inner_text()
    assert "Ranh giới 2009 phủ" in covered and "trọng số dân số" in covered
    assert "Thay đổi" in viewer.page.locator(".gv-legend").inner_text()
    viewer.screenshot(f"history-change-{name}-vi")
    viewer.open(CHANGE + "&change=percent&lang=vi&tab=about")
    if width < 600:
        viewer.page.click(".gv-toggle")
    viewer.page.wait_for_selector(".gv-meta")
    about = viewer.page.locator(".gv-meta").inner_text()
    assert "tính từ hình học" in about and "Trọng số dân số" in about
    viewer.screenshot(f"history-about-{name}-vi")
    assert not viewer.errors, viewer.errors
    viewer.close()


def test_a_wards_chart_over_time_marks_the_carried_period(
    browser: Any, history_server: str
) -> None:
    """A ward of Hồ Chí Minh City over time: the 2025 figure and the 2009 census carried onto
    it, drawn as an estimate (a hollow point, a note, the table says so)."""
    viewer = Viewer(browser, history_server)
    ward = "26743"  # Bến Thành
    viewer.open(f"vintage=2025&level=commune&indicator=population&unit={ward}&tab=unit&lang=vi")
    viewer.page.wait_for_selector("svg.gv-chart .gv-point-unit", timeout=60_000)
    profile = _get(
        history_server,
        "/maps/profile",
        collection="commune-2025",
        unit=ward,
        indicator="population",
    )
    points = viewer.js(
        "[...document.querySelectorAll('svg.gv-chart .gv-point-unit')].map(e =>"
        " [e.dataset.period, Number(e.dataset.value), e.classList.contains('gv-point-carried'),"
        " e.getAttribute('fill')])"
    )
    expected = [(p["period"], p["value"]) for p in profile["unit"]["series"]]
    assert [(p, v) for p, v, _, _ in points] == expected
    assert [p for p, _, carried, _ in points if carried] == ["2009"]
    assert [fill for p, _, _, fill in points if p == "2009"] == ["#ffffff"]
    note = viewer.page.locator(".gv-carried").inner_text()
    assert "quy đổi từ ranh giới 2009" in note and "trọng số dân số" in note
    viewer.page.click(".gv-numbers summary")
    heads = viewer.page.locator(".gv-series-table tbody th").all_inner_texts()
    assert heads == ["2009 (quy đổi)", "2025"]
    viewer.screenshot("history-ward-chart-vi")
    assert not viewer.errors, viewer.errors
    viewer.close()


PROVINCES = "vintage=2025&level=province&indicator=population&period=2025&compare=2009"


def test_the_province_change_2009_2025_goes_through_the_province_crosswalk(
    history_server: str,
) -> None:
    """The 2009 provinces (merged from the communes) carried onto the 34 provinces of 2025
    through the crosswalk computed from their geometry: every province has a change."""
    params = {"collection": "province-2025", "indicator": "population", "period": "2025"}
    now = _get(history_server, "/maps/values", **params)
    then = _get(history_server, "/maps/values", **params | {"period": "2009"})
    change = _get(history_server, "/maps/values", **params | {"compare": "2009"})
    assert len(change["codes"]) == 34 and None not in then["values"]
    before = dict(zip(then["codes"], then["values"], strict=True))
    for code, value, delta in zip(now["codes"], now["values"], change["values"], strict=True):
        assert delta == pytest.approx(value - before[code], abs=1)
    quality = _get(history_server, "/crosswalks/2009/2025/province")
    assert quality["method"] == "computed" and len(quality["codes"]) == 34
    sums = _get(history_server, "/maps/values", collection="district-2009", indicator="population")
    assert len(sums["codes"]) == 703


def test_the_province_change_map_and_the_2009_districts_in_the_viewer(
    browser: Any, history_server: str
) -> None:
    viewer = Viewer(browser, history_server)
    viewer.open(PROVINCES + "&lang=vi&unit=01&tab=unit")
    viewer.page.wait_for_selector(".gv-covered", timeout=60_000)
    covered = viewer.page.locator(".gv-covered").inner_text()
    assert "Ranh giới 2009 phủ" in covered and "trọng số dân số" in covered
    assert "Thay đổi" in viewer.page.locator(".gv-legend").inner_text()
    viewer.screenshot("history-province-change-vi")
    # older vintages are the older by date, whatever their ids sort like as text
    found = viewer.js(
        """async () => {
          const src = document.querySelector("script[type=module][src*='viewer/main.js']").src;
          const { createCatalogue } = await import(new URL("catalogue.js", src).href);
          const s = (vintage, period) => ({ code: "population", level: "commune", kind: "count",
                                            vintage, periods: [period] });
          const cat = createCatalogue({ catalogue: {
            vintages: [{ id: "2025", levels: [] }, { id: "census2019", levels: [] }],
            series: [s("2025", "2025"), s("census2019", "2019")] } },
            { t: (k) => k, pick: (x) => x });
          return [cat.comparisons(s("2025", "2025")), cat.comparisons(s("census2019", "2019"))];
        }"""
    )
    assert found == [[{"period": "2019", "vintage": "census2019"}], []]
    viewer.open("vintage=2009&level=district&indicator=population&lang=vi&tab=about")
    viewer.page.wait_for_selector(".gv-meta")
    about = viewer.page.locator(".gv-meta").inner_text()
    assert "Tổng số liệu các xã năm 2009" in about and "78 xã không có số liệu" in about
    viewer.screenshot("history-districts-2009-about-vi")
    assert not viewer.errors, viewer.errors
    viewer.close()


def test_a_sum_with_communes_missing_is_flagged_incomplete(history_server: str) -> None:
    """The 2009 provinces' population is summed from the communes that have a figure (78 have
    none): the API names every such unit and how many communes it lacks, also once carried
    onto the 2025 provinces; the communes' own figures are never flagged."""
    sums = _get(history_server, "/maps/values", collection="province-2009", indicator="population")
    incomplete = sums["incomplete"]
    assert incomplete["parts_vintage"] == "2009" and incomplete["parts_level"] == "commune"
    assert incomplete["units"]["101"] == 14 and len(incomplete["units"]) == 20
    assert sum(incomplete["units"].values()) == 78
    districts = _get(
        history_server, "/maps/values", collection="district-2009", indicator="population"
    )
    assert sum(districts["incomplete"]["units"].values()) == 78
    classes = _get(
        history_server, "/maps/choropleth", collection="province-2009", indicator="population"
    )
    assert classes["incomplete"]["units"] == 20 and classes["incomplete"]["parts"] == 78
    params = {"collection": "province-2025", "indicator": "population", "period": "2025"}
    assert _get(history_server, "/maps/values", **params)["incomplete"] is None
    carried = _get(history_server, "/maps/values", **params | {"compare": "2009"})["incomplete"]
    assert carried["periods"] == ["2009"] and carried["units"]["01"] >= 14
    communes = {"collection": "commune-2025", "indicator": "population", "compare": "2009"}
    assert _get(history_server, "/maps/values", **communes)["incomplete"] is None
    # the values table and its CSV say it on each row, as the map does
    table = {"vintage": "2009", "level": "province", "period": "2009"}
    rows = {
        r["code"]: r
        for r in _get(history_server, "/indicators/population/values", **table)["values"]
    }
    assert rows["101"]["parts_missing"] == 14 and rows["101"]["value"] is not None
    assert sum(r["parts_missing"] or 0 for r in rows.values()) == 78
    with urllib.request.urlopen(
        f"{history_server}/indicators/population/values?{urlencode(table | {'f': 'csv'})}"
    ) as response:
        frame = pd.read_csv(response, dtype={"code": str}, encoding="utf-8-sig")
    assert frame.set_index("code").loc["101", "parts_missing"] == 14
    whole = {"vintage": "2009", "level": "commune", "period": "2009"}
    listed = _get(history_server, "/indicators/population/values", **whole)["values"]
    assert all(r["parts_missing"] is None for r in listed)


def test_the_viewer_says_a_province_sum_is_incomplete(browser: Any, history_server: str) -> None:
    viewer = Viewer(browser, history_server)
    viewer.open("vintage=2009&level=province&indicator=population&lang=vi&unit=101&tab=unit")
    viewer.page.wait_for_selector(".gv-incomplete", timeout=60_000)
    line = viewer.page.locator(".gv-panel .gv-incomplete").inner_text()
    assert "Tổng chưa đầy đủ: 14 xã/phường năm 2009 không có số liệu" in line
    legend = viewer.page.locator(".gv-legend .gv-incomplete").inner_text()
    assert "Tổng chưa đầy đủ (20)" in legend and "78 xã/phường năm 2009" in legend
    viewer.screenshot("history-province-2009-incomplete-vi")
    # a complete one says nothing of the kind
    viewer.open("vintage=2009&level=province&indicator=population&lang=vi&unit=805&tab=unit")
    viewer.page.wait_for_selector(".gv-now-value", timeout=60_000)
    assert viewer.page.locator(".gv-panel .gv-incomplete").count() == 0
    assert not viewer.errors, viewer.errors
    viewer.close()

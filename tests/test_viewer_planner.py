"""The map viewer after a planner's walk (issue #23), in headless Chromium: the legend keys
only what the map shows, names the catalogue's source, licence and date, advises against
standard-deviation classes of skewed values, stays reachable on a phone with the panel
open; a one-period chart compares the unit with its parent and the country."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import numpy as np
import pytest

from geo_service.viewer.choropleth import classify, skew_advice, skewness
from geo_service.viewer.labels import LABELS
from tests.browser import Viewer

pytest.importorskip("playwright.sync_api")

STATUS_ROWS = ".gv-legend .gv-rows .gv-suppressed, .gv-legend .gv-rows .gv-not_available"


def _get(base: str, path: str, lang: str = "en") -> Any:
    request = urllib.request.Request(base + path, headers={"Accept-Language": lang})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


@pytest.mark.parametrize(
    ("query", "choropleth"),
    [
        ("level=province&indicator=density", "collection=province-2025&indicator=density"),
        (
            "vintage=2019&level=province&indicator=papi_sc83&period=2024",
            "collection=province-2019&indicator=papi_sc83&period=2024",
        ),
    ],
)
def test_the_legend_keys_only_the_reasons_the_map_shows(
    viewer: Viewer, live_server: str, query: str, choropleth: str
) -> None:
    viewer.open(f"{query}&lang=vi")
    no_value = _get(live_server, f"/maps/choropleth?{choropleth}")["no_value"]
    rows = viewer.js(
        f"[...document.querySelectorAll('{STATUS_ROWS}')].map(e => [e.className, e.textContent])"
    )
    shown = {cls.split("gv-")[-1] for cls, _ in rows}
    assert shown == {status for status, count in no_value.items() if count}
    for cls, text in rows:  # (each with its count, never "(0)")
        status = cls.split("gv-")[-1]
        assert text == f"{LABELS['vi'][f'status_{status}']} ({no_value[status]})"
    viewer.screenshot("planner-legend-" + ("papi" if "papi" in query else "density"))


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_the_legend_names_the_source_licence_and_date_not_the_build(
    viewer: Viewer, lang: str
) -> None:
    viewer.open(f"level=province&indicator=density&lang={lang}")
    line = viewer.page.locator(".gv-legend .gv-source").inner_text()
    series = viewer.js("window.geoViewer.app.series()")
    source, licence = series["source"][lang], series["licence"][lang]
    assert line.startswith(f"{LABELS[lang]['legend_source']}: {source} · {licence} · ")
    year, month, day = series["updated"].split("-")
    assert line.endswith(f"{day}/{month}/{year}" if lang == "vi" else year)
    # no repository, commit or file path: that is the data's provenance (data/vn/README.md)
    assert not re.search(r"commit|github|[0-9a-f]{7}|[A-Za-z]/[A-Za-z]", line), line


def test_the_catalogue_names_no_repository_or_commit(live_server: str) -> None:
    for listed in _get(live_server, "/indicators")["indicators"]:
        entry = _get(live_server, f"/indicators/{listed['code']}")
        for field in ("source", "source_vi", "licence", "licence_vi"):
            text = entry.get(field) or ""
            assert not re.search(r"commit|[0-9a-f]{7}|kho mã|repositor", text), (entry, field)


def test_one_period_is_charted_beside_the_parent_and_the_country(viewer: Viewer) -> None:
    # density has one period: the ward, its city and the country as bars
    viewer.open("level=commune&indicator=density&unit=26743&tab=unit&lang=vi")
    viewer.page.wait_for_selector("svg.gv-bars rect.gv-bar-national", timeout=60_000)
    profile = viewer.js("window.geoViewer.lastProfile")
    bars = viewer.js(
        "[...document.querySelectorAll('svg.gv-bars rect.gv-bar')].map(e =>"
        " [e.classList[1], Number(e.dataset.value), e.getBBox().width])"
    )
    expected = [
        ("gv-bar-unit", profile["unit"]["series"][0]["value"]),
        ("gv-bar-parent", profile["parent"]["series"][0]["value"]),
        ("gv-bar-national", profile["national"]["series"][0]["value"]),
    ]
    assert [(cls, value) for cls, value, _ in bars] == expected
    # one scale from zero: the widths keep the values' proportions
    unit_width, unit_value = bars[0][2], bars[0][1]
    for _, value, width in bars[1:]:
        assert width == pytest.approx(unit_width * value / unit_value, rel=0.02, abs=1.5)
    labels = viewer.page.locator("svg.gv-bars text.gv-bar-label").all_text_contents()
    assert labels[0].startswith("Bến Thành: ") and labels[1].startswith("TP. Hồ Chí Minh: ")
    assert labels[2].startswith("Cả nước: ") and "người/km²" in labels[2]
    heading = viewer.page.locator("#gv-tab-unit h3").first.inner_text()
    assert heading == LABELS["vi"]["chart_one_title"].format(period="2025")
    assert not viewer.page.locator("svg.gv-chart polyline").count()
    viewer.screenshot("planner-one-period-1366")


def test_a_counts_one_period_gives_its_share_of_the_totals(viewer: Viewer) -> None:
    # the area of a ward beside its city's and the country's: a share, not three bars
    viewer.open("level=commune&indicator=area_km2&unit=26743&tab=unit&lang=vi")
    viewer.page.wait_for_selector(".gv-shares", timeout=60_000)
    profile = viewer.js("window.geoViewer.lastProfile")
    unit = profile["unit"]["series"][0]["value"]
    city = profile["parent"]["series"][0]["value"]
    share, percent = viewer.page.locator(".gv-shares").inner_text(), 100 * unit / city
    written = f"{percent:.{2 if percent < 1 else 1}f}".replace(".", ",")
    assert share.startswith(f"bằng {written} % của TP. Hồ Chí Minh · bằng "), share
    assert viewer.page.locator("svg.gv-bars rect.gv-bar").count() == 1


def test_skewed_values_get_advice_against_sigma_classes(live_server: str) -> None:
    query = "/maps/choropleth?collection=commune-2025&indicator=density&method=std_mean"
    body = _get(live_server, query, "vi")
    top = max(c["count"] for c in body["classes"])
    assert top > 3000 and body["advice"]["method"] == "quantiles"
    assert body["advice"]["text"].startswith(f"Số liệu phân bố lệch: {top:,}".replace(",", "."))
    assert _get(live_server, query)["advice"]["text"].startswith("The values are skewed: ")
    # quantiles need no such advice, nor do σ classes of the provinces' PAPI scores
    assert _get(live_server, query.replace("std_mean", "quantiles"))["advice"] is None
    papi = "/maps/choropleth?collection=province-2019&indicator=papi_sc11&method=std_mean"
    assert _get(live_server, papi)["advice"] is None


def test_skew_advice_follows_the_skewness() -> None:
    def advice(values: list[float], method: str = "std_mean") -> Any:
        return skew_advice(values, classify(values, method, 5, "RdBu"), "en")

    # a normal spread fills the ±1σ class with about 68 % of the units: no advice
    normal = [float(x) for x in np.random.default_rng(1).normal(50, 10, 500)]
    assert abs(skewness(normal)) < 0.3 and advice(normal) is None
    tail = [1.0] * 90 + [float(10**i) for i in range(10)]
    assert skewness(tail) > 1 and advice(tail)["text"].startswith("The values are skewed: ")
    assert advice(tail, "quantiles") is None and advice([1.0] * 5 + [9.0]) is None


def test_the_legend_switches_skewed_sigma_classes_to_quantiles(viewer: Viewer) -> None:
    viewer.open("level=commune&indicator=density&method=std_mean&lang=vi")
    advice = viewer.page.locator(".gv-legend .gv-advice")
    assert advice.inner_text().startswith("Số liệu phân bố lệch: 3.195/3.321 đơn vị")
    viewer.screenshot("planner-sigma-advice-1366")
    button = advice.locator("button")
    assert button.inner_text() == "Dùng phân vị"
    viewer.js("window.__samePage = true")
    button.click()
    viewer.page.wait_for_function(
        "window.geoViewer.app.classes && window.geoViewer.app.classes.method === 'quantiles'",
        timeout=30_000,
    )
    assert viewer.js("window.geoViewer.state().method") == "quantiles"
    assert "method=quantiles" in viewer.page.url and viewer.js("window.__samePage") is True
    assert not viewer.page.locator(".gv-legend .gv-advice").count()


def _covers(page: Any, selector: str) -> bool:
    """Whether the element's own middle is what a tap there reaches."""
    return bool(
        page.evaluate(
            "(s) => { const e = document.querySelector(s); const r = e.getBoundingClientRect();"
            " return e.contains(document.elementFromPoint(r.left + r.width / 2,"
            " r.top + r.height / 2)); }",
            selector,
        )
    )


def test_on_a_phone_the_legend_stays_reachable_with_the_panel_open(phone: Viewer) -> None:
    phone.open("level=commune&indicator=density&lang=vi")
    assert phone.page.locator(".gv-legend .gv-rows").is_visible()
    phone.page.click(".gv-toggle")  # the panel opens as a sheet over the lower map
    phone.page.wait_for_timeout(300)
    sheet_top = phone.js("document.querySelector('.gv-panel').getBoundingClientRect().top")
    legend = phone.js("document.querySelector('.gv-legend').getBoundingClientRect().toJSON()")
    # folded to its title above the sheet, where a tap reaches it
    assert legend["height"] > 0 and legend["bottom"] <= sheet_top
    assert not phone.page.locator(".gv-legend .gv-rows").is_visible()
    assert _covers(phone.page, ".gv-legend-fold")
    phone.screenshot("planner-phone-legend-folded")
    phone.page.click(".gv-legend-fold")
    legend = phone.js("document.querySelector('.gv-legend').getBoundingClientRect().toJSON()")
    assert phone.page.locator(".gv-legend .gv-rows").is_visible()
    assert legend["top"] >= 0 and legend["bottom"] <= sheet_top
    assert _covers(phone.page, ".gv-legend .gv-rows")
    phone.screenshot("planner-phone-legend-open")
    phone.page.click(".gv-toggle")  # the sheet folds: the legend opens in full again
    phone.page.wait_for_timeout(300)
    assert phone.page.locator(".gv-legend .gv-rows").is_visible()
    # the reader opened it: the sheet opening again does not fold it (it did)
    phone.page.click(".gv-toggle")
    phone.page.wait_for_function("document.body.classList.contains('gv-sheet-open')")
    assert phone.page.locator(".gv-legend .gv-rows").is_visible()
    phone.screenshot("planner-phone-legend-kept-open")
    # and folded by the reader, it stays folded when the sheet closes
    phone.page.click(".gv-legend-fold")
    assert not phone.page.locator(".gv-legend .gv-rows").is_visible()
    phone.page.click(".gv-toggle")
    phone.page.wait_for_function("!document.body.classList.contains('gv-sheet-open')")
    assert not phone.page.locator(".gv-legend .gv-rows").is_visible()

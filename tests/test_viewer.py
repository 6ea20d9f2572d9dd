"""The map viewer in a real headless Chromium (Playwright), against a live service."""

from __future__ import annotations

import csv
import io
import json
import re
import urllib.request
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from fastapi.testclient import TestClient

from geo_service.viewer.assets import external_urls
from geo_service.viewer.labels import LABELS
from tests.browser import PHONE, Viewer

pytest.importorskip("playwright.sync_api")


def _get(base: str, path: str, **params: str) -> Any:
    with urllib.request.urlopen(f"{base}{path}?{urlencode(params)}") as response:
        return json.load(response)


def _class_colour(classes: dict[str, Any], value: float) -> str:
    for c in classes["classes"]:
        if value <= c["upper"]:
            return str(c["colour"])
    return str(classes["classes"][-1]["colour"])


# ---- geometry-only tiles coloured in the page ----


def test_switching_indicator_recolours_without_tiles_or_reload(
    viewer: Viewer, live_server: str
) -> None:
    viewer.open("level=commune&indicator=density&lang=en")
    viewer.page.wait_for_load_state("networkidle")
    # the tiles the viewer draws are the plain ones the nginx front can serve as files
    tiles = [u for u in viewer.requests if "/tiles/" in u]
    assert tiles and all("?" not in u for u in tiles)
    assert viewer.js("window.geoViewer.drawnCount()") > 100
    viewer.js("window.__samePage = true")
    before, seen = viewer.js("window.geoViewer.recoloured"), len(viewer.requests)
    viewer.page.select_option("select[name=indicator]", "population")
    viewer.recoloured(before)
    after = viewer.requests[seen:]
    assert not [u for u in after if "/tiles/" in u], after
    assert viewer.js("window.__samePage") is True  # no page load
    assert "indicator=population" in viewer.page.url
    classes = _get(
        live_server, "/maps/choropleth", collection="commune-2025", indicator="population"
    )
    table = _get(live_server, "/maps/values", collection="commune-2025", indicator="population")
    value = table["values"][table["codes"].index("00004")]
    assert viewer.js("window.geoViewer.fillOf('00004')") == _class_colour(classes, value)
    # the drawn SVG path of that unit has that fill too
    fills = viewer.js(
        "(() => { const l = window.geoViewer.app.choropleth.current(); const out = [];"
        " for (const t of Object.values(l._vectorTiles)) { const f = t._features['00004'];"
        " if (f) out.push(f.feature._path.getAttribute('fill')); } return out; })()"
    )
    assert fills and set(fills) == {_class_colour(classes, value)}
    # method, classes and palette re-colour in place too
    before, seen = viewer.js("window.geoViewer.recoloured"), len(viewer.requests)
    viewer.page.select_option("select[name=method]", "equal_interval")
    viewer.recoloured(before)
    viewer.page.select_option("select[name=palette]", "Blues")
    viewer.recoloured(before + 1)
    assert not [u for u in viewer.requests[seen:] if "/tiles/" in u]
    viewer.screenshot("map-population-equal-interval")


def test_value_table_is_compact_and_keeps_statuses(client: TestClient) -> None:
    response = client.get(
        "/maps/values", params={"collection": "commune-2025", "indicator": "density"}
    )
    assert response.status_code == 200
    body = response.json()
    assert len(body["codes"]) == len(body["values"]) == 3321
    assert len(response.content) < 80_000  # a few tens of KB (less once gzipped)
    assert set(body["status"]) == {"provisional", "suppressed", "not_available"}
    missing = set(body["status"]["not_available"])
    assert all(
        v is None for c, v in zip(body["codes"], body["values"], strict=True) if c in missing
    )
    units = client.get("/maps/units", params={"collection": "commune-2025"}).json()
    assert units["codes"] == sorted(units["codes"]) and len(units["labels"]) == 3321
    lon, lat, radius = units["labels"][units["codes"].index("00004")]
    assert 105.8 < lon < 105.9 and 21.0 < lat < 21.1 and radius > 100
    assert units["parentNames"]["79"] == "TP. Hồ Chí Minh"


# ---- search ----


@pytest.mark.parametrize(
    ("level", "text", "code", "hit_level"),
    [
        ("province", "hcm", "79", "province"),
        ("commune", "hcm", "79", "province"),
        ("province", "phu quoc", "31078", "commune"),
        ("commune", "phu quoc", "31078", "commune"),
        ("province", "ha noi", "01", "province"),
        ("commune", "ha noi", "01", "province"),
    ],
)
def test_search_finds_places_at_every_level_and_highlights_them(
    viewer: Viewer, level: str, text: str, code: str, hit_level: str
) -> None:
    viewer.open(f"level={level}&lang=vi")
    viewer.page.fill("input[name=q]", text)
    viewer.page.press("input[name=q]", "Enter")
    viewer.page.wait_for_function(f"window.geoViewer.lastSelected === '{code}'")
    selected = viewer.js("window.geoViewer.app.selected")
    assert selected["code"] == code and selected["level"] == hit_level
    # highlighted (its outline on top) and labelled
    assert viewer.page.locator(".leaflet-gvOutline-pane path").count() >= 1
    assert viewer.js("window.geoViewer.app.labels.shown()")[0] == code
    label = viewer.page.locator(".gv-label-selected")
    assert label.inner_text() == selected["name"]
    # framed on its main part, in the part of the map beside the panel
    bbox = next(
        h["bbox"]
        for h in _get(viewer.base, "/search", q=text, vintage="2025")["hits"]
        if h["code"] == code
    )
    inside = viewer.js(
        "(b) => window.geoViewer.map.getBounds().contains([[b[1], b[0]], [b[3], b[2]]])", bbox
    )
    assert inside
    if code == "79":  # Côn Đảo (8.7° N) is not pulled into the view
        assert viewer.js("window.geoViewer.map.getBounds().getSouth()") > 9.5
    assert f"unit={code}" in viewer.page.url
    if level == "commune" and code == "79":
        viewer.screenshot("map-search-hcm")


def test_unit_names_fit_without_collisions_and_without_their_type(viewer: Viewer) -> None:
    """The 63 provinces of 2019 are named "Tỉnh …" / "Thành phố …": the map shows the names
    alone (as printed maps do), never two overlapping, more of them as one zooms in."""
    viewer.open("vintage=2019&level=province&indicator=papi_sc11&lang=vi")
    viewer.page.wait_for_function("window.geoViewer.app.labels.shown().length > 0")
    boxes_js = (
        "[...document.querySelectorAll('.gv-label')].map(d => {"
        " const r = d.getBoundingClientRect(); return [d.textContent, r.left, r.top, r.right,"
        " r.bottom]; })"
    )
    national = viewer.js(boxes_js)
    names = [b[0] for b in national]
    assert not [n for n in names if n.startswith(("Tỉnh ", "Thành phố "))], names
    assert len(names) >= 8, names

    def overlapping(boxes: list[Any]) -> list[tuple[str, str]]:
        return [
            (a[0], b[0])
            for i, a in enumerate(boxes)
            for b in boxes[i + 1 :]
            if a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]
        ]

    assert overlapping(national) == []
    viewer.screenshot("map-labels-2019")
    viewer.js("window.geoViewer.map.setView([21.0, 105.8], 8)")
    viewer.page.wait_for_timeout(1000)
    closer = viewer.js(boxes_js)
    assert "Hà Nội" in [b[0] for b in closer] and overlapping(closer) == []


def test_search_lists_duplicates_with_their_province_and_keyboard_works(viewer: Viewer) -> None:
    viewer.open("level=commune&lang=vi")
    viewer.page.fill("input[name=q]", "Tân Phú")
    viewer.page.wait_for_selector(".gv-hit")
    hits = [" ".join(h.split()) for h in viewer.page.locator(".gv-hit").all_inner_texts()]
    assert len(hits) >= 5
    assert any("Tân Phú — Đồng Nai" in h for h in hits)
    assert any("Tân Phú — TP. Hồ Chí Minh" in h for h in hits)
    viewer.page.press("input[name=q]", "ArrowDown")
    second = viewer.page.locator(".gv-hit.gv-active").inner_text()
    viewer.page.press("input[name=q]", "Enter")
    viewer.page.wait_for_function("window.geoViewer.app.selected !== null")
    assert viewer.js("window.geoViewer.app.selected.parentName") in second


def test_search_api_ranks_and_understands_abbreviations(client: TestClient) -> None:
    def codes(q: str) -> list[str]:
        response = client.get("/search", params={"q": q, "vintage": "2025"})
        assert response.status_code == 200
        return [h["code"] for h in response.json()["hits"]]

    for text in ("hcm", "TP HCM", "tp.hcm", "Hồ Chí Minh", "ho chi minh"):
        assert codes(text)[0] == "79", text
    assert codes("HN")[0] == "01"
    sai_gon = client.get("/search", params={"q": "sài gòn", "vintage": "2025"}).json()["hits"]
    # the ward of that name first, then the city people also call so
    assert [h["code"] for h in sai_gon[:2]] == ["26740", "79"]
    assert sai_gon[1]["alias"] is True and sai_gon[0]["match"] == "exact"
    ben = client.get("/search", params={"q": "ben", "vintage": "2025"}).json()["hits"]
    assert ben[0]["match"] == "prefix"
    assert client.get("/search", params={"q": " ", "vintage": "2025"}).status_code == 400


# ---- the URL ----


def test_url_round_trips_centre_zoom_selection_and_language(
    viewer: Viewer, browser: Any, live_server: str
) -> None:
    viewer.open("level=commune&indicator=population&method=natural_breaks&k=4&lang=en")
    viewer.js("window.geoViewer.map.setView([21.03, 105.85], 12)")
    viewer.page.wait_for_function("location.search.includes('z=12')")
    viewer.js("window.geoViewer.app.select('00004')")
    viewer.page.wait_for_function("location.search.includes('unit=00004')")
    link = viewer.page.url
    query = parse_qs(urlparse(link).query)
    assert query["lat"] == ["21.0300"] and query["lng"] == ["105.8500"] and query["z"] == ["12"]
    other = Viewer(browser, live_server)
    try:
        other.page.goto(link)
        other.page.wait_for_function("window.geoViewer && window.geoViewer.ready", timeout=120_000)
        other.page.wait_for_function("window.geoViewer.app.selected !== null", timeout=60_000)
        assert other.js("window.geoViewer.map.getZoom()") == 12
        centre = other.js("window.geoViewer.map.getCenter()")
        assert abs(centre["lat"] - 21.03) < 1e-3 and abs(centre["lng"] - 105.85) < 1e-3
        state = other.js("window.geoViewer.state()")
        assert (state["indicator"], state["method"], state["k"]) == (
            "population",
            "natural_breaks",
            4,
        )
        assert other.js("window.geoViewer.app.selected.code") == "00004"
        # the language switch keeps the whole view
        other.page.click(".gv-lang a[lang=vi]")
        other.page.wait_for_function("window.geoViewer && window.geoViewer.ready", timeout=120_000)
        other.page.wait_for_function("window.geoViewer.app.selected !== null", timeout=60_000)
        assert other.js("document.documentElement.lang") == "vi"
        assert other.js("window.geoViewer.map.getZoom()") == 12
        assert other.js("window.geoViewer.state().method") == "natural_breaks"
        assert other.errors == []
    finally:
        other.close()


def test_unknown_url_choices_fall_back_with_a_neutral_notice(viewer: Viewer) -> None:
    viewer.open("indicator=nope&method=magic&k=12&period=1999&lang=vi")
    notices = viewer.page.locator(".gv-notice").all_inner_texts()
    text = " ".join(notices)
    assert "nope" in text and "magic" in text and "1999" in text
    assert viewer.js("window.geoViewer.state().indicator") == "density"
    assert viewer.page.locator(".gv-problem").count() == 0  # no error box
    # an indicator of another boundary year: a normal change, no error either
    viewer.open("vintage=2019&indicator=density&lang=vi")
    assert viewer.js("window.geoViewer.state().vintage") == "2019"
    assert "Mật độ dân số" in viewer.page.locator(".gv-notices").inner_text()


def test_manual_breaks_in_one_step_and_refused_ones_explained(viewer: Viewer) -> None:
    viewer.open("level=province&indicator=density&lang=vi")
    before = viewer.js("window.geoViewer.recoloured")
    k = len(viewer.js("window.geoViewer.app.classes.breaks"))
    viewer.page.select_option("select[name=method]", "manual")
    # choosing "manual" keeps the current classes as editable limits ...
    viewer.page.wait_for_function(
        f"window.geoViewer.recoloured > {before} &&"
        " window.geoViewer.app.classes.method === 'manual' &&"
        f" window.geoViewer.app.classes.breaks.length === {k}",
        timeout=120_000,
    )
    before = viewer.js("window.geoViewer.recoloured")
    viewer.page.fill("input[name=breaks]", "200, 500, 1000")
    viewer.page.press("input[name=breaks]", "Enter")
    # ... and typed ones replace them
    viewer.page.wait_for_function(
        f"window.geoViewer.recoloured > {before} &&"
        " window.geoViewer.app.classes.breaks.length === 4",
        timeout=120_000,
    )
    assert viewer.js("window.geoViewer.app.classes.breaks")[:3] == [200, 500, 1000]
    assert "breaks=200%2C500%2C1000" in viewer.page.url or "breaks=200,500,1000" in viewer.page.url
    viewer.page.fill("input[name=breaks]", "1e999")
    viewer.page.press("input[name=breaks]", "Enter")
    problem = viewer.page.locator(".gv-problem")
    problem.wait_for(state="visible")
    assert "ngưỡng" in problem.inner_text()  # said in the page's language
    assert viewer.js("window.geoViewer.app.classes.method") == "quantiles"


# ---- classification scopes ----


def test_classify_within_a_province_and_the_view(viewer: Viewer, live_server: str) -> None:
    viewer.open("level=commune&indicator=density&scope=province&within=79&lang=vi")
    expected = _get(
        live_server,
        "/maps/choropleth",
        collection="commune-2025",
        indicator="density",
        within="79",
    )
    assert viewer.js("window.geoViewer.app.classes.breaks") == pytest.approx(expected["breaks"])
    assert sum(c["count"] for c in expected["classes"]) == 168  # HCMC's wards
    assert "TP. Hồ Chí Minh" in viewer.page.locator(".gv-legend .gv-scope").inner_text()
    national = _get(live_server, "/maps/choropleth", collection="commune-2025", indicator="density")
    assert expected["breaks"] != national["breaks"]
    viewer.screenshot("map-within-hcm")
    viewer.js("window.geoViewer.map.setView([10.8, 106.7], 11)")
    viewer.page.wait_for_function("location.search.includes('z=11')")
    before = viewer.js("window.geoViewer.recoloured")
    viewer.page.check("input[name=scope][value=view]")
    viewer.recoloured(before)
    scope = viewer.js("window.geoViewer.app.classes.scope")
    assert scope["bbox"] is not None and 0 < scope["units"] < 3321


def test_standard_deviation_legend_shows_mean_and_sigma_bands(viewer: Viewer) -> None:
    viewer.open("level=commune&indicator=density&method=std_mean&lang=vi")
    classes = viewer.js("window.geoViewer.app.classes")
    assert classes["mean"] > 0 and classes["sd"] > 0
    legend = viewer.page.locator(".gv-legend").inner_text()
    assert "σ" in legend and "trung bình" in legend.lower()


# ---- analysis panels ----


def test_unit_chart_shows_the_values_the_api_returns(viewer: Viewer, live_server: str) -> None:
    viewer.open("vintage=2019&level=province&indicator=papi_sc11&unit=01&lang=vi")
    viewer.page.wait_for_selector(".gv-chart .gv-point-unit")
    profile = _get(
        live_server, "/maps/profile", collection="province-2019", indicator="papi_sc11", unit="01"
    )
    points = viewer.js(
        "[...document.querySelectorAll('.gv-chart .gv-point-unit')]"
        ".map(p => [p.dataset.period, Number(p.dataset.value)])"
    )
    published = [(p["period"], p["value"]) for p in profile["unit"]["series"] if p["value"]]
    assert points == [[p, pytest.approx(v)] for p, v in published]
    assert profile["national"]["method"] == "mean"
    national = viewer.js(
        "[...document.querySelectorAll('.gv-chart .gv-point-national')].map(p => p.dataset.period)"
    )
    assert len(national) == len([p for p in profile["national"]["series"] if p["value"]])
    assert "Trung bình các tỉnh" in viewer.page.locator(".gv-chart-key").inner_text()
    viewer.screenshot("map-unit-chart")


def test_a_counts_chart_leaves_the_totals_to_the_table(viewer: Viewer) -> None:
    # a ward's population beside its province's and the country's totals would be a flat line
    viewer.open("level=commune&indicator=population&unit=00004&lang=vi")
    viewer.page.wait_for_selector(".gv-chart .gv-point-unit")
    assert viewer.page.locator(".gv-chart .gv-point-national").count() == 0
    assert viewer.page.locator(".gv-chart .gv-point-parent").count() == 0
    assert "xem bảng số liệu" in viewer.page.locator("#gv-tab-unit, .gv-panel").first.inner_text()
    numbers = viewer.page.locator(".gv-numbers").text_content() or ""
    assert "Cả nước" in numbers and "Hà Nội" in numbers


def test_chart_leaves_gaps_for_values_without_a_number(viewer: Viewer, live_server: str) -> None:
    # PAPI SC24 has no values before 2018: gaps, never zeros
    profile = _get(
        live_server, "/maps/profile", collection="province-2019", indicator="papi_sc24", unit="01"
    )
    missing = [p["period"] for p in profile["unit"]["series"] if p["value"] is None]
    assert missing
    viewer.open("vintage=2019&level=province&indicator=papi_sc24&unit=01&lang=vi")
    viewer.page.wait_for_selector(".gv-chart")
    drawn = viewer.js(
        "[...document.querySelectorAll('.gv-chart .gv-point-unit')].map(p => p.dataset.period)"
    )
    assert not set(drawn) & set(missing)
    gaps = viewer.page.locator(".gv-chart .gv-gap").count()
    assert gaps == len(missing)


def test_change_map_between_two_periods(viewer: Viewer, live_server: str) -> None:
    viewer.open("vintage=2019&level=province&indicator=papi_sc11&period=2024&lang=vi")
    before = viewer.js("window.geoViewer.recoloured")
    viewer.page.select_option("select[name=compare]", "2019:2011")
    viewer.recoloured(before)
    params = {
        "collection": "province-2019",
        "indicator": "papi_sc11",
        "period": "2024",
        "compare": "2011",
    }
    classes = _get(live_server, "/maps/choropleth", **params)
    table = _get(live_server, "/maps/values", **params)
    assert classes["method"] == "change" and classes["palette"] == "RdBu"
    # centred on zero: decreases below it, increases above it, the middle colour around it
    middle = classes["classes"][len(classes["classes"]) // 2]
    assert middle["lower"] < 0 < middle["upper"] or middle["upper"] <= 0 <= middle["lower"]
    code = table["codes"][0]
    value = table["values"][0]
    assert viewer.js(f"window.geoViewer.fillOf('{code}')") == _class_colour(classes, value)
    hanoi = _get(
        live_server,
        "/maps/values",
        collection="province-2019",
        indicator="papi_sc11",
        period="2024",
    )
    then = _get(
        live_server,
        "/maps/values",
        collection="province-2019",
        indicator="papi_sc11",
        period="2011",
    )
    i = hanoi["codes"].index("01")
    assert table["values"][table["codes"].index("01")] == pytest.approx(
        hanoi["values"][i] - then["values"][i], abs=1e-6
    )
    legend = viewer.page.locator(".gv-legend").inner_text()
    assert "Thay đổi" in legend and "2011 → 2024" in legend
    viewer.screenshot("map-change")


def test_ranking_table_of_a_province_and_its_download(viewer: Viewer, live_server: str) -> None:
    viewer.open("level=commune&indicator=density&scope=province&within=79&tab=table&lang=vi")
    viewer.page.wait_for_selector(".gv-rank-table tbody tr")
    table = _get(live_server, "/maps/values", collection="commune-2025", indicator="density")
    units = _get(live_server, "/maps/units", collection="commune-2025")
    wards = {c for c, p in zip(units["codes"], units["parents"], strict=True) if p == "79"}
    values = {
        c: v for c, v in zip(table["codes"], table["values"], strict=True) if c in wards and v
    }
    rows = viewer.js("window.geoViewer.lastTable")
    assert {r["code"] for r in rows} == wards
    top = max(values, key=lambda c: values[c])
    assert rows[0]["code"] == top and rows[0]["rank"] == 1
    assert rows[0]["value"] == pytest.approx(values[top])
    first = viewer.page.locator(".gv-rank-table tbody tr").first.inner_text()
    assert units["names"][units["codes"].index(top)] in first
    # sorted by name on a click; the download is exactly the table shown
    viewer.page.click(".gv-sort[data-key=name]")
    with viewer.page.expect_download() as info:
        viewer.page.click(".gv-table-download")
    text = open(info.value.path(), encoding="utf-8-sig").read()
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0][:3] == ["Hạng", "Mã", "Tên"]
    shown = viewer.js("window.geoViewer.lastTable.map(r => r.code)")
    assert [line[1] for line in lines[1:]] == shown and len(shown) == len(wards)
    viewer.screenshot("map-ranking")


def test_drawn_area_statistics_for_several_indicators(viewer: Viewer) -> None:
    viewer.open("level=province&indicator=density&lang=vi")
    viewer.js("window.geoViewer.map.setView([21.03, 105.84], 11)")
    viewer.page.wait_for_timeout(300)
    viewer.page.click(".leaflet-draw-draw-rectangle")
    box = viewer.js("window.geoViewer.map.getContainer().getBoundingClientRect().toJSON()")
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    viewer.page.mouse.move(x - 60, y - 40)
    viewer.page.mouse.down()
    viewer.page.mouse.move(x + 60, y + 40, steps=5)
    viewer.page.mouse.up()
    viewer.page.wait_for_function(
        "window.geoViewer.lastAggregate && window.geoViewer.lastAggregate.results", timeout=30_000
    )
    result = viewer.js("window.geoViewer.lastAggregate")
    codes = [r["indicator"] for r in result["results"]]
    assert "density" in codes and "population" in codes  # the population inside, always
    rows = viewer.page.locator(".gv-area-table tbody tr")
    assert rows.count() == len(codes)
    population = next(r for r in result["results"] if r["indicator"] == "population")
    assert population["value"] > 0
    shown = viewer.page.locator(".gv-area-table tr[data-indicator=population]").inner_text()
    assert f"{round(population['value']):,}".replace(",", ".") in shown
    # another indicator ticked: computed again, now three
    viewer.page.check("input[name=agg-indicator][value=area_km2]")
    viewer.page.wait_for_function("window.geoViewer.lastAggregate.results.length === 3")
    viewer.screenshot("map-draw")


def test_circle_tool_measures_a_radius(viewer: Viewer) -> None:
    viewer.open("level=commune&indicator=density&lang=en")
    viewer.js("window.geoViewer.map.setView([10.78, 106.70], 12)")
    viewer.page.wait_for_timeout(300)
    viewer.page.click(".leaflet-draw-draw-circle")
    box = viewer.js("window.geoViewer.map.getContainer().getBoundingClientRect().toJSON()")
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    viewer.page.mouse.move(x, y)
    viewer.page.mouse.down()
    viewer.page.mouse.move(x + 80, y, steps=5)
    viewer.page.mouse.up()
    viewer.page.wait_for_function(
        "window.geoViewer.lastAggregate && window.geoViewer.lastAggregate.results", timeout=30_000
    )
    area = viewer.js("window.geoViewer.lastAggregate.area_km2")
    text = viewer.page.locator(".gv-area-shape").inner_text()
    radius_km = float(re.search(r"radius ([\d.]+) km", text).group(1))  # type: ignore[union-attr]
    assert area == pytest.approx(3.14159 * radius_km**2, rel=0.03)


def test_metadata_in_the_page_language(viewer: Viewer) -> None:
    viewer.open("vintage=2019&level=province&indicator=papi_sc11&tab=about&lang=vi")
    about = viewer.page.locator(".gv-tab-about").inner_text()
    assert "Tri thức công dân" in about and "Định nghĩa" in about
    assert "điểm" in about and "Giấy phép" in about and "Cập nhật" in about
    assert "Civic Knowledge" not in about


# ---- language ----

# Words that are the same in both languages or not words of either: codes, units, names of
# sources, licences, formats and palettes.
ALLOWED = {
    "papi", "undp", "cecodes", "worldpop", "mit", "cc", "by", "sa", "csv", "geojson", "api",
    "km²", "yl", "or", "rd", "rdbu", "ylorrd", "ylgnbu", "blues", "greens", "purples", "orrd",
    "pubu", "ylorbr", "puor", "brbg", "prgn", "piyg", "rdylbu", "commit", "vietnam", "map",
    "lamngockhuong", "sapnhap", "bando", "hnks", "gh", "ml", "mcdm", "ctu", "sematx", "legocity",
    "opendata", "giaothong", "org", "www", "vn", "com", "indicators", "global", "internet",
}  # fmt: skip


def _english_words() -> set[str]:
    def bare(text: str) -> str:  # without the {placeholders} texts are filled in with
        return re.sub(r"\{[a-z_]+\}", " ", text)

    words: set[str] = set()
    for text in LABELS["en"].values():
        words |= {w.lower() for w in re.findall(r"[A-Za-z]{3,}", bare(text))}
    vietnamese = {w.lower() for t in LABELS["vi"].values() for w in re.findall(r"\w+", bare(t))}
    return words - vietnamese - ALLOWED


def test_no_english_in_the_vietnamese_page(viewer: Viewer) -> None:
    english = _english_words()
    assert {"classes", "period", "search", "province", "suppressed"} <= english
    viewer.open("level=commune&indicator=density&lang=vi")
    found: dict[str, str] = {}

    def walk(where: str) -> None:
        texts = viewer.js(
            "(() => { const out = []; const w = document.createTreeWalker(document.body,"
            " NodeFilter.SHOW_TEXT); while (w.nextNode()) { const n = w.currentNode;"
            " const e = n.parentElement; if (e && e.closest('script,style,#gv-patterns')) continue;"
            " if (n.textContent.trim()) out.push(n.textContent); }"
            " for (const e of document.querySelectorAll('[placeholder],[title],[aria-label]'))"
            " out.push([e.placeholder, e.title, e.getAttribute('aria-label')].join(' '));"
            " return out; })()"
        )
        for text in texts:
            if text.strip().startswith("/"):  # a path of the API: a code, not a word
                continue
            for word in re.findall(r"[A-Za-z]{3,}", text):
                if word.lower() in english:
                    found.setdefault(word, f"{where}: {text[:80]}")

    walk("map")
    viewer.page.fill("input[name=q]", "hcm")
    viewer.page.press("input[name=q]", "Enter")
    viewer.page.wait_for_function("window.geoViewer.lastSelected === '79'")
    for tab in ("unit", "table", "area", "about"):
        viewer.page.click(f"#gv-tabbtn-{tab}")
        viewer.page.wait_for_timeout(400)
        walk(tab)
    viewer.page.click(".leaflet-draw-draw-polygon")  # the draw tool's hints
    viewer.page.wait_for_timeout(200)
    walk("draw")
    # an indicator with a long catalogue entry, and a change map
    viewer.open("vintage=2019&level=province&indicator=papi_sc83&compare=2018&tab=about&lang=vi")
    walk("papi")
    assert not found, found


def test_api_errors_in_the_client_language(client: TestClient) -> None:
    query = {"collection": "province-2025", "indicator": "nope"}
    english = client.get("/maps/choropleth", params=query)
    assert english.json()["detail"] == "unknown indicator 'nope'"
    assert english.headers["content-language"] == "en"
    vietnamese = client.get(
        "/maps/choropleth", params=query, headers={"Accept-Language": "vi-VN,vi;q=0.9,en;q=0.5"}
    )
    body = vietnamese.json()
    assert vietnamese.status_code == 400 and body["parameter"] == "indicator"
    assert body["detail"] == "không có chỉ tiêu «nope»" and body["detail_en"]
    assert vietnamese.headers["content-language"] == "vi"
    # any route, any message: a message the table does not know still comes in Vietnamese
    other = client.get("/collections/nope-2025/items", headers={"Accept-Language": "vi"}).json()
    assert other["detail"] and not re.search(r"\bunknown\b|\bcollection\b", other["detail"])
    breaks = client.get(
        "/maps/choropleth",
        params={"collection": "province-2025", "indicator": "density", "method": "manual"},
        headers={"Accept-Language": "vi"},
    ).json()
    assert breaks["parameter"] == "breaks" and "ngưỡng" in breaks["detail"]


# ---- phone ----


def test_phone_keeps_the_map_visible_and_taps_show_values(browser: Any, live_server: str) -> None:
    phone = Viewer(browser, live_server, *PHONE)
    try:
        phone.open("level=commune&indicator=density&lang=vi")
        sheet = phone.js("document.querySelector('.gv-panel').getBoundingClientRect().toJSON()")
        assert sheet["height"] < 844 * 0.2  # folded to a bar
        container = phone.js("window.geoViewer.map.getContainer().getBoundingClientRect().toJSON()")
        assert container["width"] == 390 and container["height"] > 600
        # what is at the middle of the screen is the map
        assert phone.js(
            "window.geoViewer.map.getContainer().contains(document.elementFromPoint(195, 350))"
        )
        phone.screenshot("phone-folded")
        phone.page.click(".gv-toggle")
        sheet = phone.js("document.querySelector('.gv-panel').getBoundingClientRect().toJSON()")
        assert sheet["height"] <= 844 * 0.63 and sheet["top"] > 844 * 0.35
        phone.page.click(".gv-toggle")
        # a tap on a unit selects it and shows its value
        phone.js("window.geoViewer.map.setView([21.036, 105.838], 13)")
        phone.page.wait_for_timeout(1500)
        point = phone.js(
            "(() => { const p = window.geoViewer.map.latLngToContainerPoint([21.0363, 105.8377]);"
            " const r = window.geoViewer.map.getContainer().getBoundingClientRect();"
            " return [p.x + r.left, p.y + r.top]; })()"
        )
        phone.page.mouse.click(point[0], point[1])
        phone.page.wait_for_function("window.geoViewer.app.selected !== null", timeout=10_000)
        assert phone.js("window.geoViewer.app.selected.code") == "00004"
        phone.page.wait_for_selector(".gv-now-value")
        phone.page.wait_for_selector("svg.gv-chart")
        phone.page.wait_for_timeout(800)  # the pan that keeps the unit in sight
        # the unit's label point is on the map above the opened panel, not under it
        where = phone.js(
            "(() => { const t = window.geoViewer.app.tables['commune-2025'];"
            " const [lng, lat] = t.labels[t.codes.indexOf('00004')];"
            " const p = window.geoViewer.map.latLngToContainerPoint([lat, lng]);"
            " return [p.x, p.y, document.querySelector('.gv-panel').getBoundingClientRect().top];"
            " })()"
        )
        assert 0 < where[0] < 390 and 0 < where[1] < where[2]
        phone.screenshot("phone-unit")
        # a unit found by search from the folded panel is framed above the panel it opens
        phone.open("lang=vi")
        phone.page.fill("input[name=q]", "hcm")
        phone.page.press("input[name=q]", "Enter")
        phone.page.wait_for_function("window.geoViewer.lastSelected === '79'", timeout=15_000)
        phone.page.wait_for_timeout(1200)  # the panel opens and the map is framed
        hcm = phone.js(
            "(() => { const m = window.geoViewer.map;"
            " const p = m.latLngToContainerPoint([10.78, 106.70]);"  # the city centre
            " return [p.x, p.y, document.querySelector('.gv-panel').getBoundingClientRect().top];"
            " })()"
        )
        assert 0 < hcm[0] < 390 and 0 < hcm[1] < hcm[2], hcm
        phone.screenshot("phone-search")
        assert phone.errors == []
    finally:
        phone.close()


def test_no_value_colours_differ_from_background_and_palettes(viewer: Viewer) -> None:
    viewer.open("level=province&indicator=density&lang=vi")
    fills = viewer.js(
        "[...document.querySelectorAll('#gv-patterns pattern')].map(p => [p.id,"
        " p.querySelector('rect').getAttribute('fill')])"
    )
    assert dict(fills) == {
        "gv-suppressed": "#5f5f5f",
        "gv-not-available": "#ffffff",
        "gv-rechecking": "#e3ebf3",  # (values withheld while re-checked: not "suppressed")
    }
    sea = viewer.js("getComputedStyle(window.geoViewer.map.getContainer()).backgroundColor")
    assert sea not in ("rgb(255, 255, 255)", "rgb(95, 95, 95)", "rgb(227, 235, 243)")
    # hatched: not a plain colour any ColorBrewer palette could have
    assert viewer.js("window.geoViewer.app.colourOf('nope')").startswith("url(#gv-")


# ---- keyboard ----


def test_controls_work_from_the_keyboard(viewer: Viewer) -> None:
    viewer.open("level=province&indicator=density&lang=vi")
    viewer.page.focus("#gv-tabbtn-map")
    viewer.page.keyboard.press("ArrowRight")
    assert viewer.js("document.activeElement.id") == "gv-tabbtn-unit"
    assert viewer.js("window.geoViewer.state().tab") == "unit"
    viewer.page.keyboard.press("ArrowLeft")
    viewer.page.focus("select[name=k]")
    before = viewer.js("window.geoViewer.recoloured")
    viewer.page.keyboard.press("ArrowDown")  # 5 → 6 classes
    viewer.recoloured(before)
    assert viewer.js("window.geoViewer.app.classes.k") == 6
    assert viewer.js("document.activeElement.name") == "k"  # focus kept


# ---- the page ----


def test_page_makes_no_request_to_other_hosts(viewer: Viewer, live_server: str) -> None:
    viewer.open("level=commune&indicator=density&layers=boundaries,labels,roads,worldpop")
    viewer.page.wait_for_load_state("networkidle")
    hosts = {urlparse(u).netloc for u in viewer.requests if not u.startswith(("data:", "blob:"))}
    assert hosts == {urlparse(live_server).netloc}
    assert external_urls(viewer.page.content()) == []
    assert any("/basemaps/worldpop/" in u for u in viewer.requests)
    assert any("/basemaps/roads/data.geojson" in u for u in viewer.requests)


def test_page_html_has_only_local_assets(client: TestClient) -> None:
    page = client.get("/map", params={"lang": "en"})
    assert page.status_code == 200
    assert external_urls(page.text) == []
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert "<html lang='en'>" in page.text


def test_home_page_for_people_and_json_for_clients(client: TestClient) -> None:
    html = client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    for link in ("/map", "/map/ea", "/api.html"):
        assert f"href='{link}'" in html.text
    assert "Bản đồ thống kê" in html.text and "Statistical map" in html.text
    assert "script" not in html.text
    assert client.get("/", params={"f": "html"}).headers["content-type"].startswith("text/html")
    for accept in ("application/json", "*/*", ""):
        body = client.get("/", headers={"Accept": accept} if accept else {}).json()
        assert body["title"] and body["links"]
    assert client.get("/", params={"f": "json"}).json()["links"]


def test_choropleth_api(client: TestClient) -> None:
    body = client.get(
        "/maps/choropleth",
        params={"collection": "commune-2025", "indicator": "density", "method": "std_mean"},
    )
    assert body.status_code == 200
    doc = body.json()
    assert (
        doc["palette"] == "RdBu"
        and sum(doc_class["count"] for doc_class in doc["classes"])
        + doc["no_value"]["not_available"]
        + doc["no_value"]["suppressed"]
        == 3321
    )
    for params, parameter in (
        ({"method": "magic"}, "method"),
        ({"k": "9"}, "k"),
        ({"palette": "Rainbow"}, "palette"),
        ({"method": "manual"}, "breaks"),
        ({"indicator": "nope"}, "indicator"),
        ({"collection": "nope-2025"}, "collection"),
        ({"within": "99"}, "within"),
        ({"compare": "1999"}, "compare"),
        ({"compare": "2025", "change": "ratio"}, "change"),
    ):
        query = {"collection": "province-2025", "indicator": "density", **params}
        response = client.get("/maps/choropleth", params=query)
        assert response.status_code == 400, params
        assert response.json()["parameter"] == parameter


def test_profile_api_hides_the_country_when_a_unit_is_hidden(client: TestClient) -> None:
    body = client.get(
        "/maps/profile",
        params={"collection": "commune-2025", "indicator": "density", "unit": "00004"},
    ).json()
    assert body["unit"]["name"] == "Ba Đình" and body["parent"]["code"] == "01"
    national = body["national"]
    assert national["method"] == "ratio" and national["units"] == 34
    value = national["series"][0]["value"]
    assert 250 < value < 450  # about 344 persons per km² (113.7 M on 329,600 km²)
    for params, parameter in (
        ({"unit": "nope"}, "unit"),
        ({"indicator": "papi_sc11"}, "indicator"),
    ):
        query = {"collection": "commune-2025", "indicator": "density", "unit": "00004", **params}
        assert client.get("/maps/profile", params=query).json()["parameter"] == parameter


def test_standard_deviation_classes_keep_their_meaning_on_skewed_data() -> None:
    from branca.utilities import color_brewer

    from geo_service.viewer.choropleth import classify

    # densities: most units near the mean, a long tail of cities above it
    values = [10.0] * 50 + [20.0] * 50 + [30.0] * 50 + [900.0, 1500.0, 4000.0]
    mean = sum(values) / len(values)
    result = classify(values, "std_mean", 5, "RdBu")
    five = list(color_brewer("RdBu", 5))
    assert result.k < 5 and result.note and "left out" in result.note
    assert result.note_vi and "lớp" in result.note_vi
    # the class holding the mean keeps the middle colour of the 5-class palette
    holding_mean = next(i for i, upper in enumerate(result.breaks) if mean <= upper)
    assert result.colours[holding_mean] == five[2]
    assert result.colours == five[5 - result.k :]
    assert result.mean == pytest.approx(mean)


def test_a_period_where_no_unit_has_a_value_gives_an_empty_legend(client: TestClient) -> None:
    # PAPI SC83 starts in 2018: a change since 2011 has no value anywhere
    query = {"collection": "province-2019", "indicator": "papi_sc83", "compare": "2011"}
    body = client.get("/maps/choropleth", params=query, headers={"Accept-Language": "vi"})
    assert body.status_code == 200, body.text
    assert body.json()["classes"] == [] and body.json()["no_value"]["not_available"] == 63
    assert body.json()["note"] == "không đơn vị nào có giá trị"


def test_change_classes_are_centred_on_zero() -> None:
    from branca.utilities import color_brewer

    from geo_service.viewer.choropleth import classify_change

    values = [-5.0, -3.0, -2.0, -1.0, -0.1, 0.0, 0.1, 1.0, 2.0, 4.0, 8.0, 9.0]
    result = classify_change(values, 5, "RdBu")
    five = list(color_brewer("RdBu", 5))
    middle = result.breaks.index(next(b for b in result.breaks if b >= 0))
    assert result.colours[middle] == five[2]  # the neutral colour holds zero
    assert result.colours[0] == five[0] and result.colours[-1] == five[-1]
    # only increases: their colours stay on the increase side
    up = classify_change([0.5, 1.0, 2.0, 3.0, 5.0, 8.0], 5, "RdBu")
    assert five[0] not in up.colours and five[1] not in up.colours


def test_manual_breaks_outside_the_values_are_named() -> None:
    from geo_service.viewer.choropleth import classify

    result = classify([1.0, 5.0, 9.0], "manual", 5, "Blues", manual=[-5, 100_000])
    assert result.k == 1 and result.note and "2 of the 3 classes" in result.note


def test_fewer_values_than_classes_still_makes_a_legend() -> None:
    from geo_service.viewer.choropleth import classify

    result = classify([3.0, 3.0, 7.0], "natural_breaks", 5, "Blues")
    assert result.breaks == [3.0, 7.0] and result.counts == [2, 1]
    assert len(result.colours) == 2 and result.note


@pytest.mark.parametrize(
    ("path", "ready"),
    [
        ("/api.html", ".swagger-ui .opblock"),  # operations listed
        ("/map?level=province&indicator=density", "path.leaflet-interactive"),  # units drawn
        ("/?f=html", "main li a"),
    ],
)
def test_pages_work_under_their_csp_with_no_other_host(
    browser: Any, live_server: str, path: str, ready: str
) -> None:
    context = browser.new_context()  # the CSP enforced, unlike the viewer fixture's
    page = context.new_page()
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on(
        "console",
        lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
    )
    try:
        response = page.goto(f"{live_server}{path}")
        assert response is not None and response.status == 200
        assert "default-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_selector(ready, timeout=30_000)
        assert page.locator(ready).count() >= 3
        hosts = {urlparse(u).netloc for u in requests if u.startswith("http")}
        assert hosts == {urlparse(live_server).netloc}
        assert problems == []
    finally:
        context.close()


def test_change_since_an_older_boundary_year_goes_through_the_crosswalk(
    demo_db: str, tmp_path: Any
) -> None:
    """A count of the 63 provinces of 2019 carried onto the 34 of 2025 (as carry-over
    would), compared with the 2025 count; a hidden old value hides the change."""
    import psycopg

    from geo_service.http.app import create_app
    from geo_service.settings import ServiceSettings
    from indicators.store import store_values
    from indicators.values import ValueRow

    with psycopg.connect(demo_db, autocommit=True) as conn:
        codes = [r[0] for r in conn.execute(
            "SELECT code FROM admin_unit WHERE vintage = '2019' AND level = 'province'"
        ).fetchall()]  # fmt: skip
        rows = [ValueRow(f"test {c}", c, "2019", 1_000_000.0 + int(c), "ok") for c in codes]
        # one old province's count hidden: Lào Cai (10), part of the new Lào Cai (15)
        rows = [
            r if r.code != "10" else ValueRow(r.line, "10", "2019", None, "suppressed")
            for r in rows
        ]
        store_values(conn, "population", "2019", "province", rows)
        # an index on the new provinces too, to be compared with its 2019 vintage
        new = [r[0] for r in conn.execute(
            "SELECT code FROM admin_unit WHERE vintage = '2025' AND level = 'province'"
        ).fetchall()]  # fmt: skip
        store_values(
            conn,
            "papi_sc11",
            "2025",
            "province",
            [ValueRow("t", c, "2024", 2.0, "ok") for c in new],
        )
    settings = ServiceSettings(home=tmp_path)
    with TestClient(create_app(settings, db_url=demo_db)) as client:
        params = {
            "collection": "province-2025",
            "indicator": "population",
            "period": "2025",
            "compare": "2019",
            "compare_vintage": "2019",
        }
        table = client.get("/maps/values", params=params).json()
        now = client.get(
            "/maps/values", params={"collection": "province-2025", "indicator": "population"}
        ).json()
        change = dict(zip(table["codes"], table["values"], strict=True))
        current = dict(zip(now["codes"], now["values"], strict=True))
        # Hà Nội (01) was not merged: its 2025 count minus its own 2019 count
        assert change["01"] == pytest.approx(current["01"] - 1_000_001, abs=1e-6)
        # new Tuyên Quang (08) = old Tuyên Quang (08) + Hà Giang (02)
        assert change["08"] == pytest.approx(current["08"] - (1_000_008 + 1_000_002), abs=1e-6)
        assert "15" in table["status"]["suppressed"] and change["15"] is None
        classes = client.get("/maps/choropleth", params=params).json()
        assert classes["method"] == "change" and classes["no_value"]["suppressed"] == 1
        # an index cannot be carried: refused, naming the comparison
        index = {"collection": "province-2025", "indicator": "papi_sc11", "period": "2024",
                 "compare": "2019", "compare_vintage": "2019"}  # fmt: skip
        refused = client.get("/maps/values", params=index)
        assert refused.status_code == 400 and refused.json()["parameter"] == "compare_vintage"
        assert "cannot be carried" in refused.json()["detail"]

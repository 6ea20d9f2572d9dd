"""The map viewer in a real headless Chromium (Playwright), against a live service."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
from fastapi.testclient import TestClient

from geo_service.viewer.assets import external_urls
from tests.conftest import REPO

pytest.importorskip("playwright.sync_api")

ARTIFACTS = REPO / "test-artifacts"


class Viewer:
    """One page of the viewer with a record of every request it made."""

    def __init__(self, browser: Any, base: str):
        self.base = base
        # bypass_csp: Playwright evaluates test expressions with eval(); the page's CSP is
        # checked on its own in test_page_html_has_only_local_assets
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, query: str) -> None:
        self.page.goto(f"{self.base}/map?{query}")
        self.page.wait_for_function("window.geoViewer && window.geoViewer.ready", timeout=30_000)

    def js(self, expression: str) -> Any:
        return self.page.evaluate(expression)

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def viewer(browser: Any, live_server: str) -> Iterator[Viewer]:
    v = Viewer(browser, live_server)
    yield v
    assert not v.errors, v.errors
    v.close()


def _choropleth(base: str, **params: str) -> dict[str, Any]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    with urllib.request.urlopen(f"{base}/maps/choropleth?{query}") as response:
        body: dict[str, Any] = json.load(response)
    return body


def test_page_makes_no_request_to_other_hosts(viewer: Viewer, live_server: str) -> None:
    viewer.open("level=province&indicator=density")
    viewer.page.wait_for_timeout(500)
    hosts = {urlparse(u).netloc for u in viewer.requests if not u.startswith("data:")}
    assert hosts == {urlparse(live_server).netloc}
    assert external_urls(viewer.page.content()) == []
    viewer.screenshot("map-provinces")


def test_provinces_drawn_and_coloured_by_class(viewer: Viewer, live_server: str) -> None:
    viewer.open("level=province&indicator=density&method=quantiles&k=5")
    assert viewer.js("window.geoViewer.drawnCount()") == 34
    expected = _choropleth(
        live_server,
        collection="province-2025",
        indicator="density",
        method="quantiles",
        k="5",
        units="true",
    )
    legend = viewer.js(
        "[...document.querySelectorAll('.gv-legend .gv-row[data-upper]')]"
        ".map(e => Number(e.dataset.upper))"
    )
    assert legend == pytest.approx(expected["breaks"])
    hanoi = next(u for u in expected["units"] if u["code"] == "01")
    fill = viewer.js("window.geoViewer.fillOf('01')")
    assert fill == expected["colours"][hanoi["class"]]


def test_changing_the_method_recolours(viewer: Viewer, live_server: str) -> None:
    viewer.open("level=province&indicator=density&method=quantiles")
    before = viewer.js("Object.keys(window.geoViewer.byCode).map(c => window.geoViewer.fillOf(c))")
    viewer.page.select_option("select[name=method]", "equal_interval")
    viewer.page.wait_for_url("**method=equal_interval**")
    viewer.page.wait_for_function("window.geoViewer && window.geoViewer.ready")
    after = viewer.js("Object.keys(window.geoViewer.byCode).map(c => window.geoViewer.fillOf(c))")
    assert before != after
    viewer.page.select_option("select[name=indicator]", "population")
    viewer.page.wait_for_url("**indicator=population**")
    viewer.page.wait_for_function("window.geoViewer && window.geoViewer.ready")
    # a raw count: advise a rate
    viewer.page.locator(".gv-warning").wait_for(state="visible", timeout=10_000)
    viewer.screenshot("map-population-equal-interval")


def test_communes_as_vector_tiles(viewer: Viewer) -> None:
    viewer.open("level=commune&indicator=density")
    viewer.page.wait_for_function("window.geoViewer.tilesLoaded", timeout=60_000)
    viewer.page.wait_for_timeout(500)
    assert viewer.js("window.geoViewer.drawnCount()") == 3321
    assert viewer.page.locator("svg path").count() > 3000
    viewer.screenshot("map-communes")


def test_search_finds_ho_chi_minh(viewer: Viewer) -> None:
    viewer.open("level=province&indicator=density&lang=en")
    viewer.page.fill("input[name=q]", "Ho Chi Minh")
    viewer.page.press("input[name=q]", "Enter")
    viewer.page.wait_for_function("window.geoViewer.lastZoomed === '79'")
    # the 2025 city reaches from Bình Dương to Côn Đảo; the view holds its centre, zoomed in
    assert viewer.js("window.geoViewer.map.getBounds().contains([10.78, 106.70])")
    assert viewer.js("window.geoViewer.map.getZoom()") >= 7
    viewer.screenshot("map-search")


def test_drawing_a_rectangle_shows_area_statistics(viewer: Viewer) -> None:
    viewer.open("level=province&indicator=population&lang=en")
    viewer.js("window.geoViewer.map.setView([21.03, 105.84], 11)")
    viewer.page.click(".leaflet-draw-draw-rectangle")
    viewer.page.mouse.move(600, 400)
    viewer.page.mouse.down()
    viewer.page.mouse.move(700, 480, steps=5)
    viewer.page.mouse.up()
    viewer.page.wait_for_function("window.geoViewer.lastAggregate !== null", timeout=30_000)
    result = viewer.js("window.geoViewer.lastAggregate")
    assert result["results"][0]["value"] > 0
    viewer.page.locator(".gv-aggregate").wait_for(state="visible", timeout=10_000)
    # the area with three decimals whatever the indicator's (population has none)
    area = viewer.page.locator(".gv-aggregate").inner_text()
    assert f"{result['area_km2']:,.3f}".rstrip("0").rstrip(".") in area
    viewer.screenshot("map-draw")


def test_bad_url_parameters_show_a_message(viewer: Viewer) -> None:
    viewer.open("indicator=nope&method=magic&k=12")
    message = viewer.page.locator("#viewer-message").inner_text()
    assert "nope" in message and "magic" in message
    assert viewer.js("window.geoViewer.config.indicator") == "density"


def test_page_html_has_only_local_assets(client: TestClient) -> None:
    page = client.get("/map", params={"lang": "en"})
    assert page.status_code == 200
    assert external_urls(page.text) == []
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


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
    ):
        query = {"collection": "province-2025", "indicator": "density", **params}
        response = client.get("/maps/choropleth", params=query)
        assert response.status_code == 400
        assert response.json()["parameter"] == parameter


def test_standard_deviation_classes_keep_their_meaning_on_skewed_data() -> None:
    from branca.utilities import color_brewer

    from geo_service.viewer.choropleth import classify

    # densities: most units near the mean, a long tail of cities above it
    values = [10.0] * 50 + [20.0] * 50 + [30.0] * 50 + [900.0, 1500.0, 4000.0]
    mean = sum(values) / len(values)
    result = classify(values, "std_mean", 5, "RdBu")
    five = list(color_brewer("RdBu", 5))
    assert result.k < 5 and result.note and "left out" in result.note
    # the class holding the mean keeps the middle colour of the 5-class palette
    holding_mean = next(i for i, upper in enumerate(result.breaks) if mean <= upper)
    assert result.colours[holding_mean] == five[2]
    assert result.colours == five[5 - result.k :]


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
        assert page.locator(ready).count() > 5
        hosts = {urlparse(u).netloc for u in requests if u.startswith("http")}
        assert hosts == {urlparse(live_server).netloc}
        assert problems == []
    finally:
        context.close()

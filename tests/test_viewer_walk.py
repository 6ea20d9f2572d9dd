"""The map viewer's last gaps from the planner's walk (issue #23), in headless Chromium:
palette names, search from the keyboard and on a phone, the phone's scale bar, chart axes,
a province's communes, a shared link's tab, and a signed-in user's token with private
reads."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date
from typing import Any

import psycopg
import pytest

from geo_service.viewer.choropleth import DIVERGING, SEQUENTIAL
from geo_service.viewer.labels import LABELS
from tests.browser import Viewer
from tests.conftest import serve

pytest.importorskip("playwright.sync_api")

PALETTES = SEQUENTIAL + DIVERGING


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_palettes_are_named_in_the_page_language(viewer: Viewer, lang: str) -> None:
    viewer.open(f"level=province&indicator=density&lang={lang}")
    options = viewer.js(
        "[...document.querySelectorAll('select[name=palette] option')]"
        ".map(o => [o.value, o.textContent, o.parentElement.label])"
    )
    assert {value for value, _, _ in options} == set(PALETTES)
    for value, text, group in options:
        assert text == LABELS[lang][f"palette_{value}"]
        # (in English three ColorBrewer names are plain words: Blues, Greens, Purples)
        assert text != value or (lang == "en" and value in ("Blues", "Greens", "Purples"))
        kind = "sequential" if value in SEQUENTIAL else "diverging"
        assert group == LABELS[lang][f"palette_{kind}"]
    # the About tab names the palette the map uses, not its code
    viewer.page.click("#gv-tabbtn-about")
    about = viewer.page.locator(".gv-meta").inner_text()
    assert LABELS[lang]["palette_YlOrRd"] in about and "YlOrRd" not in about


def test_search_is_the_first_tab_stop(viewer: Viewer) -> None:
    viewer.open("level=province&indicator=density&lang=vi")
    viewer.js("document.activeElement.blur()")
    viewer.page.keyboard.press("Tab")
    assert viewer.js("document.activeElement.name") == "q"


def test_escape_closes_the_search_list_and_says_so(viewer: Viewer) -> None:
    viewer.open("level=province&indicator=density&lang=vi")
    viewer.page.focus("input[name=q]")
    viewer.page.keyboard.type("tan phu")
    viewer.page.wait_for_selector(".gv-hit")
    box = viewer.page.locator("input[name=q]")
    assert box.get_attribute("aria-expanded") == "true"
    viewer.page.keyboard.press("ArrowDown")
    assert box.get_attribute("aria-activedescendant") == "gv-hit-1"
    viewer.page.keyboard.press("Escape")
    assert box.get_attribute("aria-expanded") == "false"
    assert not box.get_attribute("aria-activedescendant")
    assert viewer.js("document.querySelectorAll('#gv-hits li').length") == 0
    assert viewer.js("document.activeElement.name") == "q"  # focus stays in the box


def test_a_hit_whose_name_says_its_type_does_not_repeat_it(viewer: Viewer) -> None:
    viewer.open("level=province&indicator=density&lang=vi")
    viewer.page.fill("input[name=q]", "hcm")
    viewer.page.wait_for_selector(".gv-hit")
    name = viewer.page.locator(".gv-hit-name").first.inner_text()
    assert name == "TP. Hồ Chí Minh"  # not "Thành phố TP. Hồ Chí Minh"


def test_phone_search_results_are_all_in_sight(phone: Viewer) -> None:
    phone.open("level=commune&indicator=density&lang=vi")
    phone.page.fill("input[name=q]", "tan phu")
    phone.page.wait_for_selector(".gv-hit")
    phone.page.wait_for_timeout(300)
    hits = phone.js(
        "[...document.querySelectorAll('.gv-hit')].map(e => { const r ="
        " e.getBoundingClientRect(); const top = document.elementFromPoint(r.left + 8,"
        " r.top + r.height / 2); return [r.top, r.bottom, e.contains(top)]; })"
    )
    assert len(hits) >= 5
    for top, bottom, reachable in hits:
        assert 0 <= top and bottom <= 844 and reachable, hits
    # the map keeps most of the screen above the list
    assert phone.js("document.querySelector('.gv-panel').getBoundingClientRect().top") > 300
    phone.screenshot("phone-search-list")
    phone.page.locator(".gv-hit").nth(1).click()
    phone.page.wait_for_function("window.geoViewer.lastSelected !== null", timeout=15_000)
    assert phone.page.locator("input[name=q]").get_attribute("aria-expanded") == "false"


def test_phone_has_a_scale_bar_above_the_sheet(phone: Viewer) -> None:
    phone.open("level=commune&indicator=density&lang=vi")
    scale = phone.js(
        "(() => { const e = document.querySelector('.leaflet-control-scale-line');"
        " if (!e || !e.offsetParent) return null; const r = e.getBoundingClientRect();"
        " const seen = e.contains(document.elementFromPoint(r.left + r.width / 2, r.top + 4));"
        " return [r.left, r.top, r.bottom, r.width, e.textContent, seen]; })()"
    )
    assert scale is not None
    left, top, bottom, width, text, seen = scale
    assert seen  # nothing covers it (the attribution is as wide as a phone)
    sheet = phone.js("document.querySelector('.gv-panel').getBoundingClientRect().top")
    assert 0 <= left and 0 < top and bottom <= sheet and width > 10
    assert text.endswith(("km", "m"))


def test_chart_axis_labels_never_touch(viewer: Viewer) -> None:
    # PAPI: 14 yearly periods in one province's chart
    viewer.open("vintage=2019&level=province&indicator=papi_sc11&unit=01&tab=unit&lang=vi")
    xticks = "svg.gv-chart text.gv-tick[text-anchor=middle]"  # the periods under the axis
    viewer.page.wait_for_selector(xticks)
    boxes = viewer.js(
        f"[...document.querySelectorAll('{xticks}')].map(e => {{ const b ="
        " e.getBBox(); return [e.textContent, b.x, b.x + b.width]; })"
    )
    periods = viewer.js("window.geoViewer.app.series().periods")
    assert len(periods) >= 10
    assert boxes[0][0] == periods[0] and boxes[-1][0] == periods[-1]
    for (_, _, right), (_, left, _) in zip(boxes, boxes[1:], strict=False):
        assert right + 2 <= left, boxes
    assert boxes[-1][2] <= 320  # inside the chart
    # any number of periods, yearly or quarterly: labels never touch, the last is there
    problems = viewer.js(
        "(async () => { const { axisLabels } = await import('/static/js/viewer/chart.js');"
        " const bad = []; for (const label of ['2024', '2024-Q1', '2024-03-31'])"
        " for (let n = 1; n <= 60; n++) { const ps = Array.from({length: n}, () => label);"
        " const shown = axisLabels(ps, 250); const step = n > 1 ? 250 / (n - 1) : 0;"
        " if (shown[shown.length - 1] !== n - 1) bad.push([label, n, 'last']);"
        " for (let i = 1; i < shown.length; i++)"
        " if ((shown[i] - shown[i - 1]) * step < label.length * 6 + 6)"
        " bad.push([label, n, shown]); }"
        " return bad; })()"
    )
    assert problems == []


def test_a_province_offers_its_communes(viewer: Viewer) -> None:
    viewer.open("level=province&indicator=density&lang=vi")
    viewer.page.fill("input[name=q]", "hcm")
    viewer.page.press("input[name=q]", "Enter")
    viewer.page.wait_for_function("window.geoViewer.lastSelected === '79'", timeout=15_000)
    button = viewer.page.locator(".gv-open-lower[data-level=commune]")
    assert button.inner_text() == "Xem các xã/phường của TP. Hồ Chí Minh"
    viewer.js("window.__samePage = true")
    zoom = viewer.js("window.geoViewer.map.getZoom()")
    button.click()
    viewer.page.wait_for_function(
        "window.geoViewer.state().level === 'commune' && window.geoViewer.app.classes"
        " && window.geoViewer.app.classes.collection === 'commune-2025'",
        timeout=30_000,
    )
    state = viewer.js("window.geoViewer.state()")
    assert (state["scope"], state["within"], state["tab"]) == ("province", "79", "map")
    viewer.page.wait_for_function(
        "document.querySelector('.gv-legend').textContent"
        ".includes('Phân lớp trong TP. Hồ Chí Minh')"
    )
    assert viewer.js("window.geoViewer.map.getZoom()") == zoom  # still framed on the city
    assert viewer.js("window.__samePage") is True
    # the communes of the city are in scope: 168 of them
    assert viewer.js("window.geoViewer.app.scopeCodes.size") == 168


def test_a_shared_link_keeps_its_tab_and_unit(viewer: Viewer) -> None:
    viewer.open("level=commune&indicator=density&unit=00004&tab=about&lang=vi")
    viewer.page.wait_for_function("window.geoViewer.app.selected !== null", timeout=60_000)
    viewer.page.wait_for_timeout(300)
    assert viewer.js("window.geoViewer.state().tab") == "about"
    assert viewer.page.locator("#gv-tab-about").is_visible()
    assert viewer.js("window.geoViewer.app.selected.code") == "00004"
    assert "tab=about" in viewer.page.url and "unit=00004" in viewer.page.url
    # a unit chosen afterwards still opens its own tab
    viewer.js(
        "window.geoViewer.app.select(window.geoViewer.app.tables['commune-2025'].codes.find("
        "c => c !== '00004'))"
    )
    viewer.page.wait_for_function("window.geoViewer.state().tab === 'unit'")


@pytest.fixture(scope="module")
def private_server(pg: Any, demo_template: str) -> Iterator[tuple[str, str]]:
    """The service with private reads over its own demo copy, and a viewer's token."""
    from geo_service.users import add_user

    url = pg.create_database(demo_template)
    with psycopg.connect(url, autocommit=True) as conn:
        token = add_user(conn, "planner", "viewer", [])
    try:
        with serve(url, GEO_SERVICE_PUBLIC_READS="false") as base:
            yield base, token
    finally:
        pg.drop_database(url)


def test_with_private_reads_the_token_goes_with_every_request(
    browser: Any, private_server: tuple[str, str]
) -> None:
    base, token = private_server
    viewer = Viewer(browser, base)
    try:
        # signed in (the EA editor's sign-in keeps the token for the tab)
        viewer.context.add_init_script(
            f"sessionStorage.setItem('geoServiceToken', {token!r})"  # noqa: S608
        )
        sent: list[tuple[str, str | None]] = []
        viewer.page.on(
            "request",
            lambda r: (
                sent.append((r.url, r.headers.get("authorization")))
                if r.url.startswith(base) and ("/maps/" in r.url or "/tiles/" in r.url)
                else None
            ),
        )
        viewer.open("level=commune&indicator=density&lang=vi")
        viewer.page.wait_for_load_state("networkidle")
        assert viewer.js("window.geoViewer.drawnCount()") > 100
        tiles = [auth for u, auth in sent if "/tiles/" in u]
        calls = [auth for u, auth in sent if "/maps/" in u]
        assert tiles and calls
        assert set(tiles) == set(calls) == {f"Bearer {token}"}
        statuses = viewer.js("window.geoRequests.map(r => r.status)")
        assert 401 not in statuses
        assert not viewer.errors, viewer.errors
    finally:
        viewer.close()


def test_with_public_reads_no_token_is_sent(browser: Any, live_server: str) -> None:
    viewer = Viewer(browser, live_server)
    try:
        viewer.context.add_init_script("sessionStorage.setItem('geoServiceToken', 'abc')")
        sent: list[str | None] = []
        viewer.page.on("request", lambda r: sent.append(r.headers.get("authorization")))
        viewer.open("level=province&indicator=density&lang=vi")
        viewer.page.wait_for_load_state("networkidle")
        assert sent and set(sent) == {None}
    finally:
        viewer.close()


def _page_vintages(client: Any) -> set[str]:
    page = client.get("/map").text
    start = page.index("id='geo-viewer-config'>") + len("id='geo-viewer-config'>")
    config = json.loads(page[start : page.index("</script>", start)])
    return {v["id"] for v in config["catalogue"]["vintages"]}


def test_the_map_page_keeps_its_vintages_until_units_change(demo_db: str, tmp_path: Any) -> None:
    """The vintages and their extents are kept between page loads, and a boundary load is
    seen by the next page once the change log has it."""
    from fastapi.testclient import TestClient

    from boundaries.checks import FieldMap
    from boundaries.load import LoadOptions, load_boundaries
    from boundaries.vintages import Vintage, add_vintage
    from geo_service.demo import DATA_DIR
    from geo_service.http.app import create_app
    from geo_service.settings import ServiceSettings

    with TestClient(create_app(ServiceSettings(home=tmp_path), db_url=demo_db)) as client:
        assert _page_vintages(client) == {"2019", "2025"}
        assert _page_vintages(client) == {"2019", "2025"}  # (kept)
        with psycopg.connect(demo_db, autocommit=True) as conn:
            add_vintage(conn, Vintage("2030", date(2030, 1, 1), None, "test", "test", "MIT"))
            load_boundaries(
                conn,
                [DATA_DIR / "vietnam-3d-map-2025" / "provinces.json"],
                LoadOptions("2030", "province", FieldMap("id", "name", None, "type")),
            )
        for _ in range(100):
            if "2030" in _page_vintages(client):
                break
            time.sleep(0.2)
        assert _page_vintages(client) == {"2019", "2025", "2030"}

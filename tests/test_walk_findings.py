"""What the Done-when walks of the viewer and the EA workflow found: a legend that says when
fewer classes than asked are possible; the EA editor without a commune helps to choose one;
the progress page names its province and puts the totals first; a rejected EA's code stays on
one line; selection taps never zoom; values withheld while their disclosure protection is
re-checked are said to be so (never shown as suppressed) in the page, the API and exports."""

from __future__ import annotations

import gzip
import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import mapbox_vector_tile
import psycopg
import pytest
import shapely.geometry

from geo_service.users import add_user
from geo_service.viewer.choropleth import classify, classify_change
from tests.browser import Viewer
from tests.conftest import PgCluster, serve
from tests.helpers import wait_protected
from tests.test_ea_editor import SMALL_COMMUNE, Editor

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


# ---- a service of its own: EAs to reject and tap, indicator values to re-protect ----

REJECTED_REASON = "Ranh giới cắt ngang khu dân cư ven sông, cần vẽ lại theo đường và bờ sông"


@dataclass
class Walk:
    """A live service over its own copy of the demo, with EAs of SMALL_COMMUNE (one of them
    rejected with a long reason) and an editor and a supervisor of Hà Nội."""

    base: str
    db: str
    tokens: dict[str, str]
    eas: list[dict[str, Any]]
    rejected: dict[str, Any]

    def editor(self, browser: Any, **context: Any) -> Editor:
        return Editor(browser, self.base, self.db, self.tokens, **context)


@pytest.fixture(scope="module")
def walk(browser: Any, pg: PgCluster, demo_template: str) -> Iterator[Walk]:
    db = pg.create_database(demo_template)
    with psycopg.connect(db, autocommit=True) as conn:
        tokens = {
            "editor": add_user(conn, "ed", "editor", ["01"]),
            "supervisor": add_user(conn, "sup", "supervisor", ["01"]),
        }
    try:
        with serve(db) as base:
            helper = Editor(browser, base, db, tokens)
            eas = helper.generate(SMALL_COMMUNE)
            rejected = eas[0]
            assert helper.act(rejected["id"], "submit", "editor") == 200
            assert helper.act(rejected["id"], "reject", "supervisor", REJECTED_REASON) == 200
            helper.context.close()
            yield Walk(base, db, tokens, eas, rejected)
    finally:
        pg.drop_database(db)


@pytest.mark.parametrize(
    ("lang", "scope_title", "province"),
    [
        ("vi", "Xã/phường trong phạm vi của bạn", "Tỉnh/thành phố: Hà Nội (01)"),
        ("en", "Communes in your scope", "Province: Hà Nội (01)"),
    ],
)
def test_the_editor_without_a_commune_helps_to_choose_and_progress_names_the_province(
    browser: Any, walk: Walk, lang: str, scope_title: str, province: str
) -> None:
    with psycopg.connect(walk.db) as conn:
        (communes,) = conn.execute(
            "SELECT count(*) FROM admin_unit WHERE vintage = '2025' AND level = 'commune'"
            " AND parent_code = '01'"
        ).fetchone() or (0,)
        (provinces,) = conn.execute(
            "SELECT count(*) FROM admin_unit WHERE vintage = '2025' AND level = 'province'"
        ).fetchone() or (0,)
    tablet = walk.editor(browser, viewport={"width": 1024, "height": 768}, has_touch=True)
    try:
        tablet.open(f"lang={lang}")
        # not an empty grey map: the provinces to tap, and a word on what to do
        tablet.page.wait_for_function("window.eaEditor.overview > 0")
        assert tablet.js("window.eaEditor.overview") == provinces
        assert tablet.page.locator(".ea-choose-hint").is_visible()
        tablet.sign_in("editor")
        tablet.page.wait_for_selector(".ea-commune-list a")
        heading = tablet.page.locator(".ea-chooser h4").inner_text()
        assert heading == f"{scope_title} ({communes})"
        links = tablet.js("[...document.querySelectorAll('.ea-commune-list a')].map(a => a.href)")
        assert len(links) == communes and any("commune=00004" in link for link in links)
        tablet.screenshot(f"walk-ea-choose-{lang}-1024")
        # the progress page of the same scope: the province named, the totals first
        tablet.page.goto(f"{walk.base}/map/ea/progress?lang={lang}")
        tablet.page.wait_for_function("window.censusPage && window.censusPage.ready")
        assert tablet.page.locator(".cp-province").inner_text() == province
        first = tablet.js("document.querySelectorAll('table.cp-progress tr')[1].className")
        assert first == "cp-total", first
        tablet.screenshot(f"walk-progress-{lang}-1024")
        assert not tablet.errors, tablet.errors
    finally:
        tablet.context.close()


@pytest.mark.parametrize(("width", "height"), [(1024, 768), (390, 844)])
def test_a_rejected_eas_code_stays_on_one_line_in_the_list(
    browser: Any, walk: Walk, width: int, height: int
) -> None:
    page = walk.editor(browser, viewport={"width": width, "height": height}, has_touch=True)
    try:
        page.open(f"commune={SMALL_COMMUNE}&lang=vi")
        if page.page.locator(".ea-panel").is_hidden():  # (a phone: the sheet starts folded)
            page.page.tap(".ea-panel-toggle")
        row = f"tr.ea-row[data-ea='{walk.rejected['id']}']"
        page.page.wait_for_selector(row)
        page.page.locator(row).scroll_into_view_if_needed()
        lines = page.js(
            f"""(() => {{
                const lines = (cell) => {{
                    const range = document.createRange();
                    range.selectNodeContents(cell.firstChild);
                    return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
                }};
                const cells = document.querySelectorAll("{row} td");
                return [lines(cells[0]), lines(cells[2]), cells[1].textContent];
            }})()"""
        )
        assert lines[:2] == [1, 1], lines
        assert REJECTED_REASON in lines[2]
        page.screenshot(f"walk-rejected-row-vi-{width}")
        assert not page.errors, page.errors
    finally:
        page.context.close()


def test_two_quick_selection_taps_never_zoom(browser: Any, walk: Walk) -> None:
    shapes = {f["id"]: shapely.geometry.shape(f["geometry"]) for f in walk.eas}
    first = walk.eas[len(walk.eas) // 2]["id"]
    second = max(
        (i for i in shapes if i != first),
        key=lambda i: shapes[i].intersection(shapes[first]).length,
    )
    tablet = walk.editor(browser, viewport={"width": 1024, "height": 768}, has_touch=True)
    try:
        tablet.open(f"commune={SMALL_COMMUNE}&lang=vi")
        tablet.sign_in("editor")
        both = shapely.geometry.mapping(shapes[first].union(shapes[second]))
        tablet.js(
            f"window.eaEditor.map.fitBounds(L.geoJSON({json.dumps(both)}).getBounds(),"
            " {padding: [80, 80]})"
        )
        tablet.page.wait_for_timeout(500)
        zoom = tablet.js("window.eaEditor.map.getZoom()")
        tablet.page.tap("button.ea-multi")
        points = [shapes[i].representative_point() for i in (first, second)]
        # one tap right after the other (well within Leaflet's 200 ms double tap)
        for x, y in tablet.pixels([(p.x, p.y) for p in points]):
            tablet.page.touchscreen.tap(x, y)
        tablet.page.wait_for_timeout(600)  # (a zoom would have started by now)
        assert tablet.js("window.eaEditor.map.getZoom()") == zoom
        assert sorted(tablet.js("window.eaEditor.selected()")) == sorted([first, second])
        assert not tablet.errors, tablet.errors
    finally:
        tablet.context.close()


# ---- numbers in the legend written the page's way ----


def _vi(count: int) -> str:
    return f"{count:,}".replace(",", ".")


def test_the_vietnamese_legend_writes_numbers_the_vietnamese_way(browser: Any, walk: Walk) -> None:
    """Counts, limits, mean, σ bands and the note of a σ legend of 3,321 communes (classes of
    over a thousand units, bands beyond the values) read 1.234,5, never 1,234.5."""
    viewer = Viewer(browser, walk.base)
    try:
        viewer.open("level=commune&indicator=density&method=std_mean&k=7&lang=vi")
        classes = viewer.js("window.geoViewer.app.classes")
        texts = viewer.js(
            "[...document.querySelectorAll('.gv-legend *')].flatMap(e => [...e.childNodes]"
            ".filter(n => n.nodeType === 3).map(n => n.textContent))"
        )
        legend = " | ".join(texts)
        viewer.screenshot("legend-numbers-vi-1366")
        counts = [c["count"] for c in classes["classes"]] + list(classes["no_value"].values())
        assert max(counts) >= 1000, counts  # (a count to group)
        for count in (c for c in counts if c):  # (a status no unit has is not keyed)
            assert f"({_vi(count)})" in legend, (count, legend)
        assert not re.search(r"\d,\d{3}(?!\d)", legend), legend  # (English grouping)
        assert not re.search(r"\d\.\d{1,2}(?!\d)", legend), legend  # (an English decimal)
        assert re.search(r"[+−]\d,5σ", legend), legend  # (half a σ: 0,5)
        assert re.search(r"Trung bình \d{1,3}(\.\d{3})*,\d+; độ lệch chuẩn σ = [\d.]+,\d+", legend)
        note = classes["note"]
        assert note and "nằm ngoài khoảng giá trị" in note and note in legend, legend
        assert not viewer.errors, viewer.errors
    finally:
        viewer.close()


def test_a_note_writes_its_numbers_in_its_language() -> None:
    result = classify([1.5, 2.25, 1234.5, 9876.25], "manual", 4, "Blues", [1, 5000, 20000])
    assert result.note_vi and "(1,5–9.876,25)" in result.note_vi, result.note_vi
    assert result.note and "(1.5–9,876.25)" in result.note, result.note


def test_on_a_phone_the_legend_folds_to_its_title(browser: Any, walk: Walk) -> None:
    """390×844: the legend covered a fifth of the map with no way to put it aside."""
    viewer = Viewer(browser, walk.base, 390, 844)
    try:
        viewer.open("level=province&indicator=density&lang=vi")
        legend, fold = viewer.page.locator(".gv-legend"), viewer.page.locator(".gv-legend-fold")
        opened = legend.bounding_box()
        assert opened is not None and fold.get_attribute("aria-expanded") == "true"
        assert fold.get_attribute("aria-label") == "Thu gọn chú giải"
        fold.click()
        assert viewer.page.locator(".gv-legend .gv-rows").is_hidden()
        folded = legend.bounding_box()
        assert folded is not None and folded["height"] < 0.3 * opened["height"], (folded, opened)
        assert "Mật độ dân số" in legend.inner_text()  # (its title stays)
        assert fold.get_attribute("aria-label") == "Mở chú giải"
        viewer.screenshot("legend-folded-vi-390")
        viewer.page.locator(".gv-legend-fold").click()
        assert viewer.page.locator(".gv-legend .gv-rows").is_visible()
        assert fold.get_attribute("aria-expanded") == "true"
        assert not viewer.errors, viewer.errors
    finally:
        viewer.close()


# ---- the EA editor on a phone: the layer list never under the panel ----


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def test_on_a_phone_the_layer_list_stays_clear_of_the_editor_panel(
    browser: Any, walk: Walk
) -> None:
    """390×844: folded or open, signed in or not, the layer list (folded or unfolded) and the
    scale bar stand above the panel's sheet, within the screen."""
    phone = walk.editor(browser, viewport={"width": 390, "height": 844}, has_touch=True)
    try:
        phone.open(f"commune={SMALL_COMMUNE}&lang=vi")

        def clear_of_the_sheet(shot: str) -> None:
            sheet = phone.page.locator(".ea-panel-wrap").bounding_box()
            assert sheet is not None
            for control in (".ea-layers", ".leaflet-control-scale"):
                box = phone.page.locator(control).bounding_box()
                assert box is not None and box["y"] >= 0, (control, box)
                assert not _overlap(box, sheet), (shot, control, box, sheet)
            phone.screenshot(f"ea-phone-layers-{shot}-vi-390")

        clear_of_the_sheet("folded")
        phone.page.tap(".ea-layers summary")  # (the list unfolded over the map)
        clear_of_the_sheet("folded-list")
        phone.page.tap(".ea-panel-toggle")
        phone.page.wait_for_function("!document.getElementById('ea-panel').hidden")
        clear_of_the_sheet("open-list")
        phone.page.tap(".ea-layers summary")
        clear_of_the_sheet("open")
        phone.sign_in("editor")  # (a taller panel)
        clear_of_the_sheet("signed-in")
        assert not phone.errors, phone.errors
    finally:
        phone.context.close()


# ---- values withheld while their disclosure protection is re-checked ----

PROTECTION_LOCK = "geo_service.suppression"  # (indicators.sql.PROTECTION_LOCK)
PAPI = "vintage=2019&level=province&indicator=papi_sc51&period=2024"


@contextmanager
def rechecking(db: str) -> Iterator[None]:
    """papi_sc51 pending (a plain-SQL write) and kept so while the block runs: the service's
    protection waits for the lock this session holds; on leaving, it protects again."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (PROTECTION_LOCK,))
        conn.execute(
            "UPDATE indicator_value SET value = value WHERE indicator = 'papi_sc51'"
            " AND vintage = '2019' AND level = 'province' AND code = '01' AND period = '2024'"
        )
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (PROTECTION_LOCK,))
    wait_protected(db)


def _get(url: str, lang: str = "en") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Accept-Language": lang})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, _lower(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, _lower(error.headers), error.read()


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def test_the_api_says_values_are_being_rechecked_and_exports_wait(walk: Walk) -> None:
    items = f"{walk.base}/collections/province-2019/items?indicator=papi_sc51&period=2024"
    values = f"{walk.base}/maps/values?collection=province-2019&indicator=papi_sc51&period=2024"
    with rechecking(walk.db):
        status, headers, body = _get(values, "vi")
        table = json.loads(body)
        assert status == 200 and headers["disclosure-rechecking"] == "papi_sc51"
        assert headers["retry-after"] == "5" and headers["cache-control"] == "no-store"
        assert table["rechecking"]["message"].startswith("Các giá trị của papi_sc51 đang được")
        assert table["status"]["suppressed"] == [] and len(table["status"]["rechecking"]) == 63
        assert all(v is None for v in table["values"])  # (still hidden)
        status, headers, body = _get(f"{items}&limit=100")
        page = json.loads(body)
        assert status == 200 and headers["disclosure-rechecking"] == "papi_sc51"
        assert "re-checked for disclosure" in page["rechecking"]["message"]
        assert all(f["properties"]["papi_sc51"] is None for f in page["features"])
        # a file is kept and passed on: it waits rather than show every value hidden
        for url in (
            f"{items}&f=csv",
            f"{walk.base}/maps/export?collection=province-2019&indicator=papi_sc51&format=png",
        ):
            status, headers, body = _get(url, "vi")
            assert status == 503 and headers["retry-after"] == "5", (url, body)
            assert "kiểm tra lại về bảo mật thống kê" in json.loads(body)["detail"]
    # protected again: the answers are as before, with no word of re-checking
    status, headers, body = _get(values)
    assert status == 200 and "disclosure-rechecking" not in headers
    assert json.loads(body)["rechecking"] is None
    assert _get(f"{items}&f=csv")[0] == 200


# Hà Nội (01) is in this tile of the provinces
PAPI_TILE = "province-2019/tiles/WebMercatorQuad/5/25/14?indicator=papi_sc51&period=2024"
PAPI_VALUES = "indicators/papi_sc51/values?vintage=2019&level=province&period=2024"


def _tile_values(body: bytes) -> dict[str, Any]:
    """Each province's papi_sc51 in a tile (None: not carried)."""
    layer = mapbox_vector_tile.decode(gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body)
    return {
        f["properties"]["code"]: f["properties"].get("papi_sc51")
        for f in layer["province-2019"]["features"]
    }


def test_tiles_and_the_values_table_say_values_are_being_rechecked(walk: Walk) -> None:
    tile, values = f"{walk.base}/collections/{PAPI_TILE}", f"{walk.base}/{PAPI_VALUES}"
    status, _, body = _get(tile)  # (cached before the change)
    assert status == 200 and _tile_values(body)["01"] is not None
    with rechecking(walk.db):
        for _ in range(2):  # (a tile rendered while withheld is never kept)
            status, headers, body = _get(tile)
            assert status == 200 and headers["disclosure-rechecking"] == "papi_sc51"
            assert headers["retry-after"] == "5" and headers["cache-control"] == "no-store"
            shown = _tile_values(body)
            assert "01" in shown and all(v is None for v in shown.values()), shown
        status, headers, body = _get(values, "vi")
        table = json.loads(body)
        assert status == 200 and headers["disclosure-rechecking"] == "papi_sc51"
        assert headers["retry-after"] == "5" and headers["cache-control"] == "no-store"
        assert table["rechecking"]["indicators"] == ["papi_sc51"]
        assert table["rechecking"]["message"].startswith("Các giá trị của papi_sc51 đang được")
        assert len(table["values"]) == 63 and all(v["value"] is None for v in table["values"])
        status, headers, body = _get(f"{values}&f=csv", "vi")
        assert status == 503 and headers["retry-after"] == "5", body
    status, headers, body = _get(tile)
    assert status == 200 and "disclosure-rechecking" not in headers
    assert headers["cache-control"] != "no-store" and _tile_values(body)["01"] is not None
    status, headers, body = _get(values)
    assert status == 200 and "disclosure-rechecking" not in headers
    table = json.loads(body)
    assert table["rechecking"] is None
    assert next(v for v in table["values"] if v["code"] == "01")["value"] is not None
    assert _get(f"{values}&f=csv")[0] == 200


def test_values_and_their_rechecking_flag_are_read_together(walk: Walk) -> None:
    """papi_sc51 withheld and protected again as fast as a session can, while its table is
    read: every answer's flag must match its values (all hidden exactly when flagged)."""
    stop, toggles = threading.Event(), [0]

    def toggle() -> None:
        with psycopg.connect(walk.db, autocommit=True) as conn:
            # (the service's own protection waits meanwhile)
            conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (PROTECTION_LOCK,))
            try:
                while not stop.is_set() or toggles[0] < 20:
                    conn.execute("INSERT INTO disclosure_pending (indicator) VALUES ('papi_sc51')")
                    conn.execute("DELETE FROM disclosure_pending WHERE indicator = 'papi_sc51'")
                    toggles[0] += 1
            finally:
                conn.execute("DELETE FROM disclosure_pending WHERE indicator = 'papi_sc51'")
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (PROTECTION_LOCK,))

    maps = f"{walk.base}/maps/values?collection=province-2019&indicator=papi_sc51&period=2024"
    values = f"{walk.base}/{PAPI_VALUES}"
    writer = threading.Thread(target=toggle)
    writer.start()
    try:
        for _ in range(100):
            table = json.loads(_get(maps)[2])
            flagged = table["rechecking"] is not None
            assert flagged != any(v is not None for v in table["values"]), table["rechecking"]
            page = json.loads(_get(values)[2])
            shown = any(v["value"] is not None for v in page["values"])
            assert (page["rechecking"] is not None) != shown, page["rechecking"]
    finally:
        stop.set()
        writer.join()
    assert toggles[0] >= 20, toggles  # (the writer did run alongside)


@pytest.mark.parametrize(
    ("lang", "said", "status"),
    [
        ("vi", "đang được kiểm tra lại về bảo mật thống kê", "Đang kiểm tra lại bảo mật (63)"),
        ("en", "being re-checked for disclosure control", "Being re-checked for disclosure (63)"),
    ],
)
def test_the_map_says_values_are_being_rechecked_and_recolours_once_protected(
    browser: Any, walk: Walk, lang: str, said: str, status: str
) -> None:
    viewer = Viewer(browser, walk.base)
    try:
        with rechecking(walk.db):
            viewer.open(f"{PAPI}&lang={lang}")
            note = viewer.page.locator(".gv-legend .gv-rechecking-note")
            assert note.is_visible() and said in note.inner_text()
            rows = viewer.js(
                "[...document.querySelectorAll('.gv-legend .gv-row:not([data-upper])')]"
                ".map(r => r.textContent)"
            )
            # (counted apart, never as suppressed: no "suppressed" row, the legend keys only
            # the reasons the map shows)
            assert rows == [status], rows
            assert viewer.js("window.geoViewer.fillOf('01')") == "url(#gv-rechecking)"
            viewer.screenshot(f"walk-rechecking-{lang}-1366")
            recoloured = viewer.js("window.geoViewer.recoloured")
        # the page asks again by itself and draws the values once they are protected
        viewer.recoloured(recoloured)
        viewer.page.wait_for_selector(".gv-legend .gv-rechecking-note", state="detached")
        assert viewer.js("window.geoViewer.fillOf('01')").startswith("#")
        assert not viewer.errors, viewer.errors
    finally:
        viewer.close()

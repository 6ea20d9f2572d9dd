"""The EA editor's remaining safety gaps, in Chromium in Vietnamese: a restore or a delete
that would open a gap offers the gap to a neighbour (as a save does), a stale preview of
supervisor areas is refused and a fresh one offered, and the map says to zoom in when EAs
are not drawn (below the EA tiles' minimum zoom)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from shapely.geometry import mapping, shape

from geo_service.viewer.ea_labels import CENSUS_LABELS
from tests.conftest import PgCluster
from tests.test_ea_editor import COMMUNE, ITEMS, Editor, _editor_over_demo
from tests.test_ea_shared_edges import _inward, _moved, _shared_vertex, inner_pair

pytest.importorskip("playwright.sync_api")

VI = CENSUS_LABELS["vi"]


@pytest.fixture
def editor(browser: Any, pg: PgCluster, demo_template: str) -> Iterator[Editor]:
    with _editor_over_demo(browser, pg, demo_template) as page:
        page.context.set_default_timeout(60_000)
        yield page


def _etag(feature: dict[str, Any]) -> str:
    return f'"ea-{feature["id"]}-v{feature["properties"]["version"]}"'


def test_a_restore_that_opens_a_gap_offers_it_to_a_neighbour(editor: Editor) -> None:
    eas = editor.generate(COMMUNE)
    first, second, vertex = _shared_vertex(eas)
    to = _inward(first, vertex)
    body = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "id": f["id"], "properties": {}, "geometry": mapping(geom)}
            for f, geom in (
                (first, _moved(shape(first["geometry"]), vertex, to)),
                (second, _moved(shape(second["geometry"]), vertex, to)),
            )
        ],
    }
    tags = f"{_etag(first)}, {_etag(second)}"
    status, _, moved = editor.api(
        "POST", "/collections/enumeration-areas/reshape", "editor", body, tags
    )
    assert status == 200, moved
    editor.open(f"commune={COMMUNE}&lang=vi")
    editor.sign_in("editor")
    editor.js(f"window.eaEditor.select({second['id']}, false)")
    editor.page.click("button.ea-history")
    editor.page.locator(".ea-restore").first.wait_for(state="visible")
    before = editor.tables()
    writes = len(editor.js("window.eaEditor.writes"))
    editor.page.locator(".ea-restore").last.click()  # (the oldest entry: the generated one)
    assert second["properties"]["code"] in editor.confirm()
    # refused with the gap on the map, and the choice of the neighbour along it
    receiver = editor.page.locator("select.ea-gap-receiver")
    receiver.wait_for(state="visible")
    assert receiver.locator("option").all_inner_texts() == [first["properties"]["code"]]
    assert editor.js("window.eaEditor.findings()") >= 1
    assert editor.tables() == before
    editor.screenshot("ea-restore-gap-offered-vi")
    editor.page.click(".ea-confirm-ok")
    done = editor.wait_writes(writes + 2)
    assert done["status"] == 200 and "give_gap_to=" in done["path"], done
    _, _, report = editor.api("GET", f"/communes/{COMMUNE}/ea-coverage?round=2029", "editor")
    assert report["complete"], (report["gaps"], report["overlaps"])
    _, _, restored = editor.api("GET", f"{ITEMS}/{second['id']}", "editor")
    assert abs(shape(restored["geometry"]).area - shape(second["geometry"]).area) < 1e-9


def test_a_stale_preview_is_refused_and_a_fresh_one_offered(editor: Editor) -> None:
    eas = editor.generate(COMMUNE)
    editor.open(f"commune={COMMUNE}&lang=vi&tab=organise")
    editor.sign_in("editor")
    # zoomed out past the EA tiles' minimum zoom, the map says to zoom in (and only then)
    note = editor.page.locator(".ea-zoom-note")
    assert note.count() == 1 and note.is_hidden()
    # (with no base map here the EA layer's own minimum holds the map at z5; a base map, as
    # every operator has, lets it go further out)
    editor.js("window.eaEditor.map.setMinZoom(0)")
    editor.js("window.eaEditor.map.setZoom(4, {animate: false})")
    note.wait_for(state="visible")
    assert note.inner_text() == VI["zoom_for_eas"] == "Phóng to để xem địa bàn"
    # and nothing covers it (in the top right it sat under the panel, out of sight)
    box = note.bounding_box()
    assert box is not None
    centre = [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2]
    on_top = "([x, y]) => !!document.elementFromPoint(x, y).closest('.ea-zoom-note')"
    assert editor.page.evaluate(on_top, centre), "the zoom note is covered"
    editor.screenshot("ea-zoom-in-note-vi")
    editor.js("window.eaEditor.map.setZoom(6, {animate: false})")
    note.wait_for(state="hidden")

    editor.page.click("button.ea-org-propose_areas")
    editor.page.wait_for_selector(".ea-proposal-table")
    # meanwhile a colleague groups three EAs of the commune
    codes = sorted(f["properties"]["code"] for f in eas)
    grouped = next(
        [a, b, c]
        for a in eas
        for b in eas
        for c in eas
        if len({a["id"], b["id"], c["id"]}) == 3
        and shape(a["geometry"]).intersection(shape(b["geometry"])).length > 0
        and shape(b["geometry"]).intersection(shape(c["geometry"])).length > 0
    )
    _, read, _ = editor.api("GET", f"/communes/{COMMUNE}/supervisor-areas", "supervisor")
    status, _, made = editor.api(
        "POST",
        f"/communes/{COMMUNE}/supervisor-areas",
        "supervisor",
        {"eas": [f["properties"]["code"] for f in grouped]},
        read["etag"],
    )
    assert status == 201, made
    area = made["areas"][0]["code"]
    writes = len(editor.js("window.eaEditor.writes"))
    editor.page.click("button.ea-org-save_areas")
    editor.confirm(True)
    refused = editor.wait_writes(writes + 1)
    assert refused["status"] == 412, refused
    stale = editor.page.locator(".ea-areas-stale")
    stale.wait_for(state="visible")
    assert VI["areas_stale"] in stale.inner_text()
    message = editor.page.locator(".ea-message").inner_text()
    assert area in message and "xem trước lại" in message, message
    _, _, areas = editor.api("GET", f"/communes/{COMMUNE}/supervisor-areas", "editor")
    assert [a["code"] for a in areas["areas"]] == [area]  # nothing saved over it
    editor.screenshot("ea-areas-stale-vi")
    editor.page.click("button.ea-org-fresh_preview")
    editor.page.wait_for_selector(".ea-proposal-table")
    fresh = editor.js("window.eaOrganiser.proposal()")
    assert area in fresh["kept"]
    proposed = {c for g in fresh["groups"] for c in g["eas"]}
    assert proposed == set(codes) - {f["properties"]["code"] for f in grouped}


def test_a_delete_that_opens_a_gap_offers_the_area_to_a_neighbour(editor: Editor) -> None:
    gone, neighbour, _ = inner_pair(editor.generate(COMMUNE))
    code = gone["properties"]["code"]
    editor.open(f"commune={COMMUNE}&lang=vi")
    editor.sign_in("editor")
    editor.js(f"window.eaEditor.select({gone['id']}, false)")
    before = editor.tables()
    writes = len(editor.js("window.eaEditor.writes"))
    editor.page.click("button.ea-delete")
    assert code in editor.confirm()  # asked first
    # refused with the gap in red, and the neighbours along it offered
    receiver = editor.page.locator("select.ea-gap-receiver")
    receiver.wait_for(state="visible")
    offered = receiver.locator("option").all_inner_texts()
    assert neighbour["properties"]["code"] in offered and code not in offered
    text = editor.page.locator(".ea-modal .ea-confirm-text").inner_text()
    assert text.startswith(f"Xoá {code} sẽ để lại khoảng trống")
    assert editor.page.locator(".ea-modal .ea-confirm-ok").inner_text() == VI["give_and_delete"]
    assert editor.js("window.eaEditor.findings()") >= 1
    assert editor.tables() == before
    editor.screenshot("ea-delete-gap-offered-vi")
    # cancelled: nothing deleted, the EA still selected, the message says why in Vietnamese
    editor.page.click(".ea-confirm-cancel")
    refused = editor.wait_writes(writes + 1)
    assert refused["status"] == 422, refused
    message = editor.page.locator(".ea-message").inner_text()
    assert f"xoá địa bàn {code}" in message and "chưa xoá gì" in message, message
    assert editor.js("window.eaEditor.selected()") == [gone["id"]]
    assert editor.tables() == before
    # again, given to the neighbour: deleted, the neighbour grown, the commune still covered
    editor.page.click("button.ea-delete")
    editor.confirm()
    receiver.wait_for(state="visible")
    receiver.select_option(neighbour["properties"]["code"])
    editor.page.click(".ea-confirm-ok")
    done = editor.wait_writes(writes + 3)
    assert done["status"] == 204 and "give_gap_to=" in done["path"], done
    _, _, report = editor.api("GET", f"/communes/{COMMUNE}/ea-coverage?round=2029", "editor")
    assert report["complete"], (report["gaps"], report["overlaps"])
    status, _, _ = editor.api("GET", f"{ITEMS}/{gone['id']}", "editor")
    assert status == 404


def test_a_stale_single_area_write_is_refused_and_the_areas_reloaded(editor: Editor) -> None:
    eas = editor.generate(COMMUNE)
    editor.open(f"commune={COMMUNE}&lang=vi&tab=organise")
    editor.sign_in("editor")
    # (the page reads the areas again on signing in: the colleague's write comes after that)
    editor.page.wait_for_function("window.eaEditor.organising() === 0")
    # a colleague makes an area of three EAs after the page read the areas
    grouped = next(
        [a, b, c]
        for a in eas
        for b in eas
        for c in eas
        if len({a["id"], b["id"], c["id"]}) == 3
        and shape(a["geometry"]).intersection(shape(b["geometry"])).length > 0
        and shape(b["geometry"]).intersection(shape(c["geometry"])).length > 0
    )
    _, read, _ = editor.api("GET", f"/communes/{COMMUNE}/supervisor-areas", "supervisor")
    status, _, made = editor.api(
        "POST",
        f"/communes/{COMMUNE}/supervisor-areas",
        "supervisor",
        {"eas": [f["properties"]["code"] for f in grouped]},
        read["etag"],
    )
    assert status == 201, made
    area = made["areas"][0]["code"]
    others = [f for f in eas if f["id"] not in {g["id"] for g in grouped}]
    mine = next(
        [a, b]
        for a in others
        for b in others
        if a["id"] != b["id"] and shape(a["geometry"]).intersection(shape(b["geometry"])).length
    )
    for f in mine:
        editor.js(f"window.eaEditor.select({f['id']}, true)")
    before = editor.tables()
    writes = len(editor.js("window.eaEditor.writes"))
    editor.page.click("button.ea-make_area")
    refused = editor.wait_writes(writes + 1)
    assert refused["status"] == 412, refused
    message = editor.page.locator(".ea-message").inner_text()
    assert area in message and VI["areas_reloaded"] in message, message
    assert editor.tables() == before
    assert sorted(editor.js("window.eaEditor.selected()")) == sorted(f["id"] for f in mine)
    # the colleague's area is now on the page; the same click saves (areas as read again)
    editor.page.locator(f"text={area}").first.wait_for(state="visible")
    editor.screenshot("ea-area-stale-reloaded-vi")
    editor.page.click("button.ea-make_area")
    saved = editor.wait_writes(writes + 2)
    assert saved["status"] == 201, saved


def test_an_areas_eas_are_shown_and_its_supervisor_chosen_in_its_row(editor: Editor) -> None:
    """Saved supervisor areas were a list of codes: nowhere on the map, and a supervisor
    could only be put over one by removing and remaking it."""
    eas = editor.generate(COMMUNE)
    grouped = next(
        [a, b]
        for a in eas
        for b in eas
        if a["id"] != b["id"] and shape(a["geometry"]).intersection(shape(b["geometry"])).length
    )
    staff = {"code": "GS01", "name": "Nguyễn Văn Giám", "role": "supervisor", "scope": COMMUNE}
    assert editor.api("POST", "/census/2029/staff", "editor", staff)[0] == 201
    _, read, _ = editor.api("GET", f"/communes/{COMMUNE}/supervisor-areas", "editor")
    codes = [f["properties"]["code"] for f in grouped]
    status, _, made = editor.api(
        "POST", f"/communes/{COMMUNE}/supervisor-areas", "editor", {"eas": codes}, read["etag"]
    )
    assert status == 201, made
    editor.open(f"commune={COMMUNE}&lang=vi&tab=organise")
    editor.sign_in("editor")
    show = editor.page.locator("tr.ea-area button.ea-show-area")
    assert show.inner_text() == VI["show_area"]
    show.click()
    assert sorted(editor.js("window.eaEditor.selected()")) == sorted(f["id"] for f in grouped)
    # its EAs are in an area already: no offer to make another of them (the API says 409),
    # but why, and an enumerator can still be given to them
    assert editor.page.locator("button.ea-make_area").count() == 0
    why = editor.page.locator(".ea-in-area").inner_text()
    assert why == VI["already_in_area"].format(count=2, areas=made["areas"][0]["code"]), why
    assert editor.page.locator("button.ea-assign_selected").count() == 1
    editor.screenshot("ea-area-shown-no-second-area-vi")
    choice = editor.page.locator("tr.ea-area select.ea-area-supervisor")
    assert choice.get_attribute("aria-label") == f"Giám sát viên của {made['areas'][0]['code']}"
    writes = len(editor.js("window.eaEditor.writes"))
    choice.select_option("GS01")
    saved = editor.wait_writes(writes + 1)
    assert saved["method"] == "PUT" and saved["status"] == 200, saved
    _, _, areas = editor.api("GET", f"/communes/{COMMUNE}/supervisor-areas", "editor")
    (area,) = areas["areas"]
    assert area["supervisor"]["code"] == "GS01" and sorted(area["eas"]) == sorted(codes)
    assert editor.page.locator("tr.ea-area select.ea-area-supervisor").input_value() == "GS01"
    editor.screenshot("ea-area-row-supervisor-vi")


_TOOLTIP_AND_PANEL = """() => {
  const tip = document.querySelector('.leaflet-tooltip-pane .leaflet-tooltip');
  const panel = document.querySelector('.ea-panel-wrap').getBoundingClientRect();
  if (!tip) return null;
  const box = tip.getBoundingClientRect();
  return {tip: [box.left, box.top, box.right, box.bottom],
          panel: [panel.left, panel.top, panel.right, panel.bottom]};
}"""


def test_an_eas_tooltip_is_never_under_the_panel(editor: Editor) -> None:
    # (Leaflet puts a tooltip right of the pointer on the map's left half: near the panel
    # it went under it, the code and household count cut off)
    editor.generate(COMMUNE)
    for width, height in ((1366, 768), (1024, 768)):
        editor.page.set_viewport_size({"width": width, "height": height})
        editor.open(f"commune={COMMUNE}&lang=vi")
        editor.page.wait_for_function("window.eaEditor.eas().length > 0")
        panel = editor.page.locator(".ea-panel-wrap").bounding_box()
        assert panel is not None
        # the commune (framed beside the panel) moved to the map's middle and zoomed in: its
        # EAs reach under the panel
        middle = f"[{panel['x'] / 2}, {height / 2}]"
        editor.js(
            f"(m => m.setView(m.containerPointToLatLng({middle}), m.getZoom() + 1,"
            " {animate: false}))(window.eaEditor.map)"
        )
        shown = 0
        # from the map's middle up to the panel's edge, where the bug was
        for x in range(width // 2 - 40, int(panel["x"]) - 4, 24):
            for y in range(int(panel["y"]) + 60, height - 60, 60):
                editor.page.mouse.move(x, y)
                found = editor.page.evaluate(_TOOLTIP_AND_PANEL)
                if found is None:
                    continue
                shown += 1
                tip, box = found["tip"], found["panel"]
                under = tip[2] > box[0] and tip[1] < box[3] and tip[3] > box[1]
                assert not under, (width, x, y, found)
                assert tip[0] >= 0 and tip[2] <= width, (width, x, y, found)
                if shown == 1:
                    editor.screenshot(f"ea-tooltip-beside-panel-vi-{width}")
        assert shown >= 3, (width, shown)

"""Bulk organisation in the EA editor (issue #24) on a 1024×768 touch tablet in Vietnamese,
in headless Chromium: a box dragged with a finger and a lasso drawn with a mouse select the
EAs they touch / hold, the selection's count and households stay on the map, supervisor
areas and assignments are proposed, previewed, refused nothing until confirmed, then saved."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import shapely
import shapely.geometry

from tests.conftest import PgCluster
from tests.test_ea_editor import COMMUNE, Editor, _editor_over_demo, _no_english

pytest.importorskip("playwright.sync_api")

ORGANISATION = ("supervisor_area", "ea_assignment", "census_staff", "enumeration_area")


@pytest.fixture
def tablet(browser: Any, pg: PgCluster, demo_template: str) -> Iterator[Editor]:
    with _editor_over_demo(
        browser, pg, demo_template, viewport={"width": 1024, "height": 768}, has_touch=True
    ) as page:
        page.context.set_default_timeout(60_000)
        yield page


def _organisation(editor: Editor) -> tuple[Any, ...]:
    """Supervisor areas and assignments as the database holds them."""
    with psycopg.connect(editor.db) as conn:
        areas = conn.execute(
            "SELECT s.code, coalesce(st.code, ''), array_agg(e.code ORDER BY e.code)"
            " FROM supervisor_area s JOIN ea_assignment a ON a.supervisor_area_id = s.id"
            " JOIN enumeration_area e ON e.id = a.ea_id"
            " LEFT JOIN census_staff st ON st.id = s.supervisor_id GROUP BY 1, 2 ORDER BY 1"
        ).fetchall()
        assigned = conn.execute(
            "SELECT e.code, st.code FROM ea_assignment a JOIN enumeration_area e ON e.id = a.ea_id"
            " JOIN census_staff st ON st.id = a.enumerator_id ORDER BY 1"
        ).fetchall()
    return tuple(areas), tuple(assigned)


def _touch_drag(editor: Editor, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A finger pressed, moved and lifted (real touch events through the DevTools protocol)."""
    cdp = editor.context.new_cdp_session(editor.page)

    def touch(kind: str, points: list[dict[str, float]]) -> None:
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    touch("touchStart", [{"x": start[0], "y": start[1]}])
    for i in range(1, 9):
        x = start[0] + (end[0] - start[0]) * i / 8
        y = start[1] + (end[1] - start[1]) * i / 8
        touch("touchMove", [{"x": x, "y": y}])
    touch("touchEnd", [])
    cdp.detach()


def _lonlat(editor: Editor, x: float, y: float) -> tuple[float, float]:
    """The lon/lat under a page pixel of the map."""
    found = editor.js(
        f"""(() => {{ const m = window.eaEditor.map;
        const r = m.getContainer().getBoundingClientRect();
        const ll = m.containerPointToLatLng([{x} - r.left, {y} - r.top]);
        return [ll.lng, ll.lat]; }})()"""
    )
    return float(found[0]), float(found[1])


def _selected_codes(editor: Editor) -> set[str]:
    return set(
        editor.js(
            "(() => { const eas = window.eaEditor.eas();"
            " const by = Object.fromEntries(eas.map((e) => [e.id, e.code]));"
            " return window.eaEditor.selected().map((id) => by[id]); })()"
        )
    )


def test_a_supervisor_selects_by_area_and_organises_the_commune_on_a_tablet(
    tablet: Editor,
) -> None:
    eas = tablet.generate(COMMUNE)
    shapes = {f["properties"]["code"]: shapely.geometry.shape(f["geometry"]) for f in eas}
    households = {f["properties"]["code"]: f["properties"]["households"] for f in eas}
    for code, role in (("GS1", "supervisor"), ("GS2", "supervisor")) + tuple(
        (f"DTV{i:02d}", "enumerator") for i in range(1, 7)
    ):
        status, _, body = tablet.api(
            "POST",
            "/census/2029/staff",
            "editor",
            {"code": code, "name": f"Trần {code}", "role": role, "scope": COMMUNE},
        )
        assert status == 201, body
    tablet.open(f"commune={COMMUNE}&lang=vi&tab=organise")
    tablet.sign_in("editor")
    tablet.page.wait_for_selector("button.ea-org-select_rect")

    # a box dragged with a finger adds every EA it touches
    tablet.page.click("button.ea-org-select_rect")
    assert tablet.js("window.eaOrganiser.mode()") == "rect"
    box = tablet.page.locator(".leaflet-container").bounding_box()
    assert box is not None
    badge_box = tablet.page.locator(".ea-selection-badge").bounding_box()
    assert badge_box is not None  # (the mode's hint is on the map, top left)
    left = badge_box["x"] + badge_box["width"] + 30
    start = (left, box["y"] + 180)
    end = (left + 180, box["y"] + 340)
    _touch_drag(tablet, start, end)
    (x0, y0), (x1, y1) = _lonlat(tablet, *start), _lonlat(tablet, *end)
    drawn = shapely.geometry.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    touched = {c for c, s in shapes.items() if s.intersects(drawn)}
    inner = {c for c, s in shapes.items() if s.intersection(drawn).area > 1e-4 * drawn.area}
    picked = _selected_codes(tablet)
    # (EAs touching the box's edge by a pixel may go either way)
    assert inner <= picked <= touched and len(picked) >= 4, (len(inner), len(picked))
    badge = tablet.page.locator(".ea-selection-badge").inner_text()
    count, total = len(picked), round(sum(households[c] for c in picked))
    assert f"Đã chọn {count} địa bàn" in badge
    assert f"{total:,}".replace(",", ".") + " hộ" in badge
    assert tablet.page.locator(".ea-selection-line").inner_text() in badge
    tablet.screenshot("ea-bulk-01-box-selected-vi-1024")

    # a lasso drawn with a mouse adds the EAs whose centre lies inside it
    tablet.page.click("button.ea-org-select_lasso")
    assert tablet.js("window.eaOrganiser.mode()") == "lasso"
    centre = (left + 120, box["y"] + 560)
    ring = [
        (centre[0] + 70 * dx, centre[1] + 70 * dy)
        for dx, dy in ((-1, -1), (1, -1), (1, 1), (-1, 1))
    ]
    tablet.page.mouse.move(*ring[0])
    tablet.page.mouse.down()
    for point in ring[1:] + ring[:1]:
        tablet.page.mouse.move(*point, steps=5)
    tablet.page.mouse.up()
    loop = shapely.geometry.Polygon([_lonlat(tablet, *p) for p in ring])
    after = _selected_codes(tablet)
    lassoed = after - picked
    assert lassoed and all(shapes[c].intersects(loop) for c in lassoed)
    assert after >= picked
    tablet.page.click(".ea-selection-badge button.ea-select-done")
    assert tablet.js("window.eaOrganiser.mode()") is None

    # propose supervisor areas for the selection: a preview, nothing written
    before = _organisation(tablet)
    tablet.page.click("button.ea-org-propose_areas")
    tablet.page.wait_for_selector(".ea-proposal-table")
    proposal = tablet.js("window.eaOrganiser.proposal()")
    groups = [sorted(g["eas"]) for g in proposal["groups"]]
    assert sorted(c for g in groups for c in g) == sorted(after)
    assert tablet.page.locator(".ea-proposal-group").count() == len(groups)
    assert tablet.page.locator(".ea-group-label").count() >= len(groups)
    assert _organisation(tablet) == before
    tablet.screenshot("ea-bulk-02-areas-proposed-vi-1024")

    # saving asks first; a cancel writes nothing
    tablet.page.click("button.ea-org-save_areas")
    asked = tablet.confirm(False)
    assert f"Lưu {len(groups)} nhóm giám sát mới ({len(after)} địa bàn)" in asked
    assert _organisation(tablet) == before
    writes = len(tablet.js("window.eaEditor.writes"))
    tablet.page.click("button.ea-org-save_areas")
    tablet.confirm(True)
    tablet.wait_writes(writes + 1)
    areas, _ = _organisation(tablet)
    assert sorted(sorted(eas) for _, _, eas in areas) == sorted(groups)
    assert [supervisor for _, supervisor, _ in areas][:2] == ["GS1", "GS2"][: len(areas)]
    assert "Đã lưu" in tablet.page.locator(".ea-message").inner_text()

    # propose assignments for the whole commune (nothing selected): six enumerators, one or
    # two EAs each within the workload band, in one area each; the rest named, not piled up
    assert _selected_codes(tablet) == set()
    tablet.page.click("button.ea-org-propose_assignments")
    tablet.page.wait_for_selector(".ea-proposal-enumerator")
    offered = tablet.js("window.eaOrganiser.assignments()")
    people = {f"DTV{i:02d}" for i in range(1, 7)}
    assert {a["enumerator"] for a in offered["assignments"]} == people
    area_of = {ea: area for area, _, members in areas for ea in members}
    for who in people:
        mine = [a["ea"] for a in offered["assignments"] if a["enumerator"] == who]
        assert len({area_of.get(ea) for ea in mine}) == 1
        assert len(mine) == 1 or sum(households[ea] for ea in mine) <= 240
    assert sorted(offered["unassigned"] + [a["ea"] for a in offered["assignments"]]) == sorted(
        shapes
    )
    left = len(offered["unassigned"])
    assert f"Vẫn chưa giao {left} địa bàn" in tablet.page.locator(".ea-proposal").inner_text()
    tablet.screenshot("ea-bulk-03-assignments-proposed-vi-1024")
    writes = len(tablet.js("window.eaEditor.writes"))
    tablet.page.click("button.ea-org-save_assignments")
    assert "cho 6 điều tra viên" in tablet.confirm(True)
    tablet.wait_writes(writes + 1)
    _, assigned = _organisation(tablet)
    assert sorted(assigned) == sorted((a["ea"], a["enumerator"]) for a in offered["assignments"])
    # "select the unassigned" picks exactly the EAs the database holds without an enumerator
    tablet.page.click("button.ea-org-select_no_enumerator")
    assert _selected_codes(tablet) == set(shapes) - {ea for ea, _ in assigned}
    _no_english(tablet)

    # the same tab on a phone: the badge and the tools within reach
    tablet.page.set_viewport_size({"width": 390, "height": 844})
    tablet.page.wait_for_timeout(300)
    tablet.page.click("button.ea-org-select_no_area")
    assert _selected_codes(tablet) == set(shapes) - set(area_of)
    assert tablet.page.locator(".ea-selection-badge").is_visible()
    tablet.screenshot("ea-bulk-04-phone-vi-390")

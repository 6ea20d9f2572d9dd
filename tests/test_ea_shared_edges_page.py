"""Shared edges in the EA editor on a 1024×768 touch tablet, in Vietnamese: a vertex two EAs
share is dragged for both, and approving a commune that EAs do not cover warns first."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from shapely.geometry import shape

from geo_service.viewer.ea_labels import CENSUS_LABELS
from tests.conftest import PgCluster
from tests.test_ea_editor import COMMUNE, ITEMS, SMALL_COMMUNE, Editor, _editor_over_demo
from tests.test_ea_editor_walk import _frame
from tests.test_ea_shared_edges import _inward, _shared_vertex

pytest.importorskip("playwright.sync_api")

VI = CENSUS_LABELS["vi"]


@pytest.fixture
def tablet(browser: Any, pg: PgCluster, demo_template: str) -> Iterator[Editor]:
    """The editor on a 1024×768 touch screen."""
    with _editor_over_demo(
        browser, pg, demo_template, viewport={"width": 1024, "height": 768}, has_touch=True
    ) as page:
        page.context.set_default_timeout(60_000)
        yield page


def _touch_drag(editor: Editor, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A finger put down at `start`, moved to `end` and lifted (real touch events)."""
    cdp = editor.context.new_cdp_session(editor.page)
    (x0, y0), (x1, y1) = start, end
    cdp.send(
        "Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x0, "y": y0}]}
    )
    for step in range(1, 11):
        x, y = x0 + (x1 - x0) * step / 10, y0 + (y1 - y0) * step / 10
        cdp.send(
            "Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]}
        )
        editor.page.wait_for_timeout(30)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def _settled(editor: Editor, before: int) -> dict[str, Any]:
    editor.page.wait_for_function(
        f"window.eaEditor.writes.length > {before}"
        " && window.eaEditor.settled === window.eaEditor.writes.length",
        timeout=120_000,
    )
    last: dict[str, Any] = editor.js("window.eaEditor.writes.at(-1)")
    return last


def test_dragging_a_shared_vertex_inward_moves_both_eas_and_leaves_no_gap(
    tablet: Editor,
) -> None:
    eas = tablet.generate(COMMUNE)
    first, second, vertex = _shared_vertex(eas)
    tablet.open(f"commune={COMMUNE}&lang=vi")
    tablet.sign_in("editor")
    _frame(tablet, shape(first["geometry"]).union(shape(second["geometry"])))
    tablet.js(f"window.eaEditor.select({first['id']}, false)")
    tablet.page.tap("button.ea-edit_shape")
    target = _inward(first, vertex)
    start, end = tablet.pixels([vertex, target])
    _touch_drag(tablet, start, end)
    tablet.page.wait_for_function(f"window.eaEditor.movedTogether.includes({second['id']})")
    together = tablet.page.locator(".ea-moved-together").inner_text()
    assert second["properties"]["code"] in together and together.startswith("Cùng sửa")
    tablet.screenshot("ea-shared-vertex-dragged-vi-1024")
    before = tablet.js("window.eaEditor.writes.length")
    tablet.page.tap("button.ea-save_shape")
    saved = _settled(tablet, before)
    assert saved["status"] == 200, saved
    assert saved["path"].endswith("/collections/enumeration-areas/reshape")
    tablet.screenshot("ea-shared-vertex-saved-vi-1024")
    with psycopg.connect(tablet.db) as conn:
        rows: dict[int, int] = dict(
            conn.execute(
                "SELECT id, version FROM enumeration_area WHERE id = ANY(%s)",
                ([first["id"], second["id"]],),
            ).fetchall()
        )
    assert rows == {first["id"]: 2, second["id"]: 2}
    _, _, report = tablet.api("GET", f"/communes/{COMMUNE}/ea-coverage?round=2029", "editor")
    assert report["complete"], (report["gaps"], report["overlaps"])
    _, _, now = tablet.api("GET", f"{ITEMS}/{first['id']}", "editor")
    assert shape(now["geometry"]).area < shape(first["geometry"]).area  # it did move inward
    assert tablet.page.locator(".ea-message.ea-ok").inner_text().startswith(VI["saved_n"][:6])


def test_approving_a_commune_that_is_not_covered_warns_and_names_the_gap(tablet: Editor) -> None:
    eas = tablet.generate(SMALL_COMMUNE)
    gone = eas[len(eas) // 2]
    kept = [f for f in eas if f["id"] != gone["id"]]
    with psycopg.connect(tablet.db, autocommit=True) as conn:  # (all submitted by the editor)
        # (a hole made in the database: the API refuses a delete that opens a gap)
        conn.execute("DELETE FROM enumeration_area WHERE id = %s", (gone["id"],))
        conn.execute("UPDATE enumeration_area SET status = 'submitted', version = version + 1")
    tablet.open(f"commune={SMALL_COMMUNE}&lang=vi")
    tablet.sign_in("supervisor")
    tablet.page.wait_for_selector(".ea-badge.ea-incomplete")
    before = tablet.tables()
    # one EA: warned, cancelled, nothing written
    tablet.js(f"window.eaEditor.select({kept[0]['id']}, false)")
    tablet.page.tap("button.ea-approve")
    text = tablet.confirm(answer=False)
    assert "chưa phủ kín" in text and kept[0]["properties"]["code"] in text, text
    # all: warned with the area in no EA and where it is, cancelled, nothing written
    tablet.page.tap("button.ea-approve_all")
    dialog = tablet.page.locator(".ea-modal")
    dialog.wait_for(state="visible")
    text = dialog.inner_text()
    assert "chưa phủ kín" in text and str(len(kept)) in text, text
    assert tablet.js("window.eaEditor.findings()") >= 1  # the gap ringed on the map
    tablet.screenshot("ea-approve-uncovered-warning-vi-1024")
    assert tablet.page.locator(".ea-confirm-ok").inner_text() == VI["approve_anyway"]
    tablet.page.tap(".ea-confirm-cancel")
    dialog.wait_for(state="detached")
    assert tablet.tables() == before
    # approved anyway: every EA in one request, the history saying the commune was not covered
    writes = tablet.js("window.eaEditor.writes.length")
    tablet.page.tap("button.ea-approve_all")
    tablet.confirm()
    done = _settled(tablet, writes)
    assert done["status"] == 200 and done["path"].split("?")[0].endswith("/ea-approve"), done
    with psycopg.connect(tablet.db) as conn:
        statuses = conn.execute(
            "SELECT status, count(*) FROM enumeration_area GROUP BY status"
        ).fetchall()
        reasons = conn.execute(
            "SELECT DISTINCT reason FROM ea_history WHERE action = 'approve'"
        ).fetchall()
    assert statuses == [("approved", len(kept))]
    ((reason,),) = reasons
    assert "not fully covered" in reason and "acknowledged by sup" in reason

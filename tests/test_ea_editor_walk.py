"""What a census team's walk through the EA editor on a 1024×768 touch screen found (issue
#24's "Done when"), checked in headless Chromium with real taps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import shapely
import shapely.geometry

from geo_service.viewer.ea_labels import CENSUS_LABELS
from tests.conftest import PgCluster
from tests.test_ea_editor import COMMUNE, PASSWORD, Editor, _commune, _editor_over_demo

pytest.importorskip("playwright.sync_api")


@pytest.fixture
def tablet(browser: Any, pg: PgCluster, demo_template: str) -> Iterator[Editor]:
    """The editor on a 1024×768 touch screen, the commune's EAs generated."""
    with _editor_over_demo(
        browser, pg, demo_template, viewport={"width": 1024, "height": 768}, has_touch=True
    ) as page:
        page.context.set_default_timeout(60_000)
        yield page


def _shapes(eas: list[dict[str, Any]]) -> dict[int, Any]:
    return {f["id"]: shapely.geometry.shape(f["geometry"]) for f in eas}


def _touching_run(shapes: dict[int, Any], size: int) -> list[int]:
    """`size` EAs, each sharing an edge with one before it."""
    run = [min(shapes)]
    while len(run) < size:
        touching = [
            i
            for i in shapes
            if i not in run and any(shapes[i].intersection(shapes[j]).length > 0 for j in run)
        ]
        run.append(min(touching, key=lambda i: shapes[i].distance(shapes[run[0]])))
    return run


def _frame(editor: Editor, shape: Any) -> None:
    """Show `shape` on the map, left of the panel."""
    west, south, east, north = shape.bounds
    editor.js(
        f"window.eaEditor.map.fitBounds([[{south}, {west}], [{north}, {east}]],"
        " {paddingTopLeft: [60, 60], paddingBottomRight: [420, 60]})"
    )
    editor.page.wait_for_timeout(500)


def _tap(editor: Editor, shape: Any) -> None:
    """Tap the EA at a person's pace (two taps within 200 ms are a double tap: a zoom)."""
    point = shape.representative_point()
    editor.page.wait_for_timeout(400)
    editor.page.touchscreen.tap(*editor.pixels([(point.x, point.y)])[0])
    editor.page.wait_for_timeout(400)


def _in_sight(editor: Editor, selector: str) -> bool:
    """Whether the element is inside the panel's visible part and the window."""
    return bool(
        editor.js(
            f"""(() => {{
            const el = document.querySelector({selector!r});
            const panel = document.querySelector('#ea-panel');
            if (!el || !panel) return false;
            const a = el.getBoundingClientRect(), p = panel.getBoundingClientRect();
            return a.height > 0 && a.top >= p.top - 1 && a.bottom <= p.bottom + 1
                && a.bottom <= window.innerHeight;
        }})()"""
        )
    )


def test_a_supervisor_area_is_grouped_by_tapping_on_the_organise_tab(tablet: Editor) -> None:
    shapes = _shapes(tablet.generate(COMMUNE))
    run = _touching_run(shapes, 3)
    tablet.open(f"commune={COMMUNE}&lang=vi")
    tablet.sign_in("editor")
    tablet.page.tap("button.ea-tab-organise")
    _frame(tablet, shapely.union_all([shapes[i] for i in run]))
    # "select several" is on this tab too: without it each tap replaced the selection
    tablet.page.tap("button.ea-multi")
    for ea_id in run:
        _tap(tablet, shapes[ea_id])
    assert sorted(tablet.js("window.eaEditor.selected()")) == sorted(run)
    tablet.page.tap("button.ea-make_area")
    tablet.wait_writes(1)
    assert tablet.js("window.eaEditor.writes.at(-1).status") == 201
    with psycopg.connect(tablet.db) as conn:
        grouped = {
            row[0]
            for row in conn.execute(
                "SELECT ea_id FROM ea_assignment WHERE supervisor_area_id IS NOT NULL"
            )
        }
    assert grouped == set(run)


def test_a_refusal_stays_in_sight_in_a_long_panel(tablet: Editor) -> None:
    shapes = _shapes(tablet.generate(COMMUNE))
    # two EAs that do not touch: a supervisor area of them is refused
    first = min(shapes)
    far = max(shapes, key=lambda i: shapes[i].distance(shapes[first]))
    tablet.open(f"commune={COMMUNE}&lang=vi")
    tablet.sign_in("editor")
    tablet.page.tap("button.ea-tab-organise")
    tablet.js(f"window.eaEditor.select({first}, false)")
    tablet.js(f"window.eaEditor.select({far}, true)")
    tablet.page.tap("button.ea-make_area")
    written = tablet.wait_writes(1)
    assert written["status"] >= 400, written
    # the Organise tab (areas, workload, staff, the staff form, the listing upload) is
    # longer than a tablet's panel; the refusal, after it, is still in sight
    assert (
        tablet.page.locator(".ea-message.ea-error")
        .inner_text()
        .startswith(CENSUS_LABELS["vi"]["not_saved"])
    )
    assert _in_sight(tablet, ".ea-message.ea-error")


def test_a_tablet_opens_a_commune_beside_the_panel(tablet: Editor) -> None:
    shapes = _shapes(tablet.generate(COMMUNE))
    tablet.open(f"commune={COMMUNE}&lang=vi")
    # a wrong password is a failed sign-in, not a failed save
    tablet.page.fill("input[name=username]", "ed")
    tablet.page.fill("input[name=password]", PASSWORD + "x")
    tablet.page.tap("button.ea-sign_in")
    tablet.page.wait_for_selector(".ea-message.ea-error")
    said = tablet.page.locator(".ea-message.ea-error").inner_text()
    assert said.startswith(CENSUS_LABELS["vi"]["sign_in_failed"] + ":"), said
    assert CENSUS_LABELS["vi"]["not_saved"] not in said
    # the whole commune is drawn in the part of the map the panel leaves free
    west, south, east, north = _commune(tablet.db, COMMUNE).bounds
    panel = tablet.page.locator(".ea-panel-wrap").bounding_box()
    assert panel is not None
    (left, top), (right, bottom) = tablet.pixels([(west, north), (east, south)])
    assert 0 <= left and right <= panel["x"], (left, right, panel)
    assert 0 <= top and bottom <= 768, (top, bottom)
    # a tapped EA is selected without the browser's focus rectangle around it
    first = min(shapes)
    _frame(tablet, shapes[first])
    _tap(tablet, shapes[first])
    assert tablet.js("window.eaEditor.selected()") == [first]
    focused = tablet.js(
        "(() => { const a = document.activeElement;"
        " return [a.tagName, getComputedStyle(a).outlineStyle]; })()"
    )
    assert focused[0] != "path" or focused[1] == "none", focused

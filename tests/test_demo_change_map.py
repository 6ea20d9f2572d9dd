"""The planner's walk on the default demo (no --history): one ward charted over two periods
and the change between them mapped, from the 2009 census population carried onto the 2025
communes that the demo ships (data/vn/population-2009-communes-2025.csv)."""

from __future__ import annotations

import csv
import json
import urllib.request
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest

from geo_service.demo import CARRIED_2009, DATA_DIR
from geo_service.viewer.data import compact
from tests.browser import PHONE, Viewer

pytest.importorskip("playwright.sync_api")

WARD = "26740"  # Phường Sài Gòn (Thành phố Hồ Chí Minh)
CHANGE = "vintage=2025&level=commune&indicator=population&period=2025&compare=2009"


def _get(base: str, path: str, **params: str) -> Any:
    with urllib.request.urlopen(f"{base}{path}?{urlencode(params)}") as response:
        return json.load(response)


def test_the_demo_has_two_periods_of_the_communes_population(demo_ro: str) -> None:
    with psycopg.connect(demo_ro) as conn:
        periods = conn.execute(
            "SELECT period, count(*), count(*) FILTER (WHERE status = 'not_available')"
            " FROM indicator_value WHERE indicator = 'population' AND vintage = '2025'"
            " AND level = 'commune' GROUP BY period ORDER BY period"
        ).fetchall()
        derivation = conn.execute(
            "SELECT derivation FROM indicator_series WHERE indicator = 'population'"
            " AND vintage = '2025' AND level = 'commune'"
        ).fetchone()
    assert periods == [("2009", 3321, 102), ("2025", 3321, 0)]
    # recorded as what it is: the 2009 census carried over, not an observation of 2025 units
    assert derivation is not None
    made = derivation[0]
    assert made["method"] == "carry-over" and made["from_vintage"] == "2009"
    assert made["periods"] == ["2009"] and made["weight"] == "population"
    assert made["shipped_as"] == f"data/vn/{CARRIED_2009}"
    with (DATA_DIR / CARRIED_2009).open(encoding="utf-8") as f:
        shipped = {r["code"]: r["population"] for r in csv.DictReader(f)}
    assert len(shipped) == 3321 and sum(1 for v in shipped.values() if not v) == 102


def test_a_ward_is_charted_over_time_and_its_change_mapped(browser: Any, live_server: str) -> None:
    viewer = Viewer(browser, live_server)
    try:
        viewer.open(f"{CHANGE}&unit={WARD}&lang=vi")
        # the ward's chart: both periods, as the API gives them
        viewer.page.wait_for_selector(".gv-chart .gv-point-unit")
        profile = _get(
            live_server,
            "/maps/profile",
            collection="commune-2025",
            indicator="population",
            unit=WARD,
        )
        points = viewer.js(
            "[...document.querySelectorAll('.gv-chart .gv-point-unit')]"
            ".map(p => [p.dataset.period, Number(p.dataset.value)])"
        )
        series = [(p["period"], p["value"]) for p in profile["unit"]["series"]]
        assert [p for p, _ in series] == ["2009", "2025"]
        assert points == [[p, pytest.approx(v)] for p, v in series]
        # the change map: every ward coloured by its class of the change the API serves
        params = {
            "collection": "commune-2025",
            "indicator": "population",
            "period": "2025",
            "compare": "2009",
        }
        change = _get(live_server, "/maps/values", **params)
        classes = _get(live_server, "/maps/choropleth", **params)
        shown = viewer.js("window.geoViewer.app.classes")
        assert shown["classes"] == classes["classes"]
        assert classes["compare"]["period"] == "2009"
        value = dict(zip(change["codes"], change["values"], strict=True))
        assert value[WARD] is not None
        fills = viewer.js(
            "Object.fromEntries([...window.geoViewer.app.lookup.keys()]"
            ".map(c => [c, window.geoViewer.fillOf(c)]))"
        )
        decline = {c["colour"] for c in classes["classes"] if c["upper"] < 0}
        grew = fell = 0
        for code, v in value.items():
            if v is None:
                continue
            # (a limit compared as the table keeps values: a unit whose value is a class's
            # limit belongs to that class, though its value was rounded past the limit)
            expected = next(
                (
                    c["colour"]
                    for c in classes["classes"]
                    if v <= compact(c["upper"], change["precision"])
                ),
                classes["classes"][-1]["colour"],
            )
            assert fills[code] == expected, (code, v)
            if v > 0:
                grew += 1
                assert fills[code] not in decline, (code, v)
            elif v < 0:
                fell += 1
        assert grew > 100 and fell > 100  # real changes both ways
        # the legend says what is mapped, in Vietnamese
        legend = viewer.page.locator(".gv-legend").inner_text()
        assert "Thay đổi" in legend and "2009 → 2025" in legend
        # the unit panel says the 2009 figures were carried over onto today's units
        assert not viewer.errors, viewer.errors
        viewer.screenshot("map-demo-change-2009-2025")
    finally:
        viewer.close()


def test_the_change_map_on_a_phone_leaves_the_map_visible(browser: Any, live_server: str) -> None:
    phone = Viewer(browser, live_server, *PHONE)
    try:
        phone.open(f"{CHANGE}&lang=vi")
        container = phone.js("window.geoViewer.map.getContainer().getBoundingClientRect().toJSON()")
        assert container["width"] == 390 and container["height"] > 600
        assert phone.js(
            "window.geoViewer.map.getContainer().contains(document.elementFromPoint(195, 350))"
        )
        assert phone.js("window.geoViewer.app.classes.compare.period") == "2009"
        assert not phone.errors, phone.errors
        phone.screenshot("phone-demo-change-2009-2025")
    finally:
        phone.close()

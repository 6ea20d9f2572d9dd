"""The pages allow no inline script but their own, and text from data is shown as text:
a unit name or an EA's reason holding HTML never runs script in anyone's browser."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from boundaries.checks import FieldMap
from boundaries.load import LoadOptions, load_boundaries
from geo_service.users import add_user
from tests.conftest import PgCluster, serve

pytest.importorskip("playwright.sync_api")

# Onerror handlers and script elements in names: any of them running sets window.__xss.
HOSTILE = (
    'Hà <img src=x onerror="window.__xss=1"> Nội <script>window.__xss=2</script>'
    "</textarea><b>bold</b>"
)
PAGES = (
    "/map?level=province",
    "/map?level=commune&lang=en",
    "/map/ea?commune=00004",
    "/map/ea",
    "/api.html",
    "/?f=html",
)


def _script_sources(csp: str) -> list[str]:
    directive = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
    return directive.split()[1:]


def _inline_scripts(html: str) -> list[str]:
    scripts = re.findall(r"<script(?P<attrs>[^>]*)>(?P<body>.*?)</script>", html, re.DOTALL)
    return [
        body for attrs, body in scripts if "src=" not in attrs and "application/json" not in attrs
    ]


@pytest.mark.parametrize("path", PAGES)
def test_pages_allow_only_their_own_inline_scripts(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200
    sources = _script_sources(page.headers["content-security-policy"])
    assert "'unsafe-inline'" not in sources and "'unsafe-eval'" not in sources
    hashes = {
        f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
        for body in _inline_scripts(page.text)
    }
    assert set(sources) == {"'self'", *hashes}


def test_other_html_gets_a_csp_without_inline_script(client: TestClient) -> None:
    # (an HTML page that brings no CSP of its own: the default one allows no inline script)
    csp = client.get("/static/vendor/README.md").headers.get("content-security-policy")
    assert csp is None or "'unsafe-inline'" not in _script_sources(csp)


@pytest.mark.parametrize("path", ["maplibre-gl/maplibre-gl.js", "ol/ol.js"])
def test_test_only_map_libraries_are_not_served(client: TestClient, path: str) -> None:
    # (they name internet hosts; only the interoperability tests load them, from tests/vendor)
    assert client.get(f"/static/vendor/{path}").status_code == 404
    assert (Path(__file__).parent / "vendor" / path).is_file()


def test_page_settings_are_data_not_script(client: TestClient) -> None:
    page = client.get("/map", params={"level": "province"}).text
    blocks = re.findall(
        r"<script type='application/json' id='geo-viewer-config'>(.*?)</script>", page, re.DOTALL
    )
    assert len(blocks) == 1 and "<" not in blocks[0]
    assert json.loads(blocks[0])["params"]["level"] == "province"
    assert all("geo-viewer-config" not in body for body in _inline_scripts(page))


class Page:
    """A Chromium page that records script errors and CSP refusals."""

    def __init__(self, browser: Any, bypass_csp: bool):
        self.context = browser.new_context(
            viewport={"width": 1280, "height": 900}, bypass_csp=bypass_csp
        )
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.refused: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on(
            "console",
            lambda m: self.refused.append(m.text) if "Content Security Policy" in m.text else None,
        )

    def wait_for(self, expression: str) -> None:
        # polled from here: evaluate() runs under any CSP, a page-side wait might not
        self.page.wait_for_timeout(50)
        for _ in range(600):
            if self.page.evaluate(expression):
                return
            self.page.wait_for_timeout(50)
        raise AssertionError(f"never true: {expression}")

    def close(self) -> None:
        self.context.close()


@pytest.mark.parametrize(
    "path, ready",
    [
        ("/map?level=province", "window.geoViewer && window.geoViewer.ready"),
        ("/map?level=commune", "window.geoViewer && window.geoViewer.tilesLoaded"),
        ("/map/ea?commune=00004", "window.eaEditor && window.eaEditor.ready"),
    ],
)
def test_pages_work_under_their_csp(browser: Any, live_server: str, path: str, ready: str) -> None:
    page = Page(browser, bypass_csp=False)
    try:
        page.page.goto(live_server + path)
        page.wait_for(ready)
        assert page.errors == [] and page.refused == []
    finally:
        page.close()


def _reload_provinces_from_a_file(conn: psycopg.Connection, folder: Path) -> None:
    """The 2025 provinces written to a GeoJSON file, province 01 named HOSTILE, and loaded
    again from it by the boundary loader (as an operator would load a file)."""
    rows = conn.execute(
        "SELECT code, name, unit_type, ST_AsGeoJSON(geom) FROM admin_unit"
        " WHERE vintage = '2025' AND level = 'province' ORDER BY code"
    ).fetchall()
    features = [
        {
            "type": "Feature",
            "properties": {"ma": code, "ten": HOSTILE if code == "01" else name, "loai": kind},
            "geometry": json.loads(geometry),
        }
        for code, name, kind, geometry in rows
    ]
    path = folder / "provinces.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    options = LoadOptions("2025", "province", FieldMap("ma", "ten", None, "loai"), replace=True)
    load_boundaries(conn, [path], options)


@pytest.fixture
def hostile_service(
    pg: PgCluster, demo_template: str, tmp_path: Path
) -> Iterator[tuple[str, str, tuple[float, float]]]:
    """A live service whose province 01 (loaded from a file) and commune 00004 have hostile
    names; yields its URL, an editor's token and a point well inside the commune."""
    db = pg.create_database(demo_template)
    with psycopg.connect(db, autocommit=True) as conn:
        _reload_provinces_from_a_file(conn, tmp_path)
        conn.execute(
            "UPDATE admin_unit SET name = %s WHERE vintage = '2025' AND code = '00004'",
            (HOSTILE,),
        )
        token = add_user(conn, "ed", "editor", ["01"])
        row = conn.execute(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p"
            " FROM commune_coverage WHERE code = '00004') t"
        ).fetchone()
        assert row is not None
    try:
        with serve(db) as base:
            yield base, token, (float(row[0]), float(row[1]))
    finally:
        pg.drop_database(db)


def _create_ea(base: str, token: str, inside: tuple[float, float]) -> int:
    x, y, d = *inside, 0.0003
    feature = {
        "type": "Feature",
        "properties": {"census_round": "2029", "commune_code": "00004", "reason": HOSTILE},
        "geometry": {
            "type": "Polygon",
            "coordinates": [
                [[x - d, y - d], [x + d, y - d], [x + d, y + d], [x - d, y + d], [x - d, y - d]]
            ],
        },
    }
    request = urllib.request.Request(
        f"{base}/collections/enumeration-areas/items",
        data=json.dumps(feature).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        return int(json.load(response)["id"])


def test_html_in_names_and_reasons_shows_as_text(
    browser: Any, hostile_service: tuple[str, str, tuple[float, float]]
) -> None:
    base, token, inside = hostile_service
    ea_id = _create_ea(base, token, inside)
    # the CSP bypassed: only the escaping stands between the data and a running script
    page = Page(browser, bypass_csp=True)
    try:
        page.page.goto(f"{base}/map?level=province&lang=vi&tab=table")
        page.wait_for("window.geoViewer && window.geoViewer.ready")
        page.page.wait_for_selector(".gv-rank-table tbody tr")
        assert HOSTILE in page.page.locator(".gv-rank-table").inner_text()
        # the hover card, the selected unit's name on the map and in the panel
        page.page.evaluate(
            "window.geoViewer.app.panel.hover({code: '01', name: window.geoViewer.app"
            ".tables['province-2025'].names[0]}, window.geoViewer.map.getCenter())"
        )
        assert HOSTILE in page.page.locator(".gv-tip").first.inner_text()
        page.page.evaluate("window.geoViewer.app.select('01')")
        page.wait_for("window.geoViewer.app.selected !== null")
        page.page.wait_for_selector(".gv-label-selected")
        assert page.page.locator(".gv-label-selected").inner_text() == HOSTILE
        page.page.click("#gv-tabbtn-unit")
        page.page.wait_for_selector(".gv-unit-name")
        assert page.page.locator(".gv-unit-name").first.inner_text() == HOSTILE
        page.page.fill("input[name=q]", "01")
        page.page.click("button.gv-search")
        page.wait_for("window.geoViewer.lastZoomed === '01'")
        page.page.fill("input[name=q]", "img")
        page.page.wait_for_selector(".gv-hit")
        assert HOSTILE in page.page.locator(".gv-hit").first.inner_text()

        page.page.goto(f"{base}/map/ea?commune=00004&lang=vi")
        page.wait_for("window.eaEditor && window.eaEditor.ready")
        assert HOSTILE in page.page.locator(".ea-panel h3").inner_text()
        page.page.click("details.ea-token summary")
        page.page.fill("input[name=token]", token)
        page.page.click("button.ea-token_sign_in")
        page.wait_for("window.eaEditor.user() !== null")
        page.page.evaluate(f"window.eaEditor.select({ea_id}, false)")
        page.page.click("button.ea-history")
        page.page.wait_for_selector("table.ea-history-table")
        assert HOSTILE in page.page.locator("table.ea-history-table").inner_text()

        assert page.page.evaluate("window.__xss") is None
        assert page.page.evaluate("document.querySelectorAll('img[src=x]').length") == 0
        assert (
            page.page.evaluate(
                "[...document.querySelectorAll('b')].some((b) => b.textContent === 'bold')"
            )
            is False
        )
        assert page.errors == []
    finally:
        page.close()

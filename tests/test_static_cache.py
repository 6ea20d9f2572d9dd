"""Static files: pages load them under a versioned prefix that browsers keep for good, so a
second visit of the map fetches no script, module or stylesheet again."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from geo_service.http.static import IMMUTABLE, REVALIDATE
from geo_service.viewer.assets import static_version
from tests.browser import Viewer

_ASSET = re.compile(r"""(?:src|href)=['"]([^'"]*/static/[^'"]+)['"]""")


def _assets(html: str) -> list[str]:
    return _ASSET.findall(html)


@pytest.mark.parametrize("path", ["/map?lang=vi", "/map/ea?lang=vi"])
def test_pages_load_static_files_under_this_release_version(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200
    assets = _assets(page.text)
    assert assets, "the page links no static file"
    prefix = f"/static/v/{static_version()}/"
    assert all(prefix in url for url in assets), assets
    for url in assets:
        response = client.get(url[url.index("/static/") :])
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == IMMUTABLE, url


def test_the_module_graph_is_preloaded(client: TestClient) -> None:
    page = client.get("/map?lang=vi").text
    preloaded = re.findall(r"<link rel='modulepreload' href='([^']+)'>", page)
    for module in ("viewer/main.js", "viewer/chart.js", "api.js", "dom.js", "state.js"):
        assert any(url.endswith(f"/js/{module}") for url in preloaded), module


def test_unversioned_and_old_urls_are_revalidated(client: TestClient) -> None:
    version = static_version()
    current = client.get(f"/static/v/{version}/js/viewer/main.js")
    old = client.get("/static/v/0123456789abcdef/js/viewer/main.js")
    plain = client.get("/static/js/viewer/main.js")
    assert current.text == old.text == plain.text
    assert current.headers["cache-control"] == IMMUTABLE
    # (a page opened before a release still gets today's files, but never keeps them)
    assert old.headers["cache-control"] == REVALIDATE
    assert plain.headers["cache-control"] == REVALIDATE
    assert client.get(f"/static/v/{version}/js/nothing.js").status_code == 404
    assert client.get("/static/v/not-a-version/js/viewer/main.js").status_code == 404
    assert client.get(f"/static/v/{version}/../../settings.py").status_code == 404


def test_a_second_visit_fetches_no_static_file_again(browser: Any, live_server: str) -> None:
    viewer = Viewer(browser, live_server)
    try:
        viewer.open("level=province&indicator=density&lang=vi")
        viewer.open("level=province&indicator=density&lang=vi")
        # what the second visit loaded: a file from the browser's cache transfers 0 bytes
        # (a revalidated one transfers its headers)
        entries = viewer.js(
            "performance.getEntriesByType('resource')"
            ".filter(e => e.name.includes('/static/'))"
            ".map(e => [e.name, e.transferSize, e.decodedBodySize])"
        )
        # every static file comes from this release's versioned path
        prefix = f"{live_server}/static/v/{static_version()}/"
        assert entries and all(name.startswith(prefix) for name, _, _ in entries), entries
        modules = [name for name, _, _ in entries if name.endswith(".js")]
        assert any(name.endswith("/js/viewer/main.js") for name in modules), entries
        assert any(name.endswith("/js/viewer/chart.js") for name in modules), entries
        fetched = [name for name, transferred, _ in entries if transferred > 0]
        assert not fetched, f"fetched again on the second visit: {fetched}"
        assert not viewer.errors, viewer.errors
    finally:
        viewer.close()

"""The map viewer's About tab as a planner reads it (issue #23's walk), in headless
Chromium over the shipped demo."""

from __future__ import annotations

import pytest

from geo_service.viewer.labels import LABELS
from tests.browser import Viewer

pytest.importorskip("playwright.sync_api")


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_a_carried_series_says_how_without_empty_brackets(viewer: Viewer, lang: str) -> None:
    # the 2009 population carried onto the 2025 communes ships without the date its
    # crosswalk was built: the About tab said "crosswalk computed from geometry ()"
    viewer.open(f"level=commune&indicator=population&period=2025&tab=about&lang={lang}")
    about = viewer.page.locator(".gv-meta").inner_text()
    assert LABELS[lang]["xw_computed"] in about
    assert "()" not in about

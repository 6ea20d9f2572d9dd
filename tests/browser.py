"""One page of the map viewer in the suite's headless Chromium, recording what it asked for
and the script errors it met (the `viewer` and `phone` fixtures of tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
PHONE = (390, 844)  # a phone held upright


class Viewer:
    """One page of the viewer with a record of every request it made."""

    def __init__(self, browser: Any, base: str, width: int = 1366, height: int = 768):
        self.base = base
        # bypass_csp: Playwright evaluates test expressions with eval(); the page's CSP is
        # checked on its own in test_pages_security
        self.context = browser.new_context(
            viewport={"width": width, "height": height}, bypass_csp=True
        )
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, query: str, path: str = "/map") -> None:
        self.page.goto(f"{self.base}{path}?{query}")
        # (generous: the shared test machine is sometimes loaded far beyond its two cores)
        self.page.wait_for_function("window.geoViewer && window.geoViewer.ready", timeout=120_000)

    def js(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def recoloured(self, after: int) -> None:
        """Wait until the map was coloured again since `after` colourings."""
        self.page.wait_for_function(f"window.geoViewer.recoloured > {after}", timeout=30_000)

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))

    def close(self) -> None:
        self.context.close()

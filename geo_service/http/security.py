"""Security headers, and the Content-Security-Policy of the HTML pages.

Pages allow no inline script but the ones the service itself wrote (Folium's map set-up,
Swagger UI's initialiser), named by their SHA-256 hashes; data reaches pages only as JSON
in a `<script type="application/json">` block, which is never run.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from fastapi.responses import HTMLResponse
from starlette.datastructures import MutableHeaders

_SCRIPT_TYPES = ("", "text/javascript", "application/javascript", "module")


class _InlineScripts(HTMLParser):
    """The text of every script element a browser would run inline (no src, a script type)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._current: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Start collecting an inline script's text."""
        if tag != "script":
            return
        named = dict(attrs)
        kind = (named.get("type") or "").strip().lower()
        self._current = [] if "src" not in named and kind in _SCRIPT_TYPES else None

    def handle_data(self, data: str) -> None:
        """Collect the script's text (it may come in several pieces)."""
        if self._current is not None:
            self._current.append(data)

    def handle_endtag(self, tag: str) -> None:
        """End of a script: keep its text."""
        if tag == "script" and self._current is not None:
            self.found.append("".join(self._current))
            self._current = None


def content_security_policy(
    basemap_url: str | None = None, script_hashes: Iterable[str] = ()
) -> str:
    """The CSP of an HTML page: the service's own origin only (plus a base map's images),
    and the inline scripts with these hashes."""
    images = "'self' data: blob:"
    if basemap_url:
        images += " " + _source_of(basemap_url)
    scripts = " ".join(["'self'", *(f"'sha256-{h}'" for h in script_hashes)])
    # (inline styles stay allowed: Leaflet positions every tile and marker with them)
    return (
        f"default-src 'self'; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
        f"img-src {images}; font-src 'self' data:; connect-src 'self'; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
    )


def _source_of(url_template: str) -> str:
    """A CSP source for a tile URL template such as https://{s}.tile.example.org/{z}/…."""
    parts = urlsplit(url_template)
    host = parts.netloc
    if host.startswith("{") and "}." in host:
        host = "*." + host.split("}.", 1)[1]  # a subdomain placeholder: CSP's leading wildcard
    if not parts.scheme or "{" in host:
        return f"{parts.scheme or 'https'}:"
    return f"{parts.scheme}://{host}"


def inline_script_hashes(html: str) -> list[str]:
    """The base64 SHA-256 of every inline script of a page, as CSP names them."""
    parser = _InlineScripts()
    parser.feed(html)
    parser.close()
    return [
        base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() for body in parser.found
    ]


def page_response(html: str, basemap_url: str | None = None) -> HTMLResponse:
    """An HTML page whose CSP allows exactly its own inline scripts."""
    csp = content_security_policy(basemap_url, inline_script_hashes(html))
    return HTMLResponse(html, headers={"Content-Security-Policy": csp})


class SecurityHeaders:
    """ASGI middleware: nosniff and referrer policy on every response; a CSP without any
    inline script and framing limits on HTML that does not bring its own."""

    def __init__(self, app: Any, basemap_url: str | None = None) -> None:
        self.app = app
        self.csp = content_security_policy(basemap_url)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Pass the request on, amending its response headers."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", self.csp)
                    headers.setdefault("X-Frame-Options", "SAMEORIGIN")
            await send(message)

        await self.app(scope, receive, send_with_headers)

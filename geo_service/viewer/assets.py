"""Point Folium pages at the Leaflet assets vendored under `static/vendor` instead of CDNs."""

from __future__ import annotations

import hashlib
import re
from functools import cache
from html.parser import HTMLParser
from pathlib import Path

import folium
from branca.element import CssLink, Figure, JavascriptLink, Link
from folium.elements import JSCSSMixin

VENDOR_PREFIX = "/static/vendor"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
# Pages load the static files under `/static/v/<version>/`: a path prefix, not `?v=`, so that
# the relative imports between ES modules and the url() of stylesheets carry the version too.
VERSIONED_PREFIX = "/static/v"


@cache
def static_version(directory: Path = STATIC_DIR) -> str:
    """A digest of every file under `directory` (names and contents), read once per process:
    a new release changes it, so browsers may keep what they fetched under it for good."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def static_root(api: str) -> str:
    """The URL prefix of this release's static files (versioned, cached for good)."""
    return f"{api.rstrip('/')}{VERSIONED_PREFIX}/{static_version()}"


# (Folium's name for the asset, path under the vendor folder), in load order. Using Folium's
# names means the same asset required by several elements is linked once in the page header.
_JS = (
    ("leaflet", "leaflet/leaflet.js"),
    ("leaflet_draw_js", "leaflet-draw/leaflet.draw.js"),
    ("vectorGrid", "leaflet.vectorgrid/Leaflet.VectorGrid.bundled.min.js"),
)
_CSS = (
    ("leaflet_css", "leaflet/leaflet.css"),
    ("leaflet_draw_css", "leaflet-draw/leaflet.draw.css"),
)
# Folium defaults that a page without folium.Popup, folium.Icon, keep_in_front or
# GeoJson(embed=False) never uses (only those templates call jQuery / AwesomeMarkers).
_UNUSED = frozenset(
    {
        "jquery",
        "bootstrap",
        "awesome_markers",
        "bootstrap_css",
        "glyphicons_css",
        "awesome_markers_font_css",
        "awesome_markers_css",
        "awesome_rotate_css",
    }
)
_EXTERNAL = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)""", re.IGNORECASE)


def local_js(prefix: str = VENDOR_PREFIX) -> list[tuple[str, str]]:
    """(name, url) of the vendored Leaflet, Leaflet.draw and VectorGrid scripts, in load order."""
    base = prefix.rstrip("/")
    return [(name, f"{base}/{path}") for name, path in _JS]


def local_css(prefix: str = VENDOR_PREFIX) -> list[tuple[str, str]]:
    """(name, url) of the vendored Leaflet and Leaflet.draw stylesheets."""
    base = prefix.rstrip("/")
    return [(name, f"{base}/{path}") for name, path in _CSS]


def _check_known(owner: str, names: set[str]) -> None:
    """Refuse assets that are neither vendored nor known to be unused."""
    unknown = names - {n for n, _ in _JS} - {n for n, _ in _CSS} - _UNUSED
    if unknown:
        raise ValueError(f"{owner} needs assets that are not vendored: {sorted(unknown)}")


def make_offline(element: folium.Element, prefix: str = VENDOR_PREFIX) -> None:
    """Make a Map, plugin or Figure load only the vendored assets (and no jQuery/Bootstrap)."""
    if isinstance(element, JSCSSMixin):
        _check_known(
            type(element).__name__,
            {n for n, _ in element.default_js} | {n for n, _ in element.default_css},
        )
        element.default_js = local_js(prefix)
        element.default_css = local_css(prefix)
    elif isinstance(element, Figure):
        # Links already put in the header (by an earlier render) are swapped or dropped too.
        local = dict(local_js(prefix) + local_css(prefix))
        links = {
            name: child
            for name, child in element.header._children.items()
            if isinstance(child, Link) and _EXTERNAL.match(child.url)
        }
        _check_known("Figure", set(links))
        for name, child in links.items():
            if name in local:
                kind = JavascriptLink if isinstance(child, JavascriptLink) else CssLink
                element.header.add_child(kind(local[name]), name=name)
            else:
                del element.header._children[name]


class _UrlParser(HTMLParser):
    """Collect the URLs a page loads: src/href attributes (not links to follow) and CSS url()."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Note src/href (except <a>/<area> hrefs) and inline style urls."""
        self._in_style = tag == "style"
        for key, value in attrs:
            if value is None:
                continue
            if key == "src" or (key == "href" and tag not in ("a", "area")):
                self.urls.append(value.strip())
            elif key == "style":
                self._css(value)

    def handle_data(self, data: str) -> None:
        """Note url() and @import in <style> blocks."""
        if self._in_style:
            self._css(data)

    def handle_endtag(self, tag: str) -> None:
        """Leave a <style> block."""
        if tag == "style":
            self._in_style = False

    def _css(self, css: str) -> None:
        self.urls.extend(a or b for a, b in _CSS_URL.findall(css))


def external_urls(html: str) -> list[str]:
    """Every http(s) or protocol-relative URL a rendered page would load, in order, once each."""
    parser = _UrlParser()
    parser.feed(html)
    parser.close()
    return list(dict.fromkeys(u for u in parser.urls if _EXTERNAL.match(u)))

"""Build the `/map` page with Folium: the map, the vendored assets, and what the browser
application needs (the catalogue of series, the texts of the page's language, the base
maps, the country's extent) as JSON data; the application itself is static JavaScript."""

from __future__ import annotations

import copy
import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import folium
import psycopg

from geo_service.features import sql as features
from geo_service.viewer.assets import make_offline, static_root
from geo_service.viewer.choropleth import (
    DEFAULT_DIVERGING,
    DEFAULT_SEQUENTIAL,
    DIVERGING,
    METHODS,
    SEQUENTIAL,
)
from geo_service.viewer.labels import LANGUAGES, texts
from indicators import sql as indicators

LEVELS = ("province", "district", "commune")
# Vietnam on the mainland, when no units are loaded
_VIETNAM = (102.1, 8.4, 109.5, 23.4)


def _both(row: dict[str, Any], field: str) -> dict[str, str]:
    """A catalogue text in both languages (Vietnamese falls back to the other column)."""
    en = str(row[field] or "")
    return {"vi": str(row[f"{field}_vi"] or en), "en": en}


def _series_entry(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "vintage": row["vintage"],
        "level": row["level"],
        "code": row["code"],
        "name": {"vi": row["name_vi"], "en": row["name_en"]},
        "kind": row["kind"],
        "unit": _both(row, "unit"),
        "decimals": int(row["decimals"]),
        "description": _both(row, "description"),
        "source": _both(row, "source"),
        "licence": _both(row, "licence"),
        "periods": [str(p) for p in row["periods"]],
        "derivation": row["derivation"],
        "updated": row["loaded_at"].date().isoformat(),
    }


async def read_vintages(conn: psycopg.AsyncConnection) -> list[dict[str, Any]]:
    """The vintages and levels with units, and the extent of each vintage's mainland (far
    islands left out)."""
    collections = await features.collection_rows(conn)
    vintages: dict[str, dict[str, Any]] = {}
    for level, vintage, count, *_rest in collections:
        entry = vintages.setdefault(vintage, {"id": vintage, "levels": {}, "focus": None})
        entry["levels"][level] = int(count)
    for vintage, entry in vintages.items():
        top = next((lv for lv in LEVELS if lv in entry["levels"]), None)
        focus = await features.focus_extent(conn, vintage, top) if top else None
        entry["focus"] = list(focus or _VIETNAM)
        entry["levels"] = [
            {"id": lv, "count": entry["levels"][lv]} for lv in LEVELS if lv in entry["levels"]
        ]
    return list(vintages.values())


class PageVintages:
    """The vintages' levels, counts and mainland extents, kept until the change log moves on:
    they are measured over every unit's geometry (0.2–2 s on a loaded machine with the 2009
    communes), which held up every page's first byte."""

    def __init__(self, epoch: Callable[[], int]) -> None:
        self._epoch = epoch
        self._kept: tuple[list[dict[str, Any]], int] | None = None

    async def get(self, conn: psycopg.AsyncConnection) -> list[dict[str, Any]]:
        """The vintages, from memory when nothing changed since they were read."""
        epoch = self._epoch()
        if self._kept is None or self._kept[1] != epoch:
            self._kept = (await read_vintages(conn), epoch)
        return copy.deepcopy(self._kept[0])


async def viewer_catalogue(
    conn: psycopg.AsyncConnection, kept: PageVintages | None = None
) -> dict[str, Any]:
    """The vintages and levels with units (with their mainland extents), and each series
    with its catalogue entry."""
    vintages = await kept.get(conn) if kept else await read_vintages(conn)
    series = [_series_entry(row) for row in await indicators.series_catalogue(conn)]
    return {"vintages": vintages, "series": series}


def offline_map(
    bounds: tuple[float, float, float, float],
    api: str,
    title: str,
    basemap_url: str | None,
    basemap_attribution: str,
) -> tuple[folium.Map, folium.Figure]:
    """A Folium map fitted to (x0, y0, x1, y1) that loads only the vendored assets."""
    x0, y0, x1, y1 = bounds
    m = folium.Map(
        location=[(y0 + y1) / 2, (x0 + x1) / 2],
        zoom_start=6,
        tiles=None,
        control_scale=True,
        prefer_canvas=False,
    )
    if basemap_url:
        folium.TileLayer(basemap_url, attr=basemap_attribution, name="base").add_to(m)
    figure = m.get_root()
    assert isinstance(figure, folium.Figure)
    static = static_root(api)
    make_offline(m, f"{static}/vendor")
    make_offline(figure, f"{static}/vendor")
    figure.header.add_child(
        folium.Element(
            f"<title>{html.escape(title)}</title><link rel='icon' href='data:,'>"
            f"<link rel='stylesheet' href='{html.escape(static)}/viewer.css'>"
            # (the cards of outputs made in the background, static/js/jobs.js)
            f"<link rel='stylesheet' href='{html.escape(static)}/jobs.css'>"
        )
    )
    return m, figure


def add_messages(figure: folium.Figure, messages: list[str]) -> None:
    """A box of messages at the top of the page (e.g. a URL parameter that was replaced)."""
    if messages:
        figure.html.add_child(
            folium.Element(
                "<div class='gv-message' id='viewer-message' role='status'>"
                + "<br>".join(html.escape(msg) for msg in messages)
                + "</div>"
            )
        )


JS_DIR = Path(__file__).resolve().parent.parent / "static" / "js"
ENTRY_POINTS = ("viewer/main.js", "ea_editor.js")  # one per page; the rest is shared


def _modules(script: str) -> list[str]:
    """The module and the shared modules it imports (to fetch at once, not one by one)."""
    folder = (JS_DIR / script).parent
    own = sorted(p.relative_to(JS_DIR).as_posix() for p in folder.glob("*.js"))
    shared = sorted(p.name for p in JS_DIR.glob("*.js") if p.name not in ENTRY_POINTS)
    return list(dict.fromkeys([script, *own, *shared]))


def boot(
    figure: folium.Figure, api: str, config_id: str, config: dict[str, Any], script: str
) -> str:
    """The rendered page: the settings as JSON data (never run) in the element `config_id`,
    and the module `script`, run once the map exists; no inline script holds data."""
    payload = json.dumps(config, ensure_ascii=False)
    # (as JSON, < > & written as escapes: text from data cannot end or open an element)
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    figure.html.add_child(
        folium.Element(f"<script type='application/json' id='{config_id}'>{payload}</script>")
    )
    # a module runs after the page is parsed, when Folium's inline script has made the map
    base = f"{html.escape(static_root(api))}/js/"
    preload = "".join(
        f"<link rel='modulepreload' href='{base}{html.escape(m)}'>" for m in _modules(script)
    )
    figure.header.add_child(
        folium.Element(f"{preload}<script type='module' src='{base}{script}'></script>")
    )
    return str(figure.render())


async def extent(
    conn: psycopg.AsyncConnection, vintage: str, level: str, code: str | None = None
) -> tuple[float, float, float, float]:
    """Bounding box of the units of a level (or of one unit), lon/lat; Vietnam without."""
    return await features.extent(conn, vintage, level, code) or _VIETNAM


def page_language(params: dict[str, str]) -> tuple[str, list[str]]:
    """The page's language from `lang` (Vietnamese by default) and a notice if it was
    replaced."""
    lang = params.get("lang", "vi")
    if lang in LANGUAGES:
        return lang, []
    return "vi", [texts("vi")["notice_lang"].format(value=lang[:20])]


async def render_map_page(
    conn: psycopg.AsyncConnection,
    params: dict[str, str],
    api: str,
    basemaps: list[dict[str, Any]],
    basemap_url: str | None = None,
    basemap_attribution: str = "",
    private_reads: bool = False,
    kept: PageVintages | None = None,
) -> str:
    """The `/map` page: the URL's choices are checked by the page against the catalogue
    (an unknown one falls back with a notice), so the page and its later changes share
    one set of rules."""
    lang, notices = page_language(params)
    catalogue = await viewer_catalogue(conn, kept)
    focus = catalogue["vintages"][0]["focus"] if catalogue["vintages"] else list(_VIETNAM)
    m, figure = offline_map(
        (focus[0], focus[1], focus[2], focus[3]),
        api,
        texts(lang)["title"],
        basemap_url,
        basemap_attribution,
    )
    config = {
        "mapName": m.get_name(),
        "api": api,
        "lang": lang,
        "texts": texts(lang),
        "catalogue": catalogue,
        "params": {k: v[:200] for k, v in params.items()},
        "notices": notices,
        "methods": list(METHODS),
        "palettes": {"sequential": list(SEQUENTIAL), "diverging": list(DIVERGING)},
        "defaultPalettes": {"sequential": DEFAULT_SEQUENTIAL, "diverging": DEFAULT_DIVERGING},
        "basemaps": basemaps,
        "privateReads": private_reads,
    }
    page = boot(figure, api, "geo-viewer-config", config, "viewer/main.js")
    return page.replace("<html>", f"<html lang='{lang}'>", 1)

"""Build the `/map/ea` page: one commune, its enumeration areas, the editing tools."""

from __future__ import annotations

import html
import re
from typing import Any

import folium
import psycopg

from geo_service.ea import sql as ea
from geo_service.settings import ServiceSettings
from geo_service.tiles.sql import EA_MIN_ZOOM
from geo_service.viewer.assets import static_root
from geo_service.viewer.ea_labels import CENSUS_LABELS, DRAW_TEXTS
from geo_service.viewer.labels import LABELS
from geo_service.viewer.page import add_messages, boot, extent, offline_map

# Fill colours by workflow status, shared by the tiles' style and the legend.
STATUS_COLOURS = {
    "draft": "#9ecae1",
    "submitted": "#fdae6b",
    "approved": "#74c476",
    "rejected": "#fb6a4a",
}
# The texts the viewer's base-map module uses (its layer list).
BASE_MAP_TEXTS = (
    "layers",
    "base",
    "base_none",
    "overlays",
    "basemap_missing",
    "basemap_unreadable",
    "attribution_boundaries",
)
_ROUND = re.compile(r"^\d{4}$")
_CODE = re.compile(r"^\d{5}$")


async def render_ea_page(
    conn: psycopg.AsyncConnection,
    params: dict[str, str],
    api: str,
    settings: ServiceSettings,
    basemaps: list[dict[str, Any]],
) -> str:
    """The editor page; unknown parameters fall back to a default with a message."""
    lang = params.get("lang", "vi")
    messages: list[str] = []
    if lang not in CENSUS_LABELS:
        messages.append(f"unknown lang {lang!r}; showing 'vi' (vi, en)")
        lang = "vi"
    census_round = params.get("round", "2029")
    if not _ROUND.match(census_round):
        messages.append(f"round {census_round!r} is not a year; showing 2029")
        census_round = "2029"
    code = params.get("commune", "")
    commune = await ea.commune_with_province(conn, code) if _CODE.match(code) else None
    if code and commune is None:
        messages.append(f"unknown commune {code!r}: choose one below")
    vintage = commune["vintage"] if commune else (await ea.latest_commune_vintage(conn) or "2025")
    level = "commune" if commune else "province"
    bounds = await extent(conn, vintage, level, commune["code"] if commune else None)
    labels = CENSUS_LABELS[lang]
    # (the base map is drawn by the editor's layer list below, not by Folium)
    m, figure = offline_map(bounds, api, labels["title"], None, "")
    static = html.escape(static_root(api))
    figure.header.add_child(
        folium.Element(
            f"<link rel='stylesheet' href='{static}/ea_editor.css'>"
            f"<link rel='stylesheet' href='{static}/ea_organise.css'>"
            # (a deferred script runs before the editor's module, which uses geoSafe)
            f"<script src='{static}/safe.js' defer></script>"
        )
    )
    x0, y0, x1, y1 = bounds
    config = {
        "mapName": m.get_name(),
        "api": api,
        "lang": lang,
        "labels": labels,
        "round": census_round,
        "vintage": vintage,
        "commune": commune,
        "bounds": [[y0, x0], [y1, x1]],
        "statusColours": STATUS_COLOURS,
        "eaTilesMinZoom": EA_MIN_ZOOM,  # (the service has no EA tiles further out)
        "householdsBand": [settings.ea_households_min, settings.ea_households_max],
        "areaBand": [settings.ea_per_supervisor_min, settings.ea_per_supervisor_max],
        "drawTexts": DRAW_TEXTS[lang],
        # The viewer's base maps, imagery and overlays (`GET /basemaps`), drawn and listed by
        # the viewer's own module (static/js/viewer/basemaps.js) with its texts.
        "basemaps": basemaps,
        "baseTexts": {key: LABELS[lang][key] for key in BASE_MAP_TEXTS},
    }
    add_messages(figure, messages)
    return boot(figure, api, "ea-editor-config", config, "ea_editor.js").replace(
        "<html>", f"<html lang='{lang}'>", 1
    )

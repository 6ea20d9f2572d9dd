"""Build the `/map/ea` page: one commune, its enumeration areas, the editing tools."""

from __future__ import annotations

import re

import psycopg

from geo_service.ea import sql as ea
from geo_service.settings import ServiceSettings
from geo_service.viewer.labels import EA_LABELS, texts
from geo_service.viewer.page import add_messages, boot, extent, offline_map

# Fill colours by workflow status, shared by the tiles' style and the legend.
STATUS_COLOURS = {
    "draft": "#9ecae1",
    "submitted": "#fdae6b",
    "approved": "#74c476",
    "rejected": "#fb6a4a",
}
_ROUND = re.compile(r"^\d{4}$")
_CODE = re.compile(r"^\d{5}$")


async def render_ea_page(
    conn: psycopg.AsyncConnection, params: dict[str, str], api: str, settings: ServiceSettings
) -> str:
    """The editor page; unknown parameters fall back to a default with a message."""
    lang = params.get("lang", "vi")
    messages: list[str] = []
    if lang not in EA_LABELS:
        messages.append(texts("vi")["notice_lang"].format(value=lang[:20]))
        lang = "vi"
    census_round = params.get("round", "2029")
    if not _ROUND.match(census_round):
        messages.append(labels_for(lang)["notice_round"].format(value=census_round[:20]))
        census_round = "2029"
    code = params.get("commune", "")
    commune = await ea.commune_with_province(conn, code) if _CODE.match(code) else None
    if code and commune is None:
        messages.append(labels_for(lang)["notice_commune"].format(value=code[:20]))
    vintage = commune["vintage"] if commune else (await ea.latest_commune_vintage(conn) or "2025")
    level = "commune" if commune else "province"
    bounds = await extent(conn, vintage, level, commune["code"] if commune else None)
    labels = texts(lang, "ea")
    m, figure = offline_map(
        bounds, api, labels["title"], settings.basemap_url, settings.basemap_attribution
    )
    x0, y0, x1, y1 = bounds
    config = {
        "mapName": m.get_name(),
        "api": api,
        "lang": lang,
        "texts": labels,
        "round": census_round,
        "vintage": vintage,
        "commune": commune,
        "bounds": [[y0, x0], [y1, x1]],
        "statusColours": STATUS_COLOURS,
        "householdsBand": [settings.ea_households_min, settings.ea_households_max],
    }
    add_messages(figure, messages)
    return boot(figure, api, "ea-editor-config", config, "ea_editor.js").replace(
        "<html>", f"<html lang='{lang}'>", 1
    )


def labels_for(lang: str) -> dict[str, str]:
    """The editor's texts in `lang`."""
    return texts(lang, "ea")

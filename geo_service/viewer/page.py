"""Build the `/map` page with Folium: validated settings, choropleth classes, local assets."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

import folium
import psycopg

from geo_core.errors import GeoServiceError
from geo_service.features import sql as features
from geo_service.settings import ServiceSettings
from geo_service.viewer.assets import make_offline
from geo_service.viewer.choropleth import (
    DEFAULT_DIVERGING,
    DEFAULT_SEQUENTIAL,
    DIVERGING,
    METHOD_NAMES,
    METHODS,
    SEQUENTIAL,
)
from geo_service.viewer.data import choropleth_body
from geo_service.viewer.labels import LABELS
from indicators import sql as indicators

LEVELS = ("province", "commune")


@dataclass
class ViewerState:
    """What the page shows; every field validated, with a message when a default replaced it."""

    vintage: str = "2025"
    level: str = "province"
    indicator: str = "density"
    period: str | None = None
    method: str = "quantiles"
    k: int = 5
    palette: str | None = None
    breaks: str | None = None
    lang: str = "vi"
    messages: list[str] = field(default_factory=list)


async def _series(conn: psycopg.AsyncConnection) -> list[tuple[str, str, str, str, str]]:
    return [(r[0], r[1], r[2], r[3], r[4]) for r in await indicators.series_with_names(conn)]


async def _periods(conn: psycopg.AsyncConnection, s: ViewerState) -> list[str]:
    return await indicators.series_periods(conn, s.indicator, s.vintage, s.level) or []


def _fallback(s: ViewerState, name: str, given: object, default: object, valid: list[str]) -> None:
    if s.lang == "vi":
        text = f"Giá trị {name} = {given!r} không hợp lệ; dùng {default!r}."
    else:
        text = f"Unknown {name} {given!r}; showing {default!r} instead."
    s.messages.append(f"{text} ({', '.join(map(str, valid[:12]))})")


async def resolve_state(conn: psycopg.AsyncConnection, params: dict[str, str]) -> ViewerState:
    """Read the URL parameters; anything unknown falls back to a default with a message."""
    s = ViewerState()
    lang = params.get("lang", "vi")
    s.lang = lang if lang in LABELS else "vi"
    if lang != s.lang:
        _fallback(s, "lang", lang, s.lang, list(LABELS))
    series = await _series(conn)
    vintages = sorted({v for v, *_ in series}, reverse=True)
    if not vintages:
        s.messages.append("no indicators loaded")
        return s
    s.vintage = _pick(s, "vintage", params.get("vintage"), vintages[0], vintages)
    levels = [lv for lv in LEVELS if any(v == s.vintage and l_ == lv for v, l_, *_ in series)]
    s.level = _pick(s, "level", params.get("level"), levels[0], levels)
    indicators = [code for v, lv, code, *_ in series if v == s.vintage and lv == s.level]
    default = "density" if "density" in indicators else indicators[0]
    s.indicator = _pick(s, "indicator", params.get("indicator"), default, indicators)
    periods = await _periods(conn, s)
    s.period = _pick(s, "period", params.get("period"), periods[-1], periods)
    s.method = _pick(s, "method", params.get("method"), "quantiles", list(METHODS))
    k = params.get("k", "5")
    s.k = int(k) if k.isdigit() and 3 <= int(k) <= 7 else 5
    if str(s.k) != k:
        _fallback(s, "k", k, s.k, ["3", "4", "5", "6", "7"])
    default_palette = DEFAULT_DIVERGING if s.method == "std_mean" else DEFAULT_SEQUENTIAL
    s.palette = _pick(
        s, "palette", params.get("palette"), default_palette, list(SEQUENTIAL + DIVERGING)
    )
    s.breaks = params.get("breaks") or None
    if s.method == "manual" and not s.breaks:
        _fallback(s, "breaks", "", "quantiles", [])
        s.method = "quantiles"
    return s


def _pick(s: ViewerState, name: str, given: str | None, default: str, valid: list[str]) -> str:
    if given is None or given == "":
        return default
    if given in valid:
        return given
    _fallback(s, name, given, default, valid)
    return default


def _select(name: str, label: str, options: list[tuple[str, str]], chosen: object) -> str:
    items = "".join(
        f"<option value='{html.escape(value)}'{' selected' if value == str(chosen) else ''}>"
        f"{html.escape(text)}</option>"
        for value, text in options
    )
    return f"<label>{html.escape(label)}<select name='{name}'>{items}</select></label>"


def controls_html(
    s: ViewerState, series: list[tuple[str, str, str, str, str]], periods: list[str]
) -> str:
    """The form of the controls panel (each change reloads the page: a shareable URL)."""
    t = LABELS[s.lang]
    vintages = sorted({v for v, *_ in series}, reverse=True)
    levels = [lv for lv in LEVELS if any(v == s.vintage and l_ == lv for v, l_, *_ in series)]
    indicators = [
        (code, vi if s.lang == "vi" else en)
        for v, lv, code, vi, en in series
        if v == s.vintage and lv == s.level
    ]
    methods = [(m, METHOD_NAMES[m][0 if s.lang == "vi" else 1]) for m in METHODS]
    palettes = [(p, p) for p in SEQUENTIAL + DIVERGING]
    return (
        "<form>"
        f"<input type='hidden' name='lang' value='{s.lang}'>"
        + _select("vintage", t["vintage"], [(v, v) for v in vintages], s.vintage)
        + _select("level", t["level"], [(lv, t[lv]) for lv in levels], s.level)
        + _select("indicator", t["indicator"], indicators, s.indicator)
        + _select("period", t["period"], [(p, p) for p in periods], s.period)
        + _select("method", t["method"], methods, s.method)
        + _select("k", t["k"], [(str(n), str(n)) for n in range(3, 8)], s.k)
        + _select("palette", t["palette"], palettes, s.palette)
        + f"<label>{html.escape(t['breaks'])}<input name='breaks' "
        f"value='{html.escape(s.breaks or '')}'></label>"
        + f"<div class='gv-searchrow'><input name='q' placeholder='{html.escape(t['search'])}'"
        f" autocomplete='off'><button class='gv-search'>{html.escape(t['search_button'])}"
        "</button></div><div class='gv-results'></div>"
        + "<div class='gv-lang'><a href='?lang=vi'>Tiếng Việt</a> · "
        "<a href='?lang=en'>English</a></div></form>"
    )


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
    make_offline(m, f"{api}/static/vendor")
    make_offline(figure, f"{api}/static/vendor")
    figure.header.add_child(
        folium.Element(
            f"<title>{html.escape(title)}</title><link rel='icon' href='data:,'>"
            f"<link rel='stylesheet' href='{api}/static/viewer.css'>"
        )
    )
    return m, figure


def add_messages(figure: folium.Figure, messages: list[str]) -> None:
    """A box of messages at the top of the page (e.g. a URL parameter that was replaced)."""
    if messages:
        figure.html.add_child(
            folium.Element(
                "<div class='gv-message' id='viewer-message'>"
                + "<br>".join(html.escape(msg) for msg in messages)
                + "</div>"
            )
        )


def boot(
    figure: folium.Figure, api: str, config_id: str, config: dict[str, Any], script: str
) -> str:
    """The rendered page: the settings as JSON data (never run) in the element `config_id`,
    and `script`, run once the map exists; no inline script holds data."""
    payload = json.dumps(config, ensure_ascii=False)
    # (as JSON, < > & written as escapes: text from data cannot end or open an element)
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    figure.html.add_child(
        folium.Element(f"<script type='application/json' id='{config_id}'>{payload}</script>")
    )
    # deferred: it runs after the page is parsed, when Folium's inline script made the map
    figure.header.add_child(
        folium.Element(
            f"<script src='{html.escape(api)}/static/safe.js' defer></script>"
            f"<script src='{html.escape(api)}/static/{script}' defer></script>"
        )
    )
    return str(figure.render())


async def extent(
    conn: psycopg.AsyncConnection, vintage: str, level: str, code: str | None = None
) -> tuple[float, float, float, float]:
    """Bounding box of the units of a level (or of one unit), lon/lat; Vietnam without."""
    return await features.extent(conn, vintage, level, code) or (102.0, 8.0, 110.0, 23.5)


async def render_page(
    conn: psycopg.AsyncConnection,
    s: ViewerState,
    choropleth: dict[str, Any],
    api: str,
    basemap_url: str | None,
    basemap_attribution: str,
) -> str:
    """The whole HTML page."""
    collection = f"{s.level}-{s.vintage}"
    x0, y0, x1, y1 = await extent(conn, s.vintage, s.level)
    m, figure = offline_map(
        (x0, y0, x1, y1), api, LABELS[s.lang]["title"], basemap_url, basemap_attribution
    )
    series = await _series(conn)
    finest = (
        "commune" if any(v == s.vintage and lv == "commune" for v, lv, *_ in series) else s.level
    )
    config = {
        "mapName": m.get_name(),
        "api": api,
        "lang": s.lang,
        "labels": LABELS[s.lang],
        "vintage": s.vintage,
        "level": s.level,
        "collection": collection,
        "aggregateCollection": f"{finest}-{s.vintage}",
        "indicator": s.indicator,
        "period": s.period,
        "choropleth": choropleth,
        "bounds": [[y0, x0], [y1, x1]],
        "controlsHtml": controls_html(s, series, await _periods(conn, s)),
    }
    add_messages(figure, s.messages)
    return boot(figure, api, "geo-viewer-config", config, "viewer.js")


async def render_map_page(
    conn: psycopg.AsyncConnection, params: dict[str, str], api: str, settings: ServiceSettings
) -> str:
    """The `/map` page for the URL's parameters; a choice that cannot be drawn (e.g. unusable
    manual breaks) falls back to quantiles with a message."""
    state = await resolve_state(conn, params)
    collection = f"{state.level}-{state.vintage}"
    try:
        choropleth = await choropleth_body(
            conn,
            collection,
            state.indicator,
            state.period,
            state.method,
            state.k,
            state.palette,
            state.breaks,
            units=False,
        )
    except GeoServiceError as exc:
        state.messages.append(exc.message)
        state.method, state.breaks = "quantiles", None
        choropleth = await choropleth_body(
            conn,
            collection,
            state.indicator,
            state.period,
            "quantiles",
            state.k,
            state.palette,
            None,
            units=False,
        )
    return await render_page(
        conn, state, choropleth, api, settings.basemap_url, settings.basemap_attribution
    )

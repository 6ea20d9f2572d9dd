"""Map exports: exactly what the viewer shows (indicator, period, vintage, level, scope,
classification) as a PNG or a vector PDF laid out for a slide or an A4/A3 page.

The classes and colours come from `viewer.data.choropleth_body`, the code behind
`/maps/choropleth`, and the geometry from the features domain's own item query (the
generalised band that suits the page's resolution)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg
import shapely

from geo_core.errors import InvalidParameter
from geo_core.zoom import ZOOM_BANDS
from geo_service.features import sql as features
from geo_service.features.catalogue import read_collection
from geo_service.features.model import ItemQuery
from geo_service.outputs import cartography as carto
from geo_service.settings import ServiceSettings
from geo_service.viewer.data import MapQuery, choropleth_body
from indicators import read

LEVEL_NAMES = {
    "province": ("tỉnh, thành phố", "provinces"),
    "district": ("huyện", "districts"),
    "commune": ("xã, phường, đặc khu", "communes"),
}
TEXTS = {
    "suppressed": ("Bị ẩn (bảo mật thống kê)", "Suppressed (disclosure control)"),
    "not_available": ("Không có số liệu", "Not available"),
    "outside": ("Ngoài phạm vi phân lớp", "Outside the classified area"),
    "period": ("Kỳ", "Period"),
    "boundaries": ("Ranh giới", "Boundaries"),
    "within": ("trong", "within"),
    "view": ("trong vùng đang xem", "within the view"),
    "change": ("Thay đổi so với", "Change since"),
    "source": ("Nguồn", "Source"),
    "licence": ("Giấy phép", "Licence"),
    "made": ("Lập ngày", "Made on"),
    "crs": ("Hệ tọa độ", "Coordinate system"),
    "classes": ("Phân lớp", "Classes"),
    "mean": ("trung bình", "mean"),
    "sd": ("độ lệch chuẩn", "standard deviation"),
}
LABEL_LIMIT = 400  # units in the frame up to which names are written (where they fit)


def said(key: str, lang: str) -> str:
    """A text of the map page in the language."""
    vi, en = TEXTS[key]
    return vi if lang == "vi" else en


@dataclass(frozen=True)
class ExportRequest:
    """A map export: the map's query and classification, and the page."""

    query: MapQuery
    method: str = "quantiles"
    k: int = 5
    palette: str | None = None
    breaks: str | None = None
    extent: tuple[float, float, float, float] | None = None  # the view, lon/lat
    layout: str = "a4"
    orientation: str = "landscape"
    lang: str = "vi"
    fmt: str = "pdf"
    title: str | None = None
    labels: bool = True  # write unit names where they fit


@dataclass
class ExportedMap:
    """A rendered map and where its frame lies (for georeferencing the PNG)."""

    content: bytes
    media_type: str
    epsg: int
    extent: tuple[float, float, float, float]  # the frame in the projected CRS
    frame_px: tuple[int, int, int, int]  # left, top, right, bottom pixels of the frame (PNG)


def check_page(layout: str, orientation: str, fmt: str, lang: str) -> None:
    """Refuse a page layout, orientation, format or language that is not offered."""
    for value, allowed, parameter in (
        (layout, carto.LAYOUTS, "layout"),
        (orientation, carto.ORIENTATIONS, "orientation"),
        (fmt, carto.FORMATS, "format"),
        (lang, ("vi", "en"), "lang"),
    ):
        if value not in allowed:
            raise InvalidParameter(
                f"{parameter} must be one of {', '.join(allowed)}, not {value!r}",
                parameter=parameter,
                valid=list(allowed),
            )


def band_for(extent_deg: float, pixels: float) -> int:
    """The most generalised band whose tolerance stays under a third of a pixel."""
    per_pixel = extent_deg / pixels
    fitting = [b.band for b in ZOOM_BANDS if b.tolerance <= per_pixel / 3]
    return fitting[0] if fitting else ZOOM_BANDS[-1].band


async def _units(
    conn: psycopg.AsyncConnection,
    collection_id: str,
    extent: tuple[float, float, float, float] | None,
    parent: str | None,
    band: int,
) -> list[tuple[str, str, Any]]:
    """(code, name, geometry lon/lat) of the collection's units in the extent or parent."""
    collection = await read_collection(conn, collection_id)
    query = ItemQuery(
        collection,
        limit=None,
        bbox=extent,
        properties=["code", "name"],
        band=band,
        parent=parent if extent is None else None,
    )
    statement, params = features.rows_sql(query, wkt=False)
    rows = await (await conn.execute(statement, params)).fetchall()
    return [(r[0], r[1], shapely.from_wkb(bytes(r[2]))) for r in rows]


def _bounds(geoms: list[Any]) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    return float(x0), float(y0), float(x1), float(y1)


@dataclass(frozen=True)
class PreparedMap:
    """What a page is drawn from, gathered from the database (drawing needs none)."""

    request: ExportRequest
    body: dict[str, Any]
    meta: dict[str, Any]
    units: list[tuple[str, str, Any]]
    size: tuple[float, float]
    settings: ServiceSettings


async def export_map(
    conn: psycopg.AsyncConnection, request: ExportRequest, settings: ServiceSettings
) -> ExportedMap:
    """Gather the classes, values and geometry, then draw and render the page (in a worker
    thread)."""
    return await draw_map(await prepare_map(conn, request, settings))


async def draw_map(prepared: PreparedMap) -> ExportedMap:
    """Draw and render a gathered page in a worker thread (hold no connection meanwhile)."""
    return await asyncio.to_thread(draw_prepared, prepared)


def draw_prepared(prepared: PreparedMap) -> ExportedMap:
    """Draw and render a gathered page in the calling thread."""
    p = prepared
    return _draw(p.request, p.body, p.meta, p.units, p.size, p.settings)


async def prepare_map(
    conn: psycopg.AsyncConnection, request: ExportRequest, settings: ServiceSettings
) -> PreparedMap:
    """The classes, values and geometry of a page."""
    q, lang = request.query, request.lang
    check_page(request.layout, request.orientation, request.fmt, lang)
    body = await choropleth_body(
        conn, q, request.method, request.k, request.palette, request.breaks, True, lang
    )
    if body["rechecking"]:  # (a page kept and passed on must not show every value hidden)
        await read.refuse_while_rechecking(conn, body["rechecking"]["indicators"])
    meta = await read.get_indicator(conn, q.indicator)
    width, height = carto.page_size(request.layout, request.orientation)
    frame_deg = request.extent or q.bbox
    if frame_deg is None and q.within is None:
        collection = await read_collection(conn, q.collection)
        frame_deg = collection.extent
    span = (frame_deg[2] - frame_deg[0]) if frame_deg else 2.0
    pixels = width * carto.PNG_DPI * (2 if request.fmt == "pdf" else 1)
    band = band_for(span, pixels)
    units = await _units(conn, q.collection, request.extent or q.bbox, q.within, band)
    if not units:
        raise InvalidParameter("no unit lies in the extent", parameter="extent")
    if q.within is not None:  # the subtitle names the province, not only its code
        level, vintage = q.collection.split("-", 1)
        parent = await features.unit_header(conn, vintage, None, q.within, above=level)
        body["within_name"] = f"{parent['name']} ({q.within})" if parent else q.within
    return PreparedMap(request, body, meta, units, (width, height), settings)


def _texts(request: ExportRequest, body: dict[str, Any], meta: dict[str, Any]) -> carto.Sheet:
    lang, q = request.lang, request.query
    name = meta["name_vi"] if lang == "vi" else meta["name_en"]
    level, vintage = body["collection"].split("-", 1)
    levels = LEVEL_NAMES.get(level, (level, level))
    parts = [f"{said('period', lang)} {body['period']}"]
    if body.get("compare"):
        parts = [f"{said('change', lang)} {body['compare']['period']} → {body['period']}"]
    parts.append(f"{said('boundaries', lang)} {vintage}")
    parts.append(levels[0] if lang == "vi" else levels[1])
    if q.within:
        parts.append(f"{said('within', lang)} {body.get('within_name') or q.within}")
    elif q.bbox:
        parts.append(said("view", lang))
    source = (meta.get("source_vi") if lang == "vi" else None) or meta.get("source") or "—"
    licence = (meta.get("licence_vi") if lang == "vi" else None) or meta.get("licence") or "—"
    return carto.Sheet(
        0,
        0,
        request.title or name,
        " · ".join(parts),
        footer=[f"{said('source', lang)}: {source}. {said('licence', lang)}: {licence}."],
        legend_title=carto.wrap(f"{method_name(body, lang)}\n({body['unit']})", 34),
    )


def method_name(body: dict[str, Any], lang: str) -> str:
    """The classification method's name in the language."""
    name = body["method_name"]
    return str(name.get(lang, name.get("en"))) if isinstance(name, dict) else str(name)


def legend_entries(body: dict[str, Any], decimals: int, lang: str) -> list[carto.LegendEntry]:
    """One row per class (lower – upper, with its number of units), then the swatches of
    suppressed and not-available units."""
    entries = []
    change = bool(body.get("compare"))
    limits = [v for c in body["classes"] for v in (c["lower"], c["upper"])]
    digits = carto.limit_decimals(limits, decimals)  # (enough to tell the limits apart)
    for c in body["classes"]:
        if change:  # (signed, as the viewer's legend of a change)
            lower = carto.signed_limit(c["lower"], decimals, lang)
            upper = carto.signed_limit(c["upper"], decimals, lang)
        else:
            lower = carto.limit_text(c["lower"], digits, lang)
            upper = carto.limit_text(c["upper"], digits, lang)
        entries.append(
            carto.LegendEntry(
                f"{lower} – {upper}  ({carto.number(c['count'], 0, lang)})",
                {"facecolor": c["colour"], "edgecolor": "#666666"},
            )
        )
    no_value = body.get("no_value") or {}
    entries.append(
        carto.LegendEntry(
            f"{said('suppressed', lang)}  ({carto.number(no_value.get('suppressed', 0), 0, lang)})",
            carto.SUPPRESSED,
        )
    )
    entries.append(
        carto.LegendEntry(
            f"{said('not_available', lang)}  "
            f"({carto.number(no_value.get('not_available', 0), 0, lang)})",
            carto.NOT_AVAILABLE,
        )
    )
    return entries


def _notes(body: dict[str, Any], decimals: int, lang: str) -> list[str]:
    notes = []
    if body.get("mean") is not None:  # (with the limits' decimals, as the viewer's legend)
        limits = [v for c in body["classes"] for v in (c["lower"], c["upper"])]
        digits = carto.limit_decimals(limits, decimals)
        notes.append(
            f"{said('mean', lang)} {carto.limit_text(body['mean'], digits, lang)}, "
            f"{said('sd', lang)} {carto.limit_text(body['sd'], digits, lang)}"
        )
    for text in (body.get("note"), body.get("warning")):
        if text:
            notes.append(carto.wrap(text, 42))
    return notes


def _draw(
    request: ExportRequest,
    body: dict[str, Any],
    meta: dict[str, Any],
    units: list[tuple[str, str, Any]],
    size: tuple[float, float],
    settings: ServiceSettings,
) -> ExportedMap:
    lang = request.lang
    decimals = int(meta.get("decimals") or 0)
    geoms_deg = [g for _, _, g in units]
    x0, y0, x1, y1 = request.extent or _bounds(geoms_deg)
    projection = carto.Projection(carto.projected_epsg((x0 + x1) / 2, x1 - x0))
    geoms = projection.geometries(geoms_deg)
    sheet = _texts(request, body, meta)
    sheet.width, sheet.height = size
    sheet.legend = legend_entries(body, decimals, lang)
    sheet.legend_notes = _notes(body, decimals, lang)
    office = settings.office_name_vi if lang == "vi" else settings.office_name
    sheet.footer.append(
        f"{office} · {said('made', lang)} {date.today().isoformat()} · "
        f"{said('crs', lang)} {carto.CRS_NAMES[projection.epsg]}"
    )
    by_code = {u["code"]: u for u in body.get("units") or []}
    colours = [c["colour"] for c in body["classes"]]
    layers: dict[str, tuple[list[Any], list[str]]] = {
        k: ([], []) for k in ("ok", "suppressed", "not_available", "outside")
    }
    for (code, _, _), geom in zip(units, geoms, strict=True):
        unit = by_code.get(code)
        if unit is None:
            layers["outside"][0].append(geom)
        elif unit["class"] is not None:
            layers["ok"][0].append(geom)
            layers["ok"][1].append(colours[unit["class"]])
        else:
            kind = "suppressed" if unit["status"] == "suppressed" else "not_available"
            layers[kind][0].append(geom)
    if layers["outside"][0]:
        sheet.legend.append(carto.LegendEntry(said("outside", lang), carto.OUTSIDE))
    fig, ax = carto.map_page(sheet)
    ax.set_facecolor("#dfeef7")  # the sea
    fine = len(units) > 1500
    width = 0.08 if fine else 0.3
    outside = carto.OUTSIDE
    carto.draw_layer(
        ax,
        carto.Layer(layers["outside"][0], outside["facecolor"], outside["edgecolor"], width),
    )
    carto.draw_layer(ax, carto.Layer(layers["ok"][0], layers["ok"][1], "#555555", width))
    for kind, style in (("suppressed", carto.SUPPRESSED), ("not_available", carto.NOT_AVAILABLE)):
        carto.draw_layer(
            ax,
            carto.Layer(
                layers[kind][0], style["facecolor"], style["edgecolor"], width, style["hatch"]
            ),
        )
    bounds = (
        (*projection.point(x0, y0), *projection.point(x1, y1)) if request.extent else _bounds(geoms)
    )
    carto.frame(ax, bounds, margin=0.0 if request.extent else 0.03)
    if request.labels and len(units) <= LABEL_LIMIT:
        order = sorted(range(len(units)), key=lambda i: -geoms[i].area)
        carto.label_units(
            ax,
            [(p.x, p.y, units[i][1]) for i in order for p in [geoms[i].representative_point()]],
        )
    carto.scale_bar(ax, lang)
    carto.north_arrow(ax, lang)
    content = carto.render(fig, request.fmt)
    extent = (*ax.get_xlim(), *ax.get_ylim())
    box = ax.get_window_extent()
    height_px = fig.get_size_inches()[1] * carto.PNG_DPI
    frame_px = (round(box.x0), round(height_px - box.y1), round(box.x1), round(height_px - box.y0))
    media = "image/png" if request.fmt == "png" else "application/pdf"
    return ExportedMap(
        content, media, projection.epsg, (extent[0], extent[2], extent[1], extent[3]), frame_px
    )

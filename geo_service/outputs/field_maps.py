"""EA field maps for enumerators (one A4 page per EA) and commune map books (an overview page
of every EA, then one page per EA), drawn by the cartography module.

A map book is written page by page into a PDF file on disk (matplotlib's PdfPages), its EA
pages drawn one after the other on one page object (`FieldMapPage`), so memory stays flat
however many EAs the commune has; a large book's EA pages are drawn in runs by worker
processes (`page_workers`) and the runs' files joined."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import shapely
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.text import Text
from pypdf import PdfWriter
from shapely.geometry import LineString
from shapely.geometry.base import BaseGeometry

from geo_core.errors import NotFound
from geo_service.ea import sql
from geo_service.outputs import cartography as carto
from geo_service.outputs.page_workers import PageWorkers
from geo_service.settings import ServiceSettings
from geo_service.viewer.ea_page import STATUS_COLOURS

TEXTS = {
    "title": ("Bản đồ địa bàn điều tra", "Enumeration area map"),
    "book": ("Tập bản đồ địa bàn điều tra", "Enumeration area map book"),
    "census": ("Tổng điều tra", "Census"),
    "code": ("Mã địa bàn", "EA code"),
    "commune": ("Xã, phường", "Commune"),
    "province": ("Tỉnh, thành phố", "Province"),
    "households": ("Số hộ ước tính", "Estimated households"),
    "listed": ("Số hộ đã lập danh sách", "Listed households"),
    "enumerator": ("Điều tra viên", "Enumerator"),
    "supervisor": ("Tổ trưởng", "Supervisor"),
    "status": ("Trạng thái", "Status"),
    "urban_rural": ("Thành thị / nông thôn", "Urban / rural"),
    "boundary": ("Mô tả ranh giới", "Boundary description"),
    "landmarks": ("Điểm mốc", "Landmarks"),
    "area": ("Diện tích", "Area"),
    "legend_ea": ("Địa bàn này", "This EA"),
    "legend_neighbour": ("Địa bàn lân cận (mã)", "Neighbouring EAs (code)"),
    "legend_commune": ("Ranh giới xã, phường", "Commune boundary"),
    "legend_outside": ("Ngoài xã, phường", "Outside the commune"),
    "legend_lines": ("Đường, sông, đường sắt", "Roads, rivers, railways"),
    "overview": ("Toàn bộ địa bàn của xã", "All EAs of the commune"),
    "eas": ("địa bàn", "EAs"),
    "made": ("Lập ngày", "Made on"),
    "crs": ("Hệ tọa độ", "Coordinate system"),
    "vintage": ("Ranh giới hành chính", "Boundaries of"),
    "page": ("Trang", "Page"),
    "none": ("chưa có", "none yet"),
}
STATUSES = {
    "draft": ("bản nháp", "draft"),
    "submitted": ("đã gửi duyệt", "submitted"),
    "approved": ("đã duyệt", "approved"),
    "rejected": ("bị trả lại", "rejected"),
}
URBAN_RURAL = {"urban": ("thành thị", "urban"), "rural": ("nông thôn", "rural")}
EA_STYLE = {"facecolor": "#fff3c4", "edgecolor": "#c0392b"}
NEIGHBOUR_STYLE = {"facecolor": "#ffffff", "edgecolor": "#7f8c8d"}
COMMUNE_STYLE = {"facecolor": "none", "edgecolor": "#2c3e50", "linestyle": "--"}
# (greyed, not hidden: the codes of the next commune's EAs still read through it)
OUTSIDE_STYLE = {"facecolor": "#8c979c59", "edgecolor": "none"}
COMMUNE_ZORDER = 6  # over the EA's own outline: where the EA meets the commune's edge
OUTSIDE_ZORDER = 4  # over the neighbours and lines beyond the commune, under the EA's edge
LINES_COLOUR = "#8e6e53"
EA_CODE_COLOUR = "#c0392b"


def said(key: str, lang: str) -> str:
    """A text of the field maps in the language."""
    vi, en = TEXTS[key]
    return vi if lang == "vi" else en


def _pair(table: dict[str, tuple[str, str]], value: Any, lang: str) -> str:
    if value is None:
        return "—"
    vi, en = table.get(str(value), (str(value), str(value)))
    return vi if lang == "vi" else en


@dataclass
class CommuneSheet:
    """What every page of a commune's field maps shares: the commune, its EAs and lines."""

    commune: dict[str, Any]
    census_round: str
    eas: list[dict[str, Any]]  # export rows with `geom` (lon/lat)
    outline: BaseGeometry | None
    lines: list[BaseGeometry]
    office: str
    lang: str
    projection: carto.Projection | None = None
    shapes: list[BaseGeometry] | None = None  # the EAs in the projected CRS
    line_shapes: list[BaseGeometry] | None = None  # the lines in the projected CRS

    def projected(self) -> tuple[carto.Projection, list[BaseGeometry]]:
        """The sheet's projection and its EAs projected (computed once for every page)."""
        if self.projection is None or self.shapes is None:
            self.projection = _projected(self)
            self.shapes = self.projection.geometries([e["geom"] for e in self.eas])
            self.line_shapes = self.projection.geometries(self.lines) if self.lines else []
        return self.projection, self.shapes


async def commune_sheet(
    conn: psycopg.AsyncConnection,
    commune_code: str,
    census_round: str,
    settings: ServiceSettings,
    lang: str,
    around: tuple[float, float, float, float] | None = None,
    scope: tuple[str, ...] | None = None,
    vintage: str | None = None,
) -> CommuneSheet:
    """The commune's (or, with `around`, the area's) EAs of the round (of the reader's
    `scope`; None: all), its outline and lines, all of the boundary vintage the EAs belong
    to (None: the latest): after a reform a code can name another, larger or smaller, unit,
    whose outline would not be the one the EAs nest in."""
    commune = await sql.commune_with_province(conn, commune_code, vintage)
    if commune is None:
        raise NotFound(f"no commune {commune_code!r}", parameter="code")
    filters = sql.ListFilter(
        commune=None if around else commune_code,
        census_round=census_round,
        bbox=around,
        scope=scope,
        commune_vintage=commune["vintage"],
    )
    eas = await sql.export_rows(conn, filters)
    for ea in eas:
        ea["geom"] = shapely.from_wkb(ea.pop("wkb"))
    outline_wkb = await sql.commune_coverage_wkb(conn, commune["vintage"], commune_code)
    lines = await sql.lines_of_commune(conn, commune["vintage"], commune_code)
    office = settings.office_name_vi if lang == "vi" else settings.office_name
    return CommuneSheet(
        commune,
        census_round,
        eas,
        shapely.from_wkb(outline_wkb) if outline_wkb else None,
        [shapely.from_wkb(w) for w in lines],
        office,
        lang,
    )


def _projected(sheet: CommuneSheet) -> carto.Projection:
    geoms = [ea["geom"] for ea in sheet.eas] + ([sheet.outline] if sheet.outline else [])
    x0, _, x1, _ = shapely.total_bounds(geoms)
    return carto.Projection(carto.projected_epsg((x0 + x1) / 2))


def _footer(sheet: CommuneSheet, projection: carto.Projection, page: str = "") -> list[str]:
    lang = sheet.lang
    return [
        f"{sheet.office} · {said('made', lang)} {date.today().isoformat()} · "
        f"{said('vintage', lang)} {sheet.commune['vintage']} · "
        f"{said('crs', lang)} {carto.CRS_NAMES[projection.epsg]}" + (f" · {page}" if page else "")
    ]


def _commune_title(sheet: CommuneSheet) -> str:
    c, lang = sheet.commune, sheet.lang
    census = f"{said('census', lang)} {sheet.census_round}"
    return f"{c['name']} ({c['code']}), {c.get('provinceName') or c['province']} · {census}"


def _legend(lang: str) -> list[carto.LegendEntry]:
    return [
        carto.LegendEntry(said("legend_ea", lang), {**EA_STYLE, "linewidth": 1.5}),
        carto.LegendEntry(said("legend_neighbour", lang), NEIGHBOUR_STYLE),
        carto.LegendEntry(said("legend_commune", lang), COMMUNE_STYLE),
        carto.LegendEntry(said("legend_outside", lang), OUTSIDE_STYLE),
        carto.LegendEntry(said("legend_lines", lang), {"facecolor": LINES_COLOUR}),
    ]


def draw_commune(
    ax: Axes, outline: BaseGeometry | None
) -> tuple[PathCollection | None, PathCollection | None]:
    """The commune's boundary over everything but the labels (the EA's own edge included,
    where the EA meets it), and the land beyond it greyed; returns both as drawn."""
    if outline is None:
        return None, None
    x0, y0, x1, y1 = outline.bounds
    reach = max(x1 - x0, y1 - y0) + 2000  # (beyond any frame around the commune's EAs)
    # (holes wound against their shell: filled as holes whatever the fill rule)
    frame = shapely.box(x0 - reach, y0 - reach, x1 + reach, y1 + reach)
    beyond = shapely.orient_polygons(frame.difference(outline))
    outside = carto.draw_layer(
        ax, carto.Layer([beyond], OUTSIDE_STYLE["facecolor"], "none", 0, zorder=OUTSIDE_ZORDER)
    )
    boundary = carto.draw_layer(
        ax,
        carto.Layer([outline], "none", "#2c3e50", 1.4, zorder=COMMUNE_ZORDER, linestyle="--"),
    )
    return boundary, outside


def _details(ea: dict[str, Any], lang: str) -> list[tuple[str, str]]:
    households = ea["households"]
    listed = ea["listed_households"]
    enumerator = " ".join(v for v in (ea["enumerator_code"], ea["enumerator_name"]) if v)
    supervisor = " ".join(v for v in (ea["supervisor_code"], ea["supervisor_name"]) if v)
    return [
        (said("code", lang), ea["code"]),
        (said("commune", lang), f"{ea['commune_name']} ({ea['commune_code']})"),
        (said("province", lang), f"{ea['province_name']} ({ea['province_code']})"),
        (
            said("households", lang),
            "—" if households is None else carto.number(households, 0, lang),
        ),
        (said("listed", lang), "—" if listed is None else carto.number(listed, 0, lang)),
        (said("enumerator", lang), enumerator or said("none", lang)),
        (said("supervisor", lang), supervisor or said("none", lang)),
        (said("status", lang), _pair(STATUSES, ea["status"], lang)),
        (said("urban_rural", lang), _pair(URBAN_RURAL, ea["urban_rural"], lang)),
        (said("area", lang), f"{carto.number(ea['area_km2'] or 0, 3, lang)} km²"),
    ]


MAP_BOX = (0.06, 0.40, 0.88, 0.49)  # the field map's map frame (figure fractions)
DESCRIPTION_LINES = 6  # lines of the boundary description printed
RULED_LINES = 9  # lines of the boundary field, written or ruled to write on


class FieldMapPage:
    """The A4 field-map page, made once and drawn again for each EA of a commune: the
    figure, its map frame, north arrow, key, commune boundary, detail labels, boundary field
    and the EAs' paths are made once; an EA changes its texts and the map's own artists
    (its neighbours, lines, labels and scale bar). Making them anew for every page (two
    axes, ~50 texts) took half a map book's time."""

    def __init__(self, sheet: CommuneSheet) -> None:
        lang = self.lang = sheet.lang
        self.sheet = sheet
        self.projection, shapes = sheet.projected()
        self.shapes = np.asarray(shapes, dtype=object)
        self.paths = carto.polygon_paths(shapes)  # (cut once for every page)
        self.line_shapes = np.asarray(sheet.line_shapes or [], dtype=object).reshape(-1)
        self.index = {id(ea): i for i, ea in enumerate(sheet.eas)}
        width, height = carto.page_size("a4", "portrait")
        self.page_sheet = carto.Sheet(
            width, height, said("title", lang), _commune_title(sheet), footer=[""]
        )
        fig = self.figure = carto.new_figure(width, height)
        self.title = carto.title_block(fig, self.page_sheet)[0]
        ax = self.ax = fig.add_axes(MAP_BOX)
        ax.set_facecolor("#f4f6f6")
        outline = None if sheet.outline is None else self.projection.geometry(sheet.outline)
        self.boundary, self.outside = draw_commune(ax, outline)
        carto.north_arrow(ax, lang)
        carto.legend_box(fig, (0.06, 0.30, 0.4, 0.09), _legend(lang), "")
        self.details = _detail_table(
            fig, [(label, "") for label in _detail_labels(lang)], (0.50, 0.30)
        )
        fig.text(0.06, 0.275, said("boundary", lang), fontsize=8.5, fontweight="bold", va="top")
        self.description = [
            fig.text(0.06, 0.252 - i * 0.017, "", fontsize=7.5, va="top")
            for i in range(DESCRIPTION_LINES)
        ]
        self.rules = [
            fig.add_artist(carto.rule(fig, 0.06, 0.94, 0.238 - i * 0.017))
            for i in range(RULED_LINES)
        ]
        self.footer = carto.footer(fig, self.page_sheet)[0]
        self.drawn: list[Artist] = []  # the artists of the EA drawn last

    def draw(self, ea: dict[str, Any], page: str = "") -> Figure:
        """The page of one EA of the sheet: the EA over the lines, its neighbours with their
        codes, the commune boundary, the EA's details, its boundary description, scale and
        north."""
        for artist in self.drawn:
            artist.remove()
        self.drawn = []
        self.title.set_text(f"{said('title', self.lang)} {ea['code']}")
        self.footer.set_text(_footer(self.sheet, self.projection, page)[0])
        for text, (_, value) in zip(self.details, _details(ea, self.lang), strict=True):
            text.set_text(_detail_value(value))
        lines = _description(ea, self.lang)
        for i, text in enumerate(self.description):
            text.set_text(lines[i] if i < len(lines) else "")
        for i, rule in enumerate(self.rules):
            rule.set_visible(i >= len(lines))
        self._draw_map(ea)
        return self.figure

    def _draw_map(self, ea: dict[str, Any]) -> None:
        ax, i = self.ax, self.index[id(ea)]
        # (as a new axes: the frame is fitted to the map box, not to the last page's aspect)
        ax.set_aspect("auto")
        ax.set_position(MAP_BOX)
        target = self.shapes[i]
        x0, y0, x1, y1 = target.bounds
        pad = frame_pad(x1 - x0, y1 - y0)
        carto.frame(ax, (x0 - pad, y0 - pad, x1 + pad, y1 + pad), margin=0.0)
        # (the whole frame, widened to the map box's shape: no EA left undrawn at its sides)
        (left, right), (bottom, top) = ax.get_xlim(), ax.get_ylim()
        view = shapely.box(left, bottom, right, top)
        near = np.flatnonzero(shapely.intersects(self.shapes, view))
        near = near[near != i]
        target_path = [self.paths[i]]
        lines: list[BaseGeometry] = list(
            self.line_shapes[shapely.intersects(self.line_shapes, view)]
        )
        drawn = [
            carto.draw_paths(
                ax, [self.paths[j] for j in near], carto.Layer([], "#ffffff", "#7f8c8d", 0.6)
            ),
            carto.draw_paths(
                ax, target_path, carto.Layer([], EA_STYLE["facecolor"], "none", 0, zorder=2)
            ),
            *carto.draw_lines(ax, lines, LINES_COLOUR, 0.9, zorder=3),
            carto.draw_paths(
                ax, target_path, carto.Layer([], "none", EA_STYLE["edgecolor"], 2.2, zorder=5)
            ),
        ]
        # (the scale bar first: the codes go around it and the north arrow, not over them)
        bar = carto.scale_bar(ax, self.lang)
        drawn += bar
        renderer = self.figure.canvas.get_renderer()  # type: ignore[attr-defined]
        placed: list[Any] = [
            carto.north_arrow_box(ax),
            *(a.get_window_extent(renderer) for a in bar),
        ]
        drawn += self._own_code(target, ea["code"], placed)
        eas = self.sheet.eas
        order, shared = neighbour_order(target, self.shapes[near])
        for j, s in zip(near[order], shared[order], strict=True):
            points = list(label_points(self.shapes[j], view, more=bool(s > 0)))
            written: list[Artist] = []
            if s > 0:  # (a touching neighbour too narrow for its code: beside it, led)
                visible = self.shapes[j].intersection(view)
                written = carto.label_shape(
                    ax, visible, points, eas[j]["code"], 7, placed=placed, avoid=target
                )
            if not written:
                written = list(
                    carto.label_first_fit(ax, [(points, eas[j]["code"])], 7, placed=placed)
                )
            drawn += written
        self.drawn = [artist for artist in drawn if artist is not None]

    def _own_code(self, target: BaseGeometry, code: str, placed: list[Any]) -> list[Artist]:
        """The EA's code, always written: inside the EA where it fits, else beside it with a
        leader line, else (no room anywhere) over it."""
        style: dict[str, Any] = {"fontsize": 10, "colour": EA_CODE_COLOUR, "placed": placed}
        written = carto.label_shape(self.ax, target, inside_points(target), code, **style)
        if written:
            return written
        point = target.representative_point()
        return list(carto.label_units(self.ax, [(point.x, point.y, code)], **style))


def frame_pad(width: float, height: float) -> float:
    """The margin (metres) around an EA of this size on its field map: a third of its size
    around a compact EA, less along a long thin one (whose length would otherwise shrink it
    to a line), and 50 m for the streets around a small one."""
    long, short = max(width, height), min(width, height)
    return 0.1 * long + 0.25 * short + 50


def inside_points(shape: BaseGeometry) -> list[tuple[float, float]]:
    """Where an EA's own code may go inside it, best first: the point inside it, then the
    middles of its longest horizontal cuts at a few heights (a code is a line of text)."""
    point = shape.representative_point()
    points = [(point.x, point.y)]
    x0, y0, x1, y1 = shape.bounds
    for f in SCAN_FRACTIONS:
        y = y0 + f * (y1 - y0)
        parts = shapely.get_parts(shape.intersection(LineString([(x0, y), (x1, y)])))
        lengths = shapely.length(parts)
        if len(parts) and lengths.max() > 0:
            middle = parts[int(np.argmax(lengths))].interpolate(0.5, normalized=True)
            points.append((middle.x, middle.y))
    return points


TOUCH_TOLERANCE_M = 1.0  # boundaries this close are shared (loaded EAs may not be noded)
SCAN_FRACTIONS = (0.5, 0.3, 0.7, 0.15, 0.85)  # where across a neighbour its code may go


def neighbour_order(target: BaseGeometry, shapes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The order in which neighbours are labelled, and each one's length (metres) of boundary
    shared with the target: those sharing most of its boundary first (an enumerator must
    know who works across each street of theirs), then the nearest (ties in list order)."""
    if len(shapes) == 0:
        return np.zeros(0, dtype=int), np.zeros(0)
    edge = shapely.buffer(target.boundary, TOUCH_TOLERANCE_M)
    shared = shapely.length(shapely.intersection(shapely.boundary(shapes), edge))
    distance = shapely.distance(target, shapes)
    return np.lexsort((distance, -shared)), shared


def label_points(
    shape: BaseGeometry, view: BaseGeometry, more: bool
) -> Iterator[tuple[float, float]]:
    """Where a neighbour's code may go, best first: a point inside its part in view, then
    (with `more`, for the neighbours that touch) the middles of its longest cuts across at
    a few heights and widths, so that a code crowded out of one place finds another."""
    visible = shape.intersection(view)
    if visible.is_empty:
        return
    point = visible.representative_point()
    yield point.x, point.y
    if not more:
        return
    x0, y0, x1, y1 = visible.bounds
    for f in SCAN_FRACTIONS:
        y, x = y0 + f * (y1 - y0), x0 + f * (x1 - x0)
        for cut in (LineString([(x0, y), (x1, y)]), LineString([(x, y0), (x, y1)])):
            parts = shapely.get_parts(visible.intersection(cut))
            lengths = shapely.length(parts)
            if len(parts) and lengths.max() > 0:
                middle = parts[int(np.argmax(lengths))].interpolate(0.5, normalized=True)
                yield middle.x, middle.y


def _detail_labels(lang: str) -> list[str]:
    """The labels of the detail table, in its order."""
    keys = ("code", "commune", "province", "households", "listed", "enumerator", "supervisor")
    return [said(key, lang) for key in (*keys, "status", "urban_rural", "area")]


def _detail_value(value: str) -> str:
    """A detail's value as printed: its first line of 34 characters."""
    return (carto.wrap(value, 34).splitlines() or [""])[0]


def _description(ea: dict[str, Any], lang: str) -> list[str]:
    """The boundary description and landmarks as written, in lines of the boundary field."""
    text = carto.wrap(ea["boundary_description"] or "", 110)
    landmarks = ea["landmarks"]
    if landmarks:
        text += ("\n" if text else "") + carto.wrap(f"{said('landmarks', lang)}: {landmarks}", 110)
    return text.splitlines()[:DESCRIPTION_LINES]


def draw_field_map(sheet: CommuneSheet, ea: dict[str, Any], page: str = "") -> Figure:
    """One EA's A4 portrait page (a page of its own: a map book draws its pages on one
    `FieldMapPage`)."""
    return FieldMapPage(sheet).draw(ea, page)


def _detail_table(fig: Figure, rows: list[tuple[str, str]], at: tuple[float, float]) -> list[Text]:
    """Labels and values in two columns; returns the values' texts."""
    x, top = at
    values = []
    for i, (label, value) in enumerate(rows):
        y = top + 0.09 - i * 0.0105
        fig.text(x, y, f"{label}:", fontsize=7.5, color="#555555", va="top")
        values.append(fig.text(x + 0.19, y, _detail_value(value), fontsize=7.5, va="top"))
    return values


def draw_overview(sheet: CommuneSheet) -> Figure:
    """The map book's first page: the commune with every EA and its code."""
    lang = sheet.lang
    projection, shapes = sheet.projected()
    width, height = carto.page_size("a4", "portrait")
    page_sheet = carto.Sheet(
        width,
        height,
        f"{said('book', lang)} · {sheet.commune['name']}",
        _commune_title(sheet) + f" · {len(sheet.eas)} {said('eas', lang)}",
        footer=_footer(sheet, projection, f"{said('page', lang)} 1/{len(sheet.eas) + 1}"),
    )
    fig = carto.new_figure(width, height)
    carto.title_block(fig, page_sheet)
    ax = fig.add_axes((0.06, 0.21, 0.88, 0.68))
    ax.set_facecolor("#f4f6f6")
    colours = [STATUS_COLOURS.get(str(e["status"]), "#dddddd") for e in sheet.eas]
    carto.draw_layer(ax, carto.Layer(shapes, colours, "#555555", 0.5))
    carto.draw_lines(ax, sheet.line_shapes or [], LINES_COLOUR, 0.6, zorder=3)
    x0, y0, x1, y1 = (float(v) for v in shapely.total_bounds(shapes))
    if sheet.outline is not None:
        outline = projection.geometry(sheet.outline)
        draw_commune(ax, outline)
        x0, y0, x1, y1 = outline.bounds
    carto.frame(ax, (x0, y0, x1, y1), margin=0.03)
    short = len(sheet.eas) > 40  # (many EAs: their serials, the commune code is the title's)
    carto.label_units(
        ax,
        [
            (p.x, p.y, e["code"].rsplit("-", 1)[-1] if short else e["code"])
            for e, g in sorted(zip(sheet.eas, shapes, strict=True), key=lambda x: -x[1].area)
            for p in [g.representative_point()]
        ],
        fontsize=5.5 if short else 7,
    )
    carto.scale_bar(ax, lang)
    carto.north_arrow(ax, lang)
    carto.legend_box(fig, (0.06, 0.075, 0.88, 0.125), _overview_legend(sheet), "")
    carto.footer(fig, page_sheet)
    return fig


def _overview_legend(sheet: CommuneSheet) -> list[carto.LegendEntry]:
    """The overview's key: each workflow status with its colour (as in the EA editor) and
    number of EAs, the commune boundary and the lines."""
    lang = sheet.lang
    counts = Counter(str(e["status"]) for e in sheet.eas)
    entries = [
        carto.LegendEntry(
            f"{_pair(STATUSES, status, lang)} ({counts[status]})",
            {"facecolor": colour, "edgecolor": "#555555"},
        )
        for status, colour in STATUS_COLOURS.items()
        if counts[status] or status in ("draft", "approved")
    ]
    entries += [
        carto.LegendEntry(said("legend_commune", lang), COMMUNE_STYLE),
        carto.LegendEntry(said("legend_outside", lang), OUTSIDE_STYLE),
        carto.LegendEntry(said("legend_lines", lang), {"facecolor": LINES_COLOUR}),
    ]
    return entries


def field_map_pdf(sheet: CommuneSheet, ea_code: str) -> bytes:
    """One EA's field map as a PDF."""
    ea = next(e for e in sheet.eas if e["code"] == ea_code)
    return carto.render(draw_field_map(sheet, ea), "pdf")


PARALLEL_PAGES = 24  # EA pages from which a book's pages are drawn in worker processes


# told the pages written so far after each page (or run of pages); it may raise to stop
Progress = Callable[[int], None]


def map_book_file(
    sheet: CommuneSheet, workers: PageWorkers | None = None, progress: Progress | None = None
) -> Path:
    """The commune's map book as a PDF file in a new temporary folder (the caller deletes
    the folder): the overview, then one page per EA, each drawn on the same page object and
    written before the next. With `workers` (and enough EAs) the EA pages are drawn in runs,
    one per worker process, beside the overview drawn here, and the files are joined."""
    folder = Path(tempfile.mkdtemp(prefix="geo-service-book-"))
    path = folder / "map-book.pdf"
    try:
        if workers is not None and workers.size > 1 and len(sheet.eas) >= PARALLEL_PAGES:
            _parallel_book(sheet, workers, folder, path, progress)
        else:
            with PdfPages(path, metadata={"Creator": "geo-service"}) as pdf:
                pdf.savefig(draw_overview(sheet))
                if progress is not None:
                    progress(1)
                _write_pages(pdf, sheet, 0, len(sheet.eas), progress)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return path


def _write_pages(
    pdf: PdfPages, sheet: CommuneSheet, start: int, stop: int, progress: Progress | None = None
) -> None:
    """The pages of the sheet's EAs start..stop-1, numbered as in the whole book."""
    total = len(sheet.eas) + 1
    page = FieldMapPage(sheet)
    for i in range(start, stop):
        pdf.savefig(page.draw(sheet.eas[i], f"{said('page', sheet.lang)} {i + 2}/{total}"))
        if progress is not None:
            progress(i + 2)


def pages_file(sheet: CommuneSheet, start: int, stop: int, path: Path) -> Path:
    """A run of a book's EA pages written to `path` (what a worker process does)."""
    with PdfPages(path, metadata={"Creator": "geo-service"}) as pdf:
        _write_pages(pdf, sheet, start, stop)
    return path


def _parallel_book(
    sheet: CommuneSheet,
    workers: PageWorkers,
    folder: Path,
    path: Path,
    progress: Progress | None = None,
) -> None:
    """Runs of EA pages drawn in the worker processes (one run each) while this thread draws
    the overview; the files joined in page order into `path` (progress told per run)."""
    # (the workers project the EAs themselves: a sheet is sent without its projection)
    bare = dataclasses.replace(sheet, projection=None, shapes=None, line_shapes=None)
    size, runs = len(sheet.eas), workers.size
    bounds = [size * k // runs for k in range(runs + 1)]
    parts = [folder / f"pages-{k}.pdf" for k in range(runs)]
    futures = [
        workers.submit(pages_file, bare, bounds[k], bounds[k + 1], parts[k]) for k in range(runs)
    ]
    try:
        overview = folder / "overview.pdf"
        with PdfPages(overview, metadata={"Creator": "geo-service"}) as pdf:
            pdf.savefig(draw_overview(sheet))
        done = []
        for k, future in enumerate(futures):
            done.append(future.result())
            if progress is not None:
                progress(1 + bounds[k + 1])
    except BrokenProcessPool:
        workers.reset()
        raise
    finally:
        for future in futures:
            future.cancel()
    book = PdfWriter()
    for part in (overview, *done):
        book.append(str(part))
    book.add_metadata({"/Creator": "geo-service"})
    with path.open("wb") as out:
        book.write(out)
    for part in (overview, *done):
        part.unlink()


async def field_map(
    conn: psycopg.AsyncConnection, ea_row: dict[str, Any], settings: ServiceSettings, lang: str
) -> bytes:
    """The field map of an EA (its row as `ea.service.fetch` gives it)."""
    sheet = await field_map_sheet(conn, ea_row, settings, lang)
    return await asyncio.to_thread(field_map_pdf, sheet, ea_row["code"])


async def field_map_sheet(
    conn: psycopg.AsyncConnection,
    ea_row: dict[str, Any],
    settings: ServiceSettings,
    lang: str,
    scope: tuple[str, ...] | None = None,
) -> CommuneSheet:
    """What an EA's field map is drawn from (drawing it, `field_map_pdf`, needs no
    connection); neighbours only of the reader's `scope` (None: all)."""
    geom = shapely.from_geojson(ea_row["geometry"])
    x0, y0, x1, y1 = geom.bounds
    # (wider than the frame, which is widened to the map box's shape: no EA missing at its
    # sides; 0.0015° is about 160 m)
    pad = max(x1 - x0, y1 - y0) * 0.8 + 0.0015
    around = (x0 - pad, y0 - pad, x1 + pad, y1 + pad)
    return await commune_sheet(
        conn,
        ea_row["commune_code"],
        ea_row["census_round"],
        settings,
        lang,
        around,
        scope,
        vintage=ea_row["commune_vintage"],
    )

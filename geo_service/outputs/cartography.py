"""The one place that draws maps for every output (map exports, area reports, EA field maps
and map books): matplotlib figures in a projected metric CRS (VN-2000 / UTM, so the scale
bar is true), with title block, legend, scale bar, north arrow and a source line.

Figures are made with `matplotlib.figure.Figure` (no pyplot: nothing global, safe in worker
threads) and written with the Agg (PNG) or PDF backend. PDFs embed TrueType fonts (type 42)
of DejaVu Sans, which covers every Vietnamese letter, so text is real text (searchable,
copyable) and never falls back to boxes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import shapely
from matplotlib import font_manager
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.text import Text
from matplotlib.transforms import Bbox
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from geo_service.outputs import fonts

# DejaVu Sans from the Debian package fonts-dejavu-core (scripts/setup.sh installs it);
# matplotlib's own copy of the same font when it is missing
DEBIAN_FONTS = Path("/usr/share/fonts/truetype/dejavu")
FONT = "DejaVu Sans"
for _name in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"):
    if (DEBIAN_FONTS / _name).exists():
        font_manager.fontManager.addfont(str(DEBIAN_FONTS / _name))
# The pages are set in a cut of DejaVu Sans holding only the scripts they print (Latin with
# every Vietnamese letter, punctuation, arrows, maths, Greek), under its own family name, with
# the whole font behind it for anything else. Every PDF embeds a subset of its fonts made by
# fontTools from the font's tables: from the whole DejaVu Sans (6,000 glyphs, large layout
# tables) that took 0.7 s a font and slowed every text drawn; from the cut, a fraction of it.
FONTS = [name for name in (fonts.cut_font(FONT, bold) for bold in (False, True)) if name]
matplotlib.rcParams.update(
    {
        "font.family": [*dict.fromkeys([*FONTS[:1], FONT])],
        "pdf.fonttype": 42,  # TrueType embedded: real, searchable Vietnamese text
        # zlib level 1, not 6: compressing the page took a third of a national PDF map's
        # time at level 6, for a file 20 % smaller (3.3 MB against 4.0 MB)
        "pdf.compression": 1,
        "ps.fonttype": 42,
        "hatch.linewidth": 0.6,
        "svg.fonttype": "none",
        # every text printed is data or a client's words, never TeX: "$5 and $6" is money,
        # and "$\\foo$" in a title or a staff member's name failed every page showing it
        "text.parse_math": False,
    }
)

# Page sizes in inches (portrait); a slide is 16:9
PAGES = {"slide": (7.5, 13.333), "a4": (8.27, 11.69), "a3": (11.69, 16.54)}
LAYOUTS = tuple(PAGES)
ORIENTATIONS = ("landscape", "portrait")
FORMATS = ("png", "pdf")
PNG_DPI = 150
# hatches of the two kinds of "no value": distinct from each other, from the sea and from
# every palette (as in the viewer's legend)
SUPPRESSED = {"facecolor": "#ffffff", "edgecolor": "#555555", "hatch": "////"}
NOT_AVAILABLE = {"facecolor": "#f0f0f0", "edgecolor": "#999999", "hatch": "...."}
OUTSIDE = {"facecolor": "#e8e8e8", "edgecolor": "#bbbbbb"}


def page_size(layout: str, orientation: str) -> tuple[float, float]:
    """Width and height in inches of a layout in an orientation."""
    short, long = PAGES[layout]
    return (long, short) if orientation == "landscape" else (short, long)


def projected_epsg(longitude: float, width: float = 0.0) -> int:
    """VN-2000 / UTM zone 48N (EPSG:3405) west of 108°E, zone 49N (EPSG:3406) east of it;
    a map wider than a zone (the whole country, with Hoàng Sa and Trường Sa) uses 48N, the
    zone of most of the mainland, as national maps of Vietnam do."""
    return 3405 if longitude < 108 or width > 6 else 3406


CRS_NAMES = {3405: "VN-2000 / UTM 48N (EPSG:3405)", 3406: "VN-2000 / UTM 49N (EPSG:3406)"}


class Projection:
    """Lon/lat → metres of one projected CRS, for geometries and points."""

    def __init__(self, epsg: int) -> None:
        self.epsg = epsg
        self._to = Transformer.from_crs(4326, epsg, always_xy=True)

    def geometry(self, geom: BaseGeometry) -> BaseGeometry:
        """The geometry in the projected CRS."""
        return shapely.transform(geom, self._points)

    def geometries(self, geoms: Sequence[BaseGeometry]) -> list[BaseGeometry]:
        """Many geometries, transformed in one call."""
        return list(shapely.transform(np.asarray(geoms, dtype=object), self._points))

    def point(self, lon: float, lat: float) -> tuple[float, float]:
        """One lon/lat point in metres."""
        x, y = self._to.transform(lon, lat)
        return float(x), float(y)

    def _points(self, coords: np.ndarray) -> np.ndarray:
        x, y = self._to.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])


def _ring_codes(n: int) -> list[np.uint8]:
    return [MplPath.MOVETO] + [MplPath.LINETO] * (n - 2) + [MplPath.CLOSEPOLY]


def polygon_path(geom: BaseGeometry) -> MplPath | None:
    """A matplotlib path of a (multi)polygon, holes included (even-odd filling)."""
    vertices: list[np.ndarray] = []
    codes: list[np.uint8] = []
    for part in getattr(geom, "geoms", [geom]):
        if part.is_empty or part.geom_type != "Polygon":
            continue
        for ring in (part.exterior, *part.interiors):
            coords = np.asarray(ring.coords)[:, :2]
            if len(coords) >= 4:
                vertices.append(coords)
                codes += _ring_codes(len(coords))
    if not vertices:
        return None
    return MplPath(np.concatenate(vertices), codes)


@dataclass
class Layer:
    """Polygons drawn alike, or each with its own face colour."""

    geometries: Sequence[BaseGeometry]
    facecolors: Sequence[str] | str = "none"
    edgecolor: str = "#666666"
    linewidth: float = 0.3
    hatch: str | None = None
    zorder: int = 1
    linestyle: str = "solid"


def polygon_paths(geoms: Sequence[BaseGeometry]) -> list[MplPath | None]:
    """Paths of many (multi)polygons, cut from one array of all their coordinates (shapely's
    ragged arrays): building them ring by ring through shapely objects took most of the
    time of a map of the 3,321 communes."""
    if not len(geoms):
        return []
    try:
        kind, coords, offsets = shapely.to_ragged_array(np.asarray(geoms, dtype=object))
    except (ValueError, TypeError, NotImplementedError):  # not all (multi)polygons
        return [polygon_path(g) for g in geoms]
    if kind == shapely.GeometryType.POLYGON:
        rings, parts = offsets[0], offsets[1]
    elif kind == shapely.GeometryType.MULTIPOLYGON:
        rings, parts = offsets[0], offsets[1][offsets[2]]
    else:
        return [polygon_path(g) for g in geoms]
    codes = np.full(len(coords), MplPath.LINETO, dtype=MplPath.code_type)
    codes[rings[:-1][np.diff(rings) > 0]] = MplPath.MOVETO
    codes[rings[1:][np.diff(rings) > 0] - 1] = MplPath.CLOSEPOLY
    paths: list[MplPath | None] = []
    for i in range(len(parts) - 1):
        start, stop = rings[parts[i]], rings[parts[i + 1]]
        paths.append(MplPath(coords[start:stop], codes[start:stop]) if stop > start else None)
    return paths


def draw_layer(ax: Axes, layer: Layer) -> PathCollection | None:
    """Add a layer's polygons to the axes, as one collection of paths (a matplotlib patch
    per polygon costs its property set-up several times over)."""
    return draw_paths(ax, polygon_paths(layer.geometries), layer)


def draw_paths(ax: Axes, paths: Sequence[MplPath | None], layer: Layer) -> PathCollection | None:
    """Add paths made beforehand (`polygon_paths`) with a layer's style; its geometries are
    not read (a page drawn again for many EAs cuts its paths once).

    The polygons of one colour are drawn as one compound path: the PDF writer sets the
    colours, line style and clipping of every path of a collection anew (a third of the time
    of a map of the 3,321 communes), and a layer's polygons never overlap, so filling them
    together looks the same."""
    many = not isinstance(layer.facecolors, str)
    groups: dict[str, list[MplPath]] = {}
    for i, path in enumerate(paths):
        if path is not None:
            colour = str(layer.facecolors[i]) if many else str(layer.facecolors)
            groups.setdefault(colour, []).append(path)
    if not groups:
        return None
    collection = PathCollection(
        [
            group[0] if len(group) == 1 else MplPath.make_compound_path(*group)
            for group in groups.values()
        ],
        facecolors=list(groups),
        edgecolors=layer.edgecolor,
        linewidths=layer.linewidth,
        linestyles=layer.linestyle,
        zorder=layer.zorder,
    )
    if layer.hatch:
        collection.set_hatch(layer.hatch)
    ax.add_collection(collection)
    return collection


def draw_lines(
    ax: Axes, lines: Iterable[BaseGeometry], colour: str, width: float, zorder: int = 2
) -> list[Artist]:
    """Draw line geometries (roads, rivers, railways); returns the lines drawn."""
    drawn: list[Artist] = []
    for geom in lines:
        for part in getattr(geom, "geoms", [geom]):
            if part.geom_type == "LineString":
                x, y = part.xy
                drawn += ax.plot(
                    x, y, color=colour, linewidth=width, zorder=zorder, solid_capstyle="round"
                )
    return drawn


def frame(ax: Axes, bounds: tuple[float, float, float, float], margin: float = 0.04) -> None:
    """Fit the axes to bounds (metres) with a margin, true to scale (equal aspect), and fill
    the axes box by widening the short side."""
    x0, y0, x1, y1 = bounds
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    x0, x1, y0, y1 = x0 - w * margin, x1 + w * margin, y0 - h * margin, y1 + h * margin
    box = ax.get_position()
    fig_w, fig_h = _figure_size(ax)
    ratio = (box.height * fig_h) / (box.width * fig_w)  # axes height / width
    w, h = x1 - x0, y1 - y0
    if h / w < ratio:
        grow = (w * ratio - h) / 2
        y0, y1 = y0 - grow, y1 + grow
    else:
        grow = (h / ratio - w) / 2
        x0, x1 = x0 - grow, x1 + grow
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_linewidth(0.6)


def _figure_size(ax: Axes) -> tuple[float, float]:
    """The page size (inches) of the figure the axes are on."""
    width, height = ax.get_figure(root=True).get_size_inches()  # type: ignore[union-attr]
    return float(width), float(height)


def _nice_length(span: float) -> float:
    """A round length (1, 2 or 5 × 10^n metres) about a fifth of the span."""
    target = span / 5
    power = 10 ** math.floor(math.log10(target))
    for step in (5, 2, 1):
        if step * power <= target:
            return step * power
    return power


def scale_bar(ax: Axes, lang: str) -> list[Artist]:
    """A true scale bar (the axes are in metres of a conformal projection) at bottom left,
    in four alternating segments, and the representative fraction; returns its artists."""
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    length = _nice_length(x1 - x0)
    left, base = x0 + (x1 - x0) * 0.03, y0 + (y1 - y0) * 0.035
    height = (y1 - y0) * 0.008
    drawn: list[Artist] = [
        ax.add_patch(
            Rectangle(
                (left + i * length / 4, base),
                length / 4,
                height,
                facecolor="black" if i % 2 == 0 else "white",
                edgecolor="black",
                linewidth=0.5,
                zorder=10,
            )
        )
        for i in range(4)
    ]
    drawn.append(
        ax.add_patch(  # a white ground, so that the bar reads over any colour
            Rectangle(
                (left - (x1 - x0) * 0.012, base - height * 4.2),
                length + (x1 - x0) * 0.045,
                height * 8.5,
                facecolor="white",
                edgecolor="none",
                zorder=9,
            )
        )
    )
    unit, size = ("km", length / 1000) if length >= 1000 else ("m", length)
    label = f"{size:g} {unit}"
    style: dict[str, Any] = {"fontsize": 6.5, "ha": "center", "va": "bottom", "zorder": 11}
    drawn.append(ax.text(left, base + height * 1.6, "0", **style))
    drawn.append(ax.text(left + length, base + height * 1.6, label, **style))
    fig_w = _figure_size(ax)[0] * ax.get_position().width * 0.0254  # metres
    fraction = (x1 - x0) / fig_w
    drawn.append(
        ax.text(
            left,
            base - height * 1.2,
            ("Tỷ lệ" if lang == "vi" else "Scale")
            + " 1:"
            + number(_round_scale(fraction), 0, lang),
            fontsize=6,
            ha="left",
            va="top",
            zorder=11,
        )
    )
    return drawn


def _round_scale(fraction: float) -> int:
    """A scale denominator rounded to two significant digits."""
    digits = max(0, int(math.log10(fraction)) - 1)
    return int(round(fraction / 10**digits) * 10**digits)


def north_arrow_box(ax: Axes) -> Bbox:
    """Where `north_arrow` draws (display units, with a margin): names are kept out of it."""
    return Bbox(ax.transAxes.transform([(0.925, 0.86), (0.975, 1.0)]))


def north_arrow(ax: Axes, lang: str) -> None:
    """A north arrow at the top right (grid north of the UTM projection, within a degree or
    two of true north in Vietnam)."""
    ax.annotate(
        "",
        xy=(0.95, 0.955),
        xytext=(0.95, 0.875),
        xycoords="axes fraction",
        arrowprops={"facecolor": "black", "width": 3, "headwidth": 9, "headlength": 9},
        zorder=12,
    )
    ax.text(
        0.95,
        0.96,
        "B" if lang == "vi" else "N",
        transform=ax.transAxes,
        ha="center",
        va="bottom",
        fontsize=10,
        fontweight="bold",
        zorder=12,
    )


@dataclass
class LegendEntry:
    """One legend row: a swatch and its label."""

    label: str
    style: dict[str, Any]


@dataclass
class Sheet:
    """A page: its size and the texts around the map."""

    width: float  # inches
    height: float
    title: str
    subtitle: str = ""
    footer: list[str] = field(default_factory=list)
    legend_title: str = ""
    legend: list[LegendEntry] = field(default_factory=list)
    legend_notes: list[str] = field(default_factory=list)


def new_figure(width: float, height: float) -> Figure:
    """A white figure of the page size (with an Agg canvas: labels measure their text)."""
    fig = Figure(figsize=(width, height), facecolor="white", dpi=PNG_DPI)
    FigureCanvasAgg(fig)
    return fig


def number(value: float, decimals: int, lang: str) -> str:
    """A number as people of the language write it: 1.234,5 in Vietnamese, 1,234.5 in
    English."""
    text = f"{value:,.{max(decimals, 0)}f}"
    if lang == "vi":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


MORE_DECIMALS = 3  # decimals a small change may add to its indicator's (as the viewer)


def signed_limit(value: float, decimals: int, lang: str) -> str:
    """A class limit of a change as the viewer's legend writes it: +1,2 / −0,4 (a true minus),
    a limit too small for the decimals with the few more it needs (−0,003, never −0,00,
    which reads as no change), and plain 0 for a zero or a float's noise."""
    for digits in range(max(decimals, 0), max(decimals, 0) + MORE_DECIMALS + 1):
        if value and abs(value) * 10**digits >= 0.5:
            return ("+" if value > 0 else "−") + number(abs(value), digits, lang)
    return number(0.0, decimals, lang)


MORE_LIMIT_DECIMALS = 2  # decimals a legend's limits may add (the viewer classifies values
# rounded to the indicator's decimals + 2: more would tell apart what the map does not)


def limit_decimals(limits: Iterable[float], decimals: int) -> int:
    """The decimals a legend writes its class limits with, the same for every limit (as the
    viewer's legend): the indicator's, or up to MORE_LIMIT_DECIMALS more where fewer would
    write two different limits alike ("5,00 – 5,00" tells a reader nothing)."""
    distinct = sorted(set(limits))
    least = max(decimals, 0)
    for digits in range(least, least + MORE_LIMIT_DECIMALS + 1):
        written = [f"{v:.{digits}f}" for v in distinct]
        if len(set(written)) == len(written):
            return digits
    return least + MORE_LIMIT_DECIMALS


def limit_text(value: float, digits: int, lang: str) -> str:
    """A class limit with `digits` decimals (a negative one that rounds to zero reads 0,
    not −0)."""
    return number(0.0 if float(f"{value:.{digits}f}") == 0 else value, digits, lang)


def title_block(fig: Figure, sheet: Sheet) -> list[Text]:
    """The title and subtitle at the top of the page (the subtitle only when there is
    one)."""
    texts = [
        fig.text(
            0.5 / sheet.width,
            1 - 0.3 / sheet.height,
            sheet.title,
            fontsize=15,
            fontweight="bold",
            va="top",
            ha="left",
        )
    ]
    if sheet.subtitle:
        texts.append(
            fig.text(
                0.5 / sheet.width,
                1 - 0.62 / sheet.height,
                sheet.subtitle,
                fontsize=10,
                va="top",
                ha="left",
                color="#333333",
            )
        )
    return texts


def map_page(sheet: Sheet) -> tuple[Figure, Axes]:
    """A figure laid out with a title block, a map frame, a legend beside it (or below it on
    a portrait page) and the footer; returns the figure and the map's axes."""
    fig = new_figure(sheet.width, sheet.height)
    chars = int(sheet.width * 17)  # (characters of 6.5 pt text a line holds)
    sheet.footer = [line for entry in sheet.footer for line in wrap(entry, chars).splitlines()]
    landscape = sheet.width > sheet.height
    top = 1 - 0.95 / sheet.height  # room for two title lines
    bottom = 0.55 / sheet.height + 0.14 * len(sheet.footer) / sheet.height
    title_block(fig, sheet)
    left = 0.45 / sheet.width
    if landscape:
        legend_w = 2.6 / sheet.width
        ax = fig.add_axes((left, bottom, 1 - left - legend_w - 0.2 / sheet.width, top - bottom))
        legend_area = (1 - legend_w, bottom, legend_w - 0.3 / sheet.width, top - bottom)
    else:
        legend_h = (0.5 + 0.2 * (len(sheet.legend) + len(sheet.legend_notes))) / sheet.height
        ax = fig.add_axes((left, bottom + legend_h, 1 - 2 * left, top - bottom - legend_h))
        legend_area = (left, bottom, 1 - 2 * left, legend_h - 0.1 / sheet.width)
    legend_box(fig, legend_area, sheet.legend, sheet.legend_title, sheet.legend_notes)
    footer(fig, sheet)
    return fig, ax


def legend_box(
    fig: Figure,
    box: tuple[float, float, float, float],
    entries: list[LegendEntry],
    title: str,
    notes: list[str] | None = None,
) -> None:
    """A legend of swatches (with a title and notes under it) in a box of the figure."""
    if not entries and not title:
        return
    ax = fig.add_axes(box)
    ax.set_axis_off()
    handles = [Patch(label=entry.label, **{"linewidth": 0.5, **entry.style}) for entry in entries]
    legend = ax.legend(
        handles=handles,
        title=title or None,
        loc="upper left",
        frameon=False,
        fontsize=8,
        title_fontsize=8.5,
        alignment="left",
        handlelength=2.2,
        handleheight=1.3,
    )
    if title:
        legend.get_title().set_fontweight("bold")
    if notes:
        ax.text(
            0,
            0,
            "\n".join(notes),
            fontsize=6.8,
            va="bottom",
            ha="left",
            color="#333333",
            transform=ax.transAxes,
        )


def footer(fig: Figure, sheet: Sheet) -> list[Text]:
    """The footer lines at the bottom of the page (source, office, date, CRS)."""
    return [
        fig.text(
            0.45 / sheet.width,
            (0.25 + 0.14 * i) / sheet.height,
            line,
            fontsize=6.5,
            color="#333333",
            va="bottom",
            ha="left",
        )
        for i, line in enumerate(reversed(sheet.footer))
    ]


def rule(fig: Figure, x0: float, x1: float, y: float) -> Line2D:
    """A thin ruled line across the page (figure fractions), to write on."""
    return Line2D([x0, x1], [y, y], transform=fig.transFigure, color="#999999", linewidth=0.4)


def wrap(text: str, width: int) -> str:
    """Text broken into lines of at most about `width` characters, at spaces."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            if line and len(line) + 1 + len(word) > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
    return "\n".join(lines)


def label_units(
    ax: Axes,
    labels: Iterable[tuple[float, float, str]],
    fontsize: float = 6.5,
    colour: str = "#222222",
    placed: list[Any] | None = None,
) -> list[Text]:
    """Names at points (metres) on a light halo box (text stays text in a PDF: searchable);
    a name that would overlap an earlier one (of this call, or in `placed`, which it
    extends) or leave the frame is left out (the caller gives the most important first).
    Returns the names written."""
    return label_first_fit(
        ax, (([(x, y)], text) for x, y, text in labels), fontsize, colour, placed
    )


def label_first_fit(
    ax: Axes,
    labels: Iterable[tuple[Iterable[tuple[float, float]], str]],
    fontsize: float = 6.5,
    colour: str = "#222222",
    placed: list[Any] | None = None,
) -> list[Text]:
    """Each name at the first of its candidate points (metres) where it neither overlaps an
    earlier name (of this call, or in `placed`, which it extends) nor leaves the frame; a
    name with no such point is left out (the caller gives the most important first). The
    candidates are read lazily: a name written at its first point costs no other. Returns
    the names written."""
    placed = [] if placed is None else placed
    written: list[Text] = []
    renderer = ax.figure.canvas.get_renderer()  # type: ignore[attr-defined]
    inside = ax.get_window_extent(renderer=renderer)
    # each name is measured on one probe, and made an artist only when it is written (a
    # text artist with its halo box costs more to make than to measure, and most names of
    # a crowded frame are left out)
    probe = Text(fontsize=fontsize, ha="center", va="center")
    probe.set_figure(ax.figure)
    probe.set_transform(ax.transData)
    for points, text in labels:
        probe.set_text(text)
        for x, y in points:
            probe.set_position((x, y))
            box = probe.get_window_extent(renderer=renderer)
            fits = inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0
            if fits and box.y1 <= inside.y1 and not any(box.overlaps(o) for o in placed):
                break
        else:
            continue
        placed.append(box)
        written.append(_write_name(ax, (x, y), text, fontsize, colour))
    return written


def render(fig: Figure, fmt: str, dpi: int = PNG_DPI) -> bytes:
    """The figure as PNG or PDF bytes (complete, or an exception: never half a file)."""
    buffer = io.BytesIO()
    if fmt == "pdf":
        options: dict[str, Any] = {"metadata": {"Creator": "geo-service"}}
    else:  # (zlib level 1, not 6: the same pixels, a third of the encoding time)
        options = {"pil_kwargs": {"compress_level": 1}}
    fig.savefig(buffer, format=fmt, dpi=dpi, facecolor="white", **options)
    return buffer.getvalue()


LEADER_GAP_PX = 3.0  # room kept between a name and the shape or names it must not touch
LEADER_REACH = 0.3  # how far a name may stand from its shape (a share of the frame's width)
# directions a name may stand in, tried in this order at each distance: beside the shape
# first (a leader to the side is the shortest for a line of text), then the diagonals
LEADER_DIRECTIONS = ((1, 0), (-1, 0), (1, 1), (-1, 1), (1, -1), (-1, -1), (0, 1), (0, -1))
LEADER_ANCHORS = 3  # points of a shape a leader may start from, tried in turn


def label_shape(
    ax: Axes,
    shape: BaseGeometry,
    points: Iterable[tuple[float, float]],
    text: str,
    fontsize: float = 6.5,
    colour: str = "#222222",
    placed: list[Any] | None = None,
    avoid: BaseGeometry | None = None,
) -> list[Artist]:
    """A shape's name (shape and points in metres): inside the shape at the first point
    where the name fits whole and is free (clear of the names in `placed`); when it fits at
    none (a narrow shape), beside the shape as near the first point as there is room, clear
    of the shape, of `avoid` and of the names, joined to the point by a thin leader line; no
    room at all: nothing. `placed` is extended with the name and its leader."""
    placed = [] if placed is None else placed
    points = list(points)
    if not points:
        return []
    renderer = ax.figure.canvas.get_renderer()  # type: ignore[attr-defined]
    frame_px = ax.get_window_extent(renderer=renderer)
    to_px = ax.transData.transform
    outline = shapely.transform(shape, to_px)
    probe = Text(fontsize=fontsize, ha="center", va="center")
    probe.set_figure(ax.figure)
    probe.set_text(text)
    size = probe.get_window_extent(renderer=renderer)
    width, height = size.width + 2 * LEADER_GAP_PX, size.height + 2 * LEADER_GAP_PX
    for x, y in points:
        px, py = to_px((x, y))
        box = Bbox.from_bounds(px - size.width / 2, py - size.height / 2, size.width, size.height)
        if _free(box, frame_px, placed) and outline.contains(shapely.box(*box.extents)):
            placed.append(box)
            return [_write_name(ax, (x, y), text, fontsize, colour)]
    kept = None if avoid is None else shapely.transform(avoid, to_px)
    blocked = outline if kept is None else outline.union(kept)
    for point in _apart([to_px(point) for point in points], points, height)[:LEADER_ANCHORS]:
        anchor = to_px(point)
        found = _beside(anchor, (width, height), blocked, kept, frame_px, placed)
        if found is not None:
            box, leader = found
            placed += [box, *leader]
            centre = ((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2)
            at = ax.transData.inverted().transform(centre)
            return _leader_name(ax, point, (float(at[0]), float(at[1])), text, fontsize, colour)
    return []


def _apart(
    pixels: list[np.ndarray], points: list[tuple[float, float]], distance: float
) -> list[tuple[float, float]]:
    """The points (in order) at least `distance` pixels from every one kept before."""
    kept: list[int] = []
    for i, p in enumerate(pixels):
        if all(math.dist(p, pixels[j]) >= distance for j in kept):
            kept.append(i)
    return [points[i] for i in kept]


def _free(box: Bbox, frame_px: Bbox, placed: list[Any]) -> bool:
    """Whether a box lies in the frame and clear of every placed one."""
    inside = frame_px.x0 <= box.x0 and box.x1 <= frame_px.x1
    inside = inside and frame_px.y0 <= box.y0 and box.y1 <= frame_px.y1
    return inside and not any(box.overlaps(other) for other in placed)


def _beside(
    anchor: np.ndarray,
    size: tuple[float, float],
    blocked: BaseGeometry,
    kept: BaseGeometry | None,
    frame_px: Bbox,
    placed: list[Any],
) -> tuple[Bbox, list[Bbox]] | None:
    """The nearest box of the size (pixels) around the anchor clear of the blocked shape,
    of the placed boxes and inside the frame, whose leader crosses neither the placed boxes
    nor the shape `kept` clear, with small boxes along that leader; None when there is none
    within reach. Directions leading away from `kept` are tried first."""
    width, height = size
    step = height / 2
    directions = [
        (ux / math.hypot(ux, uy), uy / math.hypot(ux, uy)) for ux, uy in LEADER_DIRECTIONS
    ]
    if kept is not None:  # (a neighbour's code: away from the EA the map is about)
        centre = kept.centroid
        away = (anchor[0] - centre.x, anchor[1] - centre.y)
        directions.sort(key=lambda d: -(d[0] * away[0] + d[1] * away[1]))
    for k in range(int(frame_px.width * LEADER_REACH / step) + 1):
        gap = k * step
        for dx, dy in directions:
            reach = gap + abs(dx) * width / 2 + abs(dy) * height / 2  # (anchor to centre)
            cx, cy = anchor[0] + dx * reach, anchor[1] + dy * reach
            box = Bbox.from_bounds(cx - width / 2, cy - height / 2, width, height)
            if not _free(box, frame_px, placed) or blocked.intersects(shapely.box(*box.extents)):
                continue
            end = (cx - dx * (reach - gap), cy - dy * (reach - gap))
            if kept is not None and kept.intersects(
                shapely.LineString([(float(anchor[0]), float(anchor[1])), end])
            ):
                continue
            leader = _along(anchor, end)
            if not any(b.overlaps(o) for b in leader for o in placed):
                return box, leader
    return None


def _along(start: np.ndarray, end: tuple[float, float], every: float = 6.0) -> list[Bbox]:
    """Small boxes along a leader line (pixels), so later names keep off it."""
    length = math.hypot(end[0] - start[0], end[1] - start[1])
    count = max(int(length / every), 1)
    return [
        Bbox.from_bounds(
            start[0] + (end[0] - start[0]) * i / count - 1.5,
            start[1] + (end[1] - start[1]) * i / count - 1.5,
            3.0,
            3.0,
        )
        for i in range(1, count + 1)
    ]


NAME_HALO = {"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.55, "lw": 0}


def _write_name(ax: Axes, at: tuple[float, float], text: str, fontsize: float, colour: str) -> Text:
    """A name written at a point (metres), on its light halo."""
    return ax.text(
        at[0],
        at[1],
        text,
        fontsize=fontsize,
        ha="center",
        va="center",
        color=colour,
        zorder=8,
        clip_on=True,
        bbox=NAME_HALO,
    )


def _leader_name(
    ax: Axes,
    anchor: tuple[float, float],
    at: tuple[float, float],
    text: str,
    fontsize: float,
    colour: str,
) -> list[Artist]:
    """A name written at `at`, joined by a thin line to a dot at `anchor` (metres)."""
    name = ax.annotate(
        text,
        xy=anchor,
        xytext=at,
        ha="center",
        va="center",
        fontsize=fontsize,
        color=colour,
        zorder=8,
        annotation_clip=False,
        bbox={**NAME_HALO, "alpha": 0.85},
        arrowprops={
            "arrowstyle": "-",
            "color": colour,
            "linewidth": 0.6,
            "shrinkA": 0,
            "shrinkB": 0,
        },
    )
    dot = ax.plot([anchor[0]], [anchor[1]], marker="o", markersize=2.2, color=colour, zorder=8)
    return [name, *dot]

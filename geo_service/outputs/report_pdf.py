"""An area report as an A4 PDF: the map and the table of figures, charts over time, then
sources and methodological notes. Drawn by `cartography` (embedded DejaVu Sans: real
Vietnamese text), written page by page into one PDF in memory, complete or an exception."""

from __future__ import annotations

import io
import math
from typing import Any

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure as MplFigure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator

from geo_service.outputs import cartography as carto
from geo_service.outputs.area_report import Figure, Point, Report
from geo_service.outputs.report_texts import (
    NOTE_COUNTRY,
    NOTES_AREA,
    NOTES_UNIT,
    indicator_name,
    level_name,
    meta_text,
    pick,
    said,
    value_text,
)

WIDTH, HEIGHT = carto.page_size("a4", "portrait")
ROW = 0.2  # inches per table row
AREA_EDGE = "#d7301f"
TOUCHED = "#fdd9b5"
CHARTS_PER_PAGE = 6
LINES = {"area": "#d7301f", "parent": "#2b8cbe", "country": "#555555"}


def title(report: Report, lang: str) -> str:
    """The report's title: the unit's name, or that it is a drawn area."""
    if report.kind == "unit":
        return f"{said('title_unit', lang)}: {report.name}"
    return said("title_area", lang)


def subtitle(report: Report, lang: str) -> str:
    """Boundaries, level, area and (for a drawn area) its covered share."""
    parts = [
        f"{said('boundaries', lang)} {report.collection.vintage}",
        level_name(report.collection.level, lang),
        f"{said('area', lang)} {carto.number(report.area_km2, 2, lang)} km²",
    ]
    if report.kind == "area":
        parts.append(
            f"{said('covered', lang)} {carto.number(report.covered_share * 100, 1, lang)} %"
        )
    else:
        parts.append(f"{said('code', lang)} {report.unit['code'] if report.unit else ''}")
    return " · ".join(parts)


def footer_line(report: Report, lang: str, epsg: int | None = None) -> str:
    """Office, date and (on the map page) the CRS."""
    line = f"{report.office} · {said('made', lang)} {report.made.isoformat()}"
    if epsg:
        line += f" · {said('crs', lang)} {carto.CRS_NAMES[epsg]}"
    return line


def parent_label(report: Report, lang: str) -> str:
    """The parent column's heading: the parent's name."""
    if report.parent is None:
        return said("parent", lang)
    return str(report.parent["name"])


def _decimals(figure: Figure) -> int:
    return max(int(figure.meta.get("decimals") or 0), 0)


def _compare(figure: Figure, points: list[Point], lang: str) -> str:
    point = figure.at(points)
    if point is None:
        return "—"
    return value_text(point.value, point.status, _decimals(figure), lang)


def table_rows(report: Report, lang: str) -> list[list[str]]:
    """The figures as rows of text: indicator (unit), period, area, parent, country."""
    rows = []
    for f in report.figures:
        unit = meta_text(f.meta, "unit", lang)
        rows.append(
            [
                carto.wrap(f"{indicator_name(f.meta, lang)} ({unit})", 42),
                f.period or "—",
                value_text(f.value, f.status, _decimals(f), lang),
                _compare(f, f.parent, lang),
                _compare(f, f.country, lang),
            ]
        )
    return rows


COLUMNS = (0.5, 3.3, 3.85, 5.1, 6.35)  # inches from the left edge


def _table(fig: MplFigure, top: float, rows: list[list[str]], head: list[str]) -> float:
    """Rows of text from `top` (inches from the bottom) down; returns where it ended."""
    y = top
    for i, text in enumerate(head):
        fig.text(COLUMNS[i] / WIDTH, y / HEIGHT, text, fontsize=7.5, fontweight="bold", va="top")
    y -= ROW * 1.6
    for row in rows:
        lines = max(cell.count("\n") + 1 for cell in row)
        for i, cell in enumerate(row):
            fig.text(COLUMNS[i] / WIDTH, y / HEIGHT, cell, fontsize=7.5, va="top")
        y -= ROW * lines + 0.06
        fig.add_artist(carto.rule(fig, 0.5 / WIDTH, 1 - 0.4 / WIDTH, (y + 0.04) / HEIGHT))
    return y


def _head(report: Report, lang: str) -> list[str]:
    return [
        said("indicator", lang),
        said("period", lang),
        said("this_area", lang) if report.kind == "area" else str(report.name)[:22],
        parent_label(report, lang)[:22],
        said("country", lang),
    ]


def _page(report: Report, lang: str, epsg: int | None = None) -> MplFigure:
    fig = carto.new_figure(WIDTH, HEIGHT)
    sheet = carto.Sheet(WIDTH, HEIGHT, title(report, lang), subtitle(report, lang))
    carto.title_block(fig, sheet)
    sheet.footer = [footer_line(report, lang, epsg)]
    carto.footer(fig, sheet)
    return fig


def map_page(report: Report, lang: str) -> tuple[MplFigure, list[list[str]]]:
    """The first page: the map, the summary and as many table rows as fit; returns the page
    and the rows left for the next pages."""
    x0, _, x1, _ = report.area.bounds
    projection = carto.Projection(carto.projected_epsg((x0 + x1) / 2, x1 - x0))
    fig = _page(report, lang, projection.epsg)
    ax = fig.add_axes((0.5 / WIDTH, 5.9 / HEIGHT, 1 - 1.0 / WIDTH, 4.75 / HEIGHT))
    _draw_map(ax, report, projection, lang)
    entries = [
        carto.LegendEntry(said("legend_area", lang), {"facecolor": "none", "edgecolor": AREA_EDGE}),
        carto.LegendEntry(
            said("legend_touched", lang), {"facecolor": TOUCHED, "edgecolor": "#777777"}
        ),
        carto.LegendEntry(
            said("legend_other", lang), {"facecolor": "#f4f4f4", "edgecolor": "#999999"}
        ),
    ]
    if report.kind == "unit":  # (the unit is the area: nothing else is touched)
        entries[0].style = {"facecolor": TOUCHED, "edgecolor": AREA_EDGE}
        entries[0].label = report.name
        del entries[1]
    carto.legend_box(fig, (0.5 / WIDTH, 5.25 / HEIGHT, 0.6, 0.6 / HEIGHT), entries, "")
    summary = [f"{said('area', lang)}: {carto.number(report.area_km2, 3, lang)} km²"]
    if report.kind == "area":
        covered = carto.number(report.covered_share * 100, 1, lang)
        summary.append(f"{said('covered', lang)}: {covered} %")
        summary.append(f"{said('units_touched', lang)}: {len(report.touched)}")
    fig.text(3.6 / WIDTH, 5.75 / HEIGHT, "\n".join(summary), fontsize=8, va="top")
    rows = table_rows(report, lang)
    fits = _rows_fitting(rows, 4.95 - 1.1)
    _table(fig, 4.95, rows[:fits], _head(report, lang))
    _key(fig, report, lang)
    return fig, rows[fits:]


def _key(fig: MplFigure, report: Report, lang: str) -> None:
    """What the table's short words for missing values mean (above the footer)."""
    statuses = {p.status for f in report.figures for p in (*f.series, *f.parent, *f.country)}
    statuses |= {f.status for f in report.figures}
    lines = [said(f"key_{s}", lang) for s in ("suppressed", "not_available") if s in statuses]
    if lines:
        fig.text(0.5 / WIDTH, 0.75 / HEIGHT, "\n".join(lines), fontsize=6.5, va="bottom")


def _rows_fitting(rows: list[list[str]], room: float) -> int:
    used, count = ROW * 1.6, 0
    for row in rows:
        used += ROW * max(c.count("\n") + 1 for c in row) + 0.06
        if used > room:
            break
        count += 1
    return count


def _draw_map(ax: Any, report: Report, projection: carto.Projection, lang: str) -> None:
    touched = {u["code"] for u in report.touched if u.get("share", 0) > 0}
    geoms = projection.geometries([g for _, _, g in report.shapes])
    inner = [g for (c, _, _), g in zip(report.shapes, geoms, strict=True) if c in touched]
    outer = [g for (c, _, _), g in zip(report.shapes, geoms, strict=True) if c not in touched]
    ax.set_facecolor("#dfeef7")  # the sea
    carto.draw_layer(ax, carto.Layer(outer, "#f4f4f4", "#999999", 0.3))
    carto.draw_layer(ax, carto.Layer(inner, TOUCHED, "#777777", 0.4, zorder=2))
    area = projection.geometry(report.area)
    carto.draw_layer(ax, carto.Layer([area], "none", AREA_EDGE, 1.6, zorder=5))
    carto.frame(ax, area.bounds, margin=0.12)
    if len(inner) <= 80:
        order = sorted(range(len(report.shapes)), key=lambda i: -geoms[i].area)
        carto.label_units(
            ax,
            [
                (p.x, p.y, report.shapes[i][1])
                for i in order
                if report.shapes[i][0] in touched
                for p in [geoms[i].intersection(area).representative_point()]
                if not p.is_empty
            ],
        )
    carto.scale_bar(ax, lang)
    carto.north_arrow(ax, lang)


def table_page(report: Report, lang: str, rows: list[list[str]]) -> MplFigure:
    """A page of the table's remaining rows."""
    fig = _page(report, lang)
    _table(fig, HEIGHT - 1.1, rows, _head(report, lang))
    return fig


def charted(report: Report) -> list[Figure]:
    """Figures with values in at least two periods (in the area or the comparisons)."""
    return [
        f
        for f in report.figures
        if len(f.series) >= 2
        and sum(p.value is not None for p in (*f.series, *f.parent, *f.country)) >= 2
    ]


def _chart_lines(report: Report, figure: Figure, lang: str) -> list[tuple[str, list[Point]]]:
    lines = [("area", figure.series)]
    if figure.meta["kind"] != "count":
        lines += [("parent", figure.parent), ("country", figure.country)]
    return lines


def _axis_numbers(lang: str) -> FuncFormatter:
    """Tick labels written as the page's numbers are (560.000 and 2,5 in Vietnamese), with
    no shared offset or exponent above the axis."""

    def label(value: float, _position: int | None) -> str:
        decimals = len(f"{value:.3f}".rstrip("0").split(".")[1])
        return carto.number(value, decimals, lang)

    return FuncFormatter(label)


def chart_page(report: Report, lang: str, figures: list[Figure]) -> MplFigure:
    """Up to six line charts: the area's series beside its parent's and the country's (a
    count only its own: their totals would flatten it; they are in the table), with one key
    for the page. Few ticks and one key: a chart's time goes into laying out its texts."""
    fig = _page(report, lang)
    fig.text(0.5 / WIDTH, (HEIGHT - 1.05) / HEIGHT, said("charts", lang), fontsize=11)
    here = said("this_area", lang) if report.kind == "area" else report.name
    names = {"area": here, "parent": parent_label(report, lang), "country": said("country", lang)}
    drawn: set[str] = set()
    for i, f in enumerate(figures):
        col, row = i % 2, i // 2
        ax = fig.add_axes(
            (
                (0.8 + col * 3.8) / WIDTH,
                (HEIGHT - 1.75 - (row + 1) * 3.0 + 0.55) / HEIGHT,
                3.0 / WIDTH,
                2.2 / HEIGHT,
            )
        )
        periods = [p.period for p in f.series]
        for key, points in _chart_lines(report, f, lang):
            by_period = {p.period: p.value for p in points}
            shown = [
                (x, by_period[p]) for x, p in enumerate(periods) if by_period.get(p) is not None
            ]
            if shown:  # (a hidden or missing period is a gap, never a value)
                xs, ys = zip(*shown, strict=True)
                ax.plot(xs, ys, marker="o", markersize=2.5, linewidth=1.2, color=LINES[key])
                drawn.add(key)
        step = max(1, math.ceil(len(periods) / 6))
        ax.set_xticks(range(0, len(periods), step), periods[::step], fontsize=6)
        ax.yaxis.set_major_locator(MaxNLocator(4))
        ax.yaxis.set_major_formatter(_axis_numbers(lang))
        ax.tick_params(axis="y", labelsize=6)
        ax.set_xlim(-0.5, len(periods) - 0.5)
        title = f"{indicator_name(f.meta, lang)} ({meta_text(f.meta, 'unit', lang)})"
        ax.set_title(carto.wrap(title, 50), fontsize=7.5, loc="left")
        if f.meta["kind"] == "count":
            ax.text(0, -0.2, said("counts_alone", lang), fontsize=5.5, transform=ax.transAxes)
    handles = [
        Line2D([], [], color=LINES[k], marker="o", markersize=3) for k in LINES if k in drawn
    ]
    fig.legend(
        handles,
        [names[k] for k in LINES if k in drawn],
        loc="upper right",
        bbox_to_anchor=(1 - 0.5 / WIDTH, 1 - 0.95 / HEIGHT),
        ncols=3,
        fontsize=7,
        frameon=False,
    )
    return fig


def notes(report: Report, lang: str) -> list[str]:
    """The methodological notes, as paragraphs."""
    level = level_name(report.collection.level, lang)
    weights = said(f"weights_{report.method}", lang) if report.kind == "area" else ""
    covered = carto.number(report.covered_share * 100, 1, lang)
    code = report.unit["code"] if report.unit else ""
    texts = NOTES_AREA if report.kind == "area" else NOTES_UNIT
    paragraphs = [
        pick(
            pair,
            lang,
            level=level,
            collection=report.collection.id,
            weights=weights,
            covered=covered,
            name=report.name,
            code=code,
        )
        for pair in texts
    ]
    methods = {f.country_method for f in report.figures if f.country_method}
    for method in sorted(methods):
        paragraphs.append(pick(NOTE_COUNTRY, lang, how=said(f"country_{method}", lang)))
    return paragraphs


def sources(report: Report, lang: str) -> list[str]:
    """One line per distinct source and licence, with the indicators it covers."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for f in report.figures:
        key = (meta_text(f.meta, "source", lang), meta_text(f.meta, "licence", lang))
        grouped.setdefault(key, []).append(indicator_name(f.meta, lang))
    return [
        f"{', '.join(names)} — {said('source', lang)}: {source}. {said('licence', lang)}: "
        f"{licence}."
        for (source, licence), names in grouped.items()
    ]


def notes_page(report: Report, lang: str) -> MplFigure:
    """Sources and licences, then the methodological notes."""
    fig = _page(report, lang)
    y = HEIGHT - 1.1
    for heading, paragraphs in (
        (said("sources", lang), sources(report, lang)),
        (said("notes", lang), notes(report, lang)),
    ):
        fig.text(0.5 / WIDTH, y / HEIGHT, heading, fontsize=11, va="top")
        y -= 0.35
        for paragraph in paragraphs:
            text = carto.wrap(paragraph, 110)
            fig.text(0.6 / WIDTH, y / HEIGHT, text, fontsize=7.5, va="top")
            y -= 0.16 * (text.count("\n") + 1) + 0.12
        y -= 0.2
    return fig


def render_pdf(report: Report, lang: str) -> bytes:
    """The whole report as PDF bytes."""
    buffer = io.BytesIO()
    with PdfPages(buffer, metadata={"Creator": "geo-service", "Title": title(report, lang)}) as pdf:
        first, rest = map_page(report, lang)
        pdf.savefig(first)
        while rest:
            fits = max(_rows_fitting(rest, HEIGHT - 2.0), 1)
            pdf.savefig(table_page(report, lang, rest[:fits]))
            rest = rest[fits:]
        charts = charted(report)
        for start in range(0, len(charts), CHARTS_PER_PAGE):
            pdf.savefig(chart_page(report, lang, charts[start : start + CHARTS_PER_PAGE]))
        pdf.savefig(notes_page(report, lang))
    return buffer.getvalue()

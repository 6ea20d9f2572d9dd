"""An area report as an Excel workbook (openpyxl): the figures (numbers as numbers, exactly
the values the report computed, i.e. `/aggregate`'s for a drawn area), the series over time,
and sources with methodological notes. Text is always stored as text: a name starting with
"=" is never a formula."""

from __future__ import annotations

import io
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.styles import Alignment, Font
from openpyxl.worksheet.worksheet import Worksheet

from geo_service.outputs.area_report import Figure, Point, Report
from geo_service.outputs.report_pdf import notes, parent_label, sources, subtitle, title
from geo_service.outputs.report_texts import indicator_name, meta_text, method_text, said

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def _put(sheet: Worksheet, row: int, column: int, value: Any, bold: bool = False) -> Cell:
    """One cell: a number as a number, anything else as text that no spreadsheet evaluates."""
    cell: Cell = sheet.cell(row=row, column=column)
    if value is None:
        return cell
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = str(value)
        cell.value = text
        cell.data_type = "s"  # (openpyxl makes a formula of text starting with "=")
        if text.startswith(FORMULA_START):
            cell.quotePrefix = True  # and Excel keeps it text when the cell is edited
    else:
        cell.value = value
    if bold:
        cell.font = Font(bold=True)
    return cell


def _status(point: Point | None, lang: str) -> str:
    if point is None:
        return ""
    return said(f"status_{point.status}", lang)


def _figures_sheet(sheet: Worksheet, report: Report, lang: str) -> None:
    sheet.title = said("figures", lang)
    _put(sheet, 1, 1, title(report, lang), bold=True)
    _put(sheet, 2, 1, subtitle(report, lang))
    _put(sheet, 3, 1, f"{report.office} · {said('made', lang)} {report.made.isoformat()}")
    _put(sheet, 5, 1, said("area", lang) + " (km²)")
    _put(sheet, 5, 2, report.area_km2)
    _put(sheet, 6, 1, said("covered", lang))
    _put(sheet, 6, 2, report.covered_share)
    _put(sheet, 7, 1, said("units_touched", lang))
    _put(sheet, 7, 2, len(report.touched))
    here = said("this_area", lang) if report.kind == "area" else report.name
    parent = parent_label(report, lang)
    head = [
        said("code", lang),
        said("indicator", lang),
        said("unit", lang),
        said("period", lang),
        here,
        said("status", lang),
        parent,
        f"{parent}: {said('status', lang)}",
        said("country", lang),
        f"{said('country', lang)}: {said('status', lang)}",
        said("method", lang),
    ]
    for column, text in enumerate(head, start=1):
        _put(sheet, 9, column, text, bold=True)
    for row, f in enumerate(report.figures, start=10):
        parent_point, country_point = f.at(f.parent), f.at(f.country)
        cells = [
            f.code,
            indicator_name(f.meta, lang),
            meta_text(f.meta, "unit", lang),
            f.period,
            f.value,
            said(f"status_{f.status}", lang),
            parent_point.value if parent_point else None,
            _status(parent_point, lang),
            country_point.value if country_point else None,
            _status(country_point, lang),
            method_text(report.kind, f.meta, lang),
        ]
        for column, value in enumerate(cells, start=1):
            _put(sheet, row, column, value)
        _number_format(sheet, row, f)
    _widths(sheet, [14, 44, 14, 10, 16, 26, 16, 26, 16, 26, 40])
    sheet.freeze_panes = "C10"


def _number_format(sheet: Worksheet, row: int, figure: Figure) -> None:
    """Show the indicator's decimals (the stored number keeps all of them)."""
    decimals = max(int(figure.meta.get("decimals") or 0), 0)
    fmt = "#,##0" + ("." + "0" * decimals if decimals else "")
    for column in (5, 7, 9):
        sheet.cell(row=row, column=column).number_format = fmt


def _series_sheet(sheet: Worksheet, report: Report, lang: str) -> None:
    here = said("this_area", lang) if report.kind == "area" else report.name
    parent = parent_label(report, lang)
    head = [said("code", lang), said("indicator", lang), said("period", lang), here]
    head += [said("status", lang), parent, said("country", lang)]
    for column, text in enumerate(head, start=1):
        _put(sheet, 1, column, text, bold=True)
    row = 2
    for f in report.figures:
        parents = {p.period: p for p in f.parent}
        countries = {p.period: p for p in f.country}
        for point in f.series:
            p, c = parents.get(point.period), countries.get(point.period)
            cells = [
                f.code,
                indicator_name(f.meta, lang),
                point.period,
                point.value,
                said(f"status_{point.status}", lang),
                p.value if p else None,
                c.value if c else None,
            ]
            for column, value in enumerate(cells, start=1):
                _put(sheet, row, column, value)
            row += 1
    _widths(sheet, [14, 44, 10, 16, 26, 16, 16])


def _notes_sheet(sheet: Worksheet, report: Report, lang: str) -> None:
    _put(sheet, 1, 1, said("sources", lang), bold=True)
    row = 2
    for line in sources(report, lang):
        _put(sheet, row, 1, line)
        row += 1
    row += 1
    _put(sheet, row, 1, said("notes", lang), bold=True)
    for paragraph in notes(report, lang):
        row += 1
        _put(sheet, row, 1, paragraph).alignment = Alignment(wrap_text=True, vertical="top")
    row += 2
    _put(sheet, row, 1, f"{said('office', lang)}: {report.office}")
    _put(sheet, row + 1, 1, f"{said('made', lang)}: {report.made.isoformat()}")
    _widths(sheet, [120])


def _widths(sheet: Worksheet, widths: list[int]) -> None:
    for i, width in enumerate(widths):
        sheet.column_dimensions[chr(ord("A") + i)].width = width


def render_xlsx(report: Report, lang: str) -> bytes:
    """The whole workbook as bytes."""
    book = Workbook()
    _figures_sheet(book.active, report, lang)
    _series_sheet(book.create_sheet(said("over_time", lang)), report, lang)
    _notes_sheet(book.create_sheet(said("sources_notes", lang)), report, lang)
    book.properties.creator = "geo-service"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()

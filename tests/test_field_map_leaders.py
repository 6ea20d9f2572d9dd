"""Codes of EAs too narrow to hold them: written beside the EA, joined to it by a thin leader
line, clear of the EA and of every other code; and a long thin EA framed tightly enough to
read. Drawn from made-up communes (strips and squares near Hà Nội), no database needed."""

from __future__ import annotations

import shapely
from matplotlib.text import Annotation, Text
from matplotlib.transforms import Bbox

from bench.field_map_pages import made_up_ea, made_up_sheet
from geo_service.outputs import field_maps

WIDTH = 0.00025  # degrees: strips ~26 m wide ...
HEIGHT = 0.009  # ... and ~1 km long
STRIPS = 15


def _strips() -> field_maps.CommuneSheet:
    return made_up_sheet(
        [
            made_up_ea(
                f"00004-{i + 1:03d}",
                shapely.box(105.83 + i * WIDTH, 21.03, 105.83 + (i + 1) * WIDTH, 21.03 + HEIGHT),
            )
            for i in range(STRIPS)
        ]
    )


def _codes(page: field_maps.FieldMapPage) -> list[Text]:
    return [a for a in page.drawn if isinstance(a, Text) and a.get_text().startswith("00004-")]


def _text_box(page: field_maps.FieldMapPage, text: Text) -> Bbox:
    """The box of a code's letters (an annotation's own extent includes its leader)."""
    renderer = page.figure.canvas.get_renderer()  # type: ignore[attr-defined]
    return Text.get_window_extent(text, renderer)


def _in_pixels(page: field_maps.FieldMapPage, geom: shapely.Geometry) -> shapely.Geometry:
    return shapely.transform(page.projection.geometry(geom), page.ax.transData.transform)


def test_a_strip_eas_code_stands_beside_it_on_a_leader_clear_of_every_other_code() -> None:
    sheet = _strips()
    page = field_maps.FieldMapPage(sheet)
    for ea in sheet.eas[5:10]:  # (strips with neighbours on both sides)
        page.draw(ea)
        codes = _codes(page)
        own = [t for t in codes if t.get_text() == ea["code"]]
        assert len(own) == 1, ea["code"]
        (code,) = own
        strip = _in_pixels(page, ea["geom"])
        box = _text_box(page, code)
        # written beside the strip, not over it ...
        assert not strip.intersects(shapely.box(*box.extents)), ea["code"]
        # ... with a leader from a point inside the strip to the code
        assert isinstance(code, Annotation) and code.arrow_patch is not None, ea["code"]
        anchor = page.ax.transData.transform(code.xy)
        assert strip.contains(shapely.Point(anchor)), ea["code"]
        # no code over another, nor over the north arrow or the scale bar
        boxes = [(t.get_text(), _text_box(page, t)) for t in codes]
        over = [
            (a, b) for i, (a, x) in enumerate(boxes) for b, y in boxes[i + 1 :] if x.overlaps(y)
        ]
        assert not over, (ea["code"], over)
        renderer = page.figure.canvas.get_renderer()  # type: ignore[attr-defined]
        bar = [a.get_window_extent(renderer) for a in page.drawn if a.get_zorder() >= 9]
        arrow = Bbox(page.ax.transAxes.transform([(0.94, 0.875), (0.96, 0.99)]))
        assert not [t for t, b in boxes for f in [arrow, *bar] if b.overlaps(f)], ea["code"]
        # both strips beside it are named too (an enumerator must know who works next door)
        names = {t for t, _ in boxes}
        for neighbour in (sheet.eas.index(ea) - 1, sheet.eas.index(ea) + 1):
            assert sheet.eas[neighbour]["code"] in names, (ea["code"], names)


def test_a_long_thin_ea_fills_its_frame() -> None:
    sheet = _strips()
    page = field_maps.FieldMapPage(sheet)
    ea = sheet.eas[7]
    page.draw(ea)
    x0, y0, x1, y1 = page.projection.geometry(ea["geom"]).bounds
    bottom, top = page.ax.get_ylim()
    assert (y1 - y0) / (top - bottom) > 0.7  # (it was 0.55: a third of the page was margin)


def test_a_code_that_fits_stays_inside_its_ea_without_a_leader() -> None:
    side = 0.002  # (~200 m squares: room for a code)
    sheet = made_up_sheet(
        [
            made_up_ea(
                f"00004-{i * 3 + j + 1:03d}",
                shapely.box(
                    105.83 + i * side,
                    21.03 + j * side,
                    105.83 + (i + 1) * side,
                    21.03 + (j + 1) * side,
                ),
            )
            for i in range(3)
            for j in range(3)
        ]
    )
    page = field_maps.FieldMapPage(sheet)
    ea = sheet.eas[4]  # (the middle one)
    page.draw(ea)
    (code,) = [t for t in _codes(page) if t.get_text() == ea["code"]]
    assert not isinstance(code, Annotation)
    square = _in_pixels(page, ea["geom"])
    assert square.contains(shapely.box(*_text_box(page, code).extents))

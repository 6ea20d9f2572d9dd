"""A field map and a map book draw the commune the EAs nest in: the outline of the EAs' own
boundary vintage (a code may name another unit in a later one), drawn over the EA's edge
where the two meet, with the land beyond the commune greyed.

Over the demo (Ba Đình, 00004, with its generated EAs) and a later boundary vintage in which
code 00004 names only the eastern part of Ba Đình, under another name: EAs at the west of
Ba Đình (00004-001 among them) lie outside that unit, and a map drawing it showed them
outside their commune's dashed boundary."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import shapely
from matplotlib.collections import PathCollection
from matplotlib.colors import to_hex
from pypdf import PdfReader

from geo_service.ea.service import fetch
from geo_service.outputs import field_maps
from geo_service.settings import ServiceSettings
from tests.helpers import run_coroutine
from tests.test_outputs import COMMUNE, ITEMS, Env, _env, _strips, keep

TOLERANCE_M2 = 1.0  # (the EAs are cut from the commune's coverage: they share its vertices)
LATER_NAME = "Phường Trúc Bạch"


def _later_vintage(env: Env) -> None:
    """Vintage 2026, in which 00004 is the eastern half of Ba Đình, named otherwise."""
    env.sql("INSERT INTO vintage (id, valid_from) VALUES ('2026', '2026-07-01')")
    env.sql(
        """
        INSERT INTO admin_unit (vintage, level, code, parent_code, name, search_name,
                                unit_type, area_km2, geom)
        SELECT '2026', level, code, parent_code, %s, 'phuong truc bach', unit_type,
               area_km2 / 2, ST_Multi(ST_CollectionExtract(ST_Intersection(geom,
               ST_MakeEnvelope((ST_XMin(geom) + ST_XMax(geom)) / 2, ST_YMin(geom),
                               ST_XMax(geom), ST_YMax(geom), 4326)), 3))
        FROM admin_unit WHERE vintage = '2025' AND level = 'commune' AND code = %s
        """,
        LATER_NAME,
        COMMUNE,
    )
    env.sql(  # (the clean coverage, which EAs nest in, if no trigger has made it)
        "INSERT INTO admin_unit_generalised (vintage, level, code, band, geom)"
        " SELECT vintage, level, code, z.band, geom FROM admin_unit, zoom_band z"
        " WHERE vintage = '2026' AND z.tolerance = 0 ON CONFLICT DO NOTHING"
    )


@pytest.fixture
def env(demo_db: str, tmp_path: Path) -> Iterator[Env]:
    yield from _env(demo_db, tmp_path)


def _drawn(collection: PathCollection) -> shapely.Geometry:
    """What a collection fills (even-odd: a ring inside another is a hole)."""
    shape = shapely.Polygon()
    for path in collection.get_paths():
        for ring in path.to_polygons(closed_only=True):
            if len(ring) >= 4:
                shape = shape.symmetric_difference(shapely.make_valid(shapely.Polygon(ring)))
    return shape


def _by_edge(page: field_maps.FieldMapPage, colour: str) -> list[PathCollection]:
    """The page's collections drawn with this edge colour."""
    return [
        c
        for c in page.ax.collections
        if isinstance(c, PathCollection)
        and len(c.get_edgecolor())
        and to_hex(c.get_edgecolor()[0]) == colour
    ]


def _commune_and_ea(page: field_maps.FieldMapPage) -> tuple[shapely.Geometry, Any, Any]:
    """The commune as the page draws it, its boundary's and the EA's edge's artists."""
    (boundary,) = _by_edge(page, "#2c3e50")
    (edge,) = _by_edge(page, field_maps.EA_STYLE["edgecolor"])
    return _drawn(boundary), boundary, edge


def _sheets(url: str, ids: list[int]) -> list[tuple[dict[str, Any], field_maps.CommuneSheet]]:
    """Each EA's row and the sheet its field map is drawn from (as the route makes it)."""

    async def made() -> list[tuple[dict[str, Any], field_maps.CommuneSheet]]:
        settings = ServiceSettings()
        async with await psycopg.AsyncConnection.connect(url) as conn:
            rows = [await fetch(conn, i) for i in ids]
            return [(r, await field_maps.field_map_sheet(conn, r, settings, "vi")) for r in rows]

    return run_coroutine(made())


def test_every_ea_lies_within_the_commune_its_field_map_draws(env: Env) -> None:
    eas = env.generate()  # (on the 2025 communes, the latest vintage then)
    _later_vintage(env)
    by_code = {f["properties"]["code"]: f["id"] for f in eas}
    codes = sorted(by_code)
    # (a field map per EA takes a second on a busy machine: every sixth, and 00004-001)
    chosen = sorted({codes[0], *codes[::6]})
    outside_later = 0
    for row, sheet in _sheets(env.url, [by_code[c] for c in chosen]):
        page = field_maps.FieldMapPage(sheet)
        ea = next(e for e in sheet.eas if e["code"] == row["code"])
        page.draw(ea)
        commune, boundary, edge = _commune_and_ea(page)
        drawn_ea = _drawn(edge)
        assert drawn_ea.area > 0, row["code"]
        outside = drawn_ea.difference(commune).area
        assert outside < TOLERANCE_M2, (row["code"], outside)
        # the commune's edge reads over the EA's own, where they meet
        assert boundary.get_zorder() > edge.get_zorder()
        later = sheet.projection.geometry(  # type: ignore[union-attr]
            shapely.from_wkb(
                env.sql(
                    "SELECT ST_AsBinary(geom) FROM admin_unit WHERE vintage = '2026'"
                    " AND level = 'commune' AND code = %s",
                    COMMUNE,
                )[0][0]
            )
        )
        outside_later += drawn_ea.difference(later).area > TOLERANCE_M2
        assert sheet.commune["name"] == "Ba Đình" and sheet.commune["vintage"] == "2025"
        # the land beyond the commune is greyed, under the EA's edge
        assert page.outside is not None and page.outside.get_zorder() < edge.get_zorder()
        assert _drawn(page.outside).intersection(drawn_ea).area < TOLERANCE_M2
    assert outside_later >= 10  # (the later unit would have left these outside: a real test)


def _ids(env: Env) -> list[int]:
    return [
        int(row[0])
        for row in env.sql(
            "SELECT id FROM enumeration_area WHERE census_round = '2029' ORDER BY code"
        )
    ]


def test_field_maps_and_map_book_name_and_draw_the_eas_own_commune(env: Env) -> None:
    _strips(env, COMMUNE, 6)  # (on the 2025 Ba Đình)
    _later_vintage(env)
    for i in _ids(env):
        got = env.client.get(f"{ITEMS}/{i}/field-map.pdf")
        assert got.status_code == 200, got.text
        text = PdfReader(io.BytesIO(got.content)).pages[0].extract_text()
        assert "Ba Đình (00004), Hà Nội" in text and LATER_NAME not in text, text
        assert "Ranh giới hành chính 2025" in text
    keep("field-map-vintage.pdf", got.content)
    book = env.client.get(f"/communes/{COMMUNE}/ea-map-book.pdf", params={"round": "2029"})
    assert book.status_code == 200, book.text
    keep("map-book-vintage.pdf", book.content)
    pages = [p.extract_text() for p in PdfReader(io.BytesIO(book.content)).pages]
    assert len(pages) == 7
    assert all("Ba Đình" in p and LATER_NAME not in p for p in pages)
    assert "Ngoài xã, phường" in pages[0] and "Ngoài xã, phường" in pages[1]
    english = env.client.get(f"{ITEMS}/{_ids(env)[0]}/field-map.pdf", params={"lang": "en"})
    text = PdfReader(io.BytesIO(english.content)).pages[0].extract_text()
    assert "Outside the commune" in text and "Boundaries of 2025" in text

    # the book's sheet: every EA of the round inside the outline it draws
    async def sheet() -> field_maps.CommuneSheet:
        async with await psycopg.AsyncConnection.connect(env.url) as conn:
            return await field_maps.commune_sheet(
                conn, COMMUNE, "2029", ServiceSettings(), "vi", vintage="2025"
            )

    page = field_maps.FieldMapPage(run_coroutine(sheet()))
    (boundary,) = _by_edge(page, "#2c3e50")
    commune = _drawn(boundary)
    areas = shapely.area(shapely.difference(np.asarray(page.shapes), commune))
    assert len(areas) == 6 and areas.max() < TOLERANCE_M2

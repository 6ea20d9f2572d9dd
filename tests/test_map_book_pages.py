"""A map book's EA pages show what each EA's own field map shows, whether the pages are drawn
one after the other on one reused page or in runs by worker processes: the EA's code and
details, its neighbours' codes, the key, its boundary description (and no trace of the EA
drawn before it on the same page)."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
from psycopg import AsyncConnection
from pypdf import PdfReader

from geo_service.outputs import field_maps
from geo_service.outputs.page_workers import PageWorkers
from geo_service.settings import ServiceSettings

ARTIFACTS = Path(__file__).parent.parent / "test-artifacts" / "outputs"
COMMUNE = "00004"  # Phường Ba Đình, Hà Nội
COUNT = 26  # EAs: more than field_maps.PARALLEL_PAGES, so that workers draw them
DESCRIBED = 5  # the EA with a boundary description and landmarks
DESCRIPTION = "Phía bắc giáp phố Hoàng Hoa Thám; phía đông giáp đường Ngọc Hà"
STRIPS = """
INSERT INTO enumeration_area (census_round, code, commune_vintage, commune_code, status,
                              households, boundary_description, landmarks, geom, updated_by)
SELECT '2029', c.code || '-' || lpad(i::text, 3, '0'), c.vintage, c.code, 'draft', 100 + i,
       CASE WHEN i = %(described)s THEN %(description)s END,
       CASE WHEN i = %(described)s THEN 'Chùa Một Cột' END,
       ST_Multi(ST_CollectionExtract(ST_Intersection(c.geom, ST_MakeEnvelope(
           ST_XMin(c.geom) + (i - 1) * (ST_XMax(c.geom) - ST_XMin(c.geom)) / %(n)s,
           ST_YMin(c.geom),
           ST_XMin(c.geom) + i * (ST_XMax(c.geom) - ST_XMin(c.geom)) / %(n)s,
           ST_YMax(c.geom), 4326)), 3)), 'test'
FROM commune_coverage c, generate_series(1, %(n)s) i
WHERE c.vintage = '2025' AND c.code = %(commune)s
"""
KEY = ("Địa bàn này", "Địa bàn lân cận (mã)", "Ranh giới xã, phường", "Đường, sông, đường sắt")


def _sheet(url: str) -> field_maps.CommuneSheet:
    async def gather() -> field_maps.CommuneSheet:
        async with await AsyncConnection.connect(url, autocommit=True) as conn:
            return await field_maps.commune_sheet(conn, COMMUNE, "2029", ServiceSettings(), "vi")

    # (in a thread of its own: a browser test run before in this process leaves an event
    # loop running in this one)
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, gather()).result()


def _book_pages(sheet: field_maps.CommuneSheet, workers: PageWorkers | None) -> list[str]:
    path = field_maps.map_book_file(sheet, workers)
    try:
        return [page.extract_text() for page in PdfReader(path).pages]
    finally:
        shutil.rmtree(path.parent)


def _code(i: int) -> str:
    return f"{COMMUNE}-{i:03d}"


def _touching(sheet: field_maps.CommuneSheet, code: str) -> set[str]:
    shapes = {ea["code"]: ea["geom"] for ea in sheet.eas}
    return {c for c, g in shapes.items() if c != code and g.intersection(shapes[code]).length > 0}


def test_map_book_pages_show_what_each_field_map_shows(demo_db: str) -> None:
    with psycopg.connect(demo_db, autocommit=True) as conn:
        conn.execute(
            STRIPS,
            {"n": COUNT, "commune": COMMUNE, "described": DESCRIBED, "description": DESCRIPTION},
        )
    sheet = _sheet(demo_db)
    assert [ea["code"] for ea in sheet.eas] == [_code(i) for i in range(1, COUNT + 1)]
    one_by_one = _book_pages(sheet, None)
    workers = PageWorkers(2)
    try:
        in_runs = _book_pages(sheet, workers)
    finally:
        workers.close()
    total = COUNT + 1
    assert len(one_by_one) == len(in_runs) == total
    assert in_runs == one_by_one  # the runs drawn by two processes join into the same book
    assert "Tập bản đồ địa bàn điều tra" in one_by_one[0] and f"Trang 1/{total}" in one_by_one[0]
    # every page against the EA's own field map, drawn on a page of its own; the first, the
    # described one and the one after it, both sides of the two runs' seam, the last
    for i in (1, DESCRIBED, DESCRIBED + 1, COUNT // 2, COUNT // 2 + 1, COUNT):
        code, page = _code(i), one_by_one[i]
        alone = io.BytesIO(field_maps.field_map_pdf(sheet, code))
        text = PdfReader(alone).pages[0].extract_text()
        assert page.replace(f" · Trang {i + 1}/{total}", "") == text, (code, page, text)
        assert f"Trang {i + 1}/{total}" in page
        assert f"Bản đồ địa bàn điều tra {code}" in page
        assert page.count("Bản đồ địa bàn điều tra") == 1  # (no title left from before)
        assert all(label in page for label in KEY), page
        assert re.search(rf"Số hộ ước tính:\s*{100 + i}\b", page), page
        # neighbours' codes (those that fit: the strips' frames are crowded)
        written = set(re.findall(rf"{COMMUNE}-\d{{3}}", page)) - {code}
        assert written and written <= {ea["code"] for ea in sheet.eas}, (code, written)
        assert (DESCRIPTION in page) == (i == DESCRIBED), page
        assert ("Chùa Một Cột" in page) == (i == DESCRIBED), page


def test_page_workers_stop_and_start_again() -> None:
    workers = PageWorkers(2)
    assert workers.submit(sum, [1, 2, 3]).result(timeout=120) == 6
    workers.close()
    assert workers.submit(max, [4, 5]).result(timeout=120) == 5  # (a new pool on next use)
    workers.close()


def test_field_maps_name_every_touching_neighbour_first(demo_db: str) -> None:
    # narrow strips: the frame of each holds many strips, whose codes cannot all be written;
    # those sharing the EA's boundary must be, before farther ones (placed in list order,
    # the strips to the left took their room)
    with psycopg.connect(demo_db, autocommit=True) as conn:
        conn.execute(STRIPS, {"n": COUNT, "commune": COMMUNE, "described": 0, "description": None})
    sheet = _sheet(demo_db)
    missing, farther = {}, set()
    for i in range(1, COUNT + 1):
        code = _code(i)
        pdf = field_maps.field_map_pdf(sheet, code)
        if i == COUNT // 2:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            (ARTIFACTS / "field-map-strips.pdf").write_bytes(pdf)  # for people to look at
        text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
        written = set(re.findall(rf"{COMMUNE}-\d{{3}}", text)) - {code}
        touching = _touching(sheet, code)
        assert touching, code
        if touching - written:
            missing[code] = sorted(touching - written)
        farther |= written - touching
    assert not missing, missing
    assert farther  # (the codes of EAs farther away still go where there is room)

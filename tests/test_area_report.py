"""Area reports (`/reports/area`): PDF and Excel of a drawn area or of one unit, checked on
the real files (pypdf's text layer, openpyxl's cells) against `/aggregate`'s own answer for
the same body, with disclosure, bad input and the viewer's button. A few rendered files are
kept under test-artifacts/outputs (not committed) for people to look at."""

from __future__ import annotations

import io
import math
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader

from geo_service.http.app import create_app
from geo_service.settings import ServiceSettings

ARTIFACTS = Path(__file__).parent.parent / "test-artifacts" / "outputs"
REPORT = "/reports/area"
# a district-sized rectangle over central Hà Nội (Ba Đình, Hoàn Kiếm, Đống Đa …)
DRAWN = {
    "type": "Polygon",
    "coordinates": [
        [[105.80, 21.00], [105.87, 21.00], [105.87, 21.06], [105.80, 21.06], [105.80, 21.00]]
    ],
}
COMMUNE_INDICATORS = ["area_km2", "density", "pop_worldpop", "population"]


def keep(name: str, content: bytes) -> Path:
    """Keep a rendered file for people to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(content)
    return path


def pdf_text(content: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(content)).pages)


def pdf_pages(content: bytes) -> int:
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(content)).pages)


def workbook(content: bytes) -> Any:
    from openpyxl import load_workbook

    return load_workbook(io.BytesIO(content))


def number(value: float, decimals: int, lang: str = "vi") -> str:
    text = f"{value:,.{decimals}f}"
    if lang == "vi":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


def decimals_of(client: TestClient, code: str) -> int:
    return int(client.get(f"/indicators/{code}").json()["decimals"])


def figure_rows(book: Any) -> dict[str, dict[str, Any]]:
    """The figures sheet's table: indicator code → its row's cells by heading."""
    sheet = book.worksheets[0]
    rows = list(sheet.iter_rows(min_row=9, values_only=True))
    head = rows[0]
    return {r[0]: dict(zip(head, r, strict=True)) for r in rows[1:] if r[0]}


def cell_values(book: Any) -> list[Any]:
    return [c.value for sheet in book for row in sheet.iter_rows() for c in row]


def test_drawn_area_report_pdf_reads_in_vietnamese_with_the_aggregate_figures(
    client: TestClient,
) -> None:
    expected = client.post(
        "/aggregate", json={"geometry": DRAWN, "indicators": COMMUNE_INDICATORS}
    ).json()
    got = client.post(REPORT, params={"format": "pdf", "lang": "vi"}, json=DRAWN)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/pdf"
    assert "attachment" in got.headers["content-disposition"]
    keep("area-report-hanoi-vi.pdf", got.content)
    text = pdf_text(got.content)
    assert "Báo cáo khu vực đã vẽ" in text
    for name in ("Dân số (người)", "Mật độ dân số", "Diện tích", "Dân số ước tính (WorldPop)"):
        assert name in text, name
    for result in expected["results"]:  # every figure, written the Vietnamese way
        assert result["status"] == "ok" and result["value"] is not None
        written = number(result["value"], decimals_of(client, result["indicator"]))
        assert written in text, (result["indicator"], written)
    # the comparison with the parent (the province holding the area) and the country
    assert "Hà Nội" in text and "Cả nước" in text
    assert number(8807523, 0) in text  # Hà Nội's published population
    # the map: the communes it touches by name, scale bar and north arrow; covered share
    assert "Hoàn Kiếm" in text and "Ba Đình" in text
    assert "Tỷ lệ 1:" in text and "\nB\n" in text
    assert (
        "Phần diện tích nằm trong các đơn vị: " + number(expected["covered_share"] * 100, 1) in text
    )
    # sources, licences, methodological notes, office and date (wrapped at any space)
    flat = " ".join(text.split())
    assert "Nguồn và giấy phép" in flat and "CC BY 4.0" in flat and "WorldPop" in flat
    assert "theo tỷ lệ diện tích" in flat and "POST /aggregate" in flat
    assert "Cục Thống kê" in flat and "Lập ngày" in flat

    english = client.post(REPORT, params={"format": "pdf", "lang": "en"}, json=DRAWN)
    assert english.status_code == 200, english.text
    keep("area-report-hanoi-en.pdf", english.content)
    text = pdf_text(english.content)
    assert "Report on a drawn area" in text and "Population density" in text
    assert "Country" in text and "Sources and licences" in " ".join(text.split())
    assert "Mật độ" not in text and "Cả nước" not in text and "Nguồn" not in text


@pytest.mark.parametrize("method", ["area", "population"])
def test_excel_cells_equal_the_aggregate_figures_for_the_same_body(
    client: TestClient, method: str
) -> None:
    body = {"geometry": DRAWN, "indicators": COMMUNE_INDICATORS, "method": method}
    expected = client.post("/aggregate", json=body).json()
    got = client.post(REPORT, params={"format": "xlsx", "lang": "vi"}, json=body)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    keep(f"area-report-hanoi-{method}.xlsx", got.content)
    book = workbook(got.content)
    assert [s.title for s in book] == ["Số liệu", "Theo thời gian", "Nguồn và ghi chú"]
    sheet = book.worksheets[0]
    assert sheet["B5"].value == expected["area_km2"]
    assert sheet["B6"].value == expected["covered_share"]
    rows = figure_rows(book)
    assert set(rows) == set(COMMUNE_INDICATORS)
    for result in expected["results"]:
        row = rows[result["indicator"]]
        assert row["Khu vực"] == result["value"], (result, row)  # exactly, as a number
        assert isinstance(row["Khu vực"], int | float)
        assert row["Kỳ"] == result["period"]
    assert rows["population"]["Hà Nội"] == 8807523  # the parent's published value
    assert isinstance(rows["population"]["Cả nước"], int | float)
    notes = " ".join(str(v) for v in cell_values(book) if v)
    weights = "theo tỷ lệ dân số" if method == "population" else "theo tỷ lệ diện tích"
    assert weights in notes and "CC BY 4.0" in notes

    # without `indicators`, the report holds every indicator with values on the communes
    everything = client.post(REPORT, params={"format": "xlsx"}, json={"geometry": DRAWN})
    assert set(figure_rows(workbook(everything.content))) == set(COMMUNE_INDICATORS)


def test_unit_report_charts_the_series_beside_the_parent_and_the_country(
    client: TestClient,
) -> None:
    # Hà Nội before the reform: the PAPI scores of 2011-2024 (indexes) have periods to chart
    got = client.get(REPORT, params={"unit": "01", "vintage": "2019", "format": "pdf"})
    assert got.status_code == 200, got.text
    keep("unit-report-hanoi-2019-vi.pdf", got.content)
    text = pdf_text(got.content)
    assert "Báo cáo đơn vị hành chính: Thành phố Hà Nội" in text
    assert "Biểu đồ theo thời gian" in text and "PAPI – Tri thức công dân" in text
    assert pdf_pages(got.content) >= 3
    profile = client.get(
        "/maps/profile",
        params={"collection": "province-2019", "unit": "01", "indicator": "papi_sc11"},
    ).json()
    latest = profile["unit"]["series"][-1]
    assert number(latest["value"], 2) in text

    posted = client.post(REPORT, params={"unit": "01", "vintage": "2019", "format": "xlsx"})
    assert posted.status_code == 200, posted.text
    book = workbook(posted.content)
    series = list(book.worksheets[1].iter_rows(min_row=2, values_only=True))
    papi = {r[2]: r for r in series if r[0] == "papi_sc11"}
    assert len(papi) == len(profile["unit"]["series"]) >= 2
    national = {p["period"]: p["value"] for p in profile["national"]["series"]}
    for point in profile["unit"]["series"]:
        row = papi[point["period"]]
        assert row[3] == point["value"]
        # (the country's mean sums the provinces in the database's order: the last digit of
        # a float may differ between two reads)
        assert row[6] == pytest.approx(national[point["period"]], rel=1e-12)


def test_chart_axes_write_numbers_as_the_page_does(client: TestClient) -> None:
    # (a Vietnamese report's charts wrote 560000 beside tables writing 560.000)
    for lang, thousands in (("vi", "."), ("en", ",")):
        got = client.post(REPORT, params={"format": "pdf", "lang": lang}, json=DRAWN)
        assert got.status_code == 200, got.text
        pages = [p.extract_text() for p in PdfReader(io.BytesIO(got.content)).pages]
        charts = [
            p
            for p in pages
            if ("Biểu đồ theo thời gian" if lang == "vi" else "Charts over time") in p
        ]
        assert charts, pages
        ticks = re.findall(r"^[\d.,]+$", charts[0], flags=re.M)
        assert ticks and not [t for t in ticks if re.fullmatch(r"\d{5,}", t)], ticks  # (years: 4)
        assert any(re.fullmatch(rf"\d{{1,3}}(\{thousands}\d{{3}})+", t) for t in ticks), ticks


def test_bad_requests_get_a_json_4xx_naming_the_parameter(client: TestClient) -> None:
    bowtie = {
        "type": "Polygon",
        "coordinates": [[[105, 21], [106, 22], [106, 21], [105, 22], [105, 21]]],
    }
    atlantic = {
        "type": "Polygon",
        "coordinates": [[[-30, 10], [-29, 10], [-29, 11], [-30, 11], [-30, 10]]],
    }
    asia = {"type": "Polygon", "coordinates": [[[90, 0], [130, 0], [130, 30], [90, 30], [90, 0]]]}
    cases: list[tuple[dict[str, Any], Any, str]] = [
        ({}, {"geometry": bowtie}, "geometry"),
        ({}, {"geometry": {"type": "Point", "coordinates": [105, 21]}}, "geometry"),
        ({}, atlantic, "geometry"),  # outside the country
        ({}, asia, "geometry"),  # too large
        ({}, {"geometry": DRAWN, "collection": "nothing-2025"}, "collection"),
        ({}, {"geometry": DRAWN, "indicators": ["nothing"]}, "indicators"),
        ({}, {"geometry": DRAWN, "method": "guess"}, "method"),
        ({}, {"geometry": DRAWN, "colour": "red"}, "colour"),
        ({}, None, "geometry"),  # no body and no unit
        ({"format": "docx"}, DRAWN, "format"),
        ({"lang": "fr"}, DRAWN, "lang"),
        ({"unit": "99999", "vintage": "2025"}, None, "unit"),
        ({"unit": "01", "vintage": "1900"}, None, "vintage"),
        ({"unit": "01"}, None, "vintage"),
        ({"unit": "01", "vintage": "2025"}, DRAWN, "unit"),  # both
    ]
    for params, body, parameter in cases:
        got = client.post(REPORT, params={"format": "pdf", **params}, json=body)
        assert 400 <= got.status_code < 500, (params, body, got.status_code, got.text)
        assert got.headers["content-type"].startswith("application/json"), got.headers
        assert got.json()["parameter"] == parameter, (params, got.json())
    # an area with no units (the sea off Khánh Hòa), one over the vertex limit, a body over
    # the size limit (#18's bad input)
    sea = [[[109.6, 12.0], [109.9, 12.0], [109.9, 12.3], [109.6, 12.3], [109.6, 12.0]]]
    ring = [
        [round(105.8 + 0.5 * math.cos(i / 16_000), 5), round(21.0 + 0.5 * math.sin(i / 16_000), 5)]
        for i in range(100_400)  # (just over 100,000 vertices, 2.4 MB: under the body limit)
    ]
    many = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
    for body in ({"type": "Polygon", "coordinates": sea}, many):
        got = client.post(REPORT, params={"format": "pdf"}, json=body)
        assert 400 <= got.status_code < 500, got.text
        assert got.json()["parameter"] == "geometry", got.text
    huge = b'{"type": "Polygon", "coordinates": [[' + b"[105.8, 21.0], " * 400_000 + b"]]}"
    got = client.post(REPORT, content=huge, headers={"Content-Type": "application/json"})
    assert got.status_code == 413 and got.json()["parameter"] == "body", got.text
    broken = client.post(REPORT, content=b"{not json", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["parameter"], broken.text
    got = client.get(REPORT, params={"unit": "01", "vintage": "2025", "format": "png"})
    assert got.status_code == 400 and got.json()["parameter"] == "format"


@pytest.fixture
def private_client(demo_db: str, tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    app = create_app(ServiceSettings(home=tmp_path), db_url=demo_db)
    with TestClient(app) as client:
        yield client, demo_db


def _sql(url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(query, args or None)
        return cursor.fetchall() if cursor.description else []


def _written(value: float) -> set[str]:
    """The ways a value could be printed."""
    out = set()
    for decimals in (0, 1, 2):
        out |= {number(value, decimals, "vi"), number(value, decimals, "en")}
    return out | {repr(value), f"{value:.0f}"}


def test_a_suppressed_value_appears_in_no_report(
    private_client: tuple[TestClient, str],
) -> None:
    from indicators.protect import refresh

    client, url = private_client
    # a small rectangle around a commune of Hà Nội with fewer than 25,000 people, and its
    # neighbours: the area's population and density touch a unit the rule below hides
    small = _sql(
        url,
        "SELECT ST_XMin(u.geom), ST_YMin(u.geom), ST_XMax(u.geom), ST_YMax(u.geom)"
        " FROM admin_unit u JOIN indicator_value v ON v.code = u.code AND v.vintage = u.vintage"
        " AND v.level = u.level WHERE u.vintage = '2025' AND u.level = 'commune'"
        " AND u.parent_code = '01' AND v.indicator = 'population' AND v.value < 25000"
        " ORDER BY v.value LIMIT 1",
    )
    x0, y0, x1, y1 = small[0]
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    body = {
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "indicators": COMMUNE_INDICATORS,
    }
    before = client.post("/aggregate", json=body).json()
    true_values = {r["indicator"]: r["value"] for r in before["results"]}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE indicator SET suppress_below = 25000 WHERE code = 'population'")
        refresh(conn)
    after = client.post("/aggregate", json=body).json()
    hidden = {r["indicator"] for r in after["results"] if r["status"] == "suppressed"}
    assert {"population", "density"} <= hidden, after  # the area touches a hidden commune
    touched = [u["code"] for u in after["units"]]
    hidden_units = dict(
        _sql(
            url,
            "SELECT code, value FROM indicator_value WHERE indicator = 'population'"
            " AND vintage = '2025' AND level = 'commune' AND period = '2025'"
            " AND code = ANY(%s) AND value < 25000",
            touched,
        )
    )
    assert hidden_units, "some communes of the area are hidden"
    secrets = set()
    for code in hidden:
        secrets |= _written(true_values[code])
    for value in hidden_units.values():
        secrets |= _written(value)
    for lang in ("vi", "en"):
        pdf = client.post(REPORT, params={"format": "pdf", "lang": lang}, json=body)
        assert pdf.status_code == 200, pdf.text
        keep(f"area-report-suppressed-{lang}.pdf", pdf.content)
        text = pdf_text(pdf.content)
        label = "Bị ẩn (bảo mật thống kê)" if lang == "vi" else "Suppressed (disclosure control)"
        assert label in text
        assert not {s for s in secrets if s in text}, lang
        xlsx = client.post(REPORT, params={"format": "xlsx", "lang": lang}, json=body)
        book = workbook(xlsx.content)
        values = cell_values(book)
        for code in hidden:
            assert true_values[code] not in values
            assert figure_rows(book)[code][book.worksheets[0]["E9"].value] is None
        assert not set(hidden_units.values()) & set(values)
        assert not {s for s in secrets if any(s == str(v) for v in values)}
    # a hidden commune's own report: its population is nowhere
    code, value = next(iter(hidden_units.items()))
    unit = client.get(REPORT, params={"unit": code, "vintage": "2025", "format": "xlsx"})
    assert unit.status_code == 200, unit.text
    assert value not in cell_values(workbook(unit.content))
    unit_pdf = client.get(REPORT, params={"unit": code, "vintage": "2025", "format": "pdf"})
    assert not {s for s in _written(value) if s in pdf_text(unit_pdf.content)}


def test_excel_text_is_never_a_formula(private_client: tuple[TestClient, str]) -> None:
    client, url = private_client
    formula = '=HYPERLINK("http://example.invalid","click")'
    _sql(
        url,
        "UPDATE indicator SET name_vi = %s, name_en = %s WHERE code = 'density'",
        formula,
        formula,
    )
    got = client.post(REPORT, params={"format": "xlsx"}, json={"geometry": DRAWN})
    assert got.status_code == 200, got.text
    book = workbook(got.content)
    cells = [c for sheet in book for row in sheet.iter_rows() for c in row if c.value == formula]
    assert cells and all(c.data_type == "s" for c in cells)
    with zipfile.ZipFile(io.BytesIO(got.content)) as archive:
        sheets = [n for n in archive.namelist() if n.startswith("xl/worksheets/")]
        assert not any(b"<f>" in archive.read(n) for n in sheets)


def test_viewer_report_buttons_download_the_report(browser: Any, live_server: str) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 768}, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{live_server}/map?level=commune&indicator=density&lang=vi")
    page.wait_for_function("window.geoViewer && window.geoViewer.ready", timeout=120_000)
    page.evaluate("window.geoViewer.map.setView([21.03, 105.84], 12)")
    page.wait_for_timeout(300)
    page.click(".leaflet-draw-draw-rectangle")
    box = page.evaluate("window.geoViewer.map.getContainer().getBoundingClientRect().toJSON()")
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 60, y - 40)
    page.mouse.down()
    page.mouse.move(x + 60, y + 40, steps=5)
    page.mouse.up()
    page.wait_for_function(
        "window.geoViewer.lastAggregate && window.geoViewer.lastAggregate.results",
        timeout=60_000,
    )
    assert page.locator(".gv-report-label").first.text_content() == "Báo cáo khu vực: "
    with page.expect_download(timeout=120_000) as info:
        page.click(".gv-report-pdf")
    content = Path(info.value.path()).read_bytes()
    keep("viewer-area-report.pdf", content)
    assert info.value.suggested_filename == "bao-cao-khu-vuc.pdf"
    text = pdf_text(content)
    assert "Báo cáo khu vực đã vẽ" in text and "Mật độ dân số" in text
    aggregate = page.evaluate("window.geoViewer.lastAggregate")
    density = next(r for r in aggregate["results"] if r["indicator"] == "density")
    assert number(density["value"], 1) in text  # the panel's own figure
    with page.expect_download(timeout=120_000) as info:
        page.click(".gv-report-xlsx")
    book = workbook(Path(info.value.path()).read_bytes())
    assert figure_rows(book)["density"]["Khu vực"] == density["value"]

    # a selected unit: its own report
    page.evaluate("window.geoViewer.app.select('00004')")
    page.click("#gv-tabbtn-unit")
    page.wait_for_selector("#gv-tab-unit .gv-report-pdf")
    with page.expect_download(timeout=120_000) as info:
        page.click("#gv-tab-unit .gv-report-pdf")
    assert info.value.suggested_filename == "bao-cao-khu-vuc-00004.pdf"
    text = pdf_text(Path(info.value.path()).read_bytes())
    assert "Báo cáo đơn vị hành chính: " in text and "Ba Đình" in text
    assert not errors, errors
    context.close()

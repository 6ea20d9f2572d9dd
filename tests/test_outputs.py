"""Outputs people take away: EA downloads (GeoPackage, zipped Shapefile, GeoJSON, CSV), map
exports (PNG, PDF), EA field maps and commune map books, area reports (PDF, XLSX).

Real files are checked: opened with pyogrio and GDAL's ogrinfo, PDF text layers read with
pypdf, PNG pixels read with Pillow. A few rendered files are kept under
test-artifacts/outputs (not committed) for people to look at."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyogrio
import pytest
from fastapi.testclient import TestClient

from geo_service.http.app import create_app
from geo_service.settings import ServiceSettings
from geo_service.users import add_user
from tests.helpers import wait_protected

ITEMS = "/collections/enumeration-areas/items"
COMMUNE = "00004"  # Phường Ba Đình, Hà Nội (province 01)
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts" / "outputs"


def keep(name: str, content: bytes) -> Path:
    """Keep a rendered file for people to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(content)
    return path


class Env:
    """A service over a fresh demo database, with users, and a commune with EAs."""

    def __init__(self, client: TestClient, url: str, tokens: dict[str, str]):
        self.client, self.url, self.tokens = client, url, tokens

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cursor = conn.execute(query, args or None)
            return cursor.fetchall() if cursor.description else []

    def generate(self, code: str = COMMUNE) -> list[dict[str, Any]]:
        made = self.client.post(
            f"/communes/{code}/ea-generate",
            params={"round": "2029"},
            headers=self.auth("editor"),
        )
        assert made.status_code == 201, made.text
        found: list[dict[str, Any]] = self.client.get(
            ITEMS, params={"commune": code, "limit": 10_000}, headers=self.auth("editor")
        ).json()["features"]
        return found

    def assign(self, codes: list[str]) -> None:
        for code, name, role in (
            ("E1", "Nguyễn Thị Hằng", "enumerator"),
            ("S1", "Trần Văn Đức", "supervisor"),
        ):
            made = self.client.post(
                "/census/2029/staff",
                json={"code": code, "name": name, "role": role, "scope": COMMUNE},
                headers=self.auth("editor"),
            )
            assert made.status_code == 201, made.text
        put = self.client.put(
            f"/communes/{COMMUNE}/assignments",
            json={"assignments": [{"ea": c, "enumerator": "E1"} for c in codes]},
            headers=self.auth("editor"),
        )
        assert put.status_code == 200, put.text


def _env(url: str, home: Path, **settings: Any) -> Iterator[Env]:
    with psycopg.connect(url, autocommit=True) as conn:
        tokens = {
            "editor": add_user(conn, "ed", "editor", ["01"]),
            "outsider": add_user(conn, "out", "editor", ["79"]),
            "admin": add_user(conn, "adm", "admin", []),
        }
    app = create_app(ServiceSettings(home=home, **settings), db_url=url)
    with TestClient(app) as client:
        yield Env(client, url, tokens)


@pytest.fixture
def env(demo_db: str, tmp_path: Path) -> Iterator[Env]:
    yield from _env(demo_db, tmp_path)


# ---- EA downloads ----


def test_ea_downloads_open_in_gdal_with_crs_types_and_rows(env: Env, tmp_path: Path) -> None:
    eas = env.generate()
    codes = sorted(f["properties"]["code"] for f in eas)
    env.assign(codes[:2])
    # (estimated households come from the population grid as floats: every format writes
    # the whole number, half up, as an integer)
    env.sql("UPDATE enumeration_area SET households = 12.000000001 WHERE code = %s", codes[0])
    env.sql("UPDATE enumeration_area SET households = 7.5 WHERE code = %s", codes[1])
    households = {f["properties"]["code"]: int(f["properties"]["households"] + 0.5) for f in eas}
    households.update({codes[0]: 12, codes[1]: 8})
    env.sql(
        "UPDATE enumeration_area SET boundary_description = %s WHERE code = %s",
        '=HYPERLINK("http://x") phía bắc giáp đường Hoàng Hoa Thám',
        codes[0],
    )
    for fmt, suffix in (("gpkg", "gpkg"), ("shp", "zip")):
        got = env.client.get(ITEMS, params={"commune": COMMUNE, "f": fmt})
        assert got.status_code == 200, got.text
        assert got.headers["OGC-NumberMatched"] == str(len(eas))
        path = tmp_path / f"eas.{suffix}"
        path.write_bytes(got.content)
        source = f"/vsizip/{path}" if fmt == "shp" else str(path)
        info = pyogrio.read_info(source)
        assert info["features"] == len(eas)
        assert info["crs"] == "EPSG:4326"
        types = dict(zip(info["fields"], info["dtypes"], strict=True))
        frame = pyogrio.read_dataframe(source)
        if fmt == "gpkg":
            assert types["households"] == "int64" and types["code"] == "object"
            assert types["listed_households"] in ("int64", "int32")
            by_code = frame.set_index("code")
            assert by_code.loc[codes[0], "enumerator_code"] == "E1"
            assert by_code.loc[codes[0], "enumerator_name"] == "Nguyễn Thị Hằng"
            assert by_code.loc[codes[0], "commune_name"] == "Ba Đình"
            assert by_code.loc[codes[0], "province_code"] == "01"
            assert not isinstance(by_code.loc[codes[-1], "enumerator_code"], str)
        else:
            assert types["households"] == "int64"
            by_code = frame.set_index("code")
            assert by_code.loc[codes[0], "enum_name"] == "Nguyễn Thị Hằng"
            assert by_code.loc[codes[0], "commune_nm"] == "Ba Đình"
            with zipfile.ZipFile(path) as archive:
                assert {n.rsplit(".", 1)[1] for n in archive.namelist()} >= {
                    "shp",
                    "shx",
                    "dbf",
                    "prj",
                    "cpg",
                }
        assert by_code["households"].to_dict() == households
        assert set(by_code.index) == set(codes)
        # GDAL's own command line reads it too
        ogr = subprocess.run(
            ["ogrinfo", "-so", "-al", source], capture_output=True, text=True, check=True
        ).stdout
        assert f"Feature Count: {len(eas)}" in ogr
        assert "WGS 84" in ogr and "households: Integer64" in ogr

    geojson = env.client.get(ITEMS, params={"commune": COMMUNE, "f": "geojson"})
    assert geojson.status_code == 200
    assert "attachment" in geojson.headers["Content-Disposition"]
    body = geojson.json()
    assert len(body["features"]) == len(eas)
    first = next(f for f in body["features"] if f["id"] == codes[0])
    assert {f["id"]: f["properties"]["households"] for f in body["features"]} == households
    assert all(type(f["properties"]["households"]) is int for f in body["features"])
    assert b'"households":12,' in geojson.content
    assert first["properties"]["enumerator_code"] == "E1"
    assert first["geometry"]["type"] == "MultiPolygon"

    text = env.client.get(ITEMS, params={"commune": COMMUNE, "f": "csv"})
    assert text.status_code == 200 and text.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(text.content.decode("utf-8-sig"))))
    assert len(rows) == len(eas)
    row = next(r for r in rows if r["code"] == codes[0])
    assert row["boundary_description"].startswith("'=HYPERLINK")  # never run by a spreadsheet
    assert row["commune_name"] == "Ba Đình" and row["wkt"].startswith("MULTIPOLYGON")
    assert {r["code"]: r["households"] for r in rows} == {
        code: str(value) for code, value in households.items()
    }

    # limit and offset page a download like any other
    page = env.client.get(ITEMS, params={"commune": COMMUNE, "f": "csv", "limit": 2, "offset": 1})
    assert page.headers["OGC-NumberReturned"] == "2"
    assert len(list(csv.DictReader(io.StringIO(page.content.decode("utf-8-sig"))))) == 2


def test_ea_downloads_refuse_bad_formats_and_follow_read_rules(
    demo_db: str, tmp_path: Path
) -> None:
    for env in _env(demo_db, tmp_path, public_reads=False):
        env.generate()
        wrong = env.client.get(
            ITEMS, params={"commune": COMMUNE, "f": "kml"}, headers=env.auth("editor")
        )
        assert wrong.status_code == 400 and wrong.json()["parameter"] == "f"
        anonymous = env.client.get(ITEMS, params={"commune": COMMUNE, "f": "gpkg"})
        assert anonymous.status_code == 401
        outside = env.client.get(
            ITEMS, params={"commune": COMMUNE, "f": "gpkg"}, headers=env.auth("outsider")
        )
        assert outside.status_code == 403 and outside.json()["parameter"] == "commune"
        # without a commune, an outsider's file holds only the EAs of their scope: none
        everything = env.client.get(ITEMS, params={"f": "csv"}, headers=env.auth("outsider"))
        assert everything.status_code == 200
        assert everything.headers["OGC-NumberMatched"] == "0"
        mine = env.client.get(ITEMS, params={"f": "csv"}, headers=env.auth("editor"))
        assert int(mine.headers["OGC-NumberMatched"]) > 0
        assert mine.headers["Cache-Control"] == "private"


# ---- map exports ----


def _pdf_text(content: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(content)).pages)


def _pdf_fonts(content: bytes) -> set[str]:
    """Base font names of every font the PDF uses, and whether each is embedded."""
    from pypdf import PdfReader

    found = set()
    for page in PdfReader(io.BytesIO(content)).pages:
        for font in (page["/Resources"].get("/Font") or {}).values():
            font = font.get_object()
            descriptor = font.get("/FontDescriptor")
            if descriptor is None and "/DescendantFonts" in font:
                descriptor = font["/DescendantFonts"][0].get_object().get("/FontDescriptor")
            embedded = descriptor is not None and any(
                k in descriptor.get_object() for k in ("/FontFile", "/FontFile2", "/FontFile3")
            )
            found.add(f"{font['/BaseFont']}:{'embedded' if embedded else 'not embedded'}")
    return found


def _number_vi(value: float, decimals: int) -> str:
    text = f"{value:,.{decimals}f}"
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


def test_map_export_pdf_of_hanoi_density_reads_in_vietnamese(client: TestClient) -> None:
    params = {
        "collection": "commune-2025",
        "indicator": "density",
        "within": "01",
        "method": "natural_breaks",
        "k": 5,
    }
    classes = client.get("/maps/choropleth", params=params).json()
    got = client.get("/maps/export", params={**params, "format": "pdf", "layout": "a4"})
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/pdf"
    # a PDF is compressed already: sent as it is, with its length
    assert "content-encoding" not in got.headers
    assert int(got.headers["content-length"]) == len(got.content)
    keep("density-hanoi-a4.pdf", got.content)
    text = _pdf_text(got.content)
    assert "Mật độ dân số" in text  # the title
    assert "trong Hà Nội (01)" in text  # the scope, by name
    assert "Ngắt tự nhiên (Fisher–Jenks)" in text  # the method
    for c in classes["classes"]:  # every break, written the Vietnamese way
        assert _number_vi(c["upper"], 1) in text
    assert "Bị ẩn (bảo mật thống kê)" in text and "Không có số liệu" in text
    assert "Nguồn:" in text and "Giấy phép:" in text and "Cục Thống kê" in text
    names = [
        f["properties"]["name"]
        for f in client.get(
            "/collections/commune-2025/items",
            params={"parent": "01", "limit": 500, "properties": "name"},
        ).json()["features"]
    ]
    written = [n for n in names if not n.isascii() and n in text]
    assert len(written) >= 10, written  # unit names, with their diacritics, where they fit
    assert "VN-2000 / UTM 48N" in text and "Tỷ lệ 1:" in text
    fonts = _pdf_fonts(got.content)
    assert fonts and all("DejaVuSans" in f and f.endswith(":embedded") for f in fonts), fonts

    english = client.get(
        "/maps/export", params={**params, "format": "pdf", "lang": "en", "layout": "slide"}
    )
    text = _pdf_text(english.content)
    assert "Population density" in text and "Natural breaks" in text and "Suppressed" in text
    assert "Mật độ" not in text and "Bị ẩn" not in text


def test_map_export_of_a_change_writes_small_decreases_as_decreases(env: Env) -> None:
    # two provinces' PAPI scores fall by less than the legend's last decimal (0.01)
    fell = env.sql(
        "UPDATE indicator_value AS t SET value = n.value + 0.003 FROM indicator_value n"
        " WHERE t.indicator = 'papi_sc11' AND t.level = 'province' AND t.period = '2011'"
        " AND t.status = 'ok' AND n.indicator = t.indicator AND n.vintage = t.vintage"
        " AND n.level = t.level AND n.code = t.code AND n.period = '2024' AND n.status = 'ok'"
        " AND t.code IN ('01', '02') RETURNING t.code"
    )
    assert len(fell) == 2
    wait_protected(env.url)  # (until then every value of the indicator is withheld)
    params = {
        "collection": "province-2019",
        "indicator": "papi_sc11",
        "period": "2024",
        "compare": "2011",
        "method": "natural_breaks",
        "k": 4,
    }
    classes = env.client.get("/maps/choropleth", params=params).json()["classes"]
    uppers = [c["upper"] for c in classes if c["upper"] < 0]
    assert uppers, classes
    assert max(uppers) == pytest.approx(-0.003)
    lowest = f"{abs(classes[0]['lower']):.2f}"
    for lang, written, not_written in (
        ("vi", ["−0,003", "−" + lowest.replace(".", ",")], ["−0,00 ", "-0,00", "-0,"]),
        ("en", ["−0.003", "−" + lowest], ["−0.00 ", "-0.00", "-0."]),
    ):
        got = env.client.get("/maps/export", params={**params, "format": "pdf", "lang": lang})
        assert got.status_code == 200, got.text
        text = _pdf_text(got.content)
        # signed as in the viewer's legend, with a true minus; the small one with 3 decimals
        assert all(w in text for w in written), text
        assert not [w for w in not_written if w in text], text
        assert re.search(r"\+0[,.]\d\d", text), text  # (increases carry their +)


def _hex(rgb: tuple[int, ...]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb[:3])


def test_map_export_png_pixel_of_a_unit_has_its_class_colour(client: TestClient) -> None:
    import numpy as np
    import shapely
    from PIL import Image
    from pyproj import Transformer
    from shapely.geometry import shape

    params = {"collection": "province-2025", "indicator": "density", "k": 5}
    classes = client.get("/maps/choropleth", params={**params, "units": "true"}).json()
    labelled = client.get("/maps/export", params={**params, "format": "png", "layout": "slide"})
    assert labelled.status_code == 200 and labelled.headers["content-type"] == "image/png"
    keep("density-provinces-slide.png", labelled.content)
    # without names over the units, every pixel inside a unit is its class colour
    got = client.get(
        "/maps/export", params={**params, "format": "png", "layout": "slide", "labels": "false"}
    )
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(got.content)).convert("RGB")
    x0, y0, x1, y1 = (float(v) for v in got.headers["Map-Extent"].split(","))
    left, top, right, bottom = (int(v) for v in got.headers["Map-Frame"].split(","))
    to_map = Transformer.from_crs(4326, got.headers["Map-Crs"], always_xy=True)
    checked = 0
    for code in ("40", "66"):  # Nghệ An, Đắk Lắk: large provinces
        unit = next(u for u in classes["units"] if u["code"] == code)
        colour = classes["classes"][unit["class"]]["colour"].lower()
        feature = client.get(f"/collections/province-2025/items/{code}").json()
        inner = shape(feature["geometry"]).buffer(-0.15)
        points = shapely.points(
            np.random.default_rng(1).uniform(*np.reshape(inner.bounds, (2, 2)), (400, 2))
        )
        inside = [p for p in points if inner.contains(p)][:40]
        assert len(inside) >= 20
        hits = 0
        for p in inside:
            mx, my = to_map.transform(p.x, p.y)
            px = left + (mx - x0) / (x1 - x0) * (right - left)
            py = top + (y1 - my) / (y1 - y0) * (bottom - top)
            hits += _hex(image.getpixel((int(px), int(py)))) == colour
        assert hits >= 0.9 * len(inside), (code, colour, hits)  # (outlines)
        checked += 1
    assert checked == 2


def test_map_export_refuses_what_is_not_offered(client: TestClient) -> None:
    base = {"collection": "province-2025", "indicator": "density"}
    for extra, parameter in (
        ({"format": "svg"}, "format"),
        ({"layout": "a0"}, "layout"),
        ({"orientation": "diagonal"}, "orientation"),
        ({"lang": "fr"}, "lang"),
        ({"extent": "200,0,210,10"}, "extent"),
        ({"extent": "1,2,3"}, "extent"),
        ({"method": "magic"}, "method"),
        ({"indicator": "nothing"}, "indicator"),
        ({"within": "99"}, "within"),
    ):
        refused = client.get("/maps/export", params={**base, **extra})
        assert refused.status_code == 400, (extra, refused.text)
        assert refused.json()["parameter"] == parameter, (extra, refused.json())


def test_map_export_png_of_a_view_for_people_to_look_at(client: TestClient) -> None:
    got = client.get(
        "/maps/export",
        params={
            "collection": "commune-2025",
            "indicator": "density",
            "within": "01",
            "format": "png",
            "layout": "a4",
            "orientation": "portrait",
            "extent": "105.75,20.95,105.95,21.10",
        },
    )
    assert got.status_code == 200, got.text
    keep("density-hanoi-view-a4-portrait.png", got.content)


def test_viewer_exports_exactly_the_current_view_and_prints_map_and_legend(
    browser: Any, live_server: str
) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 768}, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(
        f"{live_server}/map?level=commune&indicator=density&scope=province&within=01"
        "&method=natural_breaks&k=4&palette=Blues&lang=vi"
    )
    page.wait_for_function("window.geoViewer && window.geoViewer.ready", timeout=120_000)
    page.wait_for_selector(".gv-export-pdf")
    assert page.locator(".gv-exports legend").text_content() == "Xuất bản đồ"
    page.select_option(".gv-export-layout", "a3")
    with page.expect_download() as info:
        page.click(".gv-export-pdf")
    download = info.value
    url = download.url
    for part in (
        "/maps/export?",
        "collection=commune-2025",
        "indicator=density",
        "within=01",
        "method=natural_breaks",
        "k=4",
        "palette=Blues",
        "layout=a3",
        "lang=vi",
        "format=pdf",
        "extent=",
    ):
        assert part in url, (part, url)
    content = Path(download.path()).read_bytes()
    keep("viewer-export-a3.pdf", content)
    text = _pdf_text(content)
    assert "Mật độ dân số" in text and "Ngắt tự nhiên (Fisher–Jenks)" in text
    classes = page.evaluate("window.geoViewer.classes || null")
    if classes:  # the page's own classes are the PDF's
        for c in classes["classes"]:
            assert _number_vi(c["upper"], 1) in text

    # printing: the map fills the page, the legend stays, the panel goes
    page.emulate_media(media="print")
    assert page.locator(".gv-panel").first.is_hidden()
    assert page.locator(".gv-legend").first.is_visible()
    box = page.locator(".folium-map").first.bounding_box()
    assert box is not None and box["x"] == 0 and box["width"] == 1366
    page.emulate_media(media="screen")
    assert page.locator(".gv-panel").first.is_visible()
    assert not errors, errors
    context.close()


# ---- EA field maps and map books ----


def _touching(eas: list[dict[str, Any]], code: str) -> set[str]:
    from shapely.geometry import shape

    shapes = {f["properties"]["code"]: shape(f["geometry"]) for f in eas}
    return {c for c, g in shapes.items() if c != code and g.intersection(shapes[code]).length > 0}


def test_field_map_shows_the_ea_its_neighbours_and_its_people(env: Env) -> None:
    eas = env.generate()
    codes = sorted(f["properties"]["code"] for f in eas)
    env.assign(codes)
    env.sql(
        "UPDATE enumeration_area SET boundary_description = %s WHERE code = %s",
        "Phía bắc giáp phố Hoàng Hoa Thám; phía đông giáp đường Ngọc Hà",
        codes[0],
    )
    ea = next(f for f in eas if f["properties"]["code"] == codes[0])
    got = env.client.get(f"{ITEMS}/{ea['id']}/field-map.pdf")
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/pdf"
    keep("field-map.pdf", got.content)
    text = _pdf_text(got.content)
    assert f"Bản đồ địa bàn điều tra {codes[0]}" in text
    assert "Ba Đình" in text and "Hà Nội" in text
    assert "E1 Nguyễn Thị Hằng" in text  # the assigned enumerator
    assert "Phía bắc giáp phố Hoàng Hoa Thám" in text
    assert "Tỷ lệ 1:" in text and "VN-2000 / UTM 48N" in text
    neighbours = _touching(eas, codes[0])
    assert neighbours and neighbours <= set(text.split()), (neighbours, text)  # all of them
    households = ea["properties"]["households"]
    assert _number_vi(households, 0) in text
    english = env.client.get(f"{ITEMS}/{ea['id']}/field-map.pdf", params={"lang": "en"})
    text = _pdf_text(english.content)
    assert "Enumeration area map" in text and "Bản đồ" not in text

    missing = env.client.get(f"{ITEMS}/999999/field-map.pdf")
    assert missing.status_code == 404 and missing.json()["parameter"] == "featureId"
    wrong = env.client.get(f"{ITEMS}/{ea['id']}/field-map.pdf", params={"lang": "fr"})
    assert wrong.status_code in (400, 422) and "lang" in wrong.text


def test_field_maps_follow_read_rules(demo_db: str, tmp_path: Path) -> None:
    for env in _env(demo_db, tmp_path, public_reads=False):
        eas = env.generate()
        url = f"{ITEMS}/{eas[0]['id']}/field-map.pdf"
        assert env.client.get(url).status_code == 401
        outside = env.client.get(url, headers=env.auth("outsider"))
        assert outside.status_code == 403 and outside.json()["parameter"] == "commune"
        assert env.client.get(url, headers=env.auth("editor")).status_code == 200
        book = env.client.get(f"/communes/{COMMUNE}/ea-map-book.pdf", headers=env.auth("outsider"))
        assert book.status_code == 403


def _strips(env: Env, commune: str, count: int) -> None:
    """`count` EAs of a commune: vertical strips of its box cut by its outline."""
    env.sql(
        """
        INSERT INTO enumeration_area (census_round, code, commune_vintage, commune_code,
                                      status, households, geom, updated_by)
        SELECT '2029', c.code || '-' || lpad(i::text, 3, '0'), c.vintage, c.code, 'draft',
               100 + i, ST_Multi(ST_CollectionExtract(ST_Intersection(c.geom, ST_MakeEnvelope(
                   ST_XMin(c.geom) + (i - 1) * (ST_XMax(c.geom) - ST_XMin(c.geom)) / %s,
                   ST_YMin(c.geom),
                   ST_XMin(c.geom) + i * (ST_XMax(c.geom) - ST_XMin(c.geom)) / %s,
                   ST_YMax(c.geom), 4326)), 3)), 'test'
        FROM commune_coverage c, generate_series(1, %s) i
        WHERE c.vintage = '2025' AND c.code = %s
        """,
        count,
        count,
        count,
        commune,
    )


def test_map_book_of_a_commune_with_180_eas_has_181_pages(demo_db: str, tmp_path: Path) -> None:
    # (181 pages take a minute or more on a loaded shared test machine: past the default
    # response deadline, which is there for a database that stops answering)
    for env in _env(demo_db, tmp_path, response_deadline_s=900):
        _book(env)


def _book(env: Env) -> None:
    from pypdf import PdfReader

    _strips(env, COMMUNE, 180)
    env.sql(
        "UPDATE enumeration_area SET status = 'approved' WHERE census_round = '2029'"
        " AND code = ANY(%s)",
        [f"{COMMUNE}-00{i}" for i in (1, 2, 3)],
    )
    got = env.client.get(f"/communes/{COMMUNE}/ea-map-book.pdf", params={"round": "2029"})
    assert got.status_code == 200, got.text
    keep("map-book-180.pdf", got.content)
    reader = PdfReader(io.BytesIO(got.content))
    assert len(reader.pages) == 181
    first = reader.pages[0].extract_text()
    assert "Tập bản đồ địa bàn điều tra" in first and "180 địa bàn" in first
    assert "Trang 1/181" in first
    # the overview's key: EAs by status (the editor's colours) with counts, the boundary
    assert "bản nháp (177)" in first and "đã duyệt (3)" in first
    assert "Ranh giới xã, phường" in first and "Đường, sông, đường sắt" in first
    last = reader.pages[180].extract_text()
    assert f"{COMMUNE}-180" in last and "Trang 181/181" in last
    for refused, parameter in (
        ({"round": "1999"}, "round"),
        ({"round": "20x9"}, "round"),
    ):
        answer = env.client.get(f"/communes/{COMMUNE}/ea-map-book.pdf", params=refused)
        assert answer.status_code in (400, 404, 422), answer.text
        assert parameter in answer.text
    none = env.client.get("/communes/00008/ea-map-book.pdf")
    assert none.status_code == 404 and none.json()["parameter"] == "code"


def test_ea_editor_links_to_field_maps_map_book_and_downloads(
    browser: Any, pg: Any, demo_template: str, tmp_path: Path
) -> None:
    from pypdf import PdfReader

    from tests.test_ea_editor import SMALL_COMMUNE, _editor_over_demo

    # (a map book of a commune on a loaded shared test machine may take longer than the
    # default response deadline, which is there for a database that stops answering; the
    # downloads are waited for generously: no time is asserted)
    server = {"GEO_SERVICE_RESPONSE_DEADLINE_S": "900"}
    with _editor_over_demo(browser, pg, demo_template, server) as editor:
        editor.open(f"commune={SMALL_COMMUNE}&lang=vi")
        editor.sign_in("editor")
        editor.page.click("button.ea-generate")
        editor.confirm()
        created = editor.wait_writes(1)["body"]["created"]
        assert editor.page.locator("button.ea-map_book").text_content() == "Tập bản đồ của xã (PDF)"
        first = editor.js("window.eaEditor.eas()[0]")
        editor.js(f"window.eaEditor.select({first['id']}, false)")
        with editor.page.expect_download(timeout=120_000) as info:
            editor.page.click("button.ea-field_map")
        text = _pdf_text(Path(info.value.path()).read_bytes())
        assert f"Bản đồ địa bàn điều tra {first['code']}" in text
        with editor.page.expect_download(timeout=120_000) as info:
            editor.page.click("button.ea-download-gpkg")
        path = tmp_path / "eas.gpkg"
        path.write_bytes(Path(info.value.path()).read_bytes())
        assert pyogrio.read_info(path)["features"] == created
        # (the map book is made in the background: its card offers the PDF when ready)
        editor.page.click("button.ea-map_book")
        with editor.page.expect_download(timeout=300_000) as info:
            editor.page.click(".geo-job-download", timeout=300_000)
        book = PdfReader(info.value.path())
        assert len(book.pages) == created + 1
        # printing the editor: the map fills the page, the statuses' legend stays
        editor.page.emulate_media(media="print")
        assert (
            editor.js("getComputedStyle(document.querySelector('.ea-panel')).visibility")
            == "hidden"
        )
        assert editor.page.locator(".ea-legend").first.is_visible()
        assert editor.page.locator("button.ea-generate, button.ea-map_book").first.is_hidden()
        box = editor.page.locator(".folium-map").first.bounding_box()
        assert box is not None and box["x"] == 0 and box["width"] == 1280
        assert not editor.errors, editor.errors


# ---- disclosure: what is hidden stays hidden in every output ----


def test_suppressed_values_appear_in_no_map_export(demo_db: str, tmp_path: Path) -> None:
    from indicators.protect import refresh

    with psycopg.connect(demo_db, autocommit=True) as conn:
        conn.execute("UPDATE indicator SET suppress_below = 25000 WHERE code = 'population'")
        refresh(conn)
    for env in _env(demo_db, tmp_path):
        params = {"collection": "commune-2025", "indicator": "density", "within": "01"}
        classes = env.client.get("/maps/choropleth", params={**params, "units": "true"}).json()
        hidden = [u["code"] for u in classes["units"] if u["status"] == "suppressed"]
        assert hidden, "the rule hides some communes of Hà Nội"
        true_values = dict(
            env.sql(
                "SELECT code, value FROM indicator_value WHERE indicator = 'density'"
                " AND vintage = '2025' AND level = 'commune' AND code = ANY(%s)",
                hidden,
            )
        )
        shown = {u["value"] for u in classes["units"] if u["value"] is not None}
        for lang, fmt in (("vi", "pdf"), ("en", "pdf")):
            got = env.client.get("/maps/export", params={**params, "format": fmt, "lang": lang})
            assert got.status_code == 200, got.text
            keep(f"suppressed-{lang}.pdf", got.content)
            text = _pdf_text(got.content)
            label = (
                "Bị ẩn (bảo mật thống kê)" if lang == "vi" else "Suppressed (disclosure control)"
            )
            assert f"{label}  ({len(hidden)})" in text
            for code, value in true_values.items():
                if value is None or value in shown:
                    continue
                for written in (_number_vi(value, 1), f"{value:,.1f}", f"{value:.1f}"):
                    assert written not in text, (code, written)


def test_odd_output_requests_get_4xx_never_5xx(client: TestClient) -> None:
    for path, params in (
        ("/maps/export", {"collection": "x", "indicator": "density"}),
        ("/maps/export", {"collection": "province-2025", "indicator": "density", "k": 9}),
        ("/maps/export", {"collection": "province-2025", "indicator": "density", "breaks": "a"}),
        ("/maps/export", {"collection": "province-2025", "indicator": "density", "title": "\x00"}),
        ("/maps/export", {"collection": "province-2025", "indicator": "density", "palette": "Zz"}),
        (
            "/maps/export",
            {"collection": "province-2025", "indicator": "density", "extent": "0,0,0.0001,0.0001"},
        ),
        (
            "/maps/export",
            {
                "collection": "province-2025",
                "indicator": "density",
                "within": "01",
                "bbox": "105,20,106,21",
            },
        ),
        (f"{ITEMS}/0/field-map.pdf", {}),
        (f"{ITEMS}/abc/field-map.pdf", {}),
        ("/communes/abc/ea-map-book.pdf", {}),
        ("/communes/00004/ea-map-book.pdf", {"lang": "xx"}),
        (ITEMS, {"f": "gpkg", "bbox": "1,2,3"}),
        (ITEMS, {"f": "csv", "limit": 0}),
    ):
        answer = client.get(path, params=params)
        assert 400 <= answer.status_code < 500, (path, params, answer.status_code, answer.text)
        assert answer.json().get("detail"), (path, params)


def test_pages_are_drawn_a_few_at_once_and_hold_no_connection(
    demo_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """24 anonymous map exports at once held every pooled connection while they waited for
    drawing threads (2-6 s of CPU and ~400 MB each): others' items waited 6.6 s and 7 of the
    exports got 503 'database not available'. Pages are now drawn a few at once, one per
    client, without a connection; the rest are refused naming the limit."""
    import threading

    import geo_service.outputs.maps as maps_outputs

    settings = ServiceSettings(
        home=tmp_path,
        pool_min_size=1,
        pool_max_size=1,
        pool_timeout_s=1,
        renders_at_once=1,
        trusted_proxies="127.0.0.1",
    )
    app = create_app(settings, db_url=demo_db)
    drawing, release = threading.Event(), threading.Event()
    free_while_drawing: list[int] = []
    draw = maps_outputs._draw

    def held_draw(*args: Any) -> Any:
        for _ in range(200):  # (a connection given back is checked before it is lent again)
            if app.state.services.pool.get_stats()["pool_available"]:
                break
            release.wait(0.01)
        free_while_drawing.append(app.state.services.pool.get_stats()["pool_available"])
        drawing.set()
        release.wait(60)
        return draw(*args)

    monkeypatch.setattr(maps_outputs, "_draw", held_draw)
    params = {"collection": "province-2025", "indicator": "density", "format": "png"}

    def export(address: str) -> Any:
        return client.get("/maps/export", params=params, headers={"X-Forwarded-For": address})

    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        results: list[Any] = []
        first = threading.Thread(target=lambda: results.append(export("203.0.113.1")))
        first.start()
        try:
            assert drawing.wait(60)
            same_client = export("203.0.113.1")
            assert same_client.status_code == 429 and same_client.json()["parameter"] == "limit"
            other_client = export("203.0.113.2")
            assert other_client.status_code == 503 and other_client.json()["limit"] == 1
            # meanwhile the one pooled connection serves others
            items = client.get("/collections/province-2025/items", params={"limit": 1})
            assert items.status_code == 200
        finally:
            release.set()
            first.join(120)
    assert results[0].status_code == 200 and results[0].content[:4] == b"\x89PNG"
    assert free_while_drawing == [1]

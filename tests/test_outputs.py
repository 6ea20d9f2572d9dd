"""Outputs people take away: EA downloads (GeoPackage, zipped Shapefile, GeoJSON, CSV), map
exports (PNG, PDF), EA field maps and commune map books, area reports (PDF, XLSX).

Real files are checked: opened with pyogrio and GDAL's ogrinfo, PDF text layers read with
pypdf, PNG pixels read with Pillow. A few rendered files are kept under
test-artifacts/outputs (not committed) for people to look at."""

from __future__ import annotations

import csv
import io
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
    households = {f["properties"]["code"]: f["properties"]["households"] for f in eas}
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
            assert types["households"] == "float64" and types["code"] == "object"
            assert types["listed_households"] in ("int64", "int32")
            by_code = frame.set_index("code")
            assert by_code.loc[codes[0], "enumerator_code"] == "E1"
            assert by_code.loc[codes[0], "enumerator_name"] == "Nguyễn Thị Hằng"
            assert by_code.loc[codes[0], "commune_name"] == "Ba Đình"
            assert by_code.loc[codes[0], "province_code"] == "01"
            assert not isinstance(by_code.loc[codes[-1], "enumerator_code"], str)
        else:
            assert types["households"] == "float64"
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
        for code, value in households.items():
            assert by_code.loc[code, "households"] == pytest.approx(value)
        assert set(by_code.index) == set(codes)
        # GDAL's own command line reads it too
        ogr = subprocess.run(
            ["ogrinfo", "-so", "-al", source], capture_output=True, text=True, check=True
        ).stdout
        assert f"Feature Count: {len(eas)}" in ogr
        assert "WGS 84" in ogr and "households: Real" in ogr

    geojson = env.client.get(ITEMS, params={"commune": COMMUNE, "f": "geojson"})
    assert geojson.status_code == 200
    assert "attachment" in geojson.headers["Content-Disposition"]
    body = geojson.json()
    assert len(body["features"]) == len(eas)
    first = next(f for f in body["features"] if f["id"] == codes[0])
    assert first["properties"]["enumerator_code"] == "E1"
    assert first["geometry"]["type"] == "MultiPolygon"

    text = env.client.get(ITEMS, params={"commune": COMMUNE, "f": "csv"})
    assert text.status_code == 200 and text.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(text.content.decode("utf-8-sig"))))
    assert len(rows) == len(eas)
    row = next(r for r in rows if r["code"] == codes[0])
    assert row["boundary_description"].startswith("'=HYPERLINK")  # never run by a spreadsheet
    assert row["commune_name"] == "Ba Đình" and row["wkt"].startswith("MULTIPOLYGON")

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

"""OGC API – Features: collections, items, paging, bbox, CRS, joins, exports, /aggregate."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import psycopg
import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Transformer
from shapely.geometry import box, mapping, shape

from geo_service.http.app import create_app
from geo_service.settings import ServiceSettings

ITEMS = "/collections/commune-2025/items"


def _geoms(url: str, level: str = "commune") -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT code, ST_AsBinary(geom) FROM admin_unit WHERE vintage = '2025' AND level = %s",
            (level,),
        ).fetchall()
    return {code: shapely.from_wkb(wkb) for code, wkb in rows}


def test_landing_and_conformance(client: TestClient) -> None:
    rels = {link["rel"] for link in client.get("/").json()["links"]}
    assert {"conformance", "data", "service-desc"} <= rels
    classes = client.get("/conformance").json()["conformsTo"]
    assert any("ogcapi-features-2" in c for c in classes)


def test_collections(client: TestClient) -> None:
    ids = {c["id"] for c in client.get("/collections").json()["collections"]}
    assert ids == {"province-2019", "province-2025", "commune-2025", "enumeration-areas"}
    doc = client.get("/collections/commune-2025").json()
    assert doc["numberOfItems"] == 3321
    assert "http://www.opengis.net/def/crs/EPSG/0/3405" in doc["crs"]
    x0, y0, x1, y1 = doc["extent"]["spatial"]["bbox"][0]
    assert 102 < x0 < 103 and 23 < y1 < 24


def test_paging_returns_every_feature_once(client: TestClient) -> None:
    seen: list[str] = []
    url: str | None = f"{ITEMS}?limit=700&properties=code"
    matched = None
    while url:
        page = client.get(url)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("application/geo+json")
        body = page.json()
        matched = body["numberMatched"]
        assert body["numberReturned"] == len(body["features"])
        seen += [f["id"] for f in body["features"]]
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
    assert len(seen) == len(set(seen)) == matched == 3321


def test_bbox_matches_shapely(client: TestClient, demo_ro: str) -> None:
    geoms = _geoms(demo_ro)
    window = box(105.80, 20.95, 105.95, 21.10)
    expected = {code for code, g in geoms.items() if g.intersects(window)}
    body = client.get(
        ITEMS, params={"bbox": "105.80,20.95,105.95,21.10", "limit": 1000, "properties": "code"}
    ).json()
    assert {f["id"] for f in body["features"]} == expected
    assert body["numberMatched"] == len(expected) > 10


def test_bbox_in_another_crs(client: TestClient, demo_ro: str) -> None:
    to_utm = Transformer.from_crs(4326, 32648, always_xy=True)
    x0, y0 = to_utm.transform(105.80, 20.95)
    x1, y1 = to_utm.transform(105.95, 21.10)
    geoms = _geoms(demo_ro)
    window = shapely.ops.transform(
        Transformer.from_crs(32648, 4326, always_xy=True).transform,
        shapely.segmentize(box(x0, y0, x1, y1), 100),
    )
    expected = {code for code, g in geoms.items() if g.intersects(window)}
    body = client.get(
        ITEMS,
        params={
            "bbox": f"{x0},{y0},{x1},{y1}",
            "bbox-crs": "EPSG:32648",
            "limit": 1000,
            "properties": "code",
        },
    ).json()
    assert {f["id"] for f in body["features"]} == expected


# 3405: in PostGIS's spatial_ref_sys; 9210: registered by migration 0008; 9755 (a WGS 84
# realisation, latitude first): not registered, transformed by its EPSG name
@pytest.mark.parametrize("code", [3405, 9210, 9755])
def test_crs_vn2000_equals_pyproj(client: TestClient, code: int) -> None:
    params = {"parent": "01", "limit": 3, "properties": "code", "precision": 9}
    wgs = client.get(ITEMS, params=params).json()["features"]
    uri = f"http://www.opengis.net/def/crs/EPSG/0/{code}"
    response = client.get(ITEMS, params={**params, "crs": uri})
    assert response.headers["Content-Crs"] == f"<{uri}>"
    vn2000 = response.json()["features"]
    transformer = Transformer.from_crs("OGC:CRS84", f"EPSG:{code}")
    for a, b in zip(wgs, vn2000, strict=True):
        expected = shapely.ops.transform(transformer.transform, shape(a["geometry"]))
        got = shape(b["geometry"])
        assert shapely.get_coordinates(got) == pytest.approx(
            shapely.get_coordinates(expected), abs=0.01
        )


def test_a_get_with_an_unregistered_crs_writes_nothing(client: TestClient, demo_ro: str) -> None:
    assert client.get(ITEMS, params={"limit": 1, "crs": "EPSG:9755"}).status_code == 200
    with psycopg.connect(demo_ro) as conn:
        row = conn.execute("SELECT count(*) FROM spatial_ref_sys WHERE srid = 9755").fetchone()
    assert row == (0,)


def test_crs_epsg_4326_is_lat_lon(client: TestClient) -> None:
    params = {"limit": 1, "properties": "code"}
    lonlat = client.get(ITEMS, params=params).json()["features"][0]["geometry"]
    latlon = client.get(ITEMS, params={**params, "crs": "EPSG:4326"}).json()["features"][0]
    first = shapely.get_coordinates(shape(lonlat))[0]
    assert shapely.get_coordinates(shape(latlon["geometry"]))[0] == pytest.approx(first[::-1])


def test_properties_sortby_parent_and_search(client: TestClient) -> None:
    body = client.get(
        ITEMS,
        params={
            "parent": "01",
            "limit": 1000,
            "sortby": "-area_km2",
            "properties": "name,area_km2",
        },
    ).json()
    features = body["features"]
    assert len(features) == body["numberMatched"] == 126
    assert set(features[0]["properties"]) == {"name", "area_km2"}
    areas = [f["properties"]["area_km2"] for f in features]
    assert areas == sorted(areas, reverse=True)
    found = client.get("/collections/province-2025/items", params={"q": "ho chi minh"}).json()
    assert [f["id"] for f in found["features"]] == ["79"]
    found = client.get(ITEMS, params={"q": "Ba Đình"}).json()
    assert "00004" in {f["id"] for f in found["features"]}


def test_indicator_properties_equal_stored_values(client: TestClient, demo_ro: str) -> None:
    with psycopg.connect(demo_ro) as conn:
        stored = dict(
            conn.execute(
                "SELECT code, value FROM indicator_value WHERE indicator ="
                " 'population' AND level = 'commune' AND period = '2025'"
            ).fetchall()
        )
    body = client.get(
        ITEMS,
        params={"indicator": "population,density", "period": "2025", "limit": 10000, "zoom": 0},
    ).json()
    assert len(body["features"]) == 3321
    for feature in body["features"]:
        props = feature["properties"]
        assert props["population"] == stored[feature["id"]]
        assert props["population_status"] == "ok" and "density" in props


def test_zoom_returns_generalised_geometry(client: TestClient) -> None:
    def vertices(params: dict[str, Any]) -> int:
        body = client.get(ITEMS, params={"parent": "01", "limit": 200, **params}).json()
        return sum(len(shapely.get_coordinates(shape(f["geometry"]))) for f in body["features"])

    assert vertices({"zoom": 5}) < vertices({"zoom": 14}) / 3
    assert vertices({"max-allowable-offset": 0.01}) == vertices({"zoom": 7})


def test_single_item(client: TestClient) -> None:
    feature = client.get(f"{ITEMS}/00004").json()
    assert feature["id"] == "00004" and feature["properties"]["name"] == "Ba Đình"
    assert client.get(f"{ITEMS}/99999").status_code == 404


def test_csv_download_keeps_vietnamese_names(client: TestClient) -> None:
    response = client.get(
        ITEMS, params={"f": "csv", "limit": 10000, "wkt": "true", "indicator": "population"}
    )
    assert response.headers["content-type"].startswith("text/csv")
    frame = pd.read_csv(
        io.BytesIO(response.content), dtype={"code": str, "parent_code": str}, encoding="utf-8-sig"
    )
    assert len(frame) == 3321 and "Ba Đình" in set(frame["name"])
    assert frame["wkt"].str.startswith("MULTIPOLYGON").all()
    by_accept = client.get(ITEMS, params={"limit": 5}, headers={"Accept": "text/csv"})
    assert by_accept.headers["content-type"].startswith("text/csv")


def test_geopackage_download(client: TestClient, tmp_path: Path) -> None:
    response = client.get(
        "/collections/province-2025/items",
        params={"f": "gpkg", "crs": "EPSG:3405", "indicator": "population"},
    )
    path = tmp_path / "p.gpkg"
    path.write_bytes(response.content)
    frame = gpd.read_file(path)
    assert len(frame) == 34 and frame.crs.to_epsg() == 3405
    assert frame["population"].sum() > 1e8


def test_downloads_hold_every_item_unless_limited(client: TestClient) -> None:
    whole = client.get(ITEMS, params={"f": "csv", "properties": "code"})
    frame = pd.read_csv(io.BytesIO(whole.content), dtype={"code": str}, encoding="utf-8-sig")
    assert len(frame) == 3321 == int(whole.headers["OGC-NumberMatched"])
    assert "Link" not in whole.headers
    page = client.get(
        ITEMS, params={"f": "csv", "properties": "code", "limit": 1000, "offset": 1000}
    )
    assert page.headers["OGC-NumberReturned"] == "1000"
    assert 'offset=2000>; rel="next"' in page.headers["Link"]
    assert 'offset=0>; rel="prev"' in page.headers["Link"]
    gpkg = client.get(ITEMS, params={"f": "gpkg", "properties": "code"})
    assert gpkg.headers["OGC-NumberMatched"] == "3321"


def test_a_limit_over_the_page_maximum_is_capped(client: TestClient) -> None:
    body = client.get(
        "/collections/province-2025/items", params={"limit": 50_000, "properties": "code"}
    ).json()
    assert body["numberReturned"] == 34


def test_format_follows_accept_with_quality_values(client: TestClient) -> None:
    def served(accept: str, url: str = f"{ITEMS}?limit=1") -> str:
        response = client.get(url, headers={"Accept": accept})
        assert "Accept" in response.headers["Vary"]
        return str(response.headers["content-type"])

    assert served("text/csv;q=0.5, application/geo+json;q=0.9").startswith("application/geo+json")
    assert served("application/geo+json;q=0.1, text/csv").startswith("text/csv")
    assert served("text/html,application/xhtml+xml,*/*;q=0.8").startswith("application/geo+json")
    assert served("text/csv", f"{ITEMS}/00004").startswith("text/csv")
    refused = client.get(ITEMS, headers={"Accept": "image/png"})
    assert refused.status_code == 406 and refused.json()["parameter"] == "Accept"


def test_single_item_in_every_format(client: TestClient, tmp_path: Path) -> None:
    feature = client.get(f"{ITEMS}/00004").json()
    rels = {link["rel"]: link for link in feature["links"]}
    assert rels["collection"]["type"] == "application/json"
    assert {link["type"] for link in feature["links"] if link["rel"] == "alternate"} == {
        "text/csv",
        "application/geopackage+sqlite3",
    }
    frame = pd.read_csv(
        io.BytesIO(client.get(f"{ITEMS}/00004", params={"f": "csv"}).content),
        dtype={"code": str},
        encoding="utf-8-sig",
    )
    assert frame["code"].tolist() == ["00004"] and frame["name"].tolist() == ["Ba Đình"]
    path = tmp_path / "one.gpkg"
    path.write_bytes(client.get(f"{ITEMS}/00004", params={"f": "gpkg"}).content)
    assert gpd.read_file(path)["code"].tolist() == ["00004"]


def test_items_refuse_gzip_when_the_client_does(client: TestClient) -> None:
    # (bodies read whole: a body left unread holds the app's send until its timeout ends it)
    plain = client.get(ITEMS, params={"limit": 50}, headers={"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in plain.headers
    zipped = client.get(ITEMS, params={"limit": 50}, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.json() == plain.json()


@pytest.mark.parametrize(
    ("collection", "when", "matched"),
    [
        ("commune-2025", "2025-08-01", 3321),
        ("commune-2025", "2025-08-01T10:00:00+07:00", 3321),
        ("commune-2025", "2020-01-01", 0),
        ("commune-2025", "2019-01-01/..", 3321),
        ("commune-2025", "../2025-06-30", 0),
        ("province-2019", "2025-08-01", 0),
        ("province-2019", "2024-01-01/2025-12-31", 63),
    ],
)
def test_datetime_selects_the_vintage_in_force(
    client: TestClient, collection: str, when: str, matched: int
) -> None:
    body = client.get(
        f"/collections/{collection}/items", params={"datetime": when, "limit": 1}
    ).json()
    assert body["numberMatched"] == matched


def test_bbox_across_the_antimeridian(client: TestClient) -> None:
    def matched(bbox: str) -> int:
        body = client.get(ITEMS, params={"bbox": bbox, "limit": 1}).json()
        return int(body["numberMatched"])

    assert matched("179,-10,-179,10") == 0
    assert matched("100,5,-170,25") == matched("100,5,180,25") == 3321


def test_f_json_is_understood_everywhere(client: TestClient) -> None:
    for path in (
        "/collections/commune-2025/tiles",
        "/collections/enumeration-areas",
        "/collections/commune-2025/tiles/WebMercatorQuad",
        "/tileMatrixSets",
    ):
        assert client.get(path, params={"f": "json"}).status_code == 200, path
    assert client.get("/tileMatrixSets", params={"f": "xml"}).status_code == 400


def test_bbox_across_the_antimeridian_in_latitude_first_order(client: TestClient) -> None:
    body = client.get(
        ITEMS, params={"bbox": "5,100,25,-170", "bbox-crs": "EPSG:4326", "limit": 1}
    ).json()
    assert body["numberMatched"] == 3321


def test_names_sort_in_vietnamese_order(client: TestClient) -> None:
    body = client.get(
        "/collections/province-2025/items",
        params={"sortby": "name", "properties": "name", "limit": 100},
    ).json()
    names = [f["properties"]["name"] for f in body["features"]]
    # a, ă, â … c, d, đ: "Cà Mau" before "Cao Bằng", every Đ after D and before G
    assert names.index("Cà Mau") < names.index("Cao Bằng") < names.index("Cần Thơ")
    assert names.index("Cần Thơ") < names.index("Đà Nẵng") < names.index("Gia Lai")


def test_q_takes_alternative_terms(client: TestClient) -> None:
    body = client.get(
        "/collections/province-2025/items", params={"q": "ha noi, hue", "properties": "name"}
    ).json()
    assert {f["properties"]["name"] for f in body["features"]} == {"Hà Nội", "Huế"}


@pytest.mark.parametrize(
    ("url", "status", "parameter"),
    [
        ("/collections/nope-2025/items", 404, "collectionId"),
        ("/collections/commune-1999", 404, "collectionId"),
        (f"{ITEMS}?bbox=1,2,3", 400, "bbox"),
        (f"{ITEMS}?bbox=a,b,c,d", 400, "bbox"),
        (f"{ITEMS}?bbox=1,4,3,2", 400, "bbox"),
        (f"{ITEMS}?bbox=105,91,106,92", 400, "bbox"),
        (f"{ITEMS}?bbox=105,21,106,95", 400, "bbox"),
        (f"{ITEMS}?bbox=185,21,186,22", 400, "bbox"),
        (f"{ITEMS}?bbox=500000,2300000,400000,2400000&bbox-crs=EPSG:32648", 400, "bbox"),
        (f"{ITEMS}?crs=EPSG:999999", 400, "crs"),
        (f"{ITEMS}?crs=urn:nonsense", 400, "crs"),
        (f"{ITEMS}?crs=EPSG:5773", 400, "crs"),  # heights only
        (f"{ITEMS}?crs=EPSG:4978", 400, "crs"),  # earth-centred, 3D
        (f"{ITEMS}?crs=EPSG:4979", 400, "crs"),  # 3D
        (f"{ITEMS}?crs=EPSG:2154", 400, "crs"),  # made for France
        (f"{ITEMS}?bbox=0,0,1,1&bbox-crs=EPSG:2154", 400, "bbox-crs"),
        (f"{ITEMS}?limit=0", 400, "limit"),
        (f"{ITEMS}?limit=1e9", 400, "limit"),
        (f"{ITEMS}?offset=-1", 400, "offset"),
        (f"{ITEMS}?sortby=height", 400, "sortby"),
        (f"{ITEMS}?properties=code,secret", 400, "properties"),
        (f"{ITEMS}?indicator=nope", 400, "indicator"),
        (f"{ITEMS}?indicator=papi_sc11", 400, "indicator"),
        (f"{ITEMS}?indicator=population&period=1990", 400, "period"),
        (f"{ITEMS}?zoom=99", 400, "zoom"),
        (f"{ITEMS}?f=xml", 400, "f"),
        (f"{ITEMS}?filter=nosuch='x'", 400, "filter"),
        (f"{ITEMS}?foo=bar", 400, "foo"),
        (f"{ITEMS}/00004?limit=1", 400, "limit"),
        (f"{ITEMS}/00004?f=xml", 400, "f"),
        (f"{ITEMS}?datetime=yesterday", 400, "datetime"),
        (f"{ITEMS}?datetime=2025-01-01/2024-01-01", 400, "datetime"),
        (f"{ITEMS}?datetime=../..", 400, "datetime"),
        (f"{ITEMS}?datetime=9999-12-31T23:59:59-01:00", 400, "datetime"),
        (f"{ITEMS}?datetime=0001-01-01T00:00:00%2B01:00/..", 400, "datetime"),
        ("/collections?f=xml", 400, "f"),
        ("/conformance?f=html", 400, "f"),
        ("/collections/commune-2025?foo=1", 400, "foo"),
        ("/?f=xml", 400, "f"),
        ("/indicators?foo=1", 400, "foo"),
        ("/collections/commune-2025/tiles/WebMercatorQuad/5/25/14?foo=1", 400, "foo"),
        (f"{ITEMS}?parent=00004", 400, "parent"),
        ("/collections/province-2025/items?parent=01", 400, "parent"),
    ],
)
def test_bad_parameters_are_named(
    client: TestClient, url: str, status: int, parameter: str
) -> None:
    response = client.get(url)
    assert response.status_code == status, response.text
    assert response.json()["parameter"] == parameter


# --- /aggregate ------------------------------------------------------------------------------


def _coverage_geometry(client: TestClient, code: str) -> dict[str, Any]:
    geometry: dict[str, Any] = client.get(
        f"{ITEMS}/{code}", params={"zoom": 14, "precision": 15}
    ).json()["geometry"]
    return geometry


def _aggregate(client: TestClient, geometry: dict[str, Any], **extra: Any) -> Any:
    body = {"geometry": geometry, "indicators": ["population", "density"], **extra}
    return client.post("/aggregate", json=body)


def test_aggregate_over_one_unit_returns_its_value(client: TestClient) -> None:
    unit = client.get(f"{ITEMS}/00004", params={"indicator": "population,density"}).json()
    result = _aggregate(client, _coverage_geometry(client, "00004")).json()
    values = {r["indicator"]: r["value"] for r in result["results"]}
    assert values["population"] == pytest.approx(unit["properties"]["population"], rel=1e-6)
    assert values["density"] == pytest.approx(unit["properties"]["density"], rel=0.02)
    assert [u["code"] for u in result["units"] if u["share"] > 1e-6] == ["00004"]


def test_aggregate_over_two_units_is_their_sum(client: TestClient) -> None:
    a, b = (shape(_coverage_geometry(client, code)) for code in ("00004", "00008"))
    union = shapely.coverage_union_all([a, b])
    pops = [
        client.get(f"{ITEMS}/{c}", params={"indicator": "population"}).json()["properties"][
            "population"
        ]
        for c in ("00004", "00008")
    ]
    for method in ("area", "population"):
        result = _aggregate(client, mapping(union), method=method).json()
        population = next(r for r in result["results"] if r["indicator"] == "population")
        assert population["value"] == pytest.approx(sum(pops), rel=1e-6), method


def test_aggregate_in_a_projected_crs(client: TestClient) -> None:
    geometry = shape(_coverage_geometry(client, "00004"))
    utm = shapely.ops.transform(
        Transformer.from_crs(4326, 32648, always_xy=True).transform, geometry
    )
    result = _aggregate(client, mapping(utm), crs="EPSG:32648").json()
    assert [u["code"] for u in result["units"] if u["share"] > 0.01] == ["00004"]


@pytest.mark.parametrize(
    ("geometry", "status"),
    [
        ({"type": "Point", "coordinates": [105.8, 21.0]}, 400),
        (
            {
                "type": "Polygon",
                "coordinates": [[[105, 21], [106, 22], [106, 21], [105, 22], [105, 21]]],
            },
            400,
        ),
        ({"type": "Polygon", "coordinates": []}, 400),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0]]]}, 400),
        (mapping(box(95, 5, 115, 25)), 413),
        (mapping(shapely.segmentize(box(105, 21, 106, 22), 0.00003)), 413),
    ],
)
def test_aggregate_rejects_bad_areas(
    client: TestClient, geometry: dict[str, Any], status: int
) -> None:
    response = _aggregate(client, geometry)
    assert response.status_code == status, response.text
    assert response.json()["parameter"] == "geometry"


def test_aggregate_of_an_area_without_units_is_not_available(client: TestClient) -> None:
    result = _aggregate(client, mapping(box(0, 0, 1, 1))).json()
    assert result["units"] == [] and result["covered_share"] == 0
    for estimate in result["results"]:
        assert estimate["value"] is None and estimate["status"] == "not_available"


def test_aggregate_says_how_much_of_the_area_has_units(client: TestClient) -> None:
    unit = shape(_coverage_geometry(client, "00004"))
    x0 = unit.bounds[0]
    # the unit plus as much again of open sea far from any unit
    sea = shapely.affinity.translate(unit, xoff=120 - x0)
    parts = [*shapely.get_parts(unit), *shapely.get_parts(sea)]
    result = _aggregate(client, mapping(shapely.MultiPolygon(parts))).json()
    assert result["covered_share"] == pytest.approx(0.5, abs=0.01)
    population = next(r for r in result["results"] if r["indicator"] == "population")
    assert population["status"] == "ok" and population["value"] > 0


def test_aggregate_respects_disclosure(demo_db: str, tmp_path: Path) -> None:
    with psycopg.connect(demo_db, autocommit=True) as conn:
        conn.execute("UPDATE indicator SET suppress_below = 1e9 WHERE code = 'population'")
    with TestClient(create_app(ServiceSettings(home=tmp_path), db_url=demo_db)) as client:
        result = _aggregate(client, _coverage_geometry(client, "00004")).json()
        population = next(r for r in result["results"] if r["indicator"] == "population")
        assert population["value"] is None and population["status"] == "suppressed"
        assert (
            _aggregate(client, _coverage_geometry(client, "00004"), indicators=["nope"]).status_code
            == 400
        )

"""EA tiles by zoom (issue #25): none below the minimum zoom (a 404 in the client's
language, declared in the tileset metadata and TileJSON), light tiles up to z8 (the status
and the EA's id as MVT feature id), every property from z9, as the metadata says."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient

from geo_core import grid
from geo_service.http.app import create_app
from geo_service.settings import ServiceSettings
from geo_service.tiles.prerender import tiles_to_render

TILES = "/collections/enumeration-areas/tiles/WebMercatorQuad"
POINT = (105.8152, 21.0302)  # inside the first of the squares below (Ba Đình, Hà Nội)


@pytest.fixture(scope="module")
def squares(
    pg: Any, demo_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, str]]:
    """A service over the demo with six EAs of 15 m side by side in Ba Đình."""
    url = pg.create_database(demo_template)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO enumeration_area (census_round, code, commune_vintage, commune_code,"
            " geom, households, updated_by)"
            " SELECT '2029', '00004-' || lpad(i::text, 3, '0'), '2025', '00004',"
            " ST_Multi(ST_MakeEnvelope(105.815 + i * 0.000135, 21.030,"
            "  105.815 + (i + 1) * 0.000135, 21.030135, 4326)), 40 + i, 'test'"
            " FROM generate_series(1, 6) i"
        )
    home = tmp_path_factory.mktemp("ea-zooms")
    settings = ServiceSettings(home=home, tile_cache="none", prerender_max_zoom=0)
    with TestClient(create_app(settings, db_url=url)) as client:
        yield client, url
    pg.drop_database(url)


@pytest.mark.parametrize("z", [0, 4])
@pytest.mark.parametrize("lang", ["vi", "en"])
def test_a_tile_below_the_minimum_zoom_is_a_404_naming_it(
    squares: tuple[TestClient, str], z: int, lang: str
) -> None:
    client, _ = squares
    x, y = next(grid.tiles_in((*POINT, *POINT), z))
    refused = client.get(f"{TILES}/{z}/{x}/{y}", headers={"Accept-Language": lang})
    assert refused.status_code == 404
    assert refused.headers["content-type"].startswith("application/json")
    assert refused.headers["content-language"] == lang
    body = refused.json()
    assert body["parameter"] == "z" and body["minimum"] == 5
    assert f" {z}" in body["detail"] and " 5" in body["detail"]
    words = ("mức thu phóng", "phóng to") if lang == "vi" else ("zoom", "zoom in")
    assert all(word in body["detail"] for word in words), body["detail"]
    if lang == "vi":
        assert "zoom" not in body["detail"]
    x, y = next(grid.tiles_in((*POINT, *POINT), 5))
    assert client.get(f"{TILES}/5/{x}/{y}").status_code == 200


def test_the_metadata_declares_the_minimum_zoom_and_the_fields_of_each_zoom(
    squares: tuple[TestClient, str],
) -> None:
    client, _ = squares
    tilejson = client.get(f"{TILES}/tilejson.json").json()
    assert tilejson["minzoom"] == 5
    (layer,) = tilejson["vector_layers"]
    assert layer["minzoom"] == 5
    assert "from zoom" not in layer["fields"]["status"]
    assert all("from zoom 9" in layer["fields"][n] for n in layer["fields"] if n != "status")
    tileset = client.get(TILES).json()
    limits = tileset["tileMatrixSetLimits"]
    assert [limit["tileMatrix"] for limit in limits] == [str(z) for z in range(5, 23)]
    assert limits[0] == {
        "tileMatrix": "5",
        "minTileRow": 0,
        "maxTileRow": 31,
        "minTileCol": 0,
        "maxTileCol": 31,
    }
    (described,) = tileset["layers"]
    assert described["minTileMatrix"] == "5"
    schema = described["propertiesSchema"]["properties"]
    assert set(schema) == set(layer["fields"])
    assert "x-minTileMatrix" not in schema["status"]
    assert {n: s.get("x-minTileMatrix") for n, s in schema.items() if n != "status"} == {
        n: "9" for n in schema if n != "status"
    }
    # (a unit collection keeps every zoom)
    assert (
        client.get("/collections/commune-2025/tiles/WebMercatorQuad").json()["layers"][0][
            "minTileMatrix"
        ]
        == "0"
    )
    assert (
        "tileMatrixSetLimits"
        not in client.get("/collections/commune-2025/tiles/WebMercatorQuad").json()
    )


def _decoded(client: TestClient, z: int) -> list[dict[str, Any]]:
    x, y = next(grid.tiles_in((*POINT, *POINT), z))
    response = client.get(f"{TILES}/{z}/{x}/{y}")
    assert response.status_code == 200
    return list(mapbox_vector_tile.decode(response.content)["enumeration-areas"]["features"])


def test_tiles_carry_exactly_the_fields_the_metadata_gives_their_zoom(
    squares: tuple[TestClient, str],
) -> None:
    client, url = squares
    with psycopg.connect(url) as conn:
        stored = {
            row[0]: row[1:]
            for row in conn.execute("SELECT id, code, status FROM enumeration_area").fetchall()
        }
    schema = client.get(TILES).json()["layers"][0]["propertiesSchema"]["properties"]
    for z in range(5, 14):
        features = _decoded(client, z)
        # every EA, its MVT feature id its id
        assert sorted(f["id"] for f in features) == sorted(stored), z
        expected = {n for n, s in schema.items() if int(s.get("x-minTileMatrix", 5)) <= z}
        for f in features:
            assert set(f["properties"]) == expected, z
            code, status = stored[f["id"]]
            assert f["properties"]["status"] == status
            assert "id" not in f["properties"]  # (the MVT feature id is the EA's id)
            if z >= 9:
                assert f["properties"]["code"] == code
        assert (z >= 9) == ("code" in expected)
        # (what the pages draw and read from tiles; the rest comes with the items)
        assert expected == ({"code", "status"} if z >= 9 else {"status"}), z


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="gdal-bin: scripts/setup.sh")
def test_gdal_reads_a_light_tile(squares: tuple[TestClient, str], tmp_path: Path) -> None:
    """GDAL's MVT driver reads a z7 tile: six features, the status, the id as mvt_id."""
    client, _ = squares
    x, y = next(grid.tiles_in((*POINT, *POINT), 7))
    path = tmp_path / "7" / str(x) / f"{y}.pbf"
    path.parent.mkdir(parents=True)
    path.write_bytes(client.get(f"{TILES}/7/{x}/{y}").content)
    info = subprocess.run(
        ["ogrinfo", "-ro", "-al", "-q", f"MVT:{path}"], capture_output=True, text=True, check=True
    ).stdout
    assert info.count("OGRFeature(enumeration-areas)") == 6, info
    assert info.count("status (String) = draft") == 6, info
    assert "mvt_id (Integer64)" in info and "code" not in info, info


def test_the_pre_render_plans_no_ea_tile_below_the_minimum_zoom() -> None:
    box = (*POINT, *POINT)
    planned = tiles_to_render([box], None, 6, 5)
    assert {z for z, _, _ in planned} == {5, 6}
    assert {z for z, _, _ in tiles_to_render([box], None, 6)} == set(range(7))

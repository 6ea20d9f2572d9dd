"""Vector tiles: content checked against shapely, HTTP caching, and freshness after changes."""

from __future__ import annotations

import gzip
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import brotli
import mapbox_vector_tile
import psycopg
import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Transformer
from shapely.geometry import box, shape

from geo_core import grid
from geo_service.http.app import create_app
from geo_service.settings import ServiceSettings
from tests.helpers import band_geoms, tile_envelope
from tilecache.sqlite import SQLiteTileCache

TILES = "/collections/commune-2025/tiles/WebMercatorQuad"
HANOI_Z10 = (10, 813, 450)  # central Hà Nội, with Ba Đình (00004)
TO_3857 = Transformer.from_crs(4326, 3857, always_xy=True)


def _decode(content: bytes) -> dict[str, Any]:
    return mapbox_vector_tile.decode(content)  # type: ignore[no-any-return]


@pytest.mark.parametrize("tile", [HANOI_Z10, (7, 101, 56), (12, 3252, 1802)])
def test_tile_codes_match_shapely(
    client: TestClient, demo_ro: str, tile: tuple[int, int, int]
) -> None:
    z, x, y = tile
    response = client.get(f"{TILES}/{z}/{x}/{y}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    layer = _decode(response.content)["commune-2025"]
    codes = {f["properties"]["code"] for f in layer["features"]}
    envelope = box(*tile_envelope(z, x, y))
    pixel = (envelope.bounds[2] - envelope.bounds[0]) / 4096
    buffered = envelope.buffer(64 * pixel, join_style="mitre")
    geoms = band_geoms(demo_ro, z)
    certain = {c for c, g in geoms.items() if g.intersection(envelope).area > 4 * pixel**2}
    possible = {c for c, g in geoms.items() if g.intersects(buffered)}
    assert certain <= codes <= possible
    assert len(certain) > 3
    for feature in layer["features"]:
        coords = shapely.get_coordinates(shape(feature["geometry"]))
        assert (coords >= -64).all() and (coords <= 4096 + 64).all()
        assert set(feature["properties"]) == {"code", "name"}


def test_indicator_attributes_equal_stored_values(client: TestClient, demo_ro: str) -> None:
    z, x, y = HANOI_Z10
    layer = _decode(
        client.get(f"{TILES}/{z}/{x}/{y}", params={"indicator": "density,population"}).content
    )
    with psycopg.connect(demo_ro) as conn:
        stored = dict(
            conn.execute(
                "SELECT code, value FROM indicator_value WHERE indicator ="
                " 'density' AND level = 'commune'"
            ).fetchall()
        )
    features = layer["commune-2025"]["features"]
    assert features
    for feature in features:
        props = feature["properties"]
        assert props["density"] == pytest.approx(stored[props["code"]])
        assert props["density_status"] == "ok" and "population" in props


def test_properties_selects_attributes(client: TestClient) -> None:
    z, x, y = HANOI_Z10
    layer = _decode(client.get(f"{TILES}/{z}/{x}/{y}", params={"properties": "code"}).content)
    assert all(set(f["properties"]) == {"code"} for f in layer["commune-2025"]["features"])


def test_low_zoom_tiles_are_small(client: TestClient) -> None:
    sizes = []
    for x, y in grid.tiles_in((102.1, 8.4, 109.5, 23.4), 5):
        sizes.append(len(client.get(f"{TILES}/5/{x}/{y}").content))
    assert max(sizes) < 500_000
    assert sum(sizes) > 100_000


def test_etag_304_and_encodings(client: TestClient) -> None:
    url = f"{TILES}/{HANOI_Z10[0]}/{HANOI_Z10[1]}/{HANOI_Z10[2]}"
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    etag = plain.headers["ETag"]
    assert (
        client.get(url, headers={"If-None-Match": etag, "Accept-Encoding": "identity"}).status_code
        == 304
    )
    zipped = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    # the test client inflates gzip itself; brotli we decode by hand
    assert zipped.content == plain.content
    raw = client.build_request("GET", url, headers={"Accept-Encoding": "br"})
    br = client.send(raw, stream=True)
    body = b"".join(br.iter_raw())
    assert br.headers["Content-Encoding"] == "br" and brotli.decompress(body) == plain.content
    assert br.headers["ETag"] != etag
    assert gzip.compress(b"") is not None


def test_encodings_without_a_cache(demo_ro: str, tmp_path: Path) -> None:
    url = f"{TILES}/{HANOI_Z10[0]}/{HANOI_Z10[1]}/{HANOI_Z10[2]}"
    with _app(demo_ro, tmp_path, tile_cache="none") as client:
        plain = client.get(url, headers={"Accept-Encoding": "identity"})
        assert plain.content and "Content-Encoding" not in plain.headers
        raw = client.build_request("GET", url, headers={"Accept-Encoding": "br, gzip"})
        br = client.send(raw, stream=True)
        assert br.headers["Content-Encoding"] == "br"
        assert brotli.decompress(b"".join(br.iter_raw())) == plain.content
        raw = client.build_request("GET", url, headers={"Accept-Encoding": "gzip"})
        zipped = client.send(raw, stream=True)
        assert zipped.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(b"".join(zipped.iter_raw())) == plain.content


@pytest.mark.parametrize(
    ("url", "status"),
    [
        (f"{TILES}/23/0/0", 400),
        (f"{TILES}/3/8/0", 400),
        (f"{TILES}/3/0/-1", 400),
        (f"{TILES}/3/a/0", 400),
        ("/collections/commune-2025/tiles/WorldCRS84Quad/3/0/0", 404),
        ("/collections/nope-2025/tiles/WebMercatorQuad/3/0/0", 404),
        (f"{TILES}/3/0/0?indicator=nope", 400),
    ],
)
def test_bad_tile_requests(client: TestClient, url: str, status: int) -> None:
    response = client.get(url)
    assert response.status_code == status
    assert response.json()["detail"]


def test_tilejson_and_tileset(client: TestClient) -> None:
    doc = client.get(f"{TILES}/tilejson.json", params={"indicator": "density"}).json()
    assert doc["tilejson"] == "3.0.0"
    assert doc["vector_layers"][0]["id"] == "commune-2025"
    assert {"code", "name", "density", "density_status"} <= set(doc["vector_layers"][0]["fields"])
    assert "indicator=density" in doc["tiles"][0]
    tileset = client.get(TILES).json()
    assert tileset["layers"][0]["id"] == "commune-2025"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"indicator": "density"},
        {"properties": "name,unit_type"},
        {"properties": "name", "indicator": "density"},
    ],
)
def test_metadata_lists_exactly_the_fields_tiles_carry(
    client: TestClient, params: dict[str, str]
) -> None:
    doc = client.get(f"{TILES}/tilejson.json", params=params).json()
    url = doc["tiles"][0].replace("{z}/{x}/{y}", "/".join(map(str, HANOI_Z10)))
    tile = _decode(client.get(url.replace("http://testserver", "")).content)
    carried = {key for f in tile["commune-2025"]["features"] for key in f["properties"]}
    assert carried == set(doc["vector_layers"][0]["fields"])
    if not params:
        schema = client.get(TILES).json()["layers"][0]["propertiesSchema"]["properties"]
        assert set(schema) == carried


def test_tiles_are_discoverable_the_ogc_way(client: TestClient) -> None:
    assert (
        "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt"
        in client.get("/conformance").json()["conformsTo"]
    )
    links = client.get("/collections/commune-2025").json()["links"]
    tilesets = next(
        link["href"]
        for link in links
        if link["rel"] == "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
    )
    listed = client.get(tilesets.replace("http://testserver", "")).json()["tilesets"][0]
    scheme = next(
        link["href"]
        for link in listed["links"]
        if link["rel"] == "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
    )
    tms = client.get(scheme.replace("http://testserver", "")).json()
    assert tms["id"] == "WebMercatorQuad"
    assert [m["matrixWidth"] for m in tms["tileMatrices"]][:4] == [1, 2, 4, 8]
    # zoom 0: one 256-pixel tile across the earth's 40,075 km
    assert tms["tileMatrices"][0]["cellSize"] == pytest.approx(156543.034, abs=1e-3)
    assert client.get("/tileMatrixSets").json()["tileMatrixSets"][0]["id"] == "WebMercatorQuad"
    assert client.get("/tileMatrixSets/WorldCRS84Quad").status_code == 404


@pytest.mark.parametrize(
    ("accept_encoding", "expected"),
    [
        ("gzip;q=0", None),
        ("br;q=0, gzip", "gzip"),
        ("gzip, br;q=0.5", "gzip"),
        ("br, gzip", "br"),
        ("*", "br"),
        ("*;q=0", None),
        ("identity", None),
    ],
)
def test_tile_encoding_follows_the_quality_values(
    demo_ro: str, tmp_path: Path, accept_encoding: str, expected: str | None
) -> None:
    url = f"{TILES}/{HANOI_Z10[0]}/{HANOI_Z10[1]}/{HANOI_Z10[2]}"
    with _app(demo_ro, tmp_path, tile_cache="none") as client:
        request = client.build_request("GET", url, headers={"Accept-Encoding": accept_encoding})
        response = client.send(request, stream=True)
        assert response.headers.get("Content-Encoding") == expected


def test_if_none_match_compares_weakly(client: TestClient) -> None:
    url = f"{TILES}/{HANOI_Z10[0]}/{HANOI_Z10[1]}/{HANOI_Z10[2]}"
    etag = client.get(url, headers={"Accept-Encoding": "identity"}).headers["ETag"]
    for sent in (f"W/{etag}", '"other", ' + etag, "*"):
        response = client.get(url, headers={"If-None-Match": sent, "Accept-Encoding": "identity"})
        assert response.status_code == 304, sent
        assert response.headers["ETag"] == etag and "Accept-Encoding" in response.headers["Vary"]
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200


# --- freshness --------------------------------------------------------------------------------


def _app(url: str, home: Path, **settings: Any) -> TestClient:
    return TestClient(create_app(ServiceSettings(home=home, **settings), db_url=url))


@pytest.fixture
def two_instances(
    demo_db: str, redis_url: str, tmp_path: Path
) -> Iterator[tuple[TestClient, TestClient, str]]:
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    with (
        _app(demo_db, tmp_path / "a", tile_cache="redis", redis_url=redis_url) as a,
        _app(demo_db, tmp_path / "b", tile_cache="redis", redis_url=redis_url) as b,
    ):
        yield a, b, demo_db


def _codes_and_etag(client: TestClient, z: int, x: int, y: int) -> tuple[dict[str, Any], str]:
    response = client.get(f"{TILES}/{z}/{x}/{y}", headers={"Accept-Encoding": "identity"})
    features = _decode(response.content)["commune-2025"]["features"]
    return {f["properties"]["code"]: f["geometry"] for f in features}, response.headers["ETag"]


def test_sql_change_is_seen_by_every_instance(
    two_instances: tuple[TestClient, TestClient, str],
) -> None:
    a, b, url = two_instances
    z, x, y = HANOI_Z10
    far = (10, 818, 449)  # another part of the north, away from the edit
    before, etag = _codes_and_etag(a, z, x, y)
    _, far_etag = _codes_and_etag(a, *far)
    assert _codes_and_etag(b, z, x, y)[1] == etag  # b is served a's cached tile
    hits = b.app.state.services.tiles.stats.hits  # type: ignore[attr-defined]
    assert hits >= 1
    with psycopg.connect(url, autocommit=True) as conn:  # a plain SQL edit, outside the service
        conn.execute(
            "UPDATE admin_unit SET geom = ST_Multi(ST_Scale(geom, 'POINT(0.5 0.5)',"
            " ST_Centroid(geom))) WHERE vintage = '2025' AND level = 'commune'"
            " AND code = '00004'"
        )
    for instance in (a, b):
        after, new_etag = _codes_and_etag(instance, z, x, y)
        assert new_etag != etag
        assert after["00004"] != before["00004"]
        assert {k: v for k, v in after.items() if k != "00004"} == {
            k: v for k, v in before.items() if k != "00004"
        }
    hits = b.app.state.services.tiles.stats.hits  # type: ignore[attr-defined]
    assert _codes_and_etag(b, *far)[1] == far_etag
    assert b.app.state.services.tiles.stats.hits == hits + 1  # type: ignore[attr-defined]


def test_a_change_to_generalised_geometry_refreshes_tiles(
    two_instances: tuple[TestClient, TestClient, str],
) -> None:
    a, _, url = two_instances
    z, x, y = HANOI_Z10
    before, etag = _codes_and_etag(a, z, x, y)
    with psycopg.connect(url, autocommit=True) as conn:  # a repair of one band, by hand
        conn.execute(
            "UPDATE admin_unit_generalised SET geom = ST_Multi(ST_Buffer(geom,"
            " -0.002)) WHERE vintage = '2025' AND level = 'commune' AND code ="
            " '00004'"
        )
    after, new_etag = _codes_and_etag(a, z, x, y)
    assert new_etag != etag and after["00004"] != before["00004"]


def test_indicator_change_refreshes_tiles(
    two_instances: tuple[TestClient, TestClient, str],
) -> None:
    a, b, url = two_instances
    z, x, y = HANOI_Z10
    params = {"indicator": "population"}
    first = _decode(a.get(f"{TILES}/{z}/{x}/{y}", params=params).content)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE indicator SET suppress_below = 1e9 WHERE code = 'population'")
    second = _decode(b.get(f"{TILES}/{z}/{x}/{y}", params=params).content)
    assert all("population" in f["properties"] for f in first["commune-2025"]["features"])
    for feature in second["commune-2025"]["features"]:
        assert "population" not in feature["properties"]  # null values are left out
        assert feature["properties"]["population_status"] == "suppressed"


def test_redis_down_serves_uncached(demo_ro: str, tmp_path: Path) -> None:
    from geo_service.localdb import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"
    with _app(demo_ro, tmp_path, tile_cache="redis", redis_url=dead) as client:
        for _ in range(2):
            response = client.get(f"{TILES}/{HANOI_Z10[0]}/{HANOI_Z10[1]}/{HANOI_Z10[2]}")
            assert response.status_code == 200 and response.content


def test_corrupt_cached_tile_is_regenerated(demo_ro: str, tmp_path: Path) -> None:
    path = tmp_path / "tiles.sqlite"
    url = f"{TILES}/{HANOI_Z10[0]}/{HANOI_Z10[1]}/{HANOI_Z10[2]}"
    with _app(demo_ro, tmp_path, tile_cache="sqlite", tile_cache_path=path) as client:
        good = client.get(url, headers={"Accept-Encoding": "identity"}).content
    cache = SQLiteTileCache(path)
    cache._db.execute("UPDATE tile SET blob = substr(blob, 1, length(blob) / 2)")
    cache.close()
    with _app(demo_ro, tmp_path, tile_cache="sqlite", tile_cache_path=path) as client:
        again = client.get(url, headers={"Accept-Encoding": "identity"})
        assert again.status_code == 200 and again.content == good
        caches = client.app.state.services.tiles.caches  # type: ignore[attr-defined]
        assert caches[0].corrupt == 1


def test_a_cache_file_that_is_not_sqlite_is_set_aside(demo_ro: str, tmp_path: Path) -> None:
    path = tmp_path / "tiles.sqlite"
    path.write_bytes(b"not a database at all")
    url = f"{TILES}/{HANOI_Z10[0]}/{HANOI_Z10[1]}/{HANOI_Z10[2]}"
    with _app(demo_ro, tmp_path, tile_cache="sqlite", tile_cache_path=path) as client:
        assert client.get(url).status_code == 200
        assert client.get(url).status_code == 200
        assert client.app.state.services.tiles.caches[0].hits == 1  # type: ignore[attr-defined]
    assert any(tmp_path.glob("tiles.sqlite.corrupt-*"))


def test_an_unwritable_cache_serves_uncached(demo_ro: str, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    url = f"{TILES}/{HANOI_Z10[0]}/{HANOI_Z10[1]}/{HANOI_Z10[2]}"
    # the cache's folder cannot be made: a file stands where it should be
    with _app(
        demo_ro, tmp_path, tile_cache="sqlite", tile_cache_path=blocker / "tiles.sqlite"
    ) as client:
        assert client.get(url).status_code == 200
        assert client.app.state.services.tiles.caches == []  # type: ignore[attr-defined]


def test_a_failed_purge_keeps_the_cache_from_serving_until_it_is_emptied(tmp_path: Path) -> None:
    from tilecache.base import CachedTile, TileKey

    cache = SQLiteTileCache(tmp_path / "tiles.sqlite")
    key = TileKey("commune-2025", "default", 10, 813, 450)
    cache.put(key, CachedTile(1, b"old", b"", b""))
    working = cache._db
    cache._db = sqlite3.connect(":memory:", check_same_thread=False)  # no tile table: fails
    assert cache.purge_range("commune-2025", 10, 800, 400, 900, 500) == 0
    assert cache.errors == 1
    cache._db = working  # the file is back, with the tile the purge should have dropped
    assert cache.get(key) is None  # not served: it may be stale
    cache.put(key, CachedTile(2, b"new", b"", b""))  # empties the file first
    tile = cache.get(key)
    assert tile is not None and tile.raw == b"new"


def test_a_tile_newer_than_the_database_is_not_served() -> None:
    from tilecache.freshness import Change, ChangeLog

    log = ChangeLog()
    log.add(Change(74, "commune-2025", (0.0, 0.0, 1.0, 1.0)))
    assert log.is_fresh("commune-2025", 10, 813, 450, 74)
    # rendered at 75 before the database was restored from a backup taken at 74
    assert not log.is_fresh("commune-2025", 10, 813, 450, 75)


def test_a_flipped_byte_in_a_compressed_copy_is_caught() -> None:
    from tilecache.base import CachedTile, CorruptTile

    blob = bytearray(CachedTile(7, b"raw tile", gzip.compress(b"raw tile"), b"br").encode())
    blob[-5] ^= 0xFF  # inside the gzip copy
    with pytest.raises(CorruptTile):
        CachedTile.decode(bytes(blob))


def test_cli_says_when_the_cache_did_not_take_the_tiles(demo_ro: str, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "DATABASE_URL": demo_ro,
        "GEO_SERVICE_HOME": str(tmp_path),
        "GEO_SERVICE_TILE_CACHE": "redis",
        "GEO_SERVICE_REDIS_URL": "redis://127.0.0.1:1/0",
    }
    for args in (
        ["seed", "--collection", "province-2025", "--zooms", "0"],
        ["purge", "--collection", "province-2025"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "geo_service", "tiles", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stdout + done.stderr
        assert "is it reachable?" in " ".join(done.stderr.split())


def test_a_database_restored_from_an_older_backup_empties_the_caches(
    demo_db: str, tmp_path: Path
) -> None:
    url = f"{TILES}/{HANOI_Z10[0]}/{HANOI_Z10[1]}/{HANOI_Z10[2]}"
    path = tmp_path / "tiles.sqlite"
    with psycopg.connect(demo_db, autocommit=True) as conn:  # the backup
        backup_epoch = conn.execute("SELECT epoch FROM tile_epoch").fetchone()
        backup = conn.execute(
            "SELECT band, geom, geom_3857 FROM admin_unit_generalised WHERE vintage ="
            " '2025' AND code = '00004'"
        ).fetchall()

    def change() -> None:  # a change after the backup, recorded as usual
        with psycopg.connect(demo_db, autocommit=True) as conn:
            conn.execute(
                "UPDATE admin_unit_generalised SET geom = ST_Multi(ST_Buffer(geom,"
                " -0.002)) WHERE vintage = '2025' AND code = '00004'"
            )

    def restore() -> None:  # the backup's data and epoch back, as pg_restore puts them
        with psycopg.connect(demo_db, autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")  # (no trigger fires)
            for band, geom, tile_geom in backup:  # (every column: the tiles' copy too)
                conn.execute(
                    "UPDATE admin_unit_generalised SET geom = %s, geom_3857 = %s WHERE"
                    " vintage = '2025' AND code = '00004' AND band = %s",
                    (geom, tile_geom, band),
                )
            conn.execute("UPDATE tile_epoch SET epoch = %s", backup_epoch)

    with _app(demo_db, tmp_path, tile_cache="sqlite", tile_cache_path=path) as client:
        original = client.get(url).content
        change()
        assert client.get(url).content != original
        restore()
        # a running service notices at the next request
        assert client.get(url).content == original
    change()
    with _app(demo_db, tmp_path, tile_cache="sqlite", tile_cache_path=path) as client:
        assert client.get(url).content != original  # cached, newer than the backup
    restore()
    with _app(demo_db, tmp_path, tile_cache="sqlite", tile_cache_path=path) as client:
        assert client.get(url).content == original  # and so does one started afterwards

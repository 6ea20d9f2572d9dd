"""Base maps served by the service: small MBTiles, PMTiles and GeoTIFF files made here, a
damaged and a missing file, served through /basemaps and drawn by the map page."""

from __future__ import annotations

import gzip
import io
import json
import math
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import numpy as np
import pytest
import rasterio
from PIL import Image
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import write as write_pmtiles
from rasterio.transform import from_bounds

from tests.browser import Viewer
from tests.conftest import PgCluster, live_process

HANOI = (105.85, 21.03)
ZOOMS = range(5, 10)


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 1 << z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (256, 256), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def make_mbtiles(path: Path) -> None:
    """A raster MBTiles of a few red tiles around Hà Nội (rows in TMS order)."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE metadata (name text, value text)")
        db.execute(
            "CREATE TABLE tiles (zoom_level integer, tile_column integer, tile_row integer,"
            " tile_data blob)"
        )
        db.executemany(
            "INSERT INTO metadata VALUES (?, ?)",
            [("name", "test"), ("format", "png"), ("minzoom", "5"), ("maxzoom", "9"),
             ("bounds", "105,20,107,22"), ("attribution", "Test raster <b>bold</b>")],
        )  # fmt: skip
        for z in ZOOMS:
            x, y = _tile_of(*HANOI, z)
            db.execute(
                "INSERT INTO tiles VALUES (?, ?, ?, ?)", (z, x, (1 << z) - 1 - y, _png((220, 0, 0)))
            )


def make_pmtiles(path: Path) -> None:
    """A vector PMTiles (gzip-compressed MVT) with one water polygon per tile."""
    with write_pmtiles(str(path)) as writer:
        entries = []
        for z in ZOOMS:
            x, y = _tile_of(*HANOI, z)
            layer = {
                "name": "water",
                "features": [
                    {
                        "geometry": "POLYGON ((0 0, 4096 0, 4096 4096, 0 4096, 0 0))",
                        "properties": {},
                    }
                ],
            }
            entries.append(
                (zxy_to_tileid(z, x, y), gzip.compress(mapbox_vector_tile.encode([layer])))
            )
        for tile_id, data in sorted(entries):
            writer.write_tile(tile_id, data)
        writer.finalize(
            {
                "tile_type": TileType.MVT,
                "tile_compression": Compression.GZIP,
                "min_lon_e7": 1050000000,
                "min_lat_e7": 200000000,
                "max_lon_e7": 1070000000,
                "max_lat_e7": 220000000,
                "center_zoom": 7,
                "center_lon_e7": 1058500000,
                "center_lat_e7": 210300000,
            },
            {"vector_layers": [{"id": "water", "fields": {}}], "attribution": "Test vector"},
        )


def make_geotiff(path: Path) -> None:
    """An RGB GeoTIFF (EPSG:4326) of a green square over Hà Nội."""
    data = np.zeros((3, 100, 100), dtype="uint8")
    data[1] = 180
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=100,
        height=100,
        count=3,
        dtype="uint8",
        crs="EPSG:4326",
        transform=from_bounds(105.5, 20.7, 106.2, 21.4, 100, 100),
    ) as dst:
        dst.write(data)


@pytest.fixture(scope="module")
def basemap_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("basemaps")
    make_mbtiles(folder / "raster.mbtiles")
    make_pmtiles(folder / "vector.pmtiles")
    make_geotiff(folder / "imagery.tif")
    (folder / "broken.mbtiles").write_bytes(b"this is not an sqlite file" * 100)
    return folder


@pytest.fixture(scope="module")
def basemap_service(
    pg: PgCluster, demo_template: str, basemap_files: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """A live service with the three base maps, a damaged one and a missing one; its URL and
    its log."""
    db = pg.create_database(demo_template)
    entries = [
        {"id": "raster", "path": str(basemap_files / "raster.mbtiles"), "title": "Raster MBTiles"},
        {"id": "vector", "path": str(basemap_files / "vector.pmtiles"), "title": "Vector PMTiles",
         "title_vi": "Nền vector PMTiles"},
        {"id": "imagery", "path": str(basemap_files / "imagery.tif"), "title": "Imagery",
         "attribution": "Test imagery"},
        {"id": "broken", "path": str(basemap_files / "broken.mbtiles"), "title": "Broken"},
        {"id": "gone", "path": str(basemap_files / "gone.pmtiles"), "title": "Gone"},
    ]  # fmt: skip
    log = tmp_path_factory.mktemp("log") / "service.log"
    try:
        with live_process(db, log=log, GEO_SERVICE_BASEMAPS=json.dumps(entries)) as (url, _):
            yield url, log
    finally:
        pg.drop_database(db)


def _fetch(url: str, gzip_ok: bool = True) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip" if gzip_ok else ""})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_basemaps_are_listed_with_what_is_wrong(basemap_service: tuple[str, Path]) -> None:
    base, log = basemap_service
    status, _, body = _fetch(f"{base}/basemaps", gzip_ok=False)
    layers = {b["id"]: b for b in json.loads(body)["basemaps"]}
    assert status == 200
    kinds = ("raster", "vector", "imagery", "broken", "gone")
    assert [layers[i]["available"] for i in kinds] == [True, True, True, False, False]
    assert layers["broken"]["problem"] == "unreadable" and layers["gone"]["problem"] == "missing"
    assert layers["raster"]["format"] == "png" and layers["vector"]["format"] == "pbf"
    assert layers["vector"]["layers"] == ["water"]
    assert layers["raster"]["attribution"] == "Test raster <b>bold</b>"
    assert layers["worldpop"]["overlay"] and layers["roads"]["kind"] == "geojson"
    text = log.read_text()
    assert "'broken'" in text and "'gone'" in text  # named in the service's log


def test_tiles_of_each_kind_are_served(basemap_service: tuple[str, Path]) -> None:
    base, _ = basemap_service
    x, y = _tile_of(*HANOI, 7)
    status, headers, body = _fetch(f"{base}/basemaps/raster/7/{x}/{y}")
    assert status == 200 and headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(body)).getpixel((5, 5))[:3] == (220, 0, 0)
    status, headers, body = _fetch(f"{base}/basemaps/vector/7/{x}/{y}")
    assert status == 200 and headers["content-type"] == "application/vnd.mapbox-vector-tile"
    assert headers.get("content-encoding") == "gzip"
    assert "water" in mapbox_vector_tile.decode(gzip.decompress(body))
    status, headers, body = _fetch(
        f"{base}/basemaps/imagery/9/{_tile_of(*HANOI, 9)[0]}/{_tile_of(*HANOI, 9)[1]}"
    )
    assert status == 200 and headers["content-type"] == "image/png"
    pixel = Image.open(io.BytesIO(body)).convert("RGBA").getpixel((128, 128))
    assert pixel[1] == 180 and pixel[3] == 255
    # the population overlay: transparent where the raster has no data (the sea)
    status, _, body = _fetch(
        f"{base}/basemaps/worldpop/7/{_tile_of(110.5, 15.0, 7)[0]}/{_tile_of(110.5, 15.0, 7)[1]}"
    )
    assert (
        status == 200 and Image.open(io.BytesIO(body)).convert("RGBA").getpixel((128, 128))[3] == 0
    )
    assert _fetch(f"{base}/basemaps/raster/3/0/0")[0] == 404  # none stored there
    broken = _fetch(f"{base}/basemaps/broken/7/{x}/{y}", gzip_ok=False)
    assert broken[0] == 404 and json.loads(broken[2])["parameter"] == "basemapId"
    assert _fetch(f"{base}/basemaps/nope/7/{x}/{y}")[0] == 404
    assert _fetch(f"{base}/basemaps/raster/7/999/0")[0] == 404


def test_the_page_draws_each_basemap_and_names_the_broken_ones(
    browser: Any, basemap_service: tuple[str, Path]
) -> None:
    base, _ = basemap_service
    viewer = Viewer(browser, base)
    try:
        viewer.open("level=province&lat=21.03&lng=105.85&z=7&lang=vi")
        switcher = viewer.page.locator(".gv-layers").inner_text()
        assert "Nền vector PMTiles" in switcher and "tệp bị lỗi" in switcher
        assert "không tìm thấy tệp" in switcher
        assert viewer.page.locator("input[name=base][value=broken]").is_disabled()
        for layer, drawn in (
            ("raster", ".leaflet-gvBase-pane img.leaflet-tile-loaded"),
            ("imagery", ".leaflet-gvBase-pane img.leaflet-tile-loaded"),
            ("vector", ".leaflet-gvBase-pane svg path"),
        ):
            viewer.page.check(f"input[name=base][value={layer}]")
            viewer.page.wait_for_selector(drawn, timeout=20_000)
            assert any(f"/basemaps/{layer}/7/" in u for u in viewer.requests), layer
            assert f"base={layer}" in viewer.page.url
            viewer.screenshot(f"basemap-{layer}")
        # the attribution comes as text, with the layer
        viewer.page.check("input[name=base][value=raster]")
        attribution = viewer.page.locator(".leaflet-control-attribution").inner_text()
        assert "Test raster <b>bold</b>" in attribution
        # the choropleth is still drawn over any of them
        assert viewer.js("window.geoViewer.drawnCount()") > 0
        assert viewer.errors == []
    finally:
        viewer.close()


def test_unreadable_files_raise_clear_errors(basemap_files: Path, tmp_path: Path) -> None:
    from geo_service.basemaps.sources import open_source

    with pytest.raises(ValueError, match="MBTiles"):
        open_source(basemap_files / "broken.mbtiles")
    with pytest.raises(FileNotFoundError):
        open_source(basemap_files / "gone.pmtiles")
    (tmp_path / "bad.pmtiles").write_bytes(b"\0" * 200)
    with pytest.raises(ValueError, match="PMTiles"):
        open_source(tmp_path / "bad.pmtiles")
    (tmp_path / "bad.tif").write_bytes(b"II*\0garbage")
    with pytest.raises(ValueError, match="GeoTIFF"):
        open_source(tmp_path / "bad.tif")
    with pytest.raises(ValueError, match="kind of file"):
        open_source(Path(__file__))


def test_the_ea_editor_lists_and_draws_the_same_basemaps(
    browser: Any, basemap_service: tuple[str, Path]
) -> None:
    base, _ = basemap_service
    # (the tests read the page through evaluated expressions, which its CSP forbids)
    context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    try:
        page.goto(f"{base}/map/ea?commune=00004&round=2029&lang=vi")
        page.wait_for_function("window.eaEditor && window.eaEditor.ready", timeout=30_000)
        layers = page.locator(".ea-layers").inner_text()
        # the viewer's list (its module and texts), without the viewer's own orientation map
        assert "Nền vector PMTiles" in layers and "tệp bị lỗi" in layers
        assert "không tìm thấy tệp" in layers and "Không có nền" in layers
        assert "Đường giao thông" in layers  # the loaded lines EAs follow
        assert page.locator("input[name=base][value=orientation]").count() == 0
        assert page.locator("input[name=base][value=broken]").is_disabled()
        # the first operator base map is shown at first
        page.wait_for_selector(".leaflet-gvBase-pane img.leaflet-tile-loaded", timeout=20_000)
        assert any("/basemaps/raster/" in u for u in requests)
        page.check("input[name=base][value=imagery]")
        page.wait_for_function(
            "[...document.querySelectorAll('.leaflet-gvBase-pane img')]"
            ".some((i) => i.src.includes('/basemaps/imagery/'))",
            timeout=20_000,
        )
        assert "base=imagery" in page.url
        assert "Test imagery" in page.locator(".leaflet-control-attribution").inner_text()
        page.check("input[name=base][value=none]")
        page.wait_for_function("document.querySelectorAll('.leaflet-gvBase-pane img').length === 0")
        assert errors == []
    finally:
        context.close()

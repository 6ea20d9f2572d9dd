"""The service in the clients people already use, unchanged: GDAL (ogrinfo/ogr2ogr and
pyogrio), OWSLib, geopandas and MapLibre GL JS in Chromium, against a live service."""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import psycopg
import pyogrio
import pytest

from tests.conftest import REPO

GDAL = shutil.which("ogrinfo")
needs_gdal = pytest.mark.skipif(GDAL is None, reason="gdal-bin is installed by scripts/setup.sh")
COMMUNES = "commune-2025"


def _gdal(*args: str, debug: bool = False) -> subprocess.CompletedProcess[str]:
    """A GDAL command line (its HTTP requests on stderr with debug)."""
    command = list(args) + (["--debug", "on"] if debug else [])
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        env={
            "GDAL_HTTP_TIMEOUT": "300",
            "PATH": "/usr/bin:/bin",
        },
        check=False,
    )


@needs_gdal
def test_gdal_reads_a_layer_with_an_indicator(live_server: str) -> None:
    result = _gdal("ogrinfo", "-ro", "-so", f"OAPIF:{live_server}/?indicator=density", COMMUNES)
    assert result.returncode == 0, result.stderr
    assert "Feature Count: 3321" in result.stdout
    assert "density: Real" in result.stdout, result.stdout


@needs_gdal
def test_gdal_where_is_applied_by_the_service(live_server: str, tmp_path: Path) -> None:
    out = tmp_path / "dense.geojson"
    result = _gdal(
        "ogr2ogr",
        "-f",
        "GeoJSON",
        str(out),
        f"OAPIF:{live_server}/?indicator=density",
        COMMUNES,
        "-where",
        "parent_code = '01' AND density > 1000",
        debug=True,
    )
    assert result.returncode == 0, result.stderr
    # GDAL's request log: the filter went to the service, which paged only what it matched
    requests = [line for line in result.stderr.splitlines() if "/items" in line]
    assert any("filter=" in line for line in requests), "\n".join(requests[:20])
    features = json.loads(out.read_text())["features"]
    assert features and all(
        f["properties"]["parent_code"] == "01" and f["properties"]["density"] > 1000
        for f in features
    )


@needs_gdal
def test_gdal_reads_a_geopackage_through_vsicurl(live_server: str) -> None:
    url = f"{live_server}/collections/{COMMUNES}/items?f=gpkg&indicator=density"
    result = _gdal("ogrinfo", "-ro", "-so", f"/vsicurl/{url}", COMMUNES)
    assert result.returncode == 0, result.stderr
    assert "Feature Count: 3321" in result.stdout
    assert "density: Real" in result.stdout


def test_pyogrio_reads_the_api_and_a_vsicurl_geopackage(live_server: str) -> None:
    frame = pyogrio.read_dataframe(
        f"OAPIF:{live_server}/?indicator=density", layer=COMMUNES, where="parent_code = '01'"
    )
    assert len(frame) > 10 and set(frame["parent_code"]) == {"01"}
    assert frame["density"].notna().all()
    url = f"{live_server}/collections/{COMMUNES}/items?f=gpkg&indicator=density&limit=100"
    gpkg = pyogrio.read_dataframe(f"/vsicurl/{url}")
    assert len(gpkg) == 100 and "density" in gpkg.columns


def test_gdal_reads_the_vector_tiles_through_ogc_api_tiles(live_server: str) -> None:
    # GDAL's OGCAPI driver reads the tileset metadata, the tile matrix set and the MVT tiles
    # of one tile matrix. (Debian's GDAL 3.6 is built without this driver's vector-tile part,
    # so this is the GDAL inside pyogrio.) The driver takes the collection's CRS84 extent as
    # coordinates of the tile matrix set, so the extent is given in EPSG:3857 (README).
    source = f"OGCAPI:{live_server}/collections/{COMMUNES}"
    layers = [name for name, _ in pyogrio.list_layers(source)]
    assert "Zoom level 6" in layers and "Zoom level 12" in layers
    frame = pyogrio.read_dataframe(
        source,
        layer="Zoom level 6",
        API="TILES",
        MINX=11_370_000,
        MINY=770_000,
        MAXX=13_060_000,
        MAXY=2_680_000,
    )
    assert frame.crs is not None and frame.crs.to_epsg() == 3857
    # units cut at tile edges come once per tile: every commune is there at least once
    assert frame["code"].nunique() == 3321
    assert "Ngọc Đường" in set(frame["name"])


def test_gdal_reads_the_change_through_ogc_api_tiles(live_server: str, demo_ro: str) -> None:
    # indicator, period and compare given once, on the collection's URL: GDAL's OGCAPI driver
    # takes the tile template from the tileset metadata the collection links to
    source = f"OGCAPI:{live_server}/collections/{COMMUNES}?indicator=population&period=2025"
    frame = pyogrio.read_dataframe(
        f"{source}&compare=2009",
        layer="Zoom level 10",
        API="TILES",
        MINX=11_779_000,  # central Hà Nội
        MINY=2_418_000,
        MAXX=11_786_000,
        MAXY=2_425_000,
    )
    with psycopg.connect(demo_ro) as conn:
        published = dict(
            conn.execute(
                "SELECT code || '/' || period, value FROM published_value"
                " WHERE indicator = 'population' AND vintage = '2025' AND level = 'commune'"
                " AND period IN ('2009', '2025') AND status IN ('ok', 'provisional')"
            ).fetchall()
        )
    shown = frame[frame["population_change_status"] == "ok"]
    assert "00004" in set(shown["code"])  # Ba Đình
    for code, change in zip(shown["code"], shown["population_change"], strict=True):
        assert change == pytest.approx(published[f"{code}/2025"] - published[f"{code}/2009"])


def test_geopandas_gets_vn2000_for_a_vn2000_request(live_server: str) -> None:
    crs = "http://www.opengis.net/def/crs/EPSG/0/3405"
    frame = gpd.read_file(f"{live_server}/collections/{COMMUNES}/items?limit=5&crs={crs}")
    assert frame.crs is not None and frame.crs.to_epsg() == 3405
    x0, y0, _, _ = frame.total_bounds
    assert x0 > 100_000 and y0 > 500_000  # (metres, easting then northing)
    plain = gpd.read_file(f"{live_server}/collections/{COMMUNES}/items?limit=5")
    assert plain.crs is not None and plain.crs.to_epsg() == 4326


def test_owslib(live_server: str) -> None:
    from owslib.ogcapi.features import Features

    api = Features(live_server)
    document = api.api()
    assert document["openapi"].startswith("3.0")
    ids = {c["id"] for c in api.collections()["collections"]}
    assert {COMMUNES, "enumeration-areas"} <= ids
    queryables = api.collection_queryables(COMMUNES)
    assert {"parent_code", "density", "geometry"} <= set(queryables["properties"])
    items = api.collection_items(
        COMMUNES, filter="parent_code = '01' AND density > 1000", limit=1000, indicator="density"
    )
    features = items["features"]
    assert features and items["numberMatched"] == len(features)
    assert all(f["properties"]["density"] > 1000 for f in features)
    # the EAs too: queryables, and a filter the service applies (the demo has none drawn)
    assert {"status", "population", "geometry"} <= set(
        api.collection_queryables("enumeration-areas")["properties"]
    )
    eas = api.collection_items("enumeration-areas", filter="status = 'submitted'")
    assert eas["features"] == [] and eas["numberMatched"] == 0


# QGIS 3.22 from Debian (qgis, python3-qgis), driven headless by Debian's python3; not part of
# the setup (hundreds of MB), so this runs where it is installed
QGIS_PYTHON = Path("/usr/lib/python3/dist-packages/qgis/core")
needs_qgis = pytest.mark.skipif(
    not QGIS_PYTHON.is_dir(), reason="QGIS is not installed (apt-get install qgis python3-qgis)"
)


@needs_qgis
def test_qgis_reads_features_tiles_and_a_geopackage(live_server: str, tmp_path: Path) -> None:
    result = subprocess.run(
        ["/usr/bin/python3", str(REPO / "tests" / "clients" / "qgis_check.py"), live_server],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.splitlines()[-1])
    features = seen["features"]
    # the OAPIF provider, with the vendor parameter in the service's URL (QGIS appends it to
    # every request, the landing page and /collections included)
    assert features["valid"] and features["count"] == 3321
    assert "density" in features["fields"]
    assert features["densities"] and all(d is not None for d in features["densities"])
    # (QGIS 3.22 applies a subset string itself, after paging everything: its OAPIF provider
    # sends CQL2 filters only from QGIS 3.28 on)
    assert features["subset"] and all(c == "01" and d > 1000 for c, d in features["subset"])
    assert seen["tiles"]["valid"] and seen["tiles"]["painted"] > 0 and not seen["tiles"]["errors"]
    gpkg = seen["geopackage"]
    assert gpkg["valid"] and gpkg["count"] == 3321 and "density" in gpkg["fields"]


@pytest.fixture(scope="module")
def other_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A static server on another port (another origin) with MapLibre, OpenLayers and a test
    page for each."""
    folder = tmp_path_factory.mktemp("other-origin")
    vendor = REPO / "tests" / "vendor"
    shutil.copytree(vendor / "maplibre-gl", folder / "maplibre")
    shutil.copytree(vendor / "ol", folder / "ol")
    (folder / "index.html").write_text(MAPLIBRE_PAGE)
    (folder / "openlayers.html").write_text(OPENLAYERS_PAGE)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}"
    server.shutdown()


MAPLIBRE_PAGE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="icon" href="data:,"><link rel="stylesheet" href="maplibre/maplibre-gl.css">
<script src="maplibre/maplibre-gl.js"></script></head>
<body style="margin:0"><div id="map" style="width:512px;height:512px"></div>
<script>
const tilejson = new URLSearchParams(location.search).get("tilejson");
window.rendered = 0;
const map = new maplibregl.Map({
  container: "map", center: [105.85, 21.03], zoom: 9,
  style: {version: 8, sources: {communes: {type: "vector", url: tilejson}},
          layers: [{id: "fill", type: "fill", source: "communes",
                    "source-layer": "commune-2025", paint: {"fill-color": "#c33"}}]},
});
map.on("error", (e) => { console.error("maplibre: " + (e.error && e.error.message)); });
map.on("idle", () => {
  window.rendered = map.queryRenderedFeatures({layers: ["fill"]}).length;
  window.idle = true;
});
</script></body></html>
"""

# OpenLayers reads the OGC API – Tiles tileset metadata (and through it the tile matrix set and
# the tile template) with its OGCVectorTile source
OPENLAYERS_PAGE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="icon" href="data:,"><link rel="stylesheet" href="ol/ol.css">
<script src="ol/ol.js"></script></head>
<body style="margin:0"><div id="map" style="width:512px;height:512px"></div>
<script>
const tileset = new URLSearchParams(location.search).get("tileset");
window.started = 0; window.features = 0; window.tiles = 0; window.failed = 0;
const source = new ol.source.OGCVectorTile({url: tileset, format: new ol.format.MVT()});
source.on("tileloadstart", () => { window.started += 1; });
source.on("tileloadend", (e) => {
  window.tiles += 1; window.features += e.tile.getFeatures().length;
});
source.on("tileloaderror", () => { window.failed += 1; });
const map = new ol.Map({
  target: "map", layers: [new ol.layer.VectorTile({source})],
  view: new ol.View({center: ol.proj.fromLonLat([105.85, 21.03]), zoom: 9}),
});
// done: tiles were asked for and every one has arrived (or failed)
map.on("rendercomplete", () => {
  window.done = window.started > 0 && window.tiles + window.failed === window.started;
});
</script></body></html>
"""


def _in_browser(browser: Any, url: str, done: str, result: str) -> tuple[Any, list[str], list[str]]:
    """Open a page, wait until `done` holds, and give `result`, the console errors and every
    URL the page asked for."""
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    try:
        page.goto(url)
        page.wait_for_function(done, timeout=120_000)
        return page.evaluate(result), errors, requested
    finally:
        context.close()


def test_maplibre_renders_the_tiles_cross_origin(
    browser: Any, live_server: str, other_origin: str
) -> None:
    tilejson = f"{live_server}/collections/{COMMUNES}/tiles/WebMercatorQuad/tilejson.json"
    rendered, errors, requested = _in_browser(
        browser,
        f"{other_origin}/index.html?tilejson={tilejson}",
        "window.idle === true",
        "window.rendered",
    )
    assert rendered > 0
    assert not errors, errors
    assert any("/tiles/WebMercatorQuad/9/" in url for url in requested), requested


def test_openlayers_reads_the_ogc_tileset_cross_origin(
    browser: Any, live_server: str, other_origin: str
) -> None:
    tileset = f"{live_server}/collections/{COMMUNES}/tiles/WebMercatorQuad"
    loaded, errors, requested = _in_browser(
        browser,
        f"{other_origin}/openlayers.html?tileset={tileset}",
        "window.done === true",
        "[window.tiles, window.features, window.failed]",
    )
    tiles, features, failed = loaded
    assert tiles > 0 and features > 0 and failed == 0, loaded
    assert not errors, errors
    assert any("/tileMatrixSets/WebMercatorQuad" in url for url in requested), requested
    assert any(re.search(r"/tiles/WebMercatorQuad/\d+/\d+/\d+$", url) for url in requested)

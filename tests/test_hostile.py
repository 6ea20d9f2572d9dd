"""Hostile input: every bad request gets a clear 4xx naming the problem, and no write happens.

The requests go over real HTTP (http.client, so paths, bytes and headers are sent exactly as
written) to a live service over its own database copy (`live_writer`). Before and after each
request the EA, user and tile-change tables are fingerprinted (row count and checksum).
"""

from __future__ import annotations

import http.client
import json
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import psycopg
import pytest
import shapely
from shapely.geometry import box, mapping

from tests.conftest import LiveWriter
from tests.helpers import fingerprint

WATCHED = ("enumeration_area", "ea_history", "app_user", "tile_change", "indicator_value")
ITEMS = "/collections/enumeration-areas/items"
COMMUNE = "00004"


@dataclass
class Sent:
    """What came back."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Site:
    """The live service, a seeded EA and a fingerprinting connection."""

    def __init__(self, writer: LiveWriter, conn: psycopg.Connection, ea_id: int, commune: Any):
        parts = urlsplit(writer.url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.writer, self.conn, self.ea_id, self.commune = writer, conn, ea_id, commune

    def send(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        chunked: bool = False,
    ) -> Sent:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            connection.putrequest(method, target, skip_accept_encoding=True)
            sent_headers = {**(self.writer.auth if auth else {}), **(headers or {})}
            if body is not None:
                sent_headers.setdefault("Content-Type", "application/json")
                if chunked:
                    sent_headers["Transfer-Encoding"] = "chunked"
                else:
                    sent_headers["Content-Length"] = str(len(body))
            for name, value in sent_headers.items():
                connection.putheader(name, value)
            connection.endheaders()
            if body is not None:
                if chunked:
                    for start in range(0, len(body), 65536):
                        piece = body[start : start + 65536]
                        connection.send(f"{len(piece):X}\r\n".encode() + piece + b"\r\n")
                    connection.send(b"0\r\n\r\n")
                else:
                    connection.send(body)
            response = connection.getresponse()
            return Sent(
                response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
            )
        finally:
            connection.close()

    def etag(self) -> str:
        return self.send("GET", f"{ITEMS}/{self.ea_id}").headers["etag"]

    def tables(self) -> dict[str, tuple[int, str]]:
        return fingerprint(self.conn, WATCHED)


@pytest.fixture(scope="module")
def site(live_writer: LiveWriter) -> Iterator[Site]:
    """One EA in the west of commune 00004 to aim PUT/PATCH/DELETE/split/merge at."""
    with psycopg.connect(live_writer.database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT ST_AsBinary(geom) FROM commune_coverage WHERE vintage = '2025' AND code = %s",
            (COMMUNE,),
        ).fetchone()
        assert row is not None
        commune = shapely.from_wkb(row[0])
        x0, y0, x1, y1 = commune.bounds
        west = commune.intersection(box(x0 - 1, y0 - 1, x0 + (x1 - x0) * 0.3, y1 + 1))
        site = Site(live_writer, conn, 0, commune)
        feature = {
            "type": "Feature",
            "geometry": mapping(west),
            "properties": {"census_round": "2031", "commune_code": COMMUNE},
        }
        created = site.send("POST", ITEMS, json.dumps(feature).encode())
        assert created.status == 201, created.body
        site.ea_id = created.json()["id"]
        yield site


def _refused(
    site: Site,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    parameter: str | None = None,
    statuses: tuple[int, ...] = (),
    **options: Any,
) -> Sent:
    """Send; expect a 4xx JSON error naming `parameter`, and no change in the database."""
    before = site.tables()
    sent = site.send(method, target, body, headers, **options)
    assert 400 <= sent.status < 500, (sent.status, sent.body[:500])
    if statuses:
        assert sent.status in statuses, (sent.status, sent.body[:500])
    assert sent.headers.get("content-type", "").startswith("application/json"), sent.headers
    error = sent.json()
    assert isinstance(error.get("detail"), str) and error["detail"], error
    assert error["status"] == sent.status, error
    if parameter is not None:
        assert error.get("parameter") == parameter, error
    text = sent.body.decode("utf-8", "replace")
    assert "Traceback" not in text and "psycopg" not in text, text
    assert "syntax error" not in text and "FROM enumeration_area" not in text, text
    assert site.tables() == before, "a refused request changed the database"
    return sent


# --- bodies: malformed JSON, wrong GeoJSON, bad coordinates ---------------------------------


def _feature(geometry: Any, **props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": geometry,
        "properties": {"census_round": "2031", "commune_code": COMMUNE, **props},
    }


def _ring(*points: tuple[float, float]) -> list[list[float]]:
    return [list(p) for p in points]


SQUARE = _ring(
    (105.83, 21.03), (105.831, 21.03), (105.831, 21.031), (105.83, 21.031), (105.83, 21.03)
)
POLYGON = {"type": "Polygon", "coordinates": [SQUARE]}

MALFORMED = {
    "truncated": b'{"type": "Feature", "geometry": {"type": "Polygon", ',
    "trailing-garbage": b'{"type": "Feature"} xyz',
    "single-quotes": b"{'type': 'Feature'}",
    "not-utf8": b'{"type": "Feature", "properties": {"reason": "\xff\xfe"}}',
    "bom-and-nothing": "\ufeff".encode(),
    "empty": b"",
    "deep-nesting": b"[" * 100_000 + b"]" * 100_000,
    "huge-number": b'{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": '
    b"[[[1" + b"0" * 5000 + b", 1], [2, 2], [3, 1], [1, 1]]]}}",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
@pytest.mark.parametrize(
    "method,target", [("POST", ITEMS), ("PUT", "{ea}"), ("POST", "/aggregate")]
)
def test_malformed_json(site: Site, name: str, method: str, target: str) -> None:
    headers = {"If-Match": "*"}
    sent = _refused(
        site, method, target.format(ea=f"{ITEMS}/{site.ea_id}"), MALFORMED[name], headers
    )
    assert sent.json().get("parameter") in ("body", "geometry", "coordinates"), sent.json()


WRONG_GEOMETRIES: dict[str, Any] = {
    "point": {"type": "Point", "coordinates": [105.83, 21.03]},
    "linestring": {"type": "LineString", "coordinates": SQUARE},
    "feature-collection": {"type": "FeatureCollection", "features": [_feature(POLYGON)]},
    "geometry-collection": {"type": "GeometryCollection", "geometries": [POLYGON]},
    "empty-polygon": {"type": "Polygon", "coordinates": []},
    "empty-ring": {"type": "Polygon", "coordinates": [[]]},
    "empty-multipolygon": {"type": "MultiPolygon", "coordinates": []},
    "null": None,
    "string": "POLYGON((0 0, 1 0, 1 1, 0 0))",
    "no-coordinates": {"type": "Polygon"},
    "coordinates-not-arrays": {"type": "Polygon", "coordinates": "1,2,3"},
    "position-of-strings": {"type": "Polygon", "coordinates": [[["a", "b"]] * 4]},
    "position-of-booleans": {"type": "Polygon", "coordinates": [[[True, False]] * 4]},
    "one-number-positions": {"type": "Polygon", "coordinates": [[[1], [2], [3], [1]]]},
    "unclosed-ring": {"type": "Polygon", "coordinates": [SQUARE[:-1]]},
    "two-point-ring": {"type": "Polygon", "coordinates": [[SQUARE[0], SQUARE[1], SQUARE[0]]]},
    "nan": {"type": "Polygon", "coordinates": [[[105.83, float("nan")], *SQUARE[1:]]]},
    "infinity": {"type": "Polygon", "coordinates": [[[float("inf"), 21.03], *SQUARE[1:]]]},
    "minus-infinity": {"type": "Polygon", "coordinates": [[[-float("inf"), 21.03], *SQUARE[1:]]]},
    "1e308": {
        "type": "Polygon",
        "coordinates": [[[1e308, 1e308], [1e308, -1e308], [-1e308, -1e308], [1e308, 1e308]]],
    },
    "outside-the-world": {
        "type": "Polygon",
        "coordinates": [_ring((500, 21), (501, 21), (501, 22), (500, 21))],
    },
    "bow-tie": {
        "type": "Polygon",
        "coordinates": [
            _ring(
                (105.83, 21.03),
                (105.831, 21.031),
                (105.831, 21.03),
                (105.83, 21.031),
                (105.83, 21.03),
            )
        ],
    },
}


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


@pytest.mark.parametrize("name", sorted(WRONG_GEOMETRIES))
def test_wrong_geometry_in_an_ea(site: Site, name: str) -> None:
    geometry = WRONG_GEOMETRIES[name]
    _refused(site, "POST", ITEMS, _dumps(_feature(geometry)), parameter="geometry")
    _refused(
        site,
        "PATCH",
        f"{ITEMS}/{site.ea_id}",
        _dumps(_feature(geometry)),
        {"If-Match": "*"},
        parameter="geometry",
    )


@pytest.mark.parametrize("name", sorted(WRONG_GEOMETRIES))
def test_wrong_geometry_in_aggregate(site: Site, name: str) -> None:
    body = {"geometry": WRONG_GEOMETRIES[name], "indicators": ["population"]}
    _refused(site, "POST", "/aggregate", _dumps(body), parameter="geometry")


@pytest.mark.parametrize(
    "body",
    [
        _feature(None) | {"type": "FeatureCollection"},
        {"type": "FeatureCollection", "features": [_feature(POLYGON)]},
        POLYGON,
        [_feature(POLYGON)],
        "Feature",
        {"type": "Feature", "geometry": POLYGON, "properties": "census_round=2031"},
    ],
    ids=[
        "typed-collection",
        "feature-collection",
        "bare-geometry",
        "array",
        "string",
        "string-properties",
    ],
)
def test_not_a_feature(site: Site, body: Any) -> None:
    sent = _refused(site, "POST", ITEMS, _dumps(body))
    assert sent.json()["parameter"] in ("body", "properties"), sent.json()


@pytest.mark.parametrize(
    "line",
    [
        None,
        {"type": "Point", "coordinates": [105.83, 21.03]},
        {"type": "LineString", "coordinates": []},
        {"type": "LineString", "coordinates": [[105.83, 21.03]]},
        {"type": "LineString", "coordinates": [[float("nan"), 21.03], [105.84, 21.04]]},
        {"type": "LineString", "coordinates": [[1e308, 21.03], [-1e308, 21.04]]},
        {"type": "LineString", "coordinates": [["a", 21.03], [105.84, 21.04]]},
        {"type": "LineString", "coordinates": "105.83 21.03, 105.84 21.04"},
    ],
    ids=["none", "point", "empty", "one-point", "nan", "1e308", "string-x", "string"],
)
def test_bad_split_lines(site: Site, line: Any) -> None:
    _refused(
        site,
        "POST",
        f"{ITEMS}/{site.ea_id}/split",
        _dumps({"line": line}),
        {"If-Match": "*"},
        parameter="line",
    )


@pytest.mark.parametrize(
    "ids",
    [
        None,
        [],
        [1],
        "1,2",
        [1, "2"],
        [1, 1],
        [True, False],
        [1.5, 2],
        [2**63, 1],
        list(range(1000)),
    ],
    ids=[
        "none",
        "empty",
        "one",
        "string",
        "mixed",
        "duplicate",
        "booleans",
        "float",
        "bigint",
        "thousand",
    ],
)
def test_bad_merge_ids(site: Site, ids: Any) -> None:
    _refused(
        site,
        "POST",
        "/collections/enumeration-areas/merge",
        _dumps({"ids": ids}),
        {"If-Match": "*"},
        parameter="ids",
    )


def _square_ring(vertices: int) -> list[list[float]]:
    """A closed ring with this many vertices around a small circle in commune 00004."""
    import math

    cx, cy, r = 105.832, 21.032, 0.0005
    ring = [
        [
            round(cx + r * math.cos(2 * math.pi * i / vertices), 7),
            round(cy + r * math.sin(2 * math.pi * i / vertices), 7),
        ]
        for i in range(vertices)
    ]
    return [*ring, ring[0]]


def test_a_million_vertices(site: Site) -> None:
    polygon = {"type": "Polygon", "coordinates": [_square_ring(1_000_000)]}
    body = _dumps(_feature(polygon))
    _refused(site, "POST", ITEMS, body, parameter="body", statuses=(413,))
    _refused(
        site,
        "POST",
        "/aggregate",
        _dumps({"geometry": polygon, "indicators": ["population"]}),
        parameter="body",
        statuses=(413,),
    )


def test_too_many_vertices_under_the_body_limit(site: Site) -> None:
    # ~150,000 integer vertices fit in the body limit; the vertex limit must refuse them
    ring = [[105 + (i % 2), 21 + (i // 2) % 2] for i in range(150_000)]
    polygon = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
    body = json.dumps(_feature(polygon), separators=(",", ":")).encode()
    assert len(body) < 5_000_000
    _refused(site, "POST", ITEMS, body, parameter="geometry", statuses=(413,))
    _refused(
        site,
        "POST",
        "/aggregate",
        json.dumps(
            {"geometry": polygon, "indicators": ["population"]}, separators=(",", ":")
        ).encode(),
        parameter="geometry",
        statuses=(413,),
    )


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    "target", [ITEMS, "/aggregate", "/collections/enumeration-areas/merge", "/indicators"]
)
def test_bodies_over_the_limit(site: Site, target: str, chunked: bool) -> None:
    padding = "x" * 6_000_000
    body = json.dumps(_feature(POLYGON, reason=padding)).encode()
    _refused(site, "POST", target, body, parameter="body", statuses=(413,), chunked=chunked)


def test_a_lying_content_length(site: Site) -> None:
    headers = {"Content-Length": str(10**12)}
    _refused(site, "POST", ITEMS, None, headers, statuses=(413, 400))


# --- paths and query parameters ------------------------------------------------------------


@pytest.mark.parametrize(
    "target,parameter",
    [
        ("/collections/commune-2025/tiles/WebMercatorQuad/23/0/0", "z"),
        ("/collections/commune-2025/tiles/WebMercatorQuad/-1/0/0", "z"),
        ("/collections/commune-2025/tiles/WebMercatorQuad/3/8/0", "x"),
        ("/collections/commune-2025/tiles/WebMercatorQuad/3/0/8", "y"),
        ("/collections/commune-2025/tiles/WebMercatorQuad/3/-1/0", "x"),
        ("/collections/commune-2025/tiles/WebMercatorQuad/0/0/99999999999999999999999", "y"),
        ("/collections/commune-2025/tiles/WebMercatorQuad/1e3/0/0", "z"),
        ("/collections/commune-2025/tiles/WebMercatorQuad/NaN/0/0", "z"),
        ("/collections/commune-2025/tiles/WebMercatorQuad/5/25/14.5", "y"),
        ("/collections/enumeration-areas/tiles/WebMercatorQuad/30/0/0", "z"),
        ("/collections/commune-2025/items?limit=-1", "limit"),
        ("/collections/commune-2025/items?limit=0", "limit"),
        # (a limit above the maximum is capped, as OGC API - Features asks: tests/test_filter.py)
        ("/collections/commune-2025/items?offset=-5", "offset"),
        ("/collections/commune-2025/items?offset=1e9", "offset"),
        ("/collections/commune-2025/items?offset=99999999999999999999999999", "offset"),
        ("/collections/commune-2025/items?limit=NaN", "limit"),
        (f"{ITEMS}?limit=-1", "limit"),
        (f"{ITEMS}?offset=-1", "offset"),
        (f"{ITEMS}?offset=18446744073709551616", "offset"),
        (f"{ITEMS}/99999999999999999999999999", "featureId"),
        (f"{ITEMS}/-1", "featureId"),
        (f"{ITEMS}/9223372036854775807", "featureId"),
        ("/collections/commune-2025/items?bbox=NaN,0,1,1", "bbox"),
        ("/collections/commune-2025/items?bbox=1e308,1e308,-1e308,-1e308", "bbox"),
        (
            "/collections/commune-2025/items?bbox=-1e308,-1e308,1e308,1e308&bbox-crs=EPSG:3405",
            "bbox",
        ),
        ("/collections/commune-2025/items?max-allowable-offset=NaN", "max-allowable-offset"),
        ("/collections/commune-2025/items?zoom=-3", "zoom"),
        ("/maps/choropleth?collection=commune-2025&indicator=density&k=1000000000000", "k"),
        (
            "/maps/choropleth?collection=commune-2025&indicator=density&method=manual"
            "&breaks=NaN,Infinity",
            "breaks",
        ),
        (
            "/maps/choropleth?collection=commune-2025&indicator=density&method=manual"
            "&breaks=1e308,-1e308",
            "breaks",
        ),
    ],
)
def test_numbers_out_of_range(site: Site, target: str, parameter: str) -> None:
    _refused(site, "GET", target, parameter=parameter)


@pytest.mark.parametrize(
    "target",
    [
        "/static/../geo_service/settings.py",
        "/static/%2e%2e/%2e%2e/pyproject.toml",
        "/static/..%2f..%2fpyproject.toml",
        "/static/..%5c..%5cpyproject.toml",
        "/static/%252e%252e/%252e%252e/pyproject.toml",
        "/static/vendor/../../../../../../etc/passwd",
        "/static//etc/passwd",
        "/static/%00",
        "/collections/..%2f..%2fetc%2fpasswd/items",
        "/collections/../../etc/passwd",
        "/collections/commune-2025/items/..%2f..%2f..%2fetc%2fpasswd",
        "/collections/%2e%2e/tiles",
        "/indicators/..%2f..%2fetc%2fpasswd",
        "/indicators/..%2fpopulation/values",
        "/collections/commune-2025/tiles/..%2f..%2fWebMercatorQuad/0/0/0",
        "/communes/..%2f00004/ea-coverage",
    ],
)
def test_path_traversal(site: Site, target: str) -> None:
    sent = _refused(site, "GET", target)
    assert b"root:" not in sent.body and b"[project]" not in sent.body
    assert b"class ServiceSettings" not in sent.body


HOSTILE = {
    "sql-quote": "' OR '1'='1",
    "sql-stacked": "1; DROP TABLE enumeration_area; --",
    "sql-union": "x' UNION SELECT token_hash FROM app_user --",
    "sql-comment": "commune-2025'/*",
    "rtl-override": "\u202e5202-enummoc",
    "combining": "a" + "\u0301\u0323\u0300\u0303" * 20,
    "nul": "commune\x00-2025",
    "lone-surrogate": "\ud800",
    "10k-chars": "x" * 10_000,
    "like-wildcards": "%_%",
}

# (what, method, url template with {v} where the value goes) and the parameter to name
QUERY_TARGETS = {
    "items.bbox": ("/collections/commune-2025/items?bbox={v}", "bbox"),
    "items.bbox-crs": (
        "/collections/commune-2025/items?bbox=105,21,106,22&bbox-crs={v}",
        "bbox-crs",
    ),
    "items.crs": ("/collections/commune-2025/items?crs={v}", "crs"),
    "items.properties": ("/collections/commune-2025/items?properties={v}", "properties"),
    "items.sortby": ("/collections/commune-2025/items?sortby={v}", "sortby"),
    "items.parent": ("/collections/commune-2025/items?parent={v}", "parent"),
    "items.indicator": ("/collections/commune-2025/items?indicator={v}", "indicator"),
    "items.period": ("/collections/commune-2025/items?indicator=density&period={v}", "period"),
    "items.f": ("/collections/commune-2025/items?f={v}", "f"),
    "items.collectionId": ("/collections/{v}/items", "collectionId"),
    "item.featureId": ("/collections/commune-2025/items/{v}", "featureId"),
    "item.crs": ("/collections/commune-2025/items/00004?crs={v}", "crs"),
    "indicators.kind": ("/indicators?kind={v}", "kind"),
    "indicators.code": ("/indicators/{v}", "code"),
    "values.vintage": ("/indicators/density/values?level=commune&vintage={v}", "vintage"),
    "values.level": ("/indicators/density/values?vintage=2025&level={v}", "level"),
    "values.period": ("/indicators/density/values?vintage=2025&level=commune&period={v}", "period"),
    "values.parent": ("/indicators/density/values?vintage=2025&level=commune&parent={v}", "parent"),
    "values.unit": ("/indicators/density/values?vintage=2025&level=commune&unit={v}", "unit"),
    "values.f": ("/indicators/density/values?vintage=2025&level=commune&f={v}", "f"),
    "tiles.collectionId": ("/collections/{v}/tiles/WebMercatorQuad/5/25/14", "collectionId"),
    "tiles.tileMatrixSetId": ("/collections/commune-2025/tiles/{v}/5/25/14", "tileMatrixSetId"),
    "tiles.indicator": (
        "/collections/commune-2025/tiles/WebMercatorQuad/5/25/14?indicator={v}",
        "indicator",
    ),
    "tiles.period": (
        "/collections/commune-2025/tiles/WebMercatorQuad/5/25/14?indicator=density&period={v}",
        "period",
    ),
    "tiles.properties": (
        "/collections/commune-2025/tiles/WebMercatorQuad/5/25/14?properties={v}",
        "properties",
    ),
    "tiles.round": (
        "/collections/enumeration-areas/tiles/WebMercatorQuad/5/25/14?round={v}",
        "round",
    ),
    "tilejson.indicator": (
        "/collections/commune-2025/tiles/WebMercatorQuad/tilejson.json?indicator={v}",
        "indicator",
    ),
    "choropleth.collection": ("/maps/choropleth?indicator=density&collection={v}", "collection"),
    "choropleth.indicator": ("/maps/choropleth?collection=commune-2025&indicator={v}", "indicator"),
    "choropleth.period": (
        "/maps/choropleth?collection=commune-2025&indicator=density&period={v}",
        "period",
    ),
    "choropleth.method": (
        "/maps/choropleth?collection=commune-2025&indicator=density&method={v}",
        "method",
    ),
    "choropleth.palette": (
        "/maps/choropleth?collection=commune-2025&indicator=density&palette={v}",
        "palette",
    ),
    "choropleth.breaks": (
        "/maps/choropleth?collection=commune-2025&indicator=density&method=manual&breaks={v}",
        "breaks",
    ),
    "ea.commune": (f"{ITEMS}?commune={{v}}", "commune"),
    "ea.status": (f"{ITEMS}?status={{v}}", "status"),
    "ea.round": (f"{ITEMS}?round={{v}}", "round"),
    "ea.featureId": (f"{ITEMS}/{{v}}", "featureId"),
    "coverage.code": ("/communes/{v}/ea-coverage", "code"),
    "coverage.vintage": ("/communes/00004/ea-coverage?vintage={v}", "vintage"),
}
# Free text: searching for (or filtering by) odd but harmless text is not an error.
FREE_TEXT = {
    "items.q": ("/collections/commune-2025/items?q={v}", "q"),
    "indicators.source": ("/indicators?source={v}", "source"),
}
REFUSED_IN_FREE_TEXT = {"nul", "lone-surrogate", "10k-chars", "rtl-override"}


def _encode(value: str) -> str:
    if value == "\ud800":
        return "%ED%A0%80"  # what a client sends for a lone surrogate: invalid UTF-8
    return quote(value, safe="")


@pytest.mark.parametrize("hostile", sorted(HOSTILE))
@pytest.mark.parametrize("where", sorted(QUERY_TARGETS))
def test_hostile_strings_in_parameters(site: Site, where: str, hostile: str) -> None:
    template, parameter = QUERY_TARGETS[where]
    value = HOSTILE[hostile]
    sent = _refused(site, "GET", template.format(v=_encode(value)))
    named = sent.json().get("parameter")
    if template.index("{v}") < template.find("?") or "?" not in template:
        # a path segment: broken bytes are blamed on the path, a '/' makes another path
        if hostile in ("nul", "lone-surrogate") or "/" in value:
            assert named in ("path", "method"), sent.json()
            return
    assert named == parameter, sent.json()


@pytest.mark.parametrize("hostile", sorted(HOSTILE))
@pytest.mark.parametrize("where", sorted(FREE_TEXT))
def test_hostile_strings_in_free_text(site: Site, where: str, hostile: str) -> None:
    template, parameter = FREE_TEXT[where]
    target = template.format(v=_encode(HOSTILE[hostile]))
    if hostile in REFUSED_IN_FREE_TEXT:
        _refused(site, "GET", target, parameter=parameter)
        return
    before = site.tables()
    sent = site.send("GET", target)
    assert sent.status == 200, sent.body[:300]
    body = sent.json()
    found = body.get("features", body.get("indicators"))
    if hostile != "combining":  # (accent-insensitive: "a" with marks searches for "a")
        assert found == [], f"{HOSTILE[hostile]!r} matched {len(found)} entries"
    assert site.tables() == before


AGGREGATE_FIELDS = ("collection", "indicators", "period", "method", "crs")


@pytest.mark.parametrize("hostile", sorted(HOSTILE))
@pytest.mark.parametrize("name", AGGREGATE_FIELDS)
def test_hostile_strings_in_aggregate(site: Site, name: str, hostile: str) -> None:
    value: Any = HOSTILE[hostile]
    body = {"geometry": POLYGON, "indicators": ["population"], name: value}
    if name == "indicators":
        body[name] = [value]
    sent = _refused(site, "POST", "/aggregate", json.dumps(body).encode())
    assert sent.json()["parameter"] in (name, f"{name}.0"), sent.json()


EA_FIELDS = ("code", "commune_code", "census_round", "commune_vintage", "reason")
HARMLESS_IN_REASON = {
    "sql-quote",
    "sql-stacked",
    "sql-union",
    "sql-comment",
    "combining",
    "like-wildcards",
}


def _free_area(site: Site) -> Any:
    x0, y0, x1, y1 = site.commune.bounds
    return site.commune.intersection(box(x0 + (x1 - x0) * 0.6, y0 - 1, x1 + 1, y1 + 1))


@pytest.mark.parametrize("hostile", sorted(HOSTILE))
@pytest.mark.parametrize("name", EA_FIELDS)
def test_hostile_strings_in_ea_writes(site: Site, name: str, hostile: str) -> None:
    value = HOSTILE[hostile]
    feature = _feature(mapping(_free_area(site)), **{name: value})
    if name == "reason" and hostile in HARMLESS_IN_REASON:
        # a reason is free text: stored exactly as sent, then the write is undone
        created = site.send("POST", ITEMS, json.dumps(feature).encode())
        assert created.status == 201, created.body
        ea = created.json()["id"]
        try:
            history = site.send("GET", f"{ITEMS}/{ea}/history").json()["history"]
            assert history[0]["reason"] == unicodedata.normalize("NFC", value)
        finally:
            deleted = site.send("DELETE", f"{ITEMS}/{ea}", headers={"If-Match": "*"})
            assert deleted.status == 204
        return
    _refused(site, "POST", ITEMS, json.dumps(feature).encode(), parameter=name)


@pytest.mark.parametrize("hostile", sorted(set(HOSTILE) - HARMLESS_IN_REASON))
@pytest.mark.parametrize("how", ["split", "merge", "submit", "delete"])
def test_hostile_reasons(site: Site, how: str, hostile: str) -> None:
    value = HOSTILE[hostile]
    headers = {"If-Match": "*"}
    ea = f"{ITEMS}/{site.ea_id}"
    x0, y0, x1, y1 = site.commune.bounds
    line = {
        "type": "LineString",
        "coordinates": [[x0 - 0.01, (y0 + y1) / 2], [x1 + 0.01, (y0 + y1) / 2]],
    }
    if how == "split":
        _refused(
            site,
            "POST",
            f"{ea}/split",
            json.dumps({"line": line, "reason": value}).encode(),
            headers,
            parameter="reason",
        )
    elif how == "merge":
        _refused(
            site,
            "POST",
            "/collections/enumeration-areas/merge",
            json.dumps({"ids": [site.ea_id, site.ea_id + 1000], "reason": value}).encode(),
            headers,
            parameter="reason",
        )
    else:
        method, target = ("POST", f"{ea}/submit") if how == "submit" else ("DELETE", ea)
        _refused(
            site, method, f"{target}?reason={_encode(value)}", None, headers, parameter="reason"
        )


@pytest.mark.parametrize(
    "value", [[1, 2], {"a": 1}, 42, True, 1.5], ids=["list", "object", "int", "bool", "float"]
)
@pytest.mark.parametrize("name", EA_FIELDS)
def test_non_strings_in_ea_fields(site: Site, name: str, value: Any) -> None:
    feature = _feature(mapping(_free_area(site)), **{name: value})
    if name == "census_round" and value == 42:
        feature["properties"][name] = 2031.5  # (an int year could be fine)
    _refused(site, "POST", ITEMS, json.dumps(feature).encode(), parameter=name)


@pytest.mark.parametrize(
    "value", [[1, 2], {"a": 1}, 42, True], ids=["list", "object", "int", "bool"]
)
@pytest.mark.parametrize("how", ["split", "merge"])
def test_non_string_reasons(site: Site, how: str, value: Any) -> None:
    x0, y0, x1, y1 = site.commune.bounds
    line = {
        "type": "LineString",
        "coordinates": [[x0 - 0.01, (y0 + y1) / 2], [x1 + 0.01, (y0 + y1) / 2]],
    }
    body = (
        {"line": line, "reason": value}
        if how == "split"
        else {"ids": [site.ea_id, site.ea_id + 1000], "reason": value}
    )
    target = (
        f"{ITEMS}/{site.ea_id}/split" if how == "split" else "/collections/enumeration-areas/merge"
    )
    _refused(site, "POST", target, json.dumps(body).encode(), {"If-Match": "*"}, parameter="reason")


@pytest.mark.parametrize("hostile", sorted(HOSTILE))
@pytest.mark.parametrize("header", ["If-Match", "Content-Crs"])
def test_hostile_headers(site: Site, header: str, hostile: str) -> None:
    value = HOSTILE[hostile]
    if not value.isascii():
        value = value.encode("utf-8", "surrogatepass").decode("latin-1")
    if "\x00" in value:
        value = value.replace("\x00", "\\0")
    feature = _feature(mapping(_free_area(site).buffer(-0.0001)))
    target = f"{ITEMS}/{site.ea_id}" if header == "If-Match" else ITEMS
    method = "PUT" if header == "If-Match" else "POST"
    _refused(site, method, target, json.dumps(feature).encode(), {header: value})


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer ' OR '1'='1",
        "Bearer " + "x" * 10_000,
        "Basic Zm9vOmJhcg==",
        "Bearer",
        "Bearer \u202etoken".encode().decode("latin-1"),
    ],
)
def test_hostile_tokens(site: Site, authorization: str) -> None:
    feature = _feature(mapping(_free_area(site)))
    sent = _refused(
        site,
        "POST",
        ITEMS,
        json.dumps(feature).encode(),
        {"Authorization": authorization},
        statuses=(401,),
        auth=False,
    )
    assert sent.json()["parameter"] == "Authorization"


def test_a_refused_transition_keeps_the_error_status(site: Site) -> None:
    sent = _refused(
        site, "POST", f"{ITEMS}/{site.ea_id}/approve", None, {"If-Match": "*"}, parameter="action"
    )
    assert sent.json()["status"] == 400 and sent.json()["current_status"] == "draft"


def test_a_taken_code_is_a_conflict(site: Site) -> None:
    taken = site.send("GET", f"{ITEMS}/{site.ea_id}").json()["properties"]["code"]
    feature = _feature(mapping(_free_area(site)), code=taken)
    _refused(site, "POST", ITEMS, json.dumps(feature).encode(), parameter="code", statuses=(409,))

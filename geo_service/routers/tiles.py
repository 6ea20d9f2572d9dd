"""OGC API – Tiles for the collections: MVT tiles, tileset metadata and TileJSON."""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from geo_service.db import Conn
from geo_service.errors import InvalidParameter, NotFound
from geo_service.features.collections import Collection, get_collection
from geo_service.features.items import ItemQuery
from geo_service.features.params import RawItemParams, build_item_query
from geo_service.negotiation import accepts_encoding, qualities
from geo_service.text import CODE, CODE_LIST
from geo_service.tiles.mvt import EA_LAYER, default_properties
from geo_service.tiles.service import TileService, encoded
from tilecache import grid
from tilecache.base import CachedTile

router = APIRouter(tags=["tiles"])

MVT = "application/vnd.mapbox-vector-tile"
TMS = "WebMercatorQuad"
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
MAX_ZOOM = 22


TILING_SCHEME = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
TILESETS_VECTOR = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
CONFORMANCE = [f"http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/{c}" for c in
               ("core", "tileset", "tilesets-list", "geodata-tilesets", "mvt")]
_EARTH_HALF = 20037508.3427892  # metres from the centre to the edge of WebMercatorQuad
_ZOOM0_CELL = 2 * _EARTH_HALF / 256  # metres per pixel of a 256-pixel tile at zoom 0


def _check_tms(tms: str) -> None:
    if tms != TMS:
        raise NotFound(f"unknown tile matrix set {tms!r}; available: {TMS}",
                       parameter="tileMatrixSetId")


def _tile_url(request: Request, c: Collection) -> str:
    base = str(request.url_for("collection_tilesets", collectionId=c.id))
    return f"{base}/{TMS}/{{z}}/{{x}}/{{y}}"


@router.get("/collections/{collectionId}/tiles", summary="Tilesets of a collection",
            name="collection_tilesets")
async def tilesets(collectionId: str, request: Request, conn: Conn) -> dict[str, Any]:  # noqa: N803
    """The tilesets (one: WebMercatorQuad vector tiles)."""
    c = await get_collection(conn, collectionId)
    base = str(request.url_for("collection_tilesets", collectionId=c.id))
    return {"tilesets": [{"title": f"{c.title} vector tiles", "dataType": "vector",
                          "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
                          "tileMatrixSetURI": TMS_URI,
                          "links": [{"rel": "self", "href": f"{base}/{TMS}",
                                     "type": "application/json"},
                                    _tiling_scheme_link(request),
                                    {"rel": "item", "href": _tile_url(request, c),
                                     "type": MVT, "templated": True}]}],
            "links": [{"rel": "self", "href": base, "type": "application/json"}]}


def _tiling_scheme_link(request: Request) -> dict[str, str]:
    return {"rel": TILING_SCHEME, "type": "application/json",
            "href": str(request.url_for("tile_matrix_set", tileMatrixSetId=TMS))}


@router.get("/tileMatrixSets", summary="Tile matrix sets (tiling schemes)")
async def tile_matrix_sets(request: Request) -> dict[str, Any]:
    """The one tiling scheme of every tileset: WebMercatorQuad."""
    return {"tileMatrixSets": [{"id": TMS, "title": "Google Maps Compatible for the World",
                                "uri": TMS_URI, "links": [{**_tiling_scheme_link(request),
                                                           "rel": "self"}]}]}


@router.get("/tileMatrixSets/{tileMatrixSetId}", summary="A tile matrix set's definition",
            name="tile_matrix_set")
async def tile_matrix_set(tileMatrixSetId: str) -> dict[str, Any]:  # noqa: N803
    """WebMercatorQuad as an OGC Two Dimensional Tile Matrix Set (2.0) document."""
    _check_tms(tileMatrixSetId)
    return {"id": TMS, "title": "Google Maps Compatible for the World", "uri": TMS_URI,
            "crs": "http://www.opengis.net/def/crs/EPSG/0/3857", "orderedAxes": ["X", "Y"],
            "wellKnownScaleSet": "http://www.opengis.net/def/wkss/OGC/1.0/GoogleMapsCompatible",
            "tileMatrices": [{
                "id": str(z), "scaleDenominator": _ZOOM0_CELL / 0.00028 / 2 ** z,
                "cellSize": _ZOOM0_CELL / 2 ** z, "cornerOfOrigin": "topLeft",
                "pointOfOrigin": [-_EARTH_HALF, _EARTH_HALF], "tileWidth": 256,
                "tileHeight": 256, "matrixWidth": 2 ** z, "matrixHeight": 2 ** z}
                for z in range(MAX_ZOOM + 1)]}


_DESCRIPTIONS = {"code": "official code", "name": "official name",
                 "parent_code": "parent's code", "unit_type": "unit type",
                 "area_km2": "area (km²)"}


def _fields(query: ItemQuery) -> dict[str, str]:
    """The properties the tiles of this query carry, with a description of each."""
    fields = {}
    for name in query.properties if query.properties is not None else default_properties(query):
        fields[name] = _DESCRIPTIONS.get(name, "")
    for ind in query.indicators:
        if ind.code in fields:
            fields[ind.code] = (f"{ind.code} ({ind.period}); null when suppressed or not "
                                "available")
        if f"{ind.code}_status" in fields:
            fields[f"{ind.code}_status"] = "ok, provisional, suppressed or not_available"
    return fields


@router.get("/collections/{collectionId}/tiles/{tileMatrixSetId}", summary="Tileset metadata")
async def tileset(collectionId: str, tileMatrixSetId: str, request: Request,  # noqa: N803
                  conn: Conn) -> dict[str, Any]:
    """OGC tileset metadata: the layer, its fields, zoom limits and the tile URL template."""
    _check_tms(tileMatrixSetId)
    c = await get_collection(conn, collectionId)
    fields = _fields(await build_item_query(conn, c, RawItemParams()))
    others = ", ".join(n for n in _DESCRIPTIONS if n not in fields)
    return {"title": f"{c.title} vector tiles", "dataType": "vector", "tileMatrixSetURI": TMS_URI,
            "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
            "boundingBox": {"lowerLeft": list(c.extent[:2]), "upperRight": list(c.extent[2:]),
                            "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"},
            "layers": [{"id": c.id, "dataType": "vector", "geometryType": "polygons",
                        "minTileMatrix": "0", "maxTileMatrix": str(MAX_ZOOM),
                        "propertiesSchema": {
                            "type": "object",
                            "description": f"also {others}, indicator values and statuses "
                                           "with the query parameters properties, indicator "
                                           "and period",
                            "properties": {name: {"description": d, "type": "string"}
                                           for name, d in fields.items()}}}],
            "links": [{"rel": "item", "href": _tile_url(request, c), "type": MVT,
                       "templated": True},
                      _tiling_scheme_link(request),
                      {"rel": "self", "href": str(request.url), "type": "application/json"}]}


@router.get("/collections/{collectionId}/tiles/{tileMatrixSetId}/tilejson.json",
            summary="TileJSON 3.0")
async def tilejson(collectionId: str, tileMatrixSetId: str, request: Request,  # noqa: N803
                   conn: Conn,
                   indicator: Annotated[str | None, Query(max_length=300,
                                                          pattern=CODE_LIST)] = None,
                   period: Annotated[str | None, Query(max_length=10, pattern=CODE)] = None,
                   properties: Annotated[str | None, Query(max_length=1000,
                                                           pattern=CODE_LIST)] = None,
                   ) -> dict[str, Any]:
    """TileJSON for MapLibre/Leaflet clients, with vector_layers and their fields."""
    _check_tms(tileMatrixSetId)
    c = await get_collection(conn, collectionId)
    query = await build_item_query(conn, c, RawItemParams(indicator=indicator, period=period,
                                                          properties=properties))
    fields = _fields(query)
    params = {}
    if query.indicators:
        params["indicator"] = ",".join(i.code for i in query.indicators)
        params["period"] = query.indicators[0].period
    if query.properties is not None:
        params["properties"] = ",".join(query.properties)
    url = _tile_url(request, c)
    if params:
        url += "?" + urllib.parse.urlencode(params, safe=",")
    return {"tilejson": "3.0.0", "name": c.title, "scheme": "xyz", "tiles": [url],
            "minzoom": 0, "maxzoom": MAX_ZOOM, "bounds": list(c.extent),
            "center": [(c.extent[0] + c.extent[2]) / 2, (c.extent[1] + c.extent[3]) / 2, 5],
            "vector_layers": [{"id": c.id, "fields": fields, "minzoom": 0,
                               "maxzoom": MAX_ZOOM}]}


def _negotiate(tile: CachedTile, accept_encoding: str) -> str | None:
    """br or gzip, whichever the client gives the higher q (br on a tie); None: as is."""
    if not tile.raw:
        return None
    accepted = qualities(accept_encoding)
    ranked = sorted(("br", "gzip"), key=lambda e: -accepted.get(e, accepted.get("*", 0.0)))
    return ranked[0] if accepts_encoding(accept_encoding, ranked[0]) else None


def _matches(etag: str, if_none_match: str) -> bool:
    """If-None-Match's weak comparison: W/ is ignored and `*` matches any tile."""
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or etag in (t.removeprefix("W/") for t in tags)


@router.get("/collections/{collectionId}/tiles/{tileMatrixSetId}/{z}/{x}/{y}",
            summary="A vector tile", response_class=Response,
            responses={200: {"content": {MVT: {}}}, 304: {"description": "not modified"}})
async def tile(
    collectionId: str, tileMatrixSetId: str, request: Request, conn: Conn,  # noqa: N803
    z: Annotated[int, Path(ge=0, le=MAX_ZOOM)],
    x: Annotated[int, Path(ge=0)],
    y: Annotated[int, Path(ge=0)],
    indicator: Annotated[str | None, Query(max_length=300, pattern=CODE_LIST)] = None,
    period: Annotated[str | None, Query(max_length=10, pattern=CODE)] = None,
    properties: Annotated[str | None, Query(max_length=1000, pattern=CODE_LIST)] = None,
    census_round: Annotated[str | None, Query(alias="round", pattern=r"^\d{4}$")] = None,
) -> Response:
    """An MVT tile whose layer is the collection id; features carry code, name, indicators."""
    _check_tms(tileMatrixSetId)
    if not grid.is_valid(z, x, y):
        raise InvalidParameter(f"tile {z}/{x}/{y} is outside the grid: x and y must be below "
                               f"{grid.tile_count(z)} at zoom {z}",
                               parameter="x" if x >= grid.tile_count(z) else "y")
    service: TileService = request.app.state.tiles
    if service.settings.tile_freshness == "strict" and service.caches:
        # (without a cache every tile is rendered from the current data: nothing to check)
        await service.freshness.sync(conn)
    if collectionId == EA_LAYER:
        found = await service.ea_tile(conn, z, x, y, census_round)
    else:
        c = await service.collections.get(conn, collectionId, service.freshness.log)
        query = await build_item_query(conn, c, RawItemParams(
            indicator=indicator, period=period, properties=properties))
        found = await service.tile(conn, query, z, x, y)
    encoding = _negotiate(found, request.headers.get("accept-encoding", ""))
    etag = f'"{found.digest}{"-" + encoding if encoding else ""}"'
    headers = {"ETag": etag, "Cache-Control": service.settings.tile_cache_control}
    if _matches(etag, request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers={**headers, "Vary": "Accept-Encoding"})
    body = await encoded(found, encoding)
    if encoding:  # (without one, the gzip middleware adds the Vary header itself)
        headers["Content-Encoding"] = encoding
        headers["Vary"] = "Accept-Encoding"
    return Response(body, media_type=MVT, headers=headers)

"""OGC API – Tiles for the collections: MVT tiles, tileset metadata and TileJSON."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from starlette.background import BackgroundTask
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from geo_core.errors import NotFound
from geo_core.text import CODE, CODE_LIST
from geo_core.zoom import MAX_ZOOM
from geo_service.ea.sql import count_and_extent
from geo_service.features.catalogue import indicator_entries, read_collection
from geo_service.features.model import ItemQuery
from geo_service.features.query import RawItemParams, build_item_query
from geo_service.http.auth import check_reader
from geo_service.http.deps import (
    Catalogue,
    Conn,
    Pool,
    ServicesDep,
    Tiles,
    get_services,
    read_pool,
)
from geo_service.http.documents import (
    BoundingBox,
    Link,
    PropertiesSchema,
    PropertySchema,
    TileJson,
    TileLayer,
    TileMatrix,
    TileMatrixLimits,
    TileMatrixSet,
    TileMatrixSetRef,
    TileMatrixSets,
    Tileset,
    TilesetMetadata,
    Tilesets,
    TmsBoundingBox,
    VectorLayer,
)
from geo_service.http.negotiation import accepts_encoding, qualities
from geo_service.http.ogc import MVT, TILING_SCHEME
from geo_service.http.rechecking import rechecking_headers
from geo_service.http.services import Services
from geo_service.http.vendor import Vendor, VendorParams
from geo_service.tiles.service import ServedTile, TileRequest
from geo_service.tiles.sql import EA_DETAIL_ZOOM, EA_LAYER, EA_MIN_ZOOM, EA_PROPERTY_ZOOMS
from indicators.read import rechecking_note
from tilecache.base import CachedTile

router = APIRouter(tags=["tiles"])

TMS = "WebMercatorQuad"
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
WEB_MERCATOR = "http://www.opengis.net/def/crs/EPSG/0/3857"
TILE_PATH = "/collections/{collectionId}/tiles/{tileMatrixSetId}/{z}/{x}/{y}"
_EARTH_HALF = 20037508.3427892  # metres from the centre to the edge of WebMercatorQuad
_ZOOM0_CELL = 2 * _EARTH_HALF / 256  # metres per pixel of a 256-pixel tile at zoom 0
# TileJSON needs bounds: an empty EA layer gets the country's (with its islands)
_VIETNAM = (102.1, 6.9, 117.9, 23.4)


# The change of the indicators since an earlier period of theirs (`{code}_change`, …).
Compare = Annotated[
    str | None,
    Query(
        max_length=10,
        pattern=CODE,
        description="an earlier period of the indicators: the tiles carry their change since "
        "it ({code}_change, {code}_change_percent, {code}_change_status)",
    ),
]


def _check_tms(tms: str) -> None:
    if tms != TMS:
        raise NotFound(
            f"unknown tile matrix set {tms!r}; available: {TMS}", parameter="tileMatrixSetId"
        )


# OGC API - Tiles clients (GDAL's OGCAPI driver) fill {tileMatrix}/{tileRow}/{tileCol} by
# name; this service's paths are z/x/y, that is tileMatrix/tileCol/tileRow.
OGC_TEMPLATE = "{tileMatrix}/{tileCol}/{tileRow}"
XYZ_TEMPLATE = "{z}/{x}/{y}"


def _tile_url(request: Request, collection_id: str, template: str = OGC_TEMPLATE) -> str:
    base = str(request.url_for("collection_tilesets", collectionId=collection_id))
    return f"{base}/{TMS}/{template}"


@dataclass(frozen=True)
class _Layer:
    """What the tileset documents say about a collection's tiles."""

    id: str
    title: str
    extent: tuple[float, float, float, float] | None
    fields: dict[str, str]
    min_zoom: int = 0  # (no tile further out: a 404)
    field_zooms: dict[str, int] | None = None  # the zoom from which a field is carried


_EA_DESCRIPTIONS = {
    "code": "the EA's code",
    "status": "draft, submitted, approved or rejected",
}
# (what a field description says of the zooms carrying it: tiles further out are lighter)
_EA_FIELDS = {
    name: description
    + ("" if EA_PROPERTY_ZOOMS[name] <= EA_MIN_ZOOM else f"; from zoom {EA_PROPERTY_ZOOMS[name]}")
    for name, description in _EA_DESCRIPTIONS.items()
}
_EA_NOTE = (
    f"; every feature's MVT id (not a property) is the EA's id; tiles of zooms {EA_MIN_ZOOM}–"
    f"{EA_DETAIL_ZOOM - 1} carry only the status "
    "(what a map draws there), deeper ones the code too; an EA's other properties "
    "(commune, census round, households, version) are in its GeoJSON item"
)


async def _layer(
    request: Request, conn: psycopg.AsyncConnection, services: Services, collection_id: str
) -> _Layer:
    """A unit collection's layer, or the EAs' (whose reads may need a token)."""
    if collection_id == EA_LAYER:
        scope = await check_reader(request, services)
        _, box = await count_and_extent(conn, scope.codes)
        extent = None if None in box else (box[0] or 0, box[1] or 0, box[2] or 0, box[3] or 0)
        return _Layer(
            EA_LAYER,
            "Census enumeration areas",
            extent,
            _EA_FIELDS,
            min_zoom=EA_MIN_ZOOM,
            field_zooms=EA_PROPERTY_ZOOMS,
        )
    c = await read_collection(conn, collection_id)
    return _Layer(
        c.id, c.title, c.extent, _fields(await build_item_query(conn, c, RawItemParams()))
    )


@dataclass(frozen=True)
class _Carried:
    """What a unit layer's tiles carry with the vendor parameters."""

    query: ItemQuery | None  # None: the EA layer
    fields: dict[str, str]
    url_query: str  # the parameters as the tile URLs take them ("" or "?…")


async def _with_indicators(
    conn: psycopg.AsyncConnection, layer: _Layer, vendor: VendorParams
) -> _Carried:
    """The fields a layer's tiles carry with the vendor parameters (checked as the tiles
    check them), and those parameters for the tile URLs (the period made explicit); EA
    tiles take none."""
    if layer.id == EA_LAYER:
        return _Carried(None, layer.fields, "")
    c = await read_collection(conn, layer.id)
    raw = RawItemParams(indicator=vendor.indicator, period=vendor.period, compare=vendor.compare)
    query = await build_item_query(conn, c, raw)
    if not query.indicators:
        return _Carried(query, layer.fields, "")
    carried = VendorParams(vendor.indicator, query.indicators[0].period, vendor.compare)
    return _Carried(query, _fields(query, await _labels(conn, query)), carried.query())


def _tiling_scheme_link(request: Request) -> Link:
    return Link(
        rel=TILING_SCHEME,
        type="application/json",
        href=str(request.url_for("tile_matrix_set", tileMatrixSetId=TMS)),
    )


@router.get(
    "/collections/{collectionId}/tiles",
    summary="Tilesets of a collection",
    name="collection_tilesets",
    response_model_exclude_unset=True,
)
async def tilesets(
    collectionId: str, request: Request, conn: Conn, services: ServicesDep, vendor: Vendor
) -> Tilesets:
    """The tilesets (one: WebMercatorQuad vector tiles); `indicator`, `period` and
    `compare` go into the tile URLs."""
    layer = await _layer(request, conn, services, collectionId)
    base = str(request.url_for("collection_tilesets", collectionId=layer.id))
    carried = (await _with_indicators(conn, layer, vendor)).url_query
    return Tilesets(
        tilesets=[
            Tileset(
                title=f"{layer.title} vector tiles",
                dataType="vector",
                crs=WEB_MERCATOR,
                tileMatrixSetURI=TMS_URI,
                links=[
                    Link(rel="self", href=f"{base}/{TMS}{carried}", type="application/json"),
                    _tiling_scheme_link(request),
                    Link(
                        rel="item",
                        href=_tile_url(request, layer.id) + carried,
                        type=MVT,
                        templated=True,
                    ),
                ],
            )
        ],
        links=[Link(rel="self", href=base + carried, type="application/json")],
    )


@router.get(
    "/tileMatrixSets",
    summary="Tile matrix sets (tiling schemes)",
    response_model_exclude_unset=True,
)
async def tile_matrix_sets(request: Request, vendor: Vendor) -> TileMatrixSets:
    """The one tiling scheme of every tileset: WebMercatorQuad."""
    link = _tiling_scheme_link(request).model_copy(update={"rel": "self"})
    return TileMatrixSets(
        tileMatrixSets=[
            TileMatrixSetRef(
                id=TMS, title="Google Maps Compatible for the World", uri=TMS_URI, links=[link]
            )
        ]
    )


@router.get(
    "/tileMatrixSets/{tileMatrixSetId}",
    summary="A tile matrix set's definition",
    name="tile_matrix_set",
)
async def tile_matrix_set(tileMatrixSetId: str, vendor: Vendor) -> TileMatrixSet:
    """WebMercatorQuad as an OGC Two Dimensional Tile Matrix Set (2.0) document."""
    _check_tms(tileMatrixSetId)
    return TileMatrixSet(
        id=TMS,
        title="Google Maps Compatible for the World",
        uri=TMS_URI,
        crs=WEB_MERCATOR,
        orderedAxes=["X", "Y"],
        wellKnownScaleSet="http://www.opengis.net/def/wkss/OGC/1.0/GoogleMapsCompatible",
        tileMatrices=[
            TileMatrix(
                id=str(z),
                scaleDenominator=_ZOOM0_CELL / 0.00028 / 2**z,
                cellSize=_ZOOM0_CELL / 2**z,
                cornerOfOrigin="topLeft",
                pointOfOrigin=[-_EARTH_HALF, _EARTH_HALF],
                tileWidth=256,
                tileHeight=256,
                matrixWidth=2**z,
                matrixHeight=2**z,
                identifier=str(z),
                topLeftCorner=[-_EARTH_HALF, _EARTH_HALF],
            )
            for z in range(MAX_ZOOM + 1)
        ],
        identifier=TMS,
        supportedCRS=WEB_MERCATOR,
        boundingBox=TmsBoundingBox(
            crs=WEB_MERCATOR,
            lowerCorner=[-_EARTH_HALF, -_EARTH_HALF],
            upperCorner=[_EARTH_HALF, _EARTH_HALF],
        ),
    )


_DESCRIPTIONS = {
    "code": "official code",
    "name": "official name",
    "parent_code": "parent's code",
    "unit_type": "unit type",
    "area_km2": "area (km²)",
}
# JSON types of the properties that are not text (the others are strings)
_INTEGERS = {"id", "households", "version"}
_NUMBERS = ("", "_change", "_change_percent")  # suffixes of an indicator's numbers


def _fields(query: ItemQuery, labels: dict[str, str] | None = None) -> dict[str, str]:
    """The properties the tiles of this query carry, with a description of each (an
    indicator's named by `labels`, its code otherwise)."""
    fields = {name: _DESCRIPTIONS.get(name, "") for name in query.tile_properties()}
    for ind in query.indicators:
        label = (labels or {}).get(ind.code, ind.code)
        hidden = "null when either is hidden or missing"
        for suffix, text in (
            ("", f"{label}, {ind.period}; null when suppressed or not available"),
            ("_status", f"{label}: status, ok, provisional, suppressed or not_available"),
            (
                "_change",
                f"{label}: change, {ind.period} minus {ind.compare}, from the published "
                f"values of both periods; {hidden}",
            ),
            (
                "_change_percent",
                f"{label}: change since {ind.compare} in % of {ind.compare}; {hidden}, or "
                f"when {ind.compare} is 0",
            ),
            (
                "_change_status",
                f"{label}: status of the change, the worse of {ind.period} and {ind.compare}",
            ),
        ):
            if f"{ind.code}{suffix}" in fields:
                fields[f"{ind.code}{suffix}"] = text
    return fields


def _json_type(name: str, query: ItemQuery | None) -> str:
    """The JSON type of a tile property."""
    numbers = {"area_km2"} | {
        f"{i.code}{suffix}" for i in (query.indicators if query else []) for suffix in _NUMBERS
    }
    if name in numbers:
        return "number"
    return "integer" if query is None and name in _INTEGERS else "string"


async def _labels(conn: psycopg.AsyncConnection, query: ItemQuery) -> dict[str, str]:
    """The indicators' names in both languages, e.g. "Population / Dân số (persons)"."""
    if not query.indicators:
        return {}
    entries = await indicator_entries(conn)
    return {
        i.code: f"{e['name_en']} / {e['name_vi']} ({e['unit']})"
        for i in query.indicators
        if (e := entries.get(i.code)) is not None
    }


@router.get(
    "/collections/{collectionId}/tiles/{tileMatrixSetId}",
    summary="Tileset metadata",
    response_model_exclude_unset=True,
)
async def tileset(
    collectionId: str,
    tileMatrixSetId: str,
    request: Request,
    conn: Conn,
    services: ServicesDep,
    vendor: Vendor,
) -> TilesetMetadata:
    """OGC tileset metadata: the layer, its fields, zoom limits and the tile URL template."""
    _check_tms(tileMatrixSetId)
    layer = await _layer(request, conn, services, collectionId)
    tiles = await _with_indicators(conn, layer, vendor)
    fields, carried = tiles.fields, tiles.url_query
    if layer.id == EA_LAYER:
        also = f"{_EA_NOTE}; round= chooses a census round"
    else:
        others = ", ".join(n for n in _DESCRIPTIONS if n not in fields)
        also = (
            f"; also {others}, indicator values and statuses with the query parameters "
            "properties, indicator and period, and their change with compare"
        )
    schema = PropertiesSchema(
        type="object",
        description=f"the properties of the {layer.id} layer{also}",
        properties={
            name: _property_schema(name, d, tiles.query, layer) for name, d in fields.items()
        },
    )
    box = layer.extent
    return TilesetMetadata(
        title=f"{layer.title} vector tiles",
        dataType="vector",
        tileMatrixSetURI=TMS_URI,
        **({"tileMatrixSetLimits": _limits(layer.min_zoom)} if layer.min_zoom > 0 else {}),
        crs=WEB_MERCATOR,
        boundingBox=BoundingBox(
            lowerLeft=list(box[:2]),
            upperRight=list(box[2:]),
            crs="http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        )
        if box is not None
        else None,
        layers=[
            TileLayer(
                id=layer.id,
                dataType="vector",
                geometryType="polygons",
                minTileMatrix=str(layer.min_zoom),
                maxTileMatrix=str(MAX_ZOOM),
                propertiesSchema=schema,
            )
        ],
        links=[
            Link(rel="item", href=_tile_url(request, layer.id) + carried, type=MVT, templated=True),
            _tiling_scheme_link(request),
            Link(rel="self", href=str(request.url), type="application/json"),
        ],
    )


def _property_schema(
    name: str, description: str, query: ItemQuery | None, layer: _Layer
) -> PropertySchema:
    """A tile property's schema, with the zoom it is carried from when tiles further out
    lack it."""
    first = (layer.field_zooms or {}).get(name, layer.min_zoom)
    schema = PropertySchema(description=description, type=_json_type(name, query))
    if first > layer.min_zoom:
        schema.min_tile_matrix = str(first)
    return schema


def _limits(min_zoom: int) -> list[TileMatrixLimits]:
    """The tileset's tiles: every tile of each zoom from `min_zoom` (none further out)."""
    return [
        TileMatrixLimits(
            tileMatrix=str(z), minTileRow=0, maxTileRow=2**z - 1, minTileCol=0, maxTileCol=2**z - 1
        )
        for z in range(min_zoom, MAX_ZOOM + 1)
    ]


@router.get(
    "/collections/{collectionId}/tiles/{tileMatrixSetId}/tilejson.json", summary="TileJSON 3.0"
)
async def tilejson(
    collectionId: str,
    tileMatrixSetId: str,
    request: Request,
    conn: Conn,
    services: ServicesDep,
    indicator: Annotated[str | None, Query(max_length=300, pattern=CODE_LIST)] = None,
    period: Annotated[str | None, Query(max_length=10, pattern=CODE)] = None,
    properties: Annotated[str | None, Query(max_length=1000, pattern=CODE_LIST)] = None,
    compare: Compare = None,
) -> TileJson:
    """TileJSON for MapLibre/Leaflet clients, with vector_layers and their fields."""
    _check_tms(tileMatrixSetId)
    layer = await _layer(request, conn, services, collectionId)
    url, fields = _tile_url(request, layer.id, XYZ_TEMPLATE), layer.fields
    if layer.id != EA_LAYER:
        c = await read_collection(conn, collectionId)
        query = await build_item_query(
            conn,
            c,
            RawItemParams(
                indicator=indicator, period=period, properties=properties, compare=compare
            ),
        )
        params = {}
        if query.indicators:
            params["indicator"] = ",".join(i.code for i in query.indicators)
            params["period"] = query.indicators[0].period
            if compare:
                params["compare"] = compare
        if query.properties is not None:
            params["properties"] = ",".join(query.properties)
        if params:
            url += "?" + urllib.parse.urlencode(params, safe=",")
        fields = _fields(query, await _labels(conn, query))
    box = layer.extent or _VIETNAM
    return TileJson(
        tilejson="3.0.0",
        name=layer.title,
        scheme="xyz",
        tiles=[url],
        minzoom=layer.min_zoom,
        maxzoom=MAX_ZOOM,
        bounds=list(box),
        center=[(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, max(5, layer.min_zoom)],
        vector_layers=[
            VectorLayer(id=layer.id, fields=fields, minzoom=layer.min_zoom, maxzoom=MAX_ZOOM)
        ],
    )


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


@router.get(
    TILE_PATH,
    summary="A vector tile",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}, 304: {"description": "not modified"}},
)
async def tile(
    collectionId: str,
    tileMatrixSetId: str,
    request: Request,
    pool: Pool,
    tiles: Tiles,
    catalogue: Catalogue,
    services: ServicesDep,
    z: Annotated[int, Path(ge=0, le=MAX_ZOOM)],
    x: Annotated[int, Path(ge=0)],
    y: Annotated[int, Path(ge=0)],
    indicator: Annotated[str | None, Query(max_length=300, pattern=CODE_LIST)] = None,
    period: Annotated[str | None, Query(max_length=10, pattern=CODE)] = None,
    properties: Annotated[str | None, Query(max_length=1000, pattern=CODE_LIST)] = None,
    census_round: Annotated[str | None, Query(alias="round", pattern=r"^\d{4}$")] = None,
    compare: Compare = None,
) -> Response:
    """An MVT tile whose layer is the collection id; features carry code, name, indicators."""
    _check_tms(tileMatrixSetId)
    private = collectionId == EA_LAYER and not services.settings.public_reads
    # (with private reads, EA tiles hold only the EAs of the reader's scope)
    scope = (await check_reader(request, services)).codes if private else None
    # A unit tile may be rendered by a replica: its epoch is read in the same snapshot, so
    # one from a replica behind a change is never cached as fresh (Freshness.store). EA
    # tiles come from the primary, like the EA editing they show.
    served = await tiles.tile(
        services.pool if collectionId == EA_LAYER else pool,
        catalogue,
        collectionId,
        TileRequest(z, x, y, indicator, period, properties, census_round, scope, compare),
    )
    return await _answer(request, served, private, tiles.settings.tile_cache_control)


async def _answer(
    request: Request, served: ServedTile, private: bool, cache_control: str
) -> Response:
    """The tile's response: its encoding, ETag (304 when it matches) and caching headers;
    a tile rendered for this request goes into the caches once it is answered."""
    found = served.tile
    encoding = _negotiate(found, request.headers.get("accept-encoding", ""))
    etag = f'"{found.digest}{"-" + encoding if encoding else ""}"'
    # (tiles that need a token must not be kept by shared caches)
    if private:
        cache_control = "private, max-age=0, must-revalidate"
    headers = {"ETag": etag, "Cache-Control": cache_control}
    # (values withheld while re-checked: said as every other answer says it, never cached)
    rechecking_headers(headers, rechecking_note(served.withheld))
    keep = BackgroundTask(served.keep) if served.rendered else None
    if _matches(etag, request.headers.get("if-none-match", "")):
        return Response(
            status_code=304, headers={**headers, "Vary": "Accept-Encoding"}, background=keep
        )
    body = await served.body(encoding)
    if encoding:  # (without one, the gzip middleware adds the Vary header itself)
        headers["Content-Encoding"] = encoding
        headers["Vary"] = "Accept-Encoding"
    return Response(body, media_type=MVT, headers=headers, background=keep)


_GEOMETRY_TILE = re.compile(
    rf"/collections/([^/]+)/tiles/{TMS}/(\d{{1,2}})/(\d{{1,10}})/(\d{{1,10}})"
)


class GeometryTileRoute(BaseRoute):
    """The request a map makes most: a unit collection's geometry tile (GET, no query
    string), answered without the router's route matching and dependency resolution, which
    cost more Python time than the tile itself. Everything else (query parameters,
    enumeration areas and their access checks, a zoom out of range, another tile matrix
    set, other methods) goes on to the `tile` route, which validates and answers it. The
    app's middleware and error handlers apply alike."""

    path = TILE_PATH  # (the label of its requests in metrics and the access log)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """FULL for a plain geometry tile of a unit collection, else NONE."""
        if scope["type"] != "http" or scope["method"] != "GET" or scope["query_string"]:
            return Match.NONE, {}
        path: str = scope["path"]
        root = scope.get("root_path", "")
        found = _GEOMETRY_TILE.fullmatch(path[len(root) :] if path.startswith(root) else path)
        if found is None or found[1] == EA_LAYER or int(found[2]) > MAX_ZOOM:
            return Match.NONE, {}
        params = {"collectionId": found[1], "z": found[2], "x": found[3], "y": found[4]}
        return Match.FULL, {"path_params": params, "route": self}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        """No URL is built from this route (the `tile` route names tile URLs)."""
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the tile (errors go to the app's handlers like any route's)."""
        request = Request(scope, receive)
        params = scope["path_params"]
        services = await get_services(request)
        served = await services.tiles.tile(
            await read_pool(request, services),  # (a replica, as the `tile` route would)
            services.catalogue,
            params["collectionId"],
            TileRequest(int(params["z"]), int(params["x"]), int(params["y"])),
        )
        tiles = services.tiles
        response = await _answer(request, served, False, tiles.settings.tile_cache_control)
        await response(scope, receive, send)

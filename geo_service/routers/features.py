"""OGC API – Features (Parts 1 and 2): collections of units and their items."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from psycopg_pool import AsyncConnectionPool

from geo_service.db import Conn
from geo_service.errors import NotFound
from geo_service.features import export
from geo_service.features.collections import Collection, get_collection, list_collections
from geo_service.features.crs import ADVERTISED, CRS84
from geo_service.features.items import MATCHED_CAP, ItemQuery, count_sql, features_sql
from geo_service.features.params import RawItemParams, build_item_query
from geo_service.negotiation import best_media_type
from geo_service.routers import tiles
from geo_service.text import CODE, CODE_LIST, CRS

router = APIRouter(tags=["features"])

GEOJSON = "application/geo+json"
GPKG = "application/geopackage+sqlite3"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
]


class GeoJSONResponse(JSONResponse):
    """JSON with the GeoJSON media type."""

    media_type = GEOJSON

    def render(self, content: Any) -> bytes:
        """Serialise with orjson."""
        return orjson.dumps(content)


def _collection_doc(request: Request, c: Collection) -> dict[str, Any]:
    base = str(request.url_for("get_collection_doc", collectionId=c.id))
    return {
        "id": c.id, "title": c.title, "itemType": "feature",
        "description": f"{c.count} {c.level} units of vintage {c.vintage} "
                       f"(valid from {c.valid_from}{' to ' + c.valid_to if c.valid_to else ''}). "
                       f"{c.description}",
        "extent": {"spatial": {"bbox": [list(c.extent)], "crs": CRS84},
                   "temporal": {"interval": [[f"{c.valid_from}T00:00:00Z",
                                               f"{c.valid_to}T00:00:00Z" if c.valid_to
                                               else None]]}},
        "crs": list(ADVERTISED), "storageCrs": CRS84, "numberOfItems": c.count,
        "links": [
            {"rel": "self", "href": base, "type": "application/json"},
            {"rel": "items", "href": f"{base}/items", "type": GEOJSON},
            {"rel": "items", "href": f"{base}/items?f=csv", "type": "text/csv"},
            {"rel": "items", "href": f"{base}/items?f=gpkg", "type": GPKG},
            {"rel": tiles.TILESETS_VECTOR, "href": f"{base}/tiles", "type": "application/json"},
        ],
    }


@router.get("/conformance", summary="Conformance classes")
async def conformance() -> dict[str, list[str]]:
    """The OGC conformance classes this service implements."""
    return {"conformsTo": CONFORMANCE + tiles.CONFORMANCE}


@router.get("/collections", summary="Collections: one per level and vintage")
async def collections(request: Request, conn: Conn) -> dict[str, Any]:
    """Every (level, vintage) of administrative units."""
    found = await list_collections(conn)
    return {"collections": [_collection_doc(request, c) for c in found],
            "links": [{"rel": "self", "href": str(request.url), "type": "application/json"}]}


@router.get("/collections/{collectionId}", summary="One collection",
            name="get_collection_doc")
async def collection(collectionId: str, request: Request, conn: Conn) -> dict[str, Any]:  # noqa: N803
    """Metadata of one collection: extent, CRS list, item count, links."""
    return _collection_doc(request, await get_collection(conn, collectionId))


async def _collection(request: Request, conn: Conn, collection_id: str) -> Collection:
    """The collection from the in-memory cache (refreshed when the change log says so)."""
    tiles = request.app.state.tiles
    cached: Collection = await tiles.collections.get(conn, collection_id, tiles.freshness.log)
    return cached


def _page_link(request: Request, rel: str, offset: int) -> dict[str, str]:
    url = request.url.include_query_params(offset=offset)
    return {"rel": rel, "href": str(url), "type": GEOJSON}


def page_tail(request: Request, offset: int, limit: int, matched: int,
              collection_url: str | None) -> dict[str, Any]:
    """What follows a page's features: time stamp, links (self, collection, prev, next)
    and the number matched."""
    links = [{"rel": "self", "href": str(request.url), "type": GEOJSON}]
    if collection_url:
        links.append({"rel": "collection", "href": collection_url, "type": "application/json"})
    if offset > 0:
        links.append(_page_link(request, "prev", max(0, offset - limit)))
    if offset + limit < matched:
        links.append(_page_link(request, "next", offset + limit))
    tail: dict[str, Any] = {"timeStamp": datetime.now(UTC).isoformat(timespec="seconds"),
                            "links": links}
    if matched <= MATCHED_CAP:
        tail["numberMatched"] = matched
    return tail


# Output formats of items: media type → `f` value (the first is the default).
FORMATS = {GEOJSON: "json", "application/json": "json", "text/csv": "csv",
           GPKG: "gpkg"}
MAX_PAGE = 10_000  # items per GeoJSON page; a larger limit is capped (with a next link)
MAX_GPKG = 20_000  # items per GeoPackage (every commune of any vintage; more get a next link)


def _output_format(f: str | None, request: Request) -> str:
    """`f` when given, else the best of the Accept header (406 when nothing fits)."""
    if f:
        return "json" if f == "geojson" else f
    return FORMATS[best_media_type(request.headers.get("accept", ""), list(FORMATS))]


def _alternates(request: Request, fmt: str) -> list[dict[str, str]]:
    """Links to the same items in the other formats."""
    return [{"rel": "alternate", "href": str(request.url.include_query_params(f=other)),
             "type": media_type}
            for other, media_type in (("json", GEOJSON), ("csv", "text/csv"), ("gpkg", GPKG))
            if other != fmt]


def _download_headers(request: Request, offset: int, limit: int | None, matched: int
                      ) -> dict[str, str]:
    """Counts and next/prev links of a CSV or GeoPackage page, as headers."""
    returned = max(0, min(matched - offset, limit if limit is not None else matched))
    headers = {"OGC-NumberMatched": str(matched), "OGC-NumberReturned": str(returned)}
    links = []
    if limit is not None and offset + limit < matched:
        links.append(f'<{request.url.include_query_params(offset=offset + limit)}>; rel="next"')
    if offset > 0 and limit is not None:
        links.append(f'<{request.url.include_query_params(offset=max(0, offset - limit))}>;'
                     ' rel="prev"')
    if links:
        headers["Link"] = ", ".join(links)
    return headers


_OBJECT = {"schema": {"type": "object"}}


@router.get("/collections/{collectionId}/items", summary="Items of a collection",
            response_class=GeoJSONResponse, responses={200: {"content": {
                GEOJSON: _OBJECT, "text/csv": {"schema": {"type": "string"}},
                GPKG: {"schema": {"type": "string", "format": "binary"}}}}})
async def items(
    collectionId: str, request: Request,  # noqa: N803
    limit: Annotated[int | None, Query(ge=1, le=10_000_000, description=(
        "items per page: 100 by default, at most 10,000 in GeoJSON (a larger limit is "
        "capped); CSV and GeoPackage hold every item unless a limit is given"))] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    bbox: Annotated[str | None, Query(max_length=200, description="minx,miny,maxx,maxy")] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs", pattern=CRS)] = None,
    crs: Annotated[str | None, Query(pattern=CRS, description="e.g. EPSG:3405")] = None,
    properties: Annotated[str | None, Query(max_length=1000, pattern=CODE_LIST)] = None,
    sortby: Annotated[str | None, Query(max_length=200, pattern=CODE_LIST,
                                        description="e.g. -area_km2")] = None,
    parent: Annotated[str | None, Query(pattern=CODE, description="children of a unit")] = None,
    q: Annotated[str | None, Query(max_length=100, description="name search")] = None,
    indicator: Annotated[str | None, Query(max_length=300, pattern=CODE_LIST)] = None,
    period: Annotated[str | None, Query(max_length=10, pattern=CODE)] = None,
    zoom: Annotated[int | None, Query(ge=0, le=24)] = None,
    max_allowable_offset: Annotated[float | None, Query(alias="max-allowable-offset", ge=0,
                                                        le=360)] = None,
    precision: Annotated[int | None, Query(ge=0, le=15)] = None,
    datetime: Annotated[str | None, Query(max_length=100, description=(
        "instant or interval (e.g. 2025-07-01, 2019-01-01/..): the units of a vintage in "
        "force at that time, none otherwise"))] = None,
    wkt: Annotated[bool, Query(description="CSV: add the geometry as WKT")] = False,
    f: Annotated[Literal["json", "geojson", "csv", "gpkg"] | None, Query()] = None,
) -> Response:
    """GeoJSON features (streamed), or CSV / GeoPackage downloads of the same selection."""
    fmt = _output_format(f, request)
    download = fmt in ("csv", "gpkg")
    if limit is None:
        limit = None if download else 100
    elif not download:
        limit = min(limit, MAX_PAGE)
    if fmt == "gpkg":  # (built in memory, unlike the streamed formats)
        limit = min(limit or MAX_GPKG, MAX_GPKG)
    raw = RawItemParams(limit, offset, bbox, bbox_crs, crs, properties, sortby, parent, q,
                        indicator, period, zoom, max_allowable_offset, precision, datetime)
    pool = request.app.state.pool
    # One pooled connection at a time per request: checks and count first, released before
    # the body streams from its own connection (holding both could exhaust the pool).
    async with pool.connection() as conn:
        found = await _collection(request, conn, collectionId)
        query = await build_item_query(conn, found, raw)
        statement, params = count_sql(query)
        matched = (await (await conn.execute(statement, params)).fetchone() or [0])[0]
    headers = {"Content-Crs": f"<{query.crs.uri}>", "Vary": "Accept"}
    if download:
        return await _download(request, pool, query, fmt, wkt, {
            **headers, **_download_headers(request, offset, limit, matched)})
    collection_url = str(request.url_for("get_collection_doc", collectionId=found.id))
    assert limit is not None
    tail = page_tail(request, offset, limit, matched, collection_url)
    tail["links"] += _alternates(request, fmt)
    return StreamingResponse(export.stream_geojson(pool, query, tail), media_type=GEOJSON,
                             headers=headers)


async def _download(request: Request, pool: AsyncConnectionPool, query: ItemQuery, fmt: str,
                    wkt: bool, headers: dict[str, str]) -> Response:
    """The items as a CSV (streamed) or GeoPackage file."""
    name = query.collection.id if query.code is None else f"{query.collection.id}-{query.code}"
    # files use the traditional x = longitude order whatever the CRS's axis order
    query.crs = replace(query.crs, lat_first=False)
    if fmt == "csv":
        return StreamingResponse(export.stream_csv(pool, query, wkt), headers={
            **headers, "Content-Disposition": f'attachment; filename="{name}.csv"'},
            media_type="text/csv; charset=utf-8")
    return Response(await export.geopackage(pool, query, name), headers={
        **headers, "Content-Disposition": f'attachment; filename="{name}.gpkg"'},
        media_type=GPKG)


@router.get("/collections/{collectionId}/items/{featureId}", summary="One item by its code",
            response_class=GeoJSONResponse, responses={200: {"content": {GEOJSON: _OBJECT}}})
async def item(
    collectionId: str, featureId: Annotated[str, Path(pattern=CODE)],  # noqa: N803
    request: Request, conn: Conn,
    crs: Annotated[str | None, Query(pattern=CRS)] = None,
    properties: Annotated[str | None, Query(max_length=1000, pattern=CODE_LIST)] = None,
    indicator: Annotated[str | None, Query(max_length=300, pattern=CODE_LIST)] = None,
    period: Annotated[str | None, Query(max_length=10, pattern=CODE)] = None,
    zoom: Annotated[int | None, Query(ge=0, le=24)] = None,
    precision: Annotated[int | None, Query(ge=0, le=15)] = None,
    wkt: Annotated[bool, Query(description="CSV: add the geometry as WKT")] = False,
    f: Annotated[Literal["json", "geojson", "csv", "gpkg"] | None, Query()] = None,
) -> Response:
    """One unit as a GeoJSON Feature (or a one-row CSV / GeoPackage); its id is the code."""
    fmt = _output_format(f, request)
    found = await _collection(request, conn, collectionId)
    raw = RawItemParams(crs=crs, properties=properties, indicator=indicator, period=period,
                        zoom=zoom, precision=precision)
    query = await build_item_query(conn, found, raw)
    query.code, query.limit = featureId, 1
    statement, params = features_sql(query)
    row = await (await conn.execute(statement, params)).fetchone()
    if row is None:
        raise NotFound(f"no item {featureId!r} in {found.id}", parameter="featureId")
    headers = {"Content-Crs": f"<{query.crs.uri}>", "Vary": "Accept"}
    if fmt in ("csv", "gpkg"):
        return await _download(request, request.app.state.pool, query, fmt, wkt, headers)
    feature = orjson.loads(row[0])
    feature["links"] = [
        {"rel": "self", "href": str(request.url), "type": GEOJSON},
        *_alternates(request, fmt),
        {"rel": "collection", "href": str(request.url_for("get_collection_doc",
                                                          collectionId=found.id)),
         "type": "application/json"}]
    return GeoJSONResponse(feature, headers=headers)

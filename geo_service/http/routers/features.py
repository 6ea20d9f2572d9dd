"""OGC API – Features (Parts 1 and 2): collections of units and their items."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from psycopg_pool import AsyncConnectionPool

from geo_core.crs import ADVERTISED, CRS84
from geo_core.errors import NotFound
from geo_core.text import CODE, CODE_LIST, CRS
from geo_core.zoom import MAX_ZOOM
from geo_service.features import export
from geo_service.features.catalogue import list_collections, read_collection
from geo_service.features.model import Collection, ItemQuery
from geo_service.features.query import RawItemParams, build_item_query
from geo_service.features.sql import count_items, feature_json
from geo_service.http.deps import Catalogue, Conn, Downloads, Pool, Settings, client_address
from geo_service.http.documents import (
    CollectionDocument,
    Collections,
    Extent,
    Link,
    SpatialExtent,
    TemporalExtent,
)
from geo_service.http.downloads import BuiltFileResponse, Release, SpooledResponse
from geo_service.http.negotiation import best_media_type
from geo_service.http.ogc import GEOJSON, GPKG, TILESETS_VECTOR, GeoJSONResponse, page_tail
from geo_service.settings import ServiceSettings

router = APIRouter(tags=["features"])


def _collection_doc(request: Request, c: Collection) -> CollectionDocument:
    base = str(request.url_for("get_collection_doc", collectionId=c.id))
    until = f" to {c.valid_to}" if c.valid_to else ""
    return CollectionDocument(
        id=c.id,
        title=c.title,
        itemType="feature",
        description=f"{c.count} {c.level} units of vintage {c.vintage} "
        f"(valid from {c.valid_from}{until}). {c.description}",
        extent=Extent(
            spatial=SpatialExtent(bbox=[list(c.extent)], crs=CRS84),
            temporal=TemporalExtent(
                interval=[
                    [f"{c.valid_from}T00:00:00Z", f"{c.valid_to}T00:00:00Z" if c.valid_to else None]
                ]
            ),
        ),
        crs=list(ADVERTISED),
        storageCrs=CRS84,
        numberOfItems=c.count,
        links=[
            Link(rel="self", href=base, type="application/json"),
            Link(rel="items", href=f"{base}/items", type=GEOJSON),
            Link(rel="items", href=f"{base}/items?f=csv", type="text/csv"),
            Link(rel="items", href=f"{base}/items?f=gpkg", type=GPKG),
            Link(rel=TILESETS_VECTOR, href=f"{base}/tiles", type="application/json"),
        ],
    )


@router.get(
    "/collections",
    summary="Collections: one per level and vintage",
    response_model_exclude_unset=True,
)
async def collections(request: Request, conn: Conn) -> Collections:
    """Every (level, vintage) of administrative units."""
    found = await list_collections(conn)
    return Collections(
        collections=[_collection_doc(request, c) for c in found],
        links=[Link(rel="self", href=str(request.url), type="application/json")],
    )


@router.get(
    "/collections/{collectionId}",
    summary="One collection",
    name="get_collection_doc",
    response_model_exclude_unset=True,
)
async def collection(
    collectionId: str,
    request: Request,
    conn: Conn,
) -> CollectionDocument:
    """Metadata of one collection: extent, CRS list, item count, links."""
    return _collection_doc(request, await read_collection(conn, collectionId))


# Output formats of items: media type → `f` value (the first is the default).
FORMATS = {GEOJSON: "json", "application/json": "json", "text/csv": "csv", GPKG: "gpkg"}
MAX_PAGE = 10_000  # items per GeoJSON page; a larger limit is capped (with a next link)
MAX_GPKG = 20_000  # items per GeoPackage (every commune of any vintage; more get a next link)


def _output_format(f: str | None, request: Request) -> str:
    """`f` when given, else the best of the Accept header (406 when nothing fits)."""
    if f:
        return "json" if f == "geojson" else f
    return FORMATS[best_media_type(request.headers.get("accept", ""), list(FORMATS))]


def _alternates(request: Request, fmt: str) -> list[dict[str, str]]:
    """Links to the same items in the other formats."""
    return [
        {
            "rel": "alternate",
            "href": str(request.url.include_query_params(f=other)),
            "type": media_type,
        }
        for other, media_type in (("json", GEOJSON), ("csv", "text/csv"), ("gpkg", GPKG))
        if other != fmt
    ]


def _download_headers(
    request: Request, offset: int, limit: int | None, matched: int
) -> dict[str, str]:
    """Counts and next/prev links of a CSV or GeoPackage page, as headers."""
    returned = max(0, min(matched - offset, limit if limit is not None else matched))
    headers = {"OGC-NumberMatched": str(matched), "OGC-NumberReturned": str(returned)}
    links = []
    if limit is not None and offset + limit < matched:
        links.append(f'<{request.url.include_query_params(offset=offset + limit)}>; rel="next"')
    if offset > 0 and limit is not None:
        links.append(
            f'<{request.url.include_query_params(offset=max(0, offset - limit))}>; rel="prev"'
        )
    if links:
        headers["Link"] = ", ".join(links)
    return headers


def _page_limit(limit: int | None, fmt: str) -> int | None:
    """GeoJSON pages hold 100 items by default and at most MAX_PAGE; downloads every item
    unless limited, a GeoPackage at most MAX_GPKG."""
    if fmt == "gpkg":
        return min(limit or MAX_GPKG, MAX_GPKG)
    if fmt == "csv":
        return limit
    return 100 if limit is None else min(limit, MAX_PAGE)


_OBJECT = {"schema": {"type": "object"}}


@router.get(
    "/collections/{collectionId}/items",
    summary="Items of a collection",
    response_class=GeoJSONResponse,
    responses={
        200: {
            "content": {
                GEOJSON: _OBJECT,
                "text/csv": {"schema": {"type": "string"}},
                GPKG: {"schema": {"type": "string", "format": "binary"}},
            }
        }
    },
)
async def items(
    collectionId: str,
    request: Request,
    pool: Pool,
    catalogue: Catalogue,
    settings: Settings,
    downloads: Downloads,
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            le=10_000_000,
            description=(
                "items per page: 100 by default, at most 10,000 in GeoJSON (a larger limit is "
                "capped); CSV and GeoPackage hold every item unless a limit is given"
            ),
        ),
    ] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    bbox: Annotated[str | None, Query(max_length=200, description="minx,miny,maxx,maxy")] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs", pattern=CRS)] = None,
    crs: Annotated[str | None, Query(pattern=CRS, description="e.g. EPSG:3405")] = None,
    properties: Annotated[str | None, Query(max_length=1000, pattern=CODE_LIST)] = None,
    sortby: Annotated[
        str | None, Query(max_length=200, pattern=CODE_LIST, description="e.g. -area_km2")
    ] = None,
    parent: Annotated[str | None, Query(pattern=CODE, description="children of a unit")] = None,
    q: Annotated[str | None, Query(max_length=100, description="name search")] = None,
    indicator: Annotated[str | None, Query(max_length=300, pattern=CODE_LIST)] = None,
    period: Annotated[str | None, Query(max_length=10, pattern=CODE)] = None,
    zoom: Annotated[int | None, Query(ge=0, le=MAX_ZOOM)] = None,
    max_allowable_offset: Annotated[
        float | None, Query(alias="max-allowable-offset", ge=0, le=360)
    ] = None,
    precision: Annotated[int | None, Query(ge=0, le=15)] = None,
    datetime: Annotated[
        str | None,
        Query(
            max_length=100,
            description=(
                "instant or interval (e.g. 2025-07-01, 2019-01-01/..): the units of a vintage in "
                "force at that time, none otherwise"
            ),
        ),
    ] = None,
    wkt: Annotated[bool, Query(description="CSV: add the geometry as WKT")] = False,
    f: Annotated[Literal["json", "geojson", "csv", "gpkg"] | None, Query()] = None,
) -> Response:
    """GeoJSON features, or CSV / GeoPackage downloads of the same selection."""
    fmt = _output_format(f, request)
    limit = _page_limit(limit, fmt)
    raw = RawItemParams(
        limit,
        offset,
        bbox,
        bbox_crs,
        crs,
        properties,
        sortby,
        parent,
        q,
        indicator,
        period,
        zoom,
        max_allowable_offset,
        precision,
        datetime,
    )
    release = downloads.open(client_address(request))
    try:
        async with downloads.reading():
            async with pool.connection() as conn:
                found = await catalogue.get(conn, collectionId)
                query = await build_item_query(conn, found, raw, await catalogue.srids(conn))
                matched = await count_items(conn, query)
            headers = {"Content-Crs": f"<{query.crs.uri}>", "Vary": "Accept"}
            if fmt in ("csv", "gpkg"):
                headers |= _download_headers(request, offset, limit, matched)
                return await _download(pool, settings, query, fmt, wkt, headers, release)
            collection_url = str(request.url_for("get_collection_doc", collectionId=found.id))
            assert limit is not None
            tail = page_tail(request, offset, limit, matched, collection_url)
            tail["links"] += _alternates(request, fmt)
            spool = await export.spool_geojson(pool, query, tail, _spool_bytes(settings))
    except BaseException:
        release()
        raise
    return SpooledResponse(spool, release, settings.send_timeout_s, GEOJSON, headers)


def _spool_bytes(settings: ServiceSettings) -> int:
    return settings.download_spool_mb * 1024 * 1024


async def _download(
    pool: AsyncConnectionPool,
    settings: ServiceSettings,
    query: ItemQuery,
    fmt: str,
    wkt: bool,
    headers: dict[str, str],
    release: Release,
) -> Response:
    """The items as a CSV or GeoPackage file (read in full before it is sent)."""
    name = query.collection.id if query.code is None else f"{query.collection.id}-{query.code}"
    # files use the traditional x = longitude order whatever the CRS's axis order
    query.crs = replace(query.crs, lat_first=False)
    if fmt == "csv":
        spool = await export.spool_csv(pool, query, wkt, _spool_bytes(settings))
        headers = {**headers, "Content-Disposition": f'attachment; filename="{name}.csv"'}
        return SpooledResponse(
            spool, release, settings.send_timeout_s, "text/csv; charset=utf-8", headers
        )
    path = await export.geopackage(pool, query, name)
    headers = {**headers, "Content-Disposition": f'attachment; filename="{name}.gpkg"'}
    return BuiltFileResponse(path, release, settings.send_timeout_s, GPKG, headers)


@router.get(
    "/collections/{collectionId}/items/{featureId}",
    summary="One item by its code",
    response_class=GeoJSONResponse,
    responses={200: {"content": {GEOJSON: _OBJECT}}},
)
async def item(
    collectionId: str,
    featureId: Annotated[str, Path(pattern=CODE)],
    request: Request,
    conn: Conn,
    pool: Pool,
    catalogue: Catalogue,
    settings: Settings,
    downloads: Downloads,
    crs: Annotated[str | None, Query(pattern=CRS)] = None,
    properties: Annotated[str | None, Query(max_length=1000, pattern=CODE_LIST)] = None,
    indicator: Annotated[str | None, Query(max_length=300, pattern=CODE_LIST)] = None,
    period: Annotated[str | None, Query(max_length=10, pattern=CODE)] = None,
    zoom: Annotated[int | None, Query(ge=0, le=MAX_ZOOM)] = None,
    precision: Annotated[int | None, Query(ge=0, le=15)] = None,
    wkt: Annotated[bool, Query(description="CSV: add the geometry as WKT")] = False,
    f: Annotated[Literal["json", "geojson", "csv", "gpkg"] | None, Query()] = None,
) -> Response:
    """One unit as a GeoJSON Feature (or a one-row CSV / GeoPackage); its id is the code."""
    fmt = _output_format(f, request)
    found = await catalogue.get(conn, collectionId)
    raw = RawItemParams(
        crs=crs,
        properties=properties,
        indicator=indicator,
        period=period,
        zoom=zoom,
        precision=precision,
    )
    query = await build_item_query(conn, found, raw, await catalogue.srids(conn))
    query.code, query.limit = featureId, 1
    text = await feature_json(conn, query)
    if text is None:
        raise NotFound(f"no item {featureId!r} in {found.id}", parameter="featureId")
    headers = {"Content-Crs": f"<{query.crs.uri}>", "Vary": "Accept"}
    if fmt in ("csv", "gpkg"):
        release = downloads.open(client_address(request))
        try:
            return await _download(pool, settings, query, fmt, wkt, headers, release)
        except BaseException:
            release()
            raise
    feature = orjson.loads(text)
    feature["links"] = [
        {"rel": "self", "href": str(request.url), "type": GEOJSON},
        *_alternates(request, fmt),
        {
            "rel": "collection",
            "href": str(request.url_for("get_collection_doc", collectionId=found.id)),
            "type": "application/json",
        },
    ]
    return GeoJSONResponse(feature, headers=headers)

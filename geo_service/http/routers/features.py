"""OGC API – Features (Parts 1 and 2): collections of units and their items."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

import orjson
import psycopg
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from geo_core.crs import ADVERTISED, CRS84
from geo_core.errors import InvalidParameter, NotFound
from geo_core.text import CODE, CODE_LIST, CRS
from geo_core.zoom import MAX_ZOOM
from geo_service.features import export
from geo_service.features.catalogue import indicator_entries, list_collections
from geo_service.features.files import selection_key
from geo_service.features.filter import MAX_CHARACTERS
from geo_service.features.model import Collection, ItemQuery
from geo_service.features.query import RawItemParams, build_item_query
from geo_service.features.sql import count_items, feature_json, statement_time_limit
from geo_service.http.auth import optional_user
from geo_service.http.deps import (
    Catalogue,
    Conn,
    Downloads,
    Language,
    Pool,
    ServicesDep,
    Settings,
    client_address,
)
from geo_service.http.documents import (
    CollectionDocument,
    CollectionIndicator,
    Collections,
    Extent,
    Link,
    Queryables,
    QueryableSchema,
    SpatialExtent,
    TemporalExtent,
)
from geo_service.http.downloads import (
    KeptFileResponse,
    Release,
    SpooledResponse,
    asked_headers_only,
    headers_only,
)
from geo_service.http.negotiation import best_media_type
from geo_service.http.ogc import (
    GEOJSON,
    GPKG,
    JSON_SCHEMA,
    QUERYABLES,
    TILESETS_VECTOR,
    FilterLang,
    GeoJSONResponse,
    crs_member,
    page_tail,
    queryable_schema,
    queryables_response,
)
from geo_service.http.rechecking import rechecking_headers
from geo_service.http.routers.ea import ea_collection_document, ea_scope_of
from geo_service.http.services import Services
from geo_service.http.vendor import Vendor, VendorParams
from geo_service.settings import ServiceSettings
from indicators import read

router = APIRouter(tags=["features"])


def _indicators(c: Collection, entries: dict[str, dict[str, Any]]) -> list[CollectionIndicator]:
    """The indicators with values on the collection's units, with their periods."""
    return [
        CollectionIndicator(
            code=code,
            name_vi=entries[code]["name_vi"],
            name_en=entries[code]["name_en"],
            unit=entries[code]["unit"],
            kind=entries[code]["kind"],
            periods=list(periods),
        )
        for code, periods in sorted(c.periods.items())
        if code in entries
    ]


def _collection_doc(
    request: Request,
    c: Collection,
    entries: dict[str, dict[str, Any]],
    vendor: VendorParams = VendorParams(),
) -> CollectionDocument:
    """A collection's metadata; links to its items and tiles carry `indicator`/`period`."""
    base = str(request.url_for("get_collection_doc", collectionId=c.id))
    until = f" to {c.valid_to}" if c.valid_to else ""
    carried, plain = vendor.query(), vendor.query(with_compare=False)
    also = "&" + plain[1:] if plain else ""
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
        indicators=_indicators(c, entries),
        links=[
            Link(rel="self", href=base + carried, type="application/json"),
            Link(rel="items", href=f"{base}/items{plain}", type=GEOJSON),
            Link(rel="items", href=f"{base}/items?f=csv{also}", type="text/csv"),
            Link(rel="items", href=f"{base}/items?f=gpkg{also}", type=GPKG),
            Link(rel=QUERYABLES, href=f"{base}/queryables", type=JSON_SCHEMA),
            # (the draft standard's relation: GDAL's OAPIF driver looks for this one)
            Link(rel="queryables", href=f"{base}/queryables", type="application/json"),
            Link(rel=TILESETS_VECTOR, href=f"{base}/tiles{carried}", type="application/json"),
        ],
    )


async def _carried(
    conn: psycopg.AsyncConnection, c: Collection, vendor: VendorParams
) -> VendorParams | None:
    """The vendor parameters as the collection's items would take them (the period made
    explicit), or None when the collection does not carry the indicators (or the compared
    period as another of theirs)."""
    if not vendor.codes:
        return vendor
    if any(code not in c.periods for code in vendor.codes):
        return None
    if vendor.compare and any(vendor.compare not in c.periods[code] for code in vendor.codes):
        return None
    query = await build_item_query(
        conn, c, RawItemParams(indicator=vendor.indicator, period=vendor.period)
    )
    if any(vendor.compare == ind.period for ind in query.indicators):
        return None
    return VendorParams(vendor.indicator, query.indicators[0].period, vendor.compare)


def _check_known(vendor: VendorParams, entries: dict[str, dict[str, Any]]) -> None:
    for code in vendor.codes:
        if code not in entries:
            raise InvalidParameter(
                f"unknown indicator {code!r} (see /indicators)", parameter="indicator"
            )


@router.get(
    "/collections",
    summary="Collections: one per level and vintage, and the enumeration areas",
    response_model_exclude_unset=True,
)
async def collections(
    request: Request,
    conn: Conn,
    catalogue: Catalogue,
    services: ServicesDep,
    vendor: Vendor,
) -> Collections:
    """Every (level, vintage) of administrative units, and the EAs; with `indicator`, the
    collections that carry it (for `period`, in that period; for `compare`, with that
    earlier period too)."""
    entries = await indicator_entries(conn)
    _check_known(vendor, entries)
    docs = []
    for listed in await list_collections(conn):
        c = await catalogue.get(conn, listed.id)
        if vendor.period and any(
            vendor.period not in c.periods.get(code, ()) for code in vendor.codes
        ):
            continue
        carried = await _carried(conn, c, vendor)
        if carried is not None:
            docs.append(_collection_doc(request, c, entries, carried))
    scope = None if vendor.codes else await ea_scope_of(request, services)
    if scope is not None:
        docs.append(await ea_collection_document(request, conn, scope))
    return Collections(
        collections=docs,
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
    catalogue: Catalogue,
    vendor: Vendor,
) -> CollectionDocument:
    """Metadata of one collection: extent, CRS list, item count, indicators, links."""
    c = await catalogue.get(conn, collectionId)
    carried = vendor
    if vendor.codes:  # the items' checks, and their answer when it does not fit
        raw = RawItemParams(
            indicator=vendor.indicator, period=vendor.period, compare=vendor.compare
        )
        query = await build_item_query(conn, c, raw)
        carried = VendorParams(vendor.indicator, query.indicators[0].period, vendor.compare)
    return _collection_doc(request, c, await indicator_entries(conn), carried)


_TITLES = {
    "code": "official code",
    "name": "official name",
    "parent_code": "parent unit's code",
    "unit_type": "unit type",
    "area_km2": "area (km²)",
    "geometry": "boundary",
    "valid_from": "first day of the vintage's validity",
    "valid_to": "day the next vintage replaced it (null while in force)",
}


def _queryable(
    name: str, kind: str, entries: dict[str, dict[str, Any]], c: Collection
) -> QueryableSchema:
    """One queryable's JSON Schema: type, title and, for indicators, what its value is."""
    schema: dict[str, Any] = {"type": ["string", "null"]} if name == "valid_to" else {}
    code = name.removesuffix("_status")
    entry = entries.get(code)
    if entry is None or code not in c.periods:
        return queryable_schema(kind, _TITLES.get(name, name), **schema)
    periods = ", ".join(c.periods[code])
    if name.endswith("_status") and name != code:
        return QueryableSchema(
            title=f"{entry['name_en']}: status",
            type="string",
            enum=["ok", "provisional", "suppressed", "not_available"],
        )
    return queryable_schema(
        kind,
        f"{entry['name_en']} ({entry['unit']})",
        description=f"{entry['name_vi']}. The published value of the period asked for "
        f"(period=; else the latest) of {periods}; null when suppressed or not available, "
        "so a hidden value never selects",
    )


@router.get(
    "/collections/{collectionId}/queryables",
    summary="The properties a filter may use (OGC API - Features Part 3)",
    response_model=Queryables,
    response_model_exclude_none=True,
    responses={200: {"content": {JSON_SCHEMA: {}}}},
)
async def queryables(
    collectionId: str,
    request: Request,
    conn: Conn,
    catalogue: Catalogue,
    vendor: Vendor,
) -> Response:
    """A JSON Schema of the queryables: the unit's attributes, geometry and validity, and
    every indicator with values on the collection (and its status)."""
    c = await catalogue.get(conn, collectionId)
    kinds = ItemQuery(c).queryables()
    entries = await indicator_entries(conn)
    properties = {name: _queryable(name, kind, entries, c) for name, kind in kinds.items()}
    url = str(request.url_for("queryables", collectionId=c.id))
    return queryables_response(request, url, c.title, kinds, properties)


# Output formats of items: media type → `f` value (the first is the default).
FORMATS = {GEOJSON: "json", "application/json": "json", "text/csv": "csv", GPKG: "gpkg"}
MAX_PAGE = 10_000  # items per GeoJSON page; a larger limit is capped (with a next link)
MAX_GPKG = 20_000  # items per GeoPackage (every commune of any vintage; more get a next link)
MAX_CSV = 10_000_000  # (a limit above it is the same as none)


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
    unless limited, a GeoPackage at most MAX_GPKG (a larger limit is capped, as OGC API -
    Features asks, not refused)."""
    if fmt == "gpkg":
        return min(limit or MAX_GPKG, MAX_GPKG)
    if fmt == "csv":
        return None if limit is None else min(limit, MAX_CSV)
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
    lang: Language,
    pool: Pool,
    catalogue: Catalogue,
    settings: Settings,
    services: ServicesDep,
    downloads: Downloads,
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            description=(
                "items per page: 100 by default, at most 10,000 in GeoJSON (a larger limit is "
                "capped, and numberReturned says how many came); CSV and GeoPackage hold every "
                "item unless a limit is given (a GeoPackage at most 20,000)"
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
    filter: Annotated[
        str | None,
        Query(
            max_length=MAX_CHARACTERS,
            description="a CQL2 filter (OGC API - Features Part 3) over the queryables "
            "(see …/queryables), e.g. parent_code = '01' AND density > 1000; indicator values "
            "compare as published (a suppressed value is null and selects nothing)",
        ),
    ] = None,
    filter_lang: FilterLang = "cql2-text",
    filter_crs: Annotated[
        str | None,
        Query(alias="filter-crs", pattern=CRS, description="CRS of the filter's geometries"),
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
        filter,
        filter_lang,
        filter_crs,
    )
    release = downloads.open(client_address(request))
    try:
        async with downloads.reading():
            async with pool.connection() as conn:
                found = await catalogue.get(conn, collectionId)
                query = await build_item_query(conn, found, raw, await catalogue.srids(conn))
                # (an anonymous filter gets the anonymous database time, as drawn areas do:
                # a costly one is refused sooner)
                if (
                    query.filter is not None
                    and await optional_user(request, conn, services) is None
                ):
                    query.statement_timeout_ms = settings.anonymous_statement_timeout_ms
                # (a filtered page is counted by the statement that picks it: the filter
                # over published values, the costly part, is evaluated once)
                matched: int | None = None
                if query.filter is None or fmt in ("csv", "gpkg"):
                    async with statement_time_limit(conn, query.statement_timeout_ms):
                        matched = await count_items(conn, query)
                # (a file must not show every value hidden: a file's own statement reads
                # whether values are withheld with them; a HEAD reads no values)
                if fmt in ("csv", "gpkg") and asked_headers_only(request):
                    await read.refuse_while_rechecking(
                        conn, await read.withheld(conn, [i.code for i in query.indicators])
                    )
            headers = {"Content-Crs": f"<{query.crs.uri}>", "Vary": "Accept"}
            if fmt in ("csv", "gpkg"):
                assert matched is not None
                headers |= _download_headers(request, offset, limit, matched)
                return await _download(request, services, query, fmt, wkt, headers, release)
            collection_url = str(request.url_for("get_collection_doc", collectionId=found.id))
            assert limit is not None
            page_limit = limit

            def tail(count: int) -> dict[str, Any]:
                after = page_tail(request, offset, page_limit, count, collection_url)
                after["links"] += _alternates(request, fmt)
                return after

            if asked_headers_only(request):  # (a HEAD: the page is not read)
                async with pool.connection() as conn:
                    asked = await read.withheld(conn, [i.code for i in query.indicators])
                rechecking_headers(headers, read.rechecking_note(asked, lang))
                release()
                return headers_only(GEOJSON, headers)
            # (whether values are withheld is read by the page's own statement, on the
            # snapshot of its values; an empty page read none, so the flag alone is asked)
            spool, read_with_page = await export.spool_geojson(
                pool,
                query,
                tail,
                _spool_bytes(settings),
                crs_member(query.crs),
                matched,
                lambda codes: read.rechecking_note(codes, lang),
            )
            withheld = read_with_page
            if withheld is None:
                try:
                    async with pool.connection() as conn:
                        withheld = await read.withheld(conn, [i.code for i in query.indicators])
                except BaseException:
                    spool.close()
                    raise
            rechecking_headers(headers, read.rechecking_note(withheld, lang))
    except BaseException:
        release()
        raise
    return SpooledResponse(spool, release, settings.send_timeout_s, GEOJSON, headers)


def _spool_bytes(settings: ServiceSettings) -> int:
    return settings.download_spool_mb * 1024 * 1024


async def _download(
    request: Request,
    services: Services,
    query: ItemQuery,
    fmt: str,
    wkt: bool,
    headers: dict[str, str],
    release: Release,
) -> Response:
    """The items as a CSV file (read in full before it is sent) or a GeoPackage (built once
    per selection and data epoch, then kept: byte-range readers get the same file). A HEAD
    of a GeoPackage builds it too: GDAL's /vsicurl/ asks its length, then reads ranges of
    the same kept file."""
    settings, pool = services.settings, services.pool
    name = query.collection.id if query.code is None else f"{query.collection.id}-{query.code}"
    # files use the traditional x = longitude order whatever the CRS's axis order
    query.crs = replace(query.crs, lat_first=False)
    if fmt == "csv":
        headers = {**headers, "Content-Disposition": f'attachment; filename="{name}.csv"'}
        if asked_headers_only(request):  # (a HEAD: the file is not read)
            release()
            return headers_only("text/csv; charset=utf-8", headers)
        spool = await export.spool_csv(
            pool, query, wkt, _spool_bytes(settings), read.refuse_withheld
        )
        return SpooledResponse(
            spool, release, settings.send_timeout_s, "text/csv; charset=utf-8", headers
        )
    key = selection_key(
        query.collection.id, [("path", request.url.path), *request.query_params.multi_items()]
    )
    fresh = services.fresh(query.collection.id)
    epoch = services.tiles.freshness.log.epoch  # (read before building: a change during it
    path, built_at = await services.files.get(  # makes the file stale)
        key, epoch, fresh, lambda: export.geopackage(pool, query, name, read.refuse_withheld)
    )
    headers = {
        **headers,
        "Content-Disposition": f'attachment; filename="{name}.gpkg"',
        "ETag": f'"{key}-{built_at}"',
    }
    return KeptFileResponse(path, release, settings.send_timeout_s, GPKG, headers)


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
    lang: Language,
    conn: Conn,
    catalogue: Catalogue,
    services: ServicesDep,
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
    text, withheld = await feature_json(conn, query)  # (and whether withheld: one read)
    if text is None or withheld is None:
        raise NotFound(f"no item {featureId!r} in {found.id}", parameter="featureId")
    headers = {"Content-Crs": f"<{query.crs.uri}>", "Vary": "Accept"}
    note = read.rechecking_note(withheld, lang)
    rechecking_headers(headers, note)
    if fmt in ("csv", "gpkg"):
        read.refuse_withheld(withheld)
        release = downloads.open(client_address(request))
        try:
            return await _download(request, services, query, fmt, wkt, headers, release)
        except BaseException:
            release()
            raise
    feature = {"type": "Feature", **crs_member(query.crs), **orjson.loads(text)}
    if note:
        feature["rechecking"] = note
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

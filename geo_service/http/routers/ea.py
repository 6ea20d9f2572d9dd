"""Enumeration areas: OGC API – Features Part 4 writes with If-Match, workflow, coverage."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Path, Query, Request
from fastapi.responses import Response

from geo_core.crs import CRS84, parse_crs
from geo_core.errors import InvalidParameter, Unauthorized
from geo_core.geojson import line_from_geojson
from geo_core.text import CODE, check_code, check_text
from geo_service.ea import organise, sql
from geo_service.ea.access import ReadScope, check_commune
from geo_service.ea.coverage import coverage_report
from geo_service.ea.rules import parse_geometry
from geo_service.ea.service import (
    Drawn,
    as_feature,
    commune_of,
    etag,
    fetch,
    history,
    history_communes,
)
from geo_service.features.export import spool_features
from geo_service.features.filter import MAX_CHARACTERS
from geo_service.features.sql import statement_time_limit
from geo_service.http.auth import EaScope, Reader, Writer, check_reader
from geo_service.http.deps import (
    Conn,
    Downloads,
    EaOps,
    JobsDep,
    Language,
    Pool,
    Settings,
    client_address,
)
from geo_service.http.documents import (
    CollectionDocument,
    CoverageReport,
    EaHistory,
    Extent,
    GeneratedDrafts,
    HistoryEntry,
    Link,
    SpatialExtent,
)
from geo_service.http.downloads import SpooledResponse, asked_headers_only, headers_only
from geo_service.http.ea_requests import MAX_EA_DOWNLOAD, check_scope, list_filter
from geo_service.http.ogc import (
    GEOJSON,
    JSON_SCHEMA,
    QUERYABLES,
    TILESETS_VECTOR,
    FilterLang,
    GeoJSONResponse,
    page_tail,
    queryable_schema,
    queryables_response,
)
from geo_service.http.routers.outputs import ea_download
from geo_service.http.services import Services
from geo_service.messages import localised

router = APIRouter(tags=["enumeration areas"])
EaId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the EA's id")]
BASE = "/collections/enumeration-areas"
MAX_EA_PAGE = 10_000


def _feature_response(
    row: dict[str, Any],
    status: int = 200,
    extra: dict[str, Any] | None = None,
    lang: str = "en",
) -> GeoJSONResponse:
    body = {**as_feature(row), **localised(extra or {}, lang)}
    headers = {
        "ETag": etag(row),
        "Location": f"{BASE}/items/{row['id']}",
        "Content-Crs": f"<{CRS84}>",
    }
    return GeoJSONResponse(body, status_code=status, headers=headers)


async def ea_collection_document(
    request: Request, conn: Conn, scope: ReadScope
) -> CollectionDocument:
    """The EA collection's metadata (of the EAs the reader may see): item count, extent
    (left out while there are no EAs: there is nothing to bound), CRS, links."""
    count, extent = await sql.count_and_extent(conn, scope.codes)
    base = str(request.url_for("ea_collection"))
    document = CollectionDocument(
        id="enumeration-areas",
        title="Census enumeration areas",
        itemType="feature",
        description="Enumeration areas drawn by census cartographers, one layer for every "
        "census round (filter with round=); editable with a token.",
        crs=[CRS84],
        storageCrs=CRS84,
        numberOfItems=count,
        links=[
            Link(rel="self", href=base, type="application/json"),
            Link(rel="items", href=f"{base}/items", type=GEOJSON),
            Link(rel=QUERYABLES, href=f"{base}/queryables", type=JSON_SCHEMA),
            # (the draft standard's relation: GDAL's OAPIF driver looks for this one)
            Link(rel="queryables", href=f"{base}/queryables", type="application/json"),
            Link(rel=TILESETS_VECTOR, href=f"{base}/tiles", type="application/json"),
        ],
    )
    # (set only when there is one: an extent passed as None would be written as null)
    if None not in extent:
        bbox = [[float(v) for v in extent if v is not None]]
        document.extent = Extent(spatial=SpatialExtent(bbox=bbox, crs=CRS84))
    return document


async def ea_scope_of(request: Request, services: Services) -> ReadScope | None:
    """The EAs the request may see (reads are public, or it has a valid token); None: the
    collection is hidden from it."""
    try:
        return await check_reader(request, services)
    except Unauthorized:
        return None


@router.get(
    BASE,
    summary="The enumeration-area collection",
    name="ea_collection",
    response_model_exclude_unset=True,
)
async def ea_collection(request: Request, conn: Conn, scope: EaScope) -> CollectionDocument:
    """Metadata of the EA collection: extent, CRS, item count, links."""
    return await ea_collection_document(request, conn, scope)


_TITLES = {
    "census_round": "census round (year)",
    "code": "EA code (commune code, '-', serial)",
    "commune_code": "commune's code",
    "commune_vintage": "boundary vintage of the commune",
    "status": "workflow status",
    "population": "estimated population",
    "households": "estimated households",
    "urban_rural": "urban or rural",
    "listed_dwellings": "dwellings counted by the field listing",
    "listed_households": "households counted by the field listing",
    "listed_at": "when the field listing was uploaded",
    "updated_at": "last change",
    "geometry": "boundary",
}
_ENUMS = {
    "status": ["draft", "submitted", "approved", "rejected"],
    "urban_rural": ["urban", "rural"],
}


@router.get(
    f"{BASE}/queryables",
    summary="The properties a filter over EAs may use (OGC API - Features Part 3)",
    name="ea_queryables",
    responses={200: {"content": {JSON_SCHEMA: {}}}},
)
async def ea_queryables(request: Request, scope: EaScope) -> Response:
    """A JSON Schema of the EA properties a filter may use (read as the EAs are: a token
    where reads are not public)."""
    properties = {
        name: queryable_schema(kind, _TITLES[name], enum=_ENUMS.get(name))
        for name, kind in sql.QUERYABLES.items()
    }
    url = str(request.url_for("ea_queryables"))
    return queryables_response(request, url, "Census enumeration areas", sql.QUERYABLES, properties)


@router.get(
    f"{BASE}/items",
    summary="Enumeration areas",
    response_class=GeoJSONResponse,
    responses={
        200: {
            "content": {
                GEOJSON: {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
                "application/geopackage+sqlite3": {
                    "schema": {"type": "string", "format": "binary"}
                },
                "application/zip": {"schema": {"type": "string", "format": "binary"}},
            }
        }
    },
)
async def list_eas(
    request: Request,
    user: Reader,
    scope: EaScope,
    pool: Pool,
    settings: Settings,
    downloads: Downloads,
    jobs: JobsDep,
    language: Language,
    commune: Annotated[str | None, Query(max_length=5, pattern=r"^\d{5}$")] = None,
    status: Annotated[Literal["draft", "submitted", "approved", "rejected"] | None, Query()] = None,
    census_round: Annotated[str | None, Query(alias="round", pattern=r"^\d{4}$")] = None,
    bbox: Annotated[
        str | None, Query(max_length=200, description="minx,miny,maxx,maxy (longitude/latitude)")
    ] = None,
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            description="EAs per page: 1,000 by default, at most 10,000 (capped); downloads "
            "(f=geojson, csv, gpkg, shp) hold every EA unless a limit is given",
        ),
    ] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    f: Annotated[
        Literal["json", "geojson", "csv", "gpkg", "shp"],
        Query(
            description="json: pages for the editor; geojson, csv (WKT), gpkg, shp (zipped): a "
            "file of every matched EA with its commune, figures, status and assignment"
        ),
    ] = "json",
    filter: Annotated[
        str | None,
        Query(
            max_length=MAX_CHARACTERS,
            description="a CQL2 filter (OGC API - Features Part 3) over the queryables (see "
            "…/queryables), e.g. status = 'submitted' AND population > 500; geometries in "
            "longitude/latitude",
        ),
    ] = None,
    filter_lang: FilterLang = "cql2-text",
) -> Response:
    """EAs filtered by commune, status, census round and bounding box; streamed, in pages,
    or as a download file."""
    filters = list_filter(scope, commune, status, census_round, bbox, filter, filter_lang)
    # (an anonymous filter gets the anonymous database time, as on the units' items)
    timeout = (
        settings.anonymous_statement_timeout_ms
        if filters.filter is not None and user is None
        else None
    )
    if commune is not None and not scope.everywhere:
        async with pool.connection() as conn:
            await check_scope(conn, scope, commune)
    if f != "json":
        # (a limit past every EA there could be is none: capped, not refused, and never
        # past what the database's LIMIT takes)
        limit = None if limit is None else min(limit, MAX_EA_DOWNLOAD)
        return await ea_download(
            request,
            user,
            scope,
            pool,
            settings,
            downloads,
            filters,
            f,
            limit,
            offset,
            jobs,
            language,
            timeout,
        )
    limit = min(limit or 1000, MAX_EA_PAGE)  # (OGC API - Features: a larger limit is capped)
    # a signed-in user counts as themselves: editors of one office share an address (NAT)
    release = downloads.open(f"user {user.name}" if user else client_address(request))
    try:
        async with downloads.reading():
            async with pool.connection() as conn, statement_time_limit(conn, timeout):
                matched = await sql.count_matching(conn, filters)
            headers = {"Content-Crs": f"<{CRS84}>"}
            if not settings.public_reads:
                headers["Cache-Control"] = "private"
            if asked_headers_only(request):  # (a HEAD: the page is not read)
                release()
                return headers_only(GEOJSON, headers)
            page, params = sql.page_sql(filters, limit, offset)
            tail = page_tail(request, offset, limit, matched, None)
            spool = await spool_features(
                pool,
                page,
                params,
                tail,
                settings.download_spool_mb * 1024 * 1024,
                timeout_ms=timeout,
            )
    except BaseException:
        release()
        raise
    return SpooledResponse(spool, release, settings.send_timeout_s, GEOJSON, headers)


@router.get(
    f"{BASE}/items/{{featureId}}", summary="One enumeration area", response_class=GeoJSONResponse
)
async def get_ea(featureId: EaId, conn: Conn, scope: EaScope) -> GeoJSONResponse:
    """The EA with its ETag (send it back as If-Match to change it)."""
    row = await fetch(conn, featureId)
    await check_commune(conn, scope, row["commune_code"], vintage=row["commune_vintage"])
    return _feature_response(row)


def _properties(feature: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise InvalidParameter("the body must be a GeoJSON Feature", parameter="body")
    props = feature.get("properties") or {}
    if not isinstance(props, dict):
        raise InvalidParameter("properties must be an object", parameter="properties")
    return props


def _reason(value: Any) -> str | None:
    return None if value is None else check_text(value, "reason", 500, multiline=True)


def _census_round(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not (isinstance(value, str) and re.fullmatch(r"\d{4}", value)):
        raise InvalidParameter(
            "properties.census_round must be a year such as 2029", parameter="census_round"
        )
    return value


def _optional_code(value: Any, parameter: str) -> str | None:
    return None if value is None else check_code(value, parameter)


def _drawing(
    feature: dict[str, Any], content_crs: str | None, repair: bool, ops: EaOps
) -> Callable[[], Drawn]:
    """What reads the feature's geometry into lon/lat, checked (and repaired when asked);
    the service calls it once the commune and version checks have passed."""

    def drawn() -> Drawn:
        crs = parse_crs((content_crs or "").strip("<> ") or None, "Content-Crs")
        geometry, note = parse_geometry(
            feature.get("geometry"), crs, repair, ops.rules.max_vertices
        )
        return Drawn(geometry, note)

    return drawn


@router.post(
    f"{BASE}/items",
    status_code=201,
    summary="Create an enumeration area",
    response_class=GeoJSONResponse,
)
async def create_ea(
    conn: Conn,
    user: Writer,
    ops: EaOps,
    lang: Language,
    feature: Annotated[dict[str, Any], Body()],
    content_crs: Annotated[str | None, Header(max_length=120)] = None,
    repair: Annotated[bool, Query(description="repair an invalid geometry")] = False,
) -> GeoJSONResponse:
    """A new draft EA in a commune of the user's scope, validated against the rules."""
    props = _properties(feature)
    census_round = _census_round(props.get("census_round"))
    commune_code = check_code(props.get("commune_code"), "commune_code")
    vintage = _optional_code(props.get("commune_vintage"), "commune_vintage")
    code = _optional_code(props.get("code"), "code")
    reason = _reason(props.get("reason"))
    row, warnings = await ops.create(
        conn,
        user,
        census_round,
        commune_code,
        vintage,
        code,
        _drawing(feature, content_crs, repair, ops),
        reason,
    )
    return _feature_response(row, 201, {"warnings": warnings}, lang)


@router.put(
    f"{BASE}/items/{{featureId}}",
    summary="Replace an enumeration area",
    response_class=GeoJSONResponse,
)
@router.patch(
    f"{BASE}/items/{{featureId}}",
    summary="Change an enumeration area's geometry",
    response_class=GeoJSONResponse,
)
async def replace_ea(
    request: Request,
    featureId: EaId,
    conn: Conn,
    user: Writer,
    ops: EaOps,
    lang: Language,
    feature: Annotated[dict[str, Any], Body()],
    if_match: Annotated[str | None, Header(max_length=200)] = None,
    content_crs: Annotated[str | None, Header(max_length=120)] = None,
    repair: bool = False,
) -> GeoJSONResponse:
    """New geometry (and optionally code and attributes) for an EA; a PATCH without a
    geometry changes only the attributes (urban_rural, boundary_description, landmarks).
    Needs the current ETag in If-Match."""
    props = _properties(feature)
    code = _optional_code(props.get("code"), "code")
    reason = _reason(props.get("reason"))
    attributes = _attributes(props)
    if request.method == "PATCH" and feature.get("geometry") is None:
        if code is not None:
            raise InvalidParameter("a code changes with a geometry (PUT)", parameter="code")
        if not attributes:  # (a null geometry alone would change nothing: a mistake)
            raise InvalidParameter(
                "geometry is null and no attribute (urban_rural, boundary_description,"
                " landmarks) is given: nothing to change",
                parameter="geometry",
            )
        row = await ops.set_attributes(conn, user, featureId, if_match, attributes, reason)
        return _feature_response(row, 200, {"warnings": []}, lang)
    keeps = {name: props.get(name) for name in ("commune_code", "census_round")}
    row, warnings = await ops.replace(
        conn,
        user,
        featureId,
        if_match,
        keeps,
        code,
        _drawing(feature, content_crs, repair, ops),
        reason,
        attributes,
    )
    return _feature_response(row, 200, {"warnings": warnings}, lang)


def _attributes(props: dict[str, Any]) -> dict[str, Any]:
    """The EA attributes the properties set (a null clears one)."""
    found: dict[str, Any] = {}
    if "urban_rural" in props:
        value = props["urban_rural"]
        if value not in (None, "urban", "rural"):
            raise InvalidParameter(
                "urban_rural must be urban, rural or null", parameter="urban_rural"
            )
        found["urban_rural"] = value
    for name in ("boundary_description", "landmarks"):
        if name in props:
            value = props[name]
            found[name] = (
                None if value in (None, "") else check_text(value, name, 2000, multiline=True)
            )
    for name in ("listed_dwellings", "listed_households"):
        if name in props and props[name] is not None:
            raise InvalidParameter(
                f"{name} comes from the field listing upload (/census/{{round}}/listing)",
                parameter=name,
            )
    return found


@router.delete(f"{BASE}/items/{{featureId}}", status_code=204, summary="Delete an enumeration area")
async def delete_ea(
    featureId: EaId,
    conn: Conn,
    user: Writer,
    ops: EaOps,
    if_match: Annotated[str | None, Header(max_length=200)] = None,
    reason: Annotated[str | None, Query(max_length=500)] = None,
    give_gap_to: Annotated[
        str | None,
        Query(max_length=20, description="a neighbouring EA's code: it takes the area freed"),
    ] = None,
) -> Response:
    """Delete an EA (needs If-Match); its history stays. A delete that opens a gap in a
    commune that was covered is refused with the gap (422 `gaps`) unless `give_gap_to` names
    a neighbouring EA to take it (its ETag in If-Match too)."""
    await ops.delete(conn, user, featureId, if_match, _reason(reason), give_gap_to)
    return Response(status_code=204)


@router.get(f"{BASE}/items/{{featureId}}/history", summary="History of an enumeration area")
async def ea_history(featureId: EaId, conn: Conn, scope: EaScope) -> EaHistory:
    """Every change with who, when, why and the full state before and after."""
    entries = await history(conn, featureId)
    # (a deleted EA keeps its history: its last state says where it was)
    for commune, vintage in history_communes(entries):
        await check_commune(conn, scope, commune, vintage=vintage)
    return EaHistory(ea=featureId, history=[HistoryEntry(**entry) for entry in entries])


@router.get("/communes/{code}/ea-coverage", summary="How well a commune's EAs cover it")
async def ea_coverage(
    code: Annotated[str, Path(pattern=CODE)],
    conn: Conn,
    scope: EaScope,
    ops: EaOps,
    census_round: Annotated[str, Query(alias="round", pattern=r"^\d{4}$")] = "2029",
    vintage: Annotated[str | None, Query(pattern=CODE)] = None,
) -> CoverageReport:
    """Gaps, overlaps, EAs leaving the commune, and EAs outside the workload band (of the
    round's EAs in the commune of `vintage`; by default the vintage they lie in)."""
    if vintage is None:
        commune = await organise.round_commune(conn, census_round, code)
    else:
        commune = await commune_of(conn, code, vintage, "code", "vintage")
    scope.check(commune.code, commune.province, "code")
    return CoverageReport(**await coverage_report(conn, commune, census_round, ops.rules))


@router.post(
    "/communes/{code}/ea-generate",
    status_code=201,
    summary="Draft EAs of a commune from the population raster",
)
async def generate_eas(
    code: str,
    conn: Conn,
    user: Writer,
    ops: EaOps,
    census_round: Annotated[str, Query(alias="round", pattern=r"^\d{4}$")] = "2029",
    vintage: Annotated[str | None, Query(max_length=32)] = None,
    households_per_ea: Annotated[float, Query(ge=10, le=2000)] = 120,
    replace: Annotated[bool, Query(description="replace the commune's draft EAs")] = False,
) -> GeneratedDrafts:
    """A gap-free draft coverage of a commune; only drafts are ever replaced."""
    return GeneratedDrafts(
        **await ops.generate(conn, user, code, vintage, census_round, households_per_ea, replace)
    )


@router.post(
    f"{BASE}/items/{{featureId}}/split",
    summary="Split an EA along a line",
    response_class=GeoJSONResponse,
)
async def split_ea(
    featureId: EaId,
    conn: Conn,
    user: Writer,
    ops: EaOps,
    lang: Language,
    body: Annotated[dict[str, Any], Body(description='{"line": GeoJSON LineString}')],
    if_match: Annotated[str | None, Header(max_length=200)] = None,
) -> GeoJSONResponse:
    """The EA keeps the largest part; every other part becomes a new draft EA."""
    if not isinstance(body, dict):
        raise InvalidParameter("the body must be an object with a line", parameter="body")
    line = line_from_geojson(body.get("line"), "line")
    kept, created, warnings = await ops.split(
        conn, user, featureId, if_match, line, _reason(body.get("reason"))
    )
    return GeoJSONResponse(
        {
            "type": "FeatureCollection",
            "features": [as_feature(kept), *map(as_feature, created)],
            "warnings": localised(warnings, lang),
        }
    )


@router.post(
    f"{BASE}/merge", summary="Merge EAs of one commune into one", response_class=GeoJSONResponse
)
async def merge_eas(
    conn: Conn,
    user: Writer,
    ops: EaOps,
    body: Annotated[dict[str, Any], Body(description='{"ids": [1, 2, …]}')],
    if_match: Annotated[
        str | None, Header(max_length=2000, description="the ETags of all EAs")
    ] = None,
) -> GeoJSONResponse:
    """The EA with the lowest id takes the union of all; the others are deleted (history
    keeps them)."""
    ids = body.get("ids") if isinstance(body, dict) else None
    if (
        not isinstance(ids, list)
        or len(ids) < 2
        or len(set(ids)) != len(ids)
        or not all(type(i) is int and 0 < i < 2**63 for i in ids)
    ):
        raise InvalidParameter("ids must list 2 or more distinct EA ids", parameter="ids")
    merged = await ops.merge(conn, user, ids, if_match, _reason(body.get("reason")))
    return _feature_response(merged)


MAX_TOGETHER = 100  # EAs one shared-edge change may touch


@router.post(
    f"{BASE}/reshape",
    summary="Change several EAs' geometries at once (a shared edge moved for all)",
    response_class=GeoJSONResponse,
)
async def reshape_eas(
    conn: Conn,
    user: Writer,
    ops: EaOps,
    lang: Language,
    body: Annotated[
        dict[str, Any],
        Body(
            description='{"type": "FeatureCollection", "features": [Feature with id and '
            'geometry, …], "reason": text, "give_gap_to": an EA code}'
        ),
    ],
    if_match: Annotated[
        str | None, Header(max_length=6000, description="the ETags of all the EAs")
    ] = None,
    content_crs: Annotated[str | None, Header(max_length=120)] = None,
    repair: bool = False,
) -> GeoJSONResponse:
    """New geometries for EAs of one commune, all or none: each EA checked against its own
    ETag, all of them against the rules as they will be together; a change that opens a
    gap in the commune is refused with the gap (422 `gaps`) unless `give_gap_to` names a
    neighbouring EA to take it (its ETag in If-Match too)."""
    if not isinstance(body, dict) or body.get("type") != "FeatureCollection":
        raise InvalidParameter("the body must be a GeoJSON FeatureCollection", parameter="body")
    features = body.get("features")
    if not isinstance(features, list) or not 1 <= len(features) <= MAX_TOGETHER:
        raise InvalidParameter(f"features must list 1 to {MAX_TOGETHER} EAs", parameter="features")
    edits = []
    for index, feature in enumerate(features):
        _properties(feature)
        ea_id = feature.get("id")
        if type(ea_id) is not int or not 0 < ea_id < 2**63:
            raise InvalidParameter(
                f"features[{index}].id must be the EA's id", parameter=f"features[{index}].id"
            )
        edits.append((ea_id, _drawing(feature, content_crs, repair, ops)))
    if len({ea_id for ea_id, _ in edits}) != len(edits):
        raise InvalidParameter("each EA may be listed once", parameter="features")
    give = body.get("give_gap_to")
    rows, warnings = await ops.reshape(
        conn,
        user,
        edits,
        if_match,
        _reason(body.get("reason")),
        None if give is None else check_text(give, "give_gap_to", 20),
    )
    return GeoJSONResponse(
        {
            "type": "FeatureCollection",
            "features": [as_feature(row) for row in rows],
            "warnings": localised(warnings, lang),
        },
        headers={"Content-Crs": f"<{CRS84}>"},
    )


@router.post(
    "/communes/{code}/ea-approve",
    summary="Approve every submitted EA of a commune",
    response_class=GeoJSONResponse,
)
async def approve_all(
    code: Annotated[str, Path(pattern=CODE)],
    conn: Conn,
    user: Writer,
    ops: EaOps,
    body: Annotated[
        dict[str, Any] | None,
        Body(description='{"uncovered_acknowledged": true/false, "reason": text}'),
    ] = None,
    census_round: Annotated[str, Query(alias="round", pattern=r"^\d{4}$")] = "2029",
    vintage: Annotated[str | None, Query(pattern=CODE)] = None,
    if_match: Annotated[
        str | None, Header(max_length=60_000, description="the ETags of the submitted EAs")
    ] = None,
) -> GeoJSONResponse:
    """All or none, each EA against its own ETag and four eyes; a commune that EAs do not
    fully cover is refused (409 with its gaps) unless `uncovered_acknowledged` is true,
    which the history of every approved EA records."""
    body = body or {}
    if not isinstance(body, dict):
        raise InvalidParameter("the body must be an object", parameter="body")
    acknowledged = body.get("uncovered_acknowledged", False)
    if not isinstance(acknowledged, bool):
        raise InvalidParameter(
            "uncovered_acknowledged must be true or false", parameter="uncovered_acknowledged"
        )
    rows = await ops.approve_all(
        conn, user, code, vintage, census_round, if_match, acknowledged, _reason(body.get("reason"))
    )
    return GeoJSONResponse(
        {"type": "FeatureCollection", "features": [as_feature(row) for row in rows]}
    )


@router.post(
    f"{BASE}/items/{{featureId}}/restore",
    summary="Restore an EA to a version from its history",
    response_class=GeoJSONResponse,
)
async def restore_ea(
    featureId: EaId,
    conn: Conn,
    user: Writer,
    ops: EaOps,
    lang: Language,
    entry: Annotated[int, Query(ge=1, le=2**63 - 1, description="the history entry's id")],
    if_match: Annotated[str | None, Header(max_length=200)] = None,
    reason: Annotated[str | None, Query(max_length=500)] = None,
    give_gap_to: Annotated[
        str | None,
        Query(max_length=20, description="a neighbouring EA's code: it takes any gap opened"),
    ] = None,
) -> GeoJSONResponse:
    """The EA's shape and attributes as they were after that change, checked against the
    rules like any edit (needs If-Match); the restore is itself a change in the history. A
    restore that opens a gap in the commune is refused with the gap (422 `gaps`) unless
    `give_gap_to` names a neighbouring EA to take it (its ETag in If-Match too)."""
    row, notes = await ops.restore(
        conn, user, featureId, if_match, entry, _reason(reason), give_gap_to
    )
    return _feature_response(row, 200, {"warnings": notes}, lang)


# Registered last: its {action} segment would otherwise catch /split.
@router.post(
    f"{BASE}/items/{{featureId}}/{{action}}",
    summary="Submit, approve or reject",
    response_class=GeoJSONResponse,
)
async def transition(
    featureId: EaId,
    action: Literal["submit", "approve", "reject"],
    conn: Conn,
    user: Writer,
    ops: EaOps,
    if_match: Annotated[str | None, Header(max_length=200)] = None,
    reason: Annotated[str | None, Query(max_length=500)] = None,
) -> GeoJSONResponse:
    """Workflow: editors submit drafts; supervisors in scope approve or reject submissions."""
    return _feature_response(
        await ops.transition(conn, user, featureId, action, if_match, _reason(reason))
    )

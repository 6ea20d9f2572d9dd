"""Enumeration areas: OGC API – Features Part 4 writes with If-Match, workflow, coverage."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from psycopg.rows import dict_row

from geo_service.auth import Forbidden, MaybeUser, Unauthorized, User, Writer
from geo_service.db import Conn
from geo_service.ea import store
from geo_service.ea.coverage import coverage_report
from geo_service.ea.generate import generate_one
from geo_service.ea.rules import EaRules, parse_geometry, workload_warning
from geo_service.errors import Conflict, InvalidParameter, NotFound, Unprocessable
from geo_service.features.crs import CRS84, parse_crs
from geo_service.features.export import stream_features
from geo_service.features.geometry import line_from_geojson
from geo_service.features.params import parse_bbox
from geo_service.routers.features import GEOJSON, GeoJSONResponse, page_tail
from geo_service.settings import ServiceSettings
from geo_service.text import CODE, check_code, check_text

router = APIRouter(tags=["enumeration areas"])
EaId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the EA's id")]
BASE = "/collections/enumeration-areas"


def _rules(settings: ServiceSettings) -> EaRules:
    return EaRules(settings.ea_tolerance_m, settings.ea_snap_m, settings.ea_min_area_m2,
                   settings.ea_max_area_km2, settings.ea_households_min,
                   settings.ea_households_max, settings.household_size,
                   settings.ea_max_vertices)


def _reader(request: Request, user: User | None) -> None:
    if user is None and not request.app.state.settings.public_reads:
        raise Unauthorized("reads need a token here", parameter="Authorization")


def _feature_response(row: dict[str, Any], status: int = 200,
                      extra: dict[str, Any] | None = None) -> GeoJSONResponse:
    body = {**store.as_feature(row), **(extra or {})}
    headers = {"ETag": store.etag(row), "Location": f"{BASE}/items/{row['id']}",
               "Content-Crs": f"<{CRS84}>"}
    return GeoJSONResponse(body, status_code=status, headers=headers)


@router.get(BASE, summary="The enumeration-area collection")
async def ea_collection(request: Request, conn: Conn, user: MaybeUser) -> dict[str, Any]:
    """Metadata of the EA collection: extent, CRS, item count, links."""
    _reader(request, user)
    cur = await conn.execute("WITH t AS (SELECT count(*) AS n, ST_Extent(geom) AS e"
                             " FROM enumeration_area)"
                             " SELECT n, ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM t")
    count, *extent = await cur.fetchone() or (0, None, None, None, None)
    base = str(request.url).split("?")[0]
    return {"id": "enumeration-areas", "title": "Census enumeration areas",
            "itemType": "feature",
            "description": "Enumeration areas drawn by census cartographers, one layer for "
                           "every census round (filter with round=); editable with a token.",
            "extent": {"spatial": {"bbox": [extent] if None not in extent else [],
                                   "crs": CRS84}},
            "crs": [CRS84], "storageCrs": CRS84, "numberOfItems": count,
            "links": [{"rel": "self", "href": base, "type": "application/json"},
                      {"rel": "items", "href": f"{base}/items", "type": GEOJSON}]}


@router.get(f"{BASE}/items", summary="Enumeration areas",
            response_class=GeoJSONResponse)
async def list_eas(
    request: Request, user: MaybeUser,
    commune: Annotated[str | None, Query(max_length=5, pattern=r"^\d{5}$")] = None,
    status: Annotated[Literal["draft", "submitted", "approved", "rejected"] | None,
                      Query()] = None,
    census_round: Annotated[str | None, Query(alias="round", pattern=r"^\d{4}$")] = None,
    bbox: Annotated[str | None, Query(max_length=200,
                                      description="minx,miny,maxx,maxy (longitude/latitude)")
                    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> StreamingResponse:
    """EAs filtered by commune, status, census round and bounding box; streamed, in pages."""
    _reader(request, user)
    box = parse_bbox(bbox) if bbox is not None else None
    if box is not None and not (-180 <= box[0] <= box[2] <= 180 and -90 <= box[1] <= box[3] <= 90):
        raise InvalidParameter("bbox must be longitude/latitude: -180..180, -90..90",
                               parameter="bbox")
    filters = store.ListFilter(commune, status, census_round, box)
    count, page, params = store.list_sql(filters, limit, offset)
    pool = request.app.state.pool
    # the count's connection goes back to the pool before the page streams from another
    async with pool.connection() as conn:
        matched = (await (await conn.execute(count, params)).fetchone() or [0])[0]
    tail = page_tail(request, offset, limit, matched, None)
    return StreamingResponse(stream_features(pool, page, params, tail), media_type=GEOJSON,
                             headers={"Content-Crs": f"<{CRS84}>"})


@router.get(f"{BASE}/items/{{featureId}}", summary="One enumeration area",
            response_class=GeoJSONResponse)
async def get_ea(featureId: EaId, request: Request, conn: Conn,  # noqa: N803
                 user: MaybeUser) -> GeoJSONResponse:
    """The EA with its ETag (send it back as If-Match to change it)."""
    _reader(request, user)
    return _feature_response(await store.fetch(conn, featureId))


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
        raise InvalidParameter("properties.census_round must be a year such as 2029",
                               parameter="census_round")
    return value


def _optional_code(value: Any, parameter: str) -> str | None:
    return None if value is None else check_code(value, parameter)


async def _prepared(request: Request, conn: Conn, feature: dict[str, Any],
                    content_crs: str | None, repair: bool, ea_id: int, census_round: str,
                    commune: store.Commune) -> tuple[Any, dict[str, Any], list[Any]]:
    """Parse, snap and check the geometry; estimate workload; return the values to write."""
    settings: ServiceSettings = request.app.state.settings
    rules = _rules(settings)
    crs = parse_crs((content_crs or "").strip("<> ") or None, "Content-Crs")
    parsed, note = parse_geometry(feature.get("geometry"), crs, repair, rules.max_vertices)
    context = {"round": census_round, "commune": commune.code, "vintage": commune.vintage,
               "self": ea_id}
    geom, findings = await store.validated(conn, parsed, context, rules)
    population, households = await store.estimate(settings.population_raster, geom,
                                                  settings.household_size)
    warnings = findings.warnings + ([{"warning": note}] if note else [])
    if (warning := workload_warning(households, rules)) is not None:
        warnings.append(warning)
    values = {"wkb": store.to_wkb(geom), "population": population, "households": households}
    return geom, values, warnings


@router.post(f"{BASE}/items", status_code=201, summary="Create an enumeration area",
             response_class=GeoJSONResponse)
async def create_ea(
    request: Request, conn: Conn, user: Writer,
    feature: Annotated[dict[str, Any], Body()],
    content_crs: Annotated[str | None, Header(max_length=120)] = None,
    repair: Annotated[bool, Query(description="repair an invalid geometry")] = False,
) -> GeoJSONResponse:
    """A new draft EA in a commune of the user's scope, validated against the rules."""
    props = _properties(feature)
    census_round = _census_round(props.get("census_round"))
    commune_code = check_code(props.get("commune_code"), "commune_code")
    vintage = _optional_code(props.get("commune_vintage"), "commune_vintage")
    wanted_code = _optional_code(props.get("code"), "code")
    reason = _reason(props.get("reason"))
    commune = await store.commune_of(conn, commune_code, vintage)
    store.authorise(user, commune)
    wanted_code = store.code_for(commune.code, wanted_code)
    async with conn.transaction():
        await store.lock_commune(conn, census_round, commune.code)
        _, values, warnings = await _prepared(request, conn, feature, content_crs, repair, -1,
                                              census_round, commune)
        code = wanted_code or await store.next_code(conn, census_round, commune.code)
        row = await store.insert(conn, {**values, "round": census_round, "code": code,
                                        "vintage": commune.vintage, "commune": commune.code,
                                        "user": user.name})
        await store.write_history(conn, row["id"], "create", None, row, user, reason)
    return _feature_response(row, 201, {"warnings": warnings})


async def _locked(conn: Conn, ea_id: int, user: User, if_match: str | None,
                  needs: str = "editor", change: bool = False
                  ) -> tuple[dict[str, Any], store.Commune]:
    """The EA locked for a write by `user`; with `change`, its geometry or existence is
    changed, which an approved EA allows only to a supervisor (it goes back to draft)."""
    row = await store.fetch(conn, ea_id)
    commune = await store.commune_of(conn, row["commune_code"], row["commune_vintage"])
    store.authorise(user, commune, needs)
    await store.lock_commune(conn, row["census_round"], commune.code)
    row = await store.fetch(conn, ea_id, lock=True)
    store.check_version(row, if_match)
    if change and row["status"] == "approved":
        store.authorise(user, commune, "supervisor")
    return row, commune


@router.put(f"{BASE}/items/{{featureId}}", summary="Replace an enumeration area",
            response_class=GeoJSONResponse)
@router.patch(f"{BASE}/items/{{featureId}}", summary="Change an enumeration area's geometry",
              response_class=GeoJSONResponse)
async def replace_ea(
    featureId: EaId, request: Request, conn: Conn, user: Writer,  # noqa: N803
    feature: Annotated[dict[str, Any], Body()],
    if_match: Annotated[str | None, Header(max_length=200)] = None,
    content_crs: Annotated[str | None, Header(max_length=120)] = None,
    repair: bool = False,
) -> GeoJSONResponse:
    """New geometry (and optionally code) for an EA; needs the current ETag in If-Match."""
    props = _properties(feature)
    wanted_code = _optional_code(props.get("code"), "code")
    reason = _reason(props.get("reason"))
    async with conn.transaction():
        before, commune = await _locked(conn, featureId, user, if_match, change=True)
        for name in ("commune_code", "census_round"):
            if props.get(name) not in (None, before[name]):
                raise InvalidParameter(f"an EA keeps its {name} ({before[name]}); draw a new "
                                       "EA for another", parameter=name)
        wanted_code = store.code_for(commune.code, wanted_code)
        _, values, warnings = await _prepared(request, conn, feature, content_crs, repair,
                                              featureId, before["census_round"], commune)
        values |= {"code": wanted_code, "user": user.name}
        row = await store.update_geometry(conn, featureId, values)
        await store.write_history(conn, featureId, "update", before, row, user, reason)
    return _feature_response(row, 200, {"warnings": warnings})


@router.delete(f"{BASE}/items/{{featureId}}", status_code=204,
               summary="Delete an enumeration area")
async def delete_ea(featureId: EaId, conn: Conn, user: Writer,  # noqa: N803
                    if_match: Annotated[str | None, Header(max_length=200)] = None,
                    reason: Annotated[str | None, Query(max_length=500)] = None) -> Response:
    """Delete an EA (needs If-Match); its history stays."""
    reason = _reason(reason)
    async with conn.transaction():
        before, _ = await _locked(conn, featureId, user, if_match, change=True)
        await conn.execute("DELETE FROM enumeration_area WHERE id = %s", (featureId,))
        await store.write_history(conn, featureId, "delete", before, None, user, reason)
    return Response(status_code=204)


@router.get(f"{BASE}/items/{{featureId}}/history", summary="History of an enumeration area")
async def history(featureId: EaId, request: Request, conn: Conn,  # noqa: N803
                  user: MaybeUser) -> dict[str, Any]:
    """Every change with who, when, why and the full state before and after."""
    _reader(request, user)
    cur = await conn.execute("SELECT id, action, before, after, user_name, reason, at FROM"
                             " ea_history WHERE ea_id = %s ORDER BY id", (featureId,))
    entries = [{"id": i, "action": a, "before": b, "after": af, "user": u, "reason": r,
                "at": at.isoformat()} for i, a, b, af, u, r, at in await cur.fetchall()]
    if not entries:  # (a deleted EA keeps its history)
        raise NotFound(f"no enumeration area {featureId}", parameter="featureId")
    return {"ea": featureId, "history": entries}


@router.get("/communes/{code}/ea-coverage", summary="How well a commune's EAs cover it")
async def ea_coverage(code: Annotated[str, Path(pattern=CODE)], request: Request, conn: Conn,
                      user: MaybeUser,
                      census_round: Annotated[str, Query(alias="round",
                                                         pattern=r"^\d{4}$")] = "2029",
                      vintage: Annotated[str | None, Query(pattern=CODE)] = None
                      ) -> dict[str, Any]:
    """Gaps, overlaps, EAs leaving the commune, and EAs outside the workload band."""
    _reader(request, user)
    commune = await store.commune_of(conn, code, vintage, "code", "vintage")
    return await coverage_report(conn, commune, census_round,
                                 _rules(request.app.state.settings))


@router.post("/communes/{code}/ea-generate", status_code=201,
             summary="Draft EAs of a commune from the population raster")
async def generate_eas(
    code: str, request: Request, conn: Conn, user: Writer,
    census_round: Annotated[str, Query(alias="round", pattern=r"^\d{4}$")] = "2029",
    vintage: Annotated[str | None, Query(max_length=32)] = None,
    households_per_ea: Annotated[float, Query(ge=10, le=2000)] = 120,
    replace: Annotated[bool, Query(description="replace the commune's draft EAs")] = False,
) -> dict[str, Any]:
    """A gap-free draft coverage of a commune; only drafts are ever replaced."""
    commune = await store.commune_of(conn, code, vintage)
    store.authorise(user, commune)
    settings: ServiceSettings = request.app.state.settings
    if not settings.population_raster.exists():
        raise Unprocessable("no population raster is configured (GEO_SERVICE_POPULATION_RASTER)",
                            parameter="raster")
    async with conn.transaction():
        await store.lock_commune(conn, census_round, commune.code)
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"SELECT {store.COLUMNS} FROM enumeration_area WHERE"
                              " census_round = %s AND commune_code = %s ORDER BY id",
                              (census_round, commune.code))
            existing = await cur.fetchall()
        if existing and not replace:
            raise Conflict(f"commune {commune.code} already has {len(existing)} EAs in round"
                           f" {census_round}; pass replace=true to replace its drafts",
                           parameter="replace")
        if any(row["status"] != "draft" for row in existing):
            raise Conflict(f"commune {commune.code} has EAs that are no longer drafts; only"
                           " drafts can be replaced", parameter="replace")
        for row in existing:
            await conn.execute("DELETE FROM enumeration_area WHERE id = %s", (row["id"],))
            await store.write_history(conn, row["id"], "delete", row, None, user,
                                      "replaced by a generated draft")
        created = await generate_one(conn, commune.vintage, commune.code, census_round,
                                     settings.population_raster, households_per_ea,
                                     settings.household_size, user.name)
    return {"commune": commune.code, "vintage": commune.vintage, "round": census_round,
            "created": created, "replaced": len(existing)}


async def _estimates(request: Request, geom: Any) -> dict[str, Any]:
    settings: ServiceSettings = request.app.state.settings
    population, households = await store.estimate(settings.population_raster, geom,
                                                  settings.household_size)
    return {"wkb": store.to_wkb(geom), "population": population, "households": households}


@router.post(f"{BASE}/items/{{featureId}}/split", summary="Split an EA along a line",
             response_class=GeoJSONResponse)
async def split_ea(
    featureId: EaId, request: Request, conn: Conn, user: Writer,  # noqa: N803
    body: Annotated[dict[str, Any], Body(description='{"line": GeoJSON LineString}')],
    if_match: Annotated[str | None, Header(max_length=200)] = None,
) -> GeoJSONResponse:
    """The EA keeps the largest part; every other part becomes a new draft EA."""
    if not isinstance(body, dict):
        raise InvalidParameter("the body must be an object with a line", parameter="body")
    line = line_from_geojson(body.get("line"), "line")
    reason = _reason(body.get("reason"))
    async with conn.transaction():
        before, commune = await _locked(conn, featureId, user, if_match, change=True)
        parts = await store.split_parts(conn, featureId, line)
        if len(parts) < 2:
            raise Unprocessable("the line does not cut the EA into parts", parameter="line")
        rules = _rules(request.app.state.settings)
        context = {"round": before["census_round"], "commune": commune.code,
                   "vintage": commune.vintage, "self": featureId}
        await store.checked_parts(conn, parts, context, rules)
        estimates = [await _estimates(request, part) for part in parts]
        warnings = [w for values in estimates
                    if (w := workload_warning(values["households"], rules)) is not None]
        kept = await store.update_geometry(conn, featureId, {
            **estimates[0], "code": None, "user": user.name})
        await store.write_history(conn, featureId, "split", before, kept, user, reason)
        created = []
        for values in estimates[1:]:
            code = await store.next_code(conn, before["census_round"], commune.code)
            row = await store.insert(conn, {
                **values, "round": before["census_round"], "code": code,
                "vintage": commune.vintage, "commune": commune.code, "user": user.name})
            await store.write_history(conn, row["id"], "split", before, row, user, reason)
            created.append(store.as_feature(row))
    return GeoJSONResponse({"type": "FeatureCollection",
                            "features": [store.as_feature(kept), *created],
                            "warnings": warnings})


@router.post(f"{BASE}/merge", summary="Merge EAs of one commune into one",
             response_class=GeoJSONResponse)
async def merge_eas(
    request: Request, conn: Conn, user: Writer,
    body: Annotated[dict[str, Any], Body(description='{"ids": [1, 2, …]}')],
    if_match: Annotated[str | None, Header(max_length=2000,
                                           description="the ETags of all EAs")] = None,
) -> GeoJSONResponse:
    """The EA with the lowest id takes the union of all; the others are deleted (history
    keeps them)."""
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not 2 <= len(ids) <= 100 or len(set(ids)) != len(ids) \
            or not all(type(i) is int and 0 < i < 2**63 for i in ids):
        raise InvalidParameter("ids must list 2 to 100 distinct EA ids", parameter="ids")
    reason = _reason(body.get("reason"))
    ids = sorted(ids)
    # One commune and round, checked before any lock: locks are then taken in one order
    # (the commune's, then the rows' by id), so concurrent merges cannot deadlock.
    keys = {(r["census_round"], r["commune_code"]) for r in
            [await store.fetch(conn, ea_id) for ea_id in ids]}
    if len(keys) != 1:
        raise Unprocessable("EAs of different communes or rounds cannot be merged",
                            parameter="ids")
    async with conn.transaction():
        rows = [(await _locked(conn, ea_id, user, if_match, change=True)) for ea_id in ids]
        union = await store.merged_geometry(conn, ids)
        first, _ = rows[0]
        merged = await store.update_geometry(conn, first["id"], {
            **await _estimates(request, union), "code": None, "user": user.name})
        await store.write_history(conn, first["id"], "merge", first, merged, user, reason)
        for other, _ in rows[1:]:
            await conn.execute("DELETE FROM enumeration_area WHERE id = %s", (other["id"],))
            await store.write_history(conn, other["id"], "merge", other, None, user, reason)
    return _feature_response(merged)


async def _authors(conn: Conn, ea_id: int, row: dict[str, Any]) -> set[str]:
    """Who submitted the EA and who made its current geometry."""
    cur = await conn.execute("SELECT user_name FROM ea_history WHERE ea_id = %s AND action IN"
                             " ('create', 'update', 'split', 'merge', 'generate')"
                             " ORDER BY id DESC LIMIT 1", (ea_id,))
    drawn = await cur.fetchone()
    return {row["updated_by"], *([drawn[0]] if drawn else [])}


# Registered last: its {action} segment would otherwise catch /split.
@router.post(f"{BASE}/items/{{featureId}}/{{action}}", summary="Submit, approve or reject",
             response_class=GeoJSONResponse)
async def transition(
    featureId: EaId, action: Literal["submit", "approve", "reject"],  # noqa: N803
    conn: Conn, user: Writer,
    if_match: Annotated[str | None, Header(max_length=200)] = None,
    reason: Annotated[str | None, Query(max_length=500)] = None,
) -> GeoJSONResponse:
    """Workflow: editors submit drafts; supervisors in scope approve or reject submissions."""
    allowed_from, target, needs = store.TRANSITIONS[action]
    reason = _reason(reason)
    if action == "reject" and not (reason or "").strip():
        raise InvalidParameter("a rejection needs a reason (?reason=…), so the editor knows "
                               "what to change", parameter="reason")
    async with conn.transaction():
        before, _ = await _locked(conn, featureId, user, if_match, needs)
        if action in ("approve", "reject") and user.role != "admin" \
                and user.name in await _authors(conn, featureId, before):
            # four eyes: who drew or submitted an EA does not approve it
            raise Forbidden(f"EA {before['code']} was drawn or submitted by {user.name}: "
                            "another supervisor approves or rejects it", parameter="action")
        if before["status"] not in allowed_from:
            raise InvalidParameter(f"cannot {action} an EA that is {before['status']}",
                                   parameter="action", current_status=before["status"])
        after = await store.set_status(conn, featureId, target, user)
        await store.write_history(conn, featureId, action, before, after, user, reason)
    return _feature_response(after)

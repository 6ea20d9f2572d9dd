"""`/health`: 200 when the database answers and the requests' pool can use it, 503 when not;
200 "read-only" when the primary cannot take writes but a replica serves the reads. Every
answer saying writes fail carries Retry-After. Anyone gets the status (what a load balancer
needs); the versions and the replicas' hosts, ports and lag only an operator: an admin's
token, the metrics token, or (without one) a client on this machine, as for /metrics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from geo_service.db import WritesUnavailable
from geo_service.http.auth import authenticate
from geo_service.http.deps import ControlPool, ServicesDep
from geo_service.http.documents import Health
from geo_service.http.observability import operator_asks, request_id
from geo_service.http.services import Services

router = APIRouter(tags=["service"])

_CHECK_TIMEOUT_S = 3.0
# Retry hints: a database that does not answer; a pool reconnecting to one that does (its
# backoff is 1, 2, … s within GEO_SERVICE_POOL_RECONNECT_TIMEOUT_S).
_RETRY_DOWN_S = 5
_RETRY_RECONNECTING_S = 2
# what only an operator is told: versions an attacker would match against known flaws, and
# the replicas' addresses and lag
_OPERATOR_ONLY = ("postgis", "schema_version", "replicas")


@router.get(
    "/health",
    summary="Service and database health",
    response_model=Health,
    responses={503: {"model": Health, "description": "The database does not answer"}},
)
async def health(request: Request, pool: ControlPool, services: ServicesDep) -> JSONResponse:
    """Report whether the database answers; to an operator also the PostGIS and schema
    versions and each read replica's state and lag."""
    started = time.monotonic()
    replicas = services.replicas.report()
    try:
        # (what a write would get: the database answers on /health's own connection, and
        # the requests' pool, which writes use, lends a working connection in their time)
        postgis, schema = await services.health.status(
            pool, _CHECK_TIMEOUT_S, services.pool, services.settings.pool_timeout_s
        )
    except Exception as exc:  # any failure here means "not healthy"
        retry_after = _RETRY_DOWN_S
        if isinstance(exc, TimeoutError):
            detail = f"the database did not answer within {_CHECK_TIMEOUT_S:g} s"
        elif isinstance(exc, WritesUnavailable):
            detail, retry_after = str(exc), _RETRY_RECONNECTING_S
        else:
            detail = f"the database cannot be used: {type(exc).__name__}"
        headers = {"Retry-After": str(retry_after), "Cache-Control": "no-store"}
        failed: dict[str, Any] = {
            "status": "unavailable",
            "database": "unavailable",
            "detail": detail,
            "request_id": request_id(request.scope),
        }
        if replicas:
            failed |= {"primary": "unavailable", "replicas": replicas}
        if services.replicas.serving():
            # (a load balancer keeps the instance: its reads work; writes answer 503)
            failed |= {
                "status": "read-only",
                "detail": f"the primary: {detail}; reads are served by the replicas, "
                "writes answer 503 until it is back",
            }
            return JSONResponse(_shown_when_down(request, services, failed), headers=headers)
        shown = _shown_when_down(request, services, failed)
        return JSONResponse(shown, status_code=503, headers=headers)
    body: dict[str, Any] = {
        "status": "ok",
        "database": "ok",
        "postgis": postgis,
        "schema_version": schema,
    }
    if replicas:  # (a replica out of rotation is reported; reads go elsewhere: still "ok")
        body |= {"primary": "ok", "replicas": replicas}
    degraded = services.tiles.degraded_caches() if services.started else []
    if degraded:  # (the service still answers: 200, saying what is wrong)
        body |= {
            "status": "degraded",
            "tile_cache": "degraded",
            "detail": f"tile cache {', '.join(degraded)}: a purge failed; nginx may serve "
            "stale tiles until the files can be deleted and the service restarts",
        }
    if not operator_asks(request, services.settings.metrics_token):
        left = _CHECK_TIMEOUT_S - (time.monotonic() - started)
        if not await _admin_asks(request, services, left):
            body = _without_details(body)
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def _shown_when_down(request: Request, services: Services, body: dict[str, Any]) -> dict[str, Any]:
    """The answer when the database does not answer: no token can be checked then, so the
    details go to the metrics token or this machine only."""
    if operator_asks(request, services.settings.metrics_token):
        return body
    return _without_details(body)


def _without_details(body: dict[str, Any]) -> dict[str, Any]:
    """The answer without what only an operator is told."""
    return {k: v for k, v in body.items() if k not in _OPERATOR_ONLY}


async def _admin_asks(request: Request, services: Services, left_s: float) -> bool:
    """Whether the request carries an admin's token, checked on the requests' pool within
    what is left of /health's time (a bad token is 401 as anywhere; no time left, or no
    answer in it, gives the plain answer). Not on /health's own two connections: a flood of
    tokens would hold them from the health checks and the tiles' freshness checks."""
    if not request.headers.get("authorization") or left_s <= 0:
        return False
    try:
        async with asyncio.timeout(left_s):
            async with services.pool.connection(timeout=left_s) as conn:
                user = await authenticate(request, conn, services)
    except (TimeoutError, psycopg.OperationalError):  # (the plain answer, not a 503)
        return False
    return user is not None and user.role == "admin"

"""`/health`: 200 when the database answers, 503 when it does not; 200 "read-only" when the
primary does not answer but a replica serves the reads."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from geo_service.http.deps import ControlPool, ServicesDep
from geo_service.http.documents import Health
from geo_service.http.observability import request_id

router = APIRouter(tags=["service"])

_CHECK_TIMEOUT_S = 3.0


@router.get(
    "/health",
    summary="Service and database health",
    response_model=Health,
    responses={503: {"model": Health, "description": "The database does not answer"}},
)
async def health(request: Request, pool: ControlPool, services: ServicesDep) -> JSONResponse:
    """Report whether the database answers, with PostGIS and schema versions, and each read
    replica's state and lag."""
    replicas = services.replicas.report()
    try:
        postgis, schema = await services.health.status(pool, _CHECK_TIMEOUT_S)
    except Exception as exc:  # any failure here means "not healthy"
        detail = (
            f"the database did not answer within {_CHECK_TIMEOUT_S:g} s"
            if isinstance(exc, TimeoutError)
            else f"the database cannot be used: {type(exc).__name__}"
        )
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
            return JSONResponse(failed, headers={"Cache-Control": "no-store"})
        return JSONResponse(
            failed, status_code=503, headers={"Retry-After": "5", "Cache-Control": "no-store"}
        )
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
    return JSONResponse(body, headers={"Cache-Control": "no-store"})

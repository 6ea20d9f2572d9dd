"""`/health`: 200 when the database answers, 503 when it does not."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool

from geo_service.observability import request_id

router = APIRouter(tags=["service"])

_CHECK_TIMEOUT_S = 3.0


@router.get("/health", summary="Service and database health")
async def health(request: Request) -> JSONResponse:
    """Report whether the database answers, with PostGIS and schema versions."""
    pool: AsyncConnectionPool = request.app.state.pool
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_S):
            async with pool.connection(timeout=_CHECK_TIMEOUT_S) as conn:
                cur = await conn.execute(
                    "SELECT postgis_lib_version(),"
                    " (SELECT max(version) FROM schema_migration)"
                )
                row = await cur.fetchone()
    except Exception as exc:  # any failure here means "not healthy"
        detail = (f"the database did not answer within {_CHECK_TIMEOUT_S:g} s"
                  if isinstance(exc, TimeoutError) else
                  f"the database cannot be used: {type(exc).__name__}")
        body = {"status": "unavailable", "database": "unavailable", "detail": detail,
                "request_id": request_id(request.scope)}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5",
                                                            "Cache-Control": "no-store"})
    postgis, schema = row if row else (None, None)
    body = {"status": "ok", "database": "ok", "postgis": postgis, "schema_version": schema}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})

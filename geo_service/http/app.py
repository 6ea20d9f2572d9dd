"""The FastAPI application factory: the HTTP edge of the service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from geo_service import __version__
from geo_service.db import database_url, service_url
from geo_service.http import observability
from geo_service.http.consistency import ReadYourWrites, writes_nothing
from geo_service.http.deps import on_primary
from geo_service.http.errors import ERROR_RESPONSES, add_exception_handlers
from geo_service.http.middleware import (
    GZipUnlessRefused,
    HeadAsGet,
    LimitBodySize,
    PurgeTilesAfterWrites,
    RefuseNulBytes,
    RefuseWebSockets,
    ResponseDeadline,
    VaryByLanguage,
)
from geo_service.http.ogc import GPKG
from geo_service.http.openapi import OPENAPI_30, openapi_30
from geo_service.http.proxy import ClientAndOrigin
from geo_service.http.routers import (
    aggregate,
    basemaps,
    census,
    crosswalks,
    disclosure,
    ea,
    features,
    health,
    indicators,
    landing,
    maps,
    outputs,
    processes,
    reports,
    tiles,
    users,
    viewer,
)
from geo_service.http.security import SecurityHeaders
from geo_service.http.services import Services
from geo_service.http.static import StaticWithRevalidation, VersionedStatic
from geo_service.http.strict import reject_unknown_parameters
from geo_service.settings import CORS_EXPOSE_HEADERS, ServiceSettings
from geo_service.viewer.assets import STATIC_DIR, VERSIONED_PREFIX, static_version

# Bodies that are compressed already: gzip would cost CPU, gain nothing and drop their length.
COMPRESSED = (
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
)


def create_app(
    settings: ServiceSettings | None = None,
    db_url: str | None = None,
    owner_url: str | None = None,
) -> FastAPI:
    """Build the app; the database is only touched when the app starts. (`db_url`: the
    requests' database, also the owner's unless `owner_url` is given.)"""
    settings = settings or ServiceSettings()
    services = Services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.keep_home_private()
        # requests use the restricted login; the disclosure protection, which writes what may
        # be published, the owner's (requests cannot touch it)
        await services.start(
            db_url or service_url(settings),
            owner_url or db_url or database_url(settings, start=False),
        )
        try:
            yield
        finally:
            await services.stop()

    app = FastAPI(
        title="Vietnam statistical mapping service",
        version=__version__,
        description="Versioned administrative boundaries, indicators, GeoJSON and vector tiles.",
        openapi_url="/api",
        docs_url=None,  # /api.html is served by the landing router with local assets
        redoc_url=None,
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
    )
    app.state.services = services
    _add_openapi_30(app)
    add_exception_handlers(app)
    _add_middleware(app, services)
    _add_routes(app)
    return app


def _add_openapi_30(app: FastAPI) -> None:
    """`/api/3.0`: the OpenAPI document as 3.0 (made once, from the 3.1 one)."""
    made: dict[str, bytes] = {}

    @app.get("/api/3.0", include_in_schema=False)
    async def openapi_30_document() -> Response:
        if "body" not in made:
            made["body"] = orjson.dumps(openapi_30(app.openapi()))
        return Response(made["body"], media_type=OPENAPI_30)


def _add_middleware(app: FastAPI, services: Services) -> None:
    """Innermost first: each one added wraps the ones before it."""
    settings = services.settings
    # the deadline is the app's own; a committed write is never turned into a 503
    app.add_middleware(ResponseDeadline, seconds=settings.response_deadline_s)
    app.add_middleware(PurgeTilesAfterWrites, services=services)
    # a write's answer gets its commit's WAL position (read-your-writes with replicas)
    app.add_middleware(ReadYourWrites, services=services)
    app.add_middleware(RefuseNulBytes)
    app.add_middleware(LimitBodySize, max_bytes=settings.max_body_bytes)
    # (a GeoPackage is sent in byte ranges of the file itself: never gzipped)
    app.add_middleware(GZipUnlessRefused, minimum_size=1024, exclude=(GPKG, *COMPRESSED))
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origin_list,
        allow_methods=["GET", "HEAD", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=list(CORS_EXPOSE_HEADERS),
    )
    app.add_middleware(SecurityHeaders, basemap_url=settings.basemap_url)
    app.add_middleware(VaryByLanguage)  # (inside HeadAsGet, which copies the scope)
    # HEAD is the GET with everything above applied (gzip included), less the body
    app.add_middleware(HeadAsGet)
    app.add_middleware(RefuseWebSockets)
    # outside it, so it sees every response (also the 400s and CORS answers above)
    observability.install(app, services)
    # outermost: every part sees the true client and the origin links must name
    app.add_middleware(ClientAndOrigin, settings=settings)


def _add_routes(app: FastAPI) -> None:
    # first: a map's plain geometry tiles skip route matching and dependency resolution
    # (everything else about tiles, and every error, is the tiles router's below)
    app.router.routes.append(tiles.GeometryTileRoute())
    # the OGC API parts refuse query parameters they do not define
    strict = [Depends(reject_unknown_parameters)]
    # reads that must see the primary's latest state (see deps.on_primary): the rest of
    # the GET routes read from a healthy replica when one is configured
    primary = [Depends(on_primary)]
    app.include_router(landing.router, dependencies=strict)
    app.include_router(health.router)
    app.include_router(users.router, dependencies=primary)
    # (before the generic collections routes)
    app.include_router(ea.router, dependencies=[*primary, *strict])
    app.include_router(outputs.router, dependencies=[*primary, *strict])
    app.include_router(processes.router, dependencies=[*primary, *strict])
    app.include_router(census.router, dependencies=[*primary, *strict])
    app.include_router(features.router, dependencies=strict)
    # (POSTs that only read: no write position in their answers)
    reads_only = [Depends(writes_nothing)]
    app.include_router(aggregate.router, dependencies=reads_only)
    app.include_router(reports.router, dependencies=[*strict, *reads_only])
    app.include_router(disclosure.router, dependencies=primary)
    # (tiles of units read from replicas, EA tiles from the primary: see routers/tiles.py)
    app.include_router(tiles.router, dependencies=strict)
    app.include_router(maps.router)
    app.include_router(basemaps.router)
    app.include_router(viewer.router, dependencies=primary)
    app.mount(
        landing.SWAGGER_UI_PATH, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui"
    )
    # (the versioned mount first: "/static" would take its paths too)
    app.mount(
        VERSIONED_PREFIX,
        VersionedStatic(STATIC_DIR, static_version()),
        name="static-versioned",
    )
    app.mount("/static", StaticWithRevalidation(directory=STATIC_DIR), name="static")
    app.include_router(indicators.router, dependencies=strict)
    app.include_router(crosswalks.router, dependencies=strict)

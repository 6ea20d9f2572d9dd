"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from geo_service import __version__
from geo_service.auth import FailedAttempts
from geo_service.db import close_pool, database_url, open_pool
from geo_service.errors import (
    ERROR_RESPONSES,
    LimitBodySize,
    RefuseNulBytes,
    ResponseDeadline,
    add_exception_handlers,
)
from geo_service.negotiation import GZipUnlessRefused
from geo_service.observability import install as install_observability
from geo_service.routers import (
    aggregate,
    ea,
    features,
    health,
    indicators,
    landing,
    maps,
    tiles,
    users,
    viewer,
)
from geo_service.routers.strict import reject_unknown_parameters
from geo_service.settings import CORS_EXPOSE_HEADERS, ServiceSettings
from geo_service.tiles.service import TileService
from geo_service.tiles.writes import PurgeTilesAfterWrites

STATIC_DIR = Path(__file__).resolve().parent / "static"


def create_app(settings: ServiceSettings | None = None, db_url: str | None = None) -> FastAPI:
    """Build the app; the database is only touched when the app starts."""
    settings = settings or ServiceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = db_url or database_url(settings, start=False)
        await open_pool(app, url, settings)
        try:
            app.state.tiles = TileService(settings)
            await app.state.tiles.start(app.state.pool, url)
        except BaseException:
            await close_pool(app)  # (an open pool keeps the process from exiting)
            raise
        try:
            yield
        finally:
            await app.state.tiles.stop()
            await close_pool(app)

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
    app.state.settings = settings
    app.state.failed_auth = FailedAttempts()
    add_exception_handlers(app)
    # innermost: the deadline is the app's own; a committed write is never turned into a 503
    app.add_middleware(ResponseDeadline, seconds=settings.response_deadline_s)
    app.add_middleware(PurgeTilesAfterWrites)
    app.add_middleware(RefuseNulBytes)
    app.add_middleware(LimitBodySize, max_bytes=settings.max_body_bytes)
    app.add_middleware(GZipUnlessRefused, minimum_size=1024)
    app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origin_list,
                       allow_methods=["GET", "HEAD", "OPTIONS"], allow_headers=["*"],
                       expose_headers=list(CORS_EXPOSE_HEADERS))
    # Outermost, so it sees every response (also the 400s and CORS answers above).
    install_observability(app, settings.access_log, settings.basemap_url)
    # the OGC API parts refuse query parameters they do not define
    strict = [Depends(reject_unknown_parameters)]
    app.include_router(landing.router, dependencies=strict)
    app.include_router(health.router)
    app.include_router(users.router)
    app.include_router(ea.router, dependencies=strict)  # before the generic collections routes
    app.include_router(features.router, dependencies=strict)
    app.include_router(aggregate.router)
    app.include_router(tiles.router, dependencies=strict)
    app.include_router(maps.router)
    app.include_router(viewer.router)
    app.mount(landing.SWAGGER_UI_PATH, StaticFiles(directory=str(swagger_ui_path)),
              name="swagger-ui")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(indicators.router, dependencies=strict)
    return app

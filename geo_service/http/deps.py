"""Typed dependencies of the routes: the shared services and a pooled connection.

(All `async def`: FastAPI runs a plain `def` dependency in a worker thread, which costs a
thread hop per dependency and request.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, cast

import psycopg
from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from geo_service.basemaps.registry import BaseMaps
from geo_service.ea.service import EaService
from geo_service.features.catalogue import CollectionCatalogue
from geo_service.http.consistency import position_key, written_at
from geo_service.http.downloads import DownloadLimits
from geo_service.http.limits import ConcurrencyLimits
from geo_service.http.negotiation import LANGUAGE_READ, request_language
from geo_service.http.services import Services
from geo_service.jobs.service import Jobs
from geo_service.outputs.page_workers import PageWorkers
from geo_service.settings import ServiceSettings
from geo_service.tiles.service import TileService
from geo_service.viewer.page import PageVintages
from geo_service.viewer.tables import UnitTables


async def get_services(request: Request) -> Services:
    """The app's shared services (the one thing kept on `app.state`)."""
    return cast(Services, request.app.state.services)


ServicesDep = Annotated[Services, Depends(get_services)]


async def _settings(services: ServicesDep) -> ServiceSettings:
    return services.settings


# Requests that only read (GET, HEAD) go to a replica when one is healthy; routers that
# must see the primary's latest state even when they read (EA editing, accounts) opt out
# with `on_primary`, set where the app includes them.
_READS = frozenset({"GET", "HEAD"})
_ON_PRIMARY = "geo_service.on_primary"


async def on_primary(request: Request) -> None:
    """Router dependency: this router's requests use the primary, reads included."""
    request.scope[_ON_PRIMARY] = True


async def read_pool(request: Request, services: ServicesDep) -> AsyncConnectionPool:
    """The pool this request reads from: a healthy replica for reads, else the primary."""
    if request.method in _READS and not request.scope.get(_ON_PRIMARY):
        # (a read after the client's own write: only a replica that has replayed it)
        position = written_at(request, position_key(services.settings))
        return await services.read_pool_after(position)
    return services.pool


async def _control(services: ServicesDep) -> AsyncConnectionPool:
    return services.control


async def _tiles(services: ServicesDep) -> TileService:
    return services.tiles


async def _catalogue(services: ServicesDep) -> CollectionCatalogue:
    return services.catalogue


async def _ea(services: ServicesDep) -> EaService:
    return services.ea


async def _language(request: Request) -> str:
    # (the answer now depends on Accept-Language: VaryByLanguage says so to caches)
    request.scope[LANGUAGE_READ] = True
    return request_language(request.headers.get("accept-language", ""))


async def _downloads(services: ServicesDep) -> DownloadLimits:
    return services.downloads


async def _aggregates(services: ServicesDep) -> ConcurrencyLimits:
    return services.aggregates


def client_address(request: Request) -> str:
    """The client's address (the proxy's client when a trusted proxy forwarded it)."""
    return request.client.host if request.client else "?"


async def _renders(services: ServicesDep) -> ConcurrencyLimits:
    return services.renders


async def _page_workers(services: ServicesDep) -> PageWorkers:
    return services.page_workers


async def _jobs(services: ServicesDep) -> Jobs:
    return services.jobs


async def _basemaps(services: ServicesDep) -> BaseMaps:
    return services.basemaps


async def _unit_tables(services: ServicesDep) -> UnitTables:
    return services.unit_tables


async def _page_vintages(services: ServicesDep) -> PageVintages:
    return services.page_vintages


async def _conn(
    pool: Annotated[AsyncConnectionPool, Depends(read_pool)],
) -> AsyncIterator[psycopg.AsyncConnection]:
    async with pool.connection() as conn:
        yield conn


Settings = Annotated[ServiceSettings, Depends(_settings)]
Pool = Annotated[AsyncConnectionPool, Depends(read_pool)]
ControlPool = Annotated[AsyncConnectionPool, Depends(_control)]
Tiles = Annotated[TileService, Depends(_tiles)]
Catalogue = Annotated[CollectionCatalogue, Depends(_catalogue)]
EaOps = Annotated[EaService, Depends(_ea)]
Downloads = Annotated[DownloadLimits, Depends(_downloads)]
Aggregates = Annotated[ConcurrencyLimits, Depends(_aggregates)]
Renders = Annotated[ConcurrencyLimits, Depends(_renders)]
BookWorkers = Annotated[PageWorkers, Depends(_page_workers)]
JobsDep = Annotated[Jobs, Depends(_jobs)]
BaseMapsDep = Annotated[BaseMaps, Depends(_basemaps)]
UnitTablesDep = Annotated[UnitTables, Depends(_unit_tables)]
PageVintagesDep = Annotated[PageVintages, Depends(_page_vintages)]
# The client's language for texts in answers (Accept-Language: vi or en; en by default).
Language = Annotated[str, Depends(_language)]
# A pooled connection for one request (given back when the response is sent).
Conn = Annotated[psycopg.AsyncConnection, Depends(_conn)]

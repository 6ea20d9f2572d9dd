"""`/map` (the choropleth explorer) and `/map/ea` (the EA editor): Folium pages."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from geo_service.http.deps import BaseMapsDep, Conn, PageVintagesDep, Settings
from geo_service.http.security import page_response
from geo_service.viewer.census_pages import render_progress_page, render_users_page
from geo_service.viewer.ea_page import render_ea_page
from geo_service.viewer.page import render_map_page

router = APIRouter(tags=["viewer"])


@router.get("/map", response_class=HTMLResponse, summary="The map viewer")
async def map_page(
    request: Request,
    conn: Conn,
    settings: Settings,
    basemaps: BaseMapsDep,
    vintages: PageVintagesDep,
) -> HTMLResponse:
    """Choropleth of an indicator; every choice, the view and the selection are in the URL
    (a shareable link)."""
    page = await render_map_page(
        conn,
        dict(request.query_params),
        request.scope.get("root_path", ""),
        basemaps.listing(),
        settings.basemap_url,
        settings.basemap_attribution,
        private_reads=not settings.public_reads,
        kept=vintages,
    )
    return page_response(page, settings.basemap_url)


@router.get("/map/ea", response_class=HTMLResponse, summary="The enumeration-area editor")
async def ea_editor_page(
    request: Request, conn: Conn, settings: Settings, basemaps: BaseMapsDep
) -> HTMLResponse:
    """A commune's EAs with draw/edit/split/merge/delete tools and the coverage report, over
    the same base maps, imagery and overlays as the viewer."""
    page = await render_ea_page(
        conn,
        dict(request.query_params),
        request.scope.get("root_path", ""),
        settings,
        basemaps.listing(),
    )
    return page_response(page, settings.basemap_url)


@router.get("/map/ea/progress", response_class=HTMLResponse, summary="Census progress page")
async def progress_page(request: Request) -> HTMLResponse:
    """EAs by status, assignments and supervisor areas in every commune of a scope."""
    return page_response(
        render_progress_page(dict(request.query_params), request.scope.get("root_path", ""))
    )


@router.get("/map/users", response_class=HTMLResponse, summary="User administration page")
async def users_page(request: Request) -> HTMLResponse:
    """Create users, set role and scope, reset passwords, revoke tokens (administrators)."""
    return page_response(
        render_users_page(dict(request.query_params), request.scope.get("root_path", ""))
    )

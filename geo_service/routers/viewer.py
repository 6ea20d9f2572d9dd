"""`/map` (the choropleth explorer) and `/map/ea` (the EA editor): Folium pages."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from geo_service.db import Conn
from geo_service.errors import GeoServiceError
from geo_service.viewer.data import choropleth_body
from geo_service.viewer.ea_page import render_ea_page
from geo_service.viewer.page import render_page, resolve_state

router = APIRouter(tags=["viewer"])


@router.get("/map", response_class=HTMLResponse, summary="The map viewer")
async def map_page(request: Request, conn: Conn) -> HTMLResponse:
    """Choropleth of an indicator; every control is a URL parameter (a shareable link)."""
    state = await resolve_state(conn, dict(request.query_params))
    try:
        choropleth = await choropleth_body(conn, f"{state.level}-{state.vintage}",
                                           state.indicator, state.period, state.method,
                                           state.k, state.palette, state.breaks, units=False)
    except GeoServiceError as exc:  # e.g. unusable manual breaks: show defaults instead
        state.messages.append(exc.message)
        state.method, state.breaks = "quantiles", None
        choropleth = await choropleth_body(conn, f"{state.level}-{state.vintage}",
                                           state.indicator, state.period, "quantiles",
                                           state.k, state.palette, None, units=False)
    settings = request.app.state.settings
    api = request.scope.get("root_path", "")
    page = await render_page(conn, state, choropleth, api, settings.basemap_url,
                             settings.basemap_attribution)
    # Content-Security-Policy and the other security headers: geo_service.observability.
    return HTMLResponse(page)


@router.get("/map/ea", response_class=HTMLResponse, summary="The enumeration-area editor")
async def ea_editor_page(request: Request, conn: Conn) -> HTMLResponse:
    """A commune's EAs with draw/edit/split/merge/delete tools and the coverage report."""
    settings = request.app.state.settings
    page = await render_ea_page(conn, dict(request.query_params),
                                request.scope.get("root_path", ""), settings)
    return HTMLResponse(page)

"""The landing page `/`, the OGC conformance classes and the API documentation page."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from geo_core.errors import NotAcceptable
from geo_service import __version__
from geo_service.http.documents import Conformance, LandingPage, Link
from geo_service.http.negotiation import best_media_type
from geo_service.http.ogc import CONFORMANCE
from geo_service.http.openapi import OPENAPI_30, OPENAPI_31
from geo_service.http.security import page_response
from geo_service.http.vendor import Vendor, VendorParams
from geo_service.viewer.home import home_page

router = APIRouter(tags=["service"])

# Swagger UI's files come from the swagger-ui-bundle-v2 package, served under this path,
# so the documentation page makes no request to another host.
SWAGGER_UI_PATH = "/static/swagger-ui"


def _link(request: Request, path: str, rel: str, media_type: str, title: str) -> Link:
    return Link(
        href=str(request.url_for("landing_page")).rstrip("/") + path,
        rel=rel,
        type=media_type,
        title=title,
    )


@router.get(
    "/",
    name="landing_page",
    summary="Landing page",
    response_model=LandingPage,
    response_model_exclude_unset=True,
    responses={200: {"content": {"text/html": {}}}},
)
async def landing_page(
    request: Request,
    vendor: Vendor,
    f: Annotated[
        Literal["json", "html"] | None,
        Query(description="json (the OGC API landing page) or html (a page for people)"),
    ] = None,
) -> Response | LandingPage:
    """OGC API landing page (JSON); a browser (Accept: text/html, or f=html) gets a page
    linking the map, the EA editor and the API documentation."""
    if f == "html" or (f is None and _prefers_html(request.headers.get("accept", ""))):
        root = request.scope.get("root_path", "").rstrip("/")
        return page_response(home_page(root, __version__))
    return _landing_document(request, vendor)


# JSON first: a client that accepts anything (*/*) gets the OGC document.
_LANDING = ["application/json", "text/html"]


def _prefers_html(accept: str) -> bool:
    try:
        return best_media_type(accept, _LANDING) == "text/html"
    except NotAcceptable:  # neither: the JSON document, as before
        return False


def _landing_document(request: Request, vendor: VendorParams) -> LandingPage:
    """The OGC API landing document: what this service is and where its parts live."""
    return LandingPage(
        title="Vietnam statistical mapping service",
        description="Administrative boundaries by vintage, statistical indicators, "
        "GeoJSON (OGC API - Features) and vector tiles.",
        version=__version__,
        links=[
            _link(request, "/", "self", "application/json", "This document"),
            _link(request, "/api", "service-desc", OPENAPI_31, "The API definition (OpenAPI 3.1)"),
            _link(
                request,
                "/api/3.0",
                "service-desc",
                OPENAPI_30,
                "The API definition as OpenAPI 3.0",
            ),
            _link(request, "/api.html", "service-doc", "text/html", "The API documentation"),
            _link(request, "/health", "status", "application/json", "Service health"),
            _link(
                request,
                "/conformance",
                "conformance",
                "application/json",
                "OGC conformance classes",
            ),
            _link(
                request,
                "/collections" + vendor.query(),
                "data",
                "application/json",
                "Boundary collections (one per level and vintage)",
            ),
            _link(request, "/indicators", "data", "application/json", "Indicator catalogue"),
            _link(
                request,
                "/tileMatrixSets",
                "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes",
                "application/json",
                "Tiling schemes of the vector tiles",
            ),
            _link(request, "/map", "alternate", "text/html", "Map viewer"),
            _link(request, "/map/ea", "alternate", "text/html", "Enumeration-area editor"),
        ],
    )


@router.get("/conformance", summary="Conformance classes")
async def conformance(vendor: Vendor) -> Conformance:
    """The OGC conformance classes this service implements (`indicator` and `period` are
    accepted and change nothing here)."""
    return Conformance(conformsTo=CONFORMANCE)


@router.get("/api.html", include_in_schema=False)
async def api_documentation(request: Request) -> HTMLResponse:
    """Swagger UI for the OpenAPI document, with its assets served by this service."""
    root = request.scope.get("root_path", "").rstrip("/")
    assets = root + SWAGGER_UI_PATH
    page = get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - API",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon-32x32.png",
    )
    return page_response(bytes(page.body).decode())

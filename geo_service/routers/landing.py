"""The landing page `/` with links to everything the service offers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from geo_service import __version__

router = APIRouter(tags=["service"])


def _link(request: Request, path: str, rel: str, media_type: str, title: str) -> dict[str, str]:
    return {"href": str(request.url_for("landing_page")).rstrip("/") + path, "rel": rel,
            "type": media_type, "title": title}


@router.get("/", name="landing_page", summary="Landing page")
async def landing_page(request: Request) -> dict[str, Any]:
    """OGC API landing page: what this service is and where its parts live."""
    return {
        "title": "Vietnam statistical mapping service",
        "description": "Administrative boundaries by vintage, statistical indicators, "
        "GeoJSON (OGC API - Features) and vector tiles.",
        "version": __version__,
        "links": [
            _link(request, "/", "self", "application/json", "This document"),
            _link(request, "/api", "service-desc", "application/vnd.oai.openapi+json;version=3.0",
                  "The API definition (OpenAPI)"),
            _link(request, "/api.html", "service-doc", "text/html", "The API documentation"),
            _link(request, "/health", "status", "application/json", "Service health"),
            _link(request, "/conformance", "conformance", "application/json",
                  "OGC conformance classes"),
            _link(request, "/collections", "data", "application/json",
                  "Boundary collections (one per level and vintage)"),
            _link(request, "/indicators", "data", "application/json", "Indicator catalogue"),
            _link(request, "/map", "alternate", "text/html", "Map viewer"),
            _link(request, "/map/ea", "alternate", "text/html", "Enumeration-area editor"),
        ],
    }

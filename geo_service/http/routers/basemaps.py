"""`/basemaps`: the base maps and overlays the service serves itself (MBTiles, PMTiles,
GeoTIFF/COG tiles; the roads as GeoJSON), so the map page talks to one origin only."""

from __future__ import annotations

import asyncio
import gzip
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, Response

from geo_core.errors import NotFound
from geo_core.grid import is_valid
from geo_service.http.deps import BaseMapsDep
from geo_service.http.documents import BaseMapList
from geo_service.http.negotiation import accepts_encoding

router = APIRouter(tags=["basemaps"])

# Base map files change only when the operator replaces them (and restarts the service).
CACHE_CONTROL = "public, max-age=86400"
LayerId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]


@router.get("/basemaps", summary="Base maps and overlays", response_model_exclude_unset=True)
async def list_basemaps(basemaps: BaseMapsDep) -> BaseMapList:
    """Every configured layer with its attribution; one whose file is missing or unreadable
    is listed as unavailable with the reason."""
    return BaseMapList.model_validate({"basemaps": basemaps.listing()})


@router.get(
    "/basemaps/{basemapId}/{z}/{x}/{y}",
    summary="A tile of a base map",
    responses={200: {"content": {"image/png": {}, "application/vnd.mapbox-vector-tile": {}}}},
)
async def basemap_tile(
    basemapId: LayerId,
    z: Annotated[int, Path(ge=0, le=24)],
    x: Annotated[int, Path(ge=0)],
    y: Annotated[int, Path(ge=0)],
    request: Request,
    basemaps: BaseMapsDep,
) -> Response:
    """The stored tile (MBTiles, PMTiles) or a PNG rendered from a GeoTIFF; 404 where the
    layer has none."""
    if not is_valid(z, x, y):
        raise NotFound(f"no tile {z}/{x}/{y} in the WebMercatorQuad grid", parameter="z")
    tile = await asyncio.to_thread(basemaps.tile, basemapId, z, x, y)
    if tile is None:
        raise NotFound(f"no tile {z}/{x}/{y} in basemap {basemapId!r}", parameter="z")
    headers = {"Cache-Control": CACHE_CONTROL, "Vary": "Accept-Encoding"}
    data = tile.data
    if tile.encoding == "gzip":
        if accepts_encoding(request.headers.get("accept-encoding", ""), "gzip"):
            headers["Content-Encoding"] = "gzip"
        else:
            data = gzip.decompress(data)
    return Response(data, media_type=tile.media_type, headers=headers)


@router.get("/basemaps/{basemapId}/data.geojson", summary="A GeoJSON overlay (the roads)")
async def basemap_geojson(basemapId: LayerId, basemaps: BaseMapsDep) -> FileResponse:
    """The overlay's features as one GeoJSON file."""
    layer = basemaps.get(basemapId)
    if layer.kind != "geojson" or layer.path is None or not layer.available:
        raise NotFound(
            f"basemap {basemapId!r} is not an available GeoJSON layer", parameter="basemapId"
        )
    return FileResponse(
        layer.path, media_type="application/geo+json", headers={"Cache-Control": CACHE_CONTROL}
    )

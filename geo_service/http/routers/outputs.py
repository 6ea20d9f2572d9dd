"""Outputs people take away: EA downloads, map exports, EA field maps and map books, area
reports. Every file is made in full before its first byte is sent: a failure is an error
answer, never a truncated file."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from psycopg_pool import AsyncConnectionPool

from geo_core.errors import Forbidden
from geo_service.ea import sql as ea_sql
from geo_service.http.deps import client_address
from geo_service.http.downloads import (
    DownloadLimits,
    SpooledResponse,
    TemporaryFileResponse,
)
from geo_service.messages import said
from geo_service.outputs import ea_export
from geo_service.settings import ServiceSettings
from geo_service.users import User

router = APIRouter(tags=["outputs"])


def read_scope(user: User | None, settings: ServiceSettings) -> list[str] | None:
    """The codes a reader may see EAs of: everywhere when reads are public (or for an
    admin), else the user's scope."""
    if settings.public_reads or user is None or user.role == "admin":
        return None
    return list(user.scope)


def check_readable(
    user: User | None, settings: ServiceSettings, commune: str, province: str | None
) -> None:
    """403 naming the commune when reads are restricted and it is outside the user's scope."""
    scope = read_scope(user, settings)
    if scope is not None and user is not None and not user.covers(commune, province):
        raise Forbidden(said("out_of_scope", commune=commune, user=user.name), parameter="commune")


async def ea_download(
    request: Request,
    user: User | None,
    pool: AsyncConnectionPool,
    settings: ServiceSettings,
    downloads: DownloadLimits,
    filters: ea_sql.ListFilter,
    fmt: str,
    limit: int | None,
    offset: int,
) -> Response:
    """The EAs the filters match (within the reader's scope) as a GeoJSON, CSV, GeoPackage
    or zipped Shapefile file."""
    scope = read_scope(user, settings)
    if filters.commune is not None:
        async with pool.connection() as conn:
            commune = await ea_sql.commune_with_province(conn, filters.commune)
        if commune is not None:
            check_readable(user, settings, filters.commune, commune["province"])
    selection = ea_export.EaSelection(filters, scope, limit, offset)
    release = downloads.open(f"user {user.name}" if user else client_address(request))
    name = "enumeration-areas" + (f"-{filters.commune}" if filters.commune else "")
    try:
        async with downloads.reading():
            async with pool.connection() as conn:
                matched = await ea_sql.count_exported(conn, filters, scope)
            returned = max(0, min(matched - offset, limit if limit is not None else matched))
            headers = {
                "OGC-NumberMatched": str(matched),
                "OGC-NumberReturned": str(returned),
                "Content-Crs": "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>",
            }
            if settings.public_reads is False:
                headers["Cache-Control"] = "private"
            spool_bytes = settings.download_spool_mb * 1024 * 1024
            media_type = ea_export.MEDIA_TYPES[fmt]
            if fmt in ("geojson", "csv"):
                make = ea_export.spool_geojson if fmt == "geojson" else ea_export.spool_csv
                spool = await make(pool, selection, spool_bytes)
                suffix = "geojson" if fmt == "geojson" else "csv"
                headers["Content-Disposition"] = f'attachment; filename="{name}.{suffix}"'
                return SpooledResponse(spool, release, settings.send_timeout_s, media_type, headers)
            path = await ea_export.build_file(pool, selection, fmt)
    except BaseException:
        release()
        raise
    suffix = "gpkg" if fmt == "gpkg" else "shp.zip"
    headers["Content-Disposition"] = f'attachment; filename="{name}.{suffix}"'
    return TemporaryFileResponse(path, release, settings.send_timeout_s, media_type, headers)

"""Outputs people take away: EA downloads, map exports, EA field maps and map books, area
reports. Every file is made in full before its first byte is sent: a failure is an error
answer, never a truncated file."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from psycopg_pool import AsyncConnectionPool

from geo_core.errors import InvalidParameter
from geo_core.text import CODE, NUMBERS, check_text
from geo_service.ea import sql as ea_sql
from geo_service.ea.access import ReadScope, check_commune
from geo_service.ea.service import fetch
from geo_service.features.query import parse_bbox
from geo_service.features.sql import statement_time_limit
from geo_service.http.auth import EaScopeReleased, ReaderReleased
from geo_service.http.deps import (
    BookWorkers,
    Downloads,
    JobsDep,
    Language,
    Pool,
    Renders,
    Settings,
    client_address,
)
from geo_service.http.downloads import (
    DownloadLimits,
    SpooledResponse,
    TemporaryFileResponse,
    asked_headers_only,
    headers_only,
)
from geo_service.http.routers import maps, processes
from geo_service.jobs import ea_exports, map_books
from geo_service.jobs.service import Jobs
from geo_service.outputs import ea_export, field_maps
from geo_service.outputs import maps as maps_outputs
from geo_service.settings import ServiceSettings
from geo_service.users import User

router = APIRouter(tags=["outputs"])
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_SUFFIX = {"geojson": "geojson", "csv": "csv", "gpkg": "gpkg", "shp": "shp.zip"}


async def ea_download(
    request: Request,
    user: User | None,
    scope: ReadScope,
    pool: AsyncConnectionPool,
    settings: ServiceSettings,
    downloads: DownloadLimits,
    filters: ea_sql.ListFilter,
    fmt: str,
    limit: int | None,
    offset: int,
    jobs: Jobs,
    language: str,
    timeout_ms: int | None = None,
) -> Response:
    """The EAs the filters match (within the reader's scope) as a GeoJSON, CSV, GeoPackage
    or zipped Shapefile file (each statement stopped after `timeout_ms`, when given). A
    file of more than `GEO_SERVICE_EA_EXPORT_SYNC_EAS` EAs, in any format, is built as a
    job (`ea-export`) and answered 202 with `Location: /jobs/{id}` at once: the EAs are
    counted first, and a file that large would outlast the response deadline, so waiting
    for it would only hold the client."""
    selection = ea_export.EaSelection(filters, limit, offset, timeout_ms)
    client = f"user {user.name}" if user else client_address(request)
    release = downloads.open(client)
    name = "enumeration-areas" + (f"-{filters.commune}" if filters.commune else "")
    job: tuple[dict[str, Any], bool] | None = None
    try:
        async with downloads.reading():
            async with pool.connection() as conn, statement_time_limit(conn, timeout_ms):
                matched = await ea_sql.count_exported(conn, filters)
                returned = max(0, min(matched - offset, limit if limit is not None else matched))
                large = returned > settings.ea_export_sync_eas
                if large and asked_headers_only(request):
                    # (a HEAD starts no job: 202, as the GET answers; the job's Location
                    # comes with the GET)
                    release()
                    return headers_only("application/json", {}, 202)
                if large:
                    asked = ea_exports.export_request(selection, fmt, returned)
                    job = await jobs.submit(conn, asked, client)
            if job is None:
                headers = {
                    "OGC-NumberMatched": str(matched),
                    "OGC-NumberReturned": str(returned),
                    "Content-Crs": "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>",
                    "Content-Disposition": f'attachment; filename="{name}.{_SUFFIX[fmt]}"',
                }
                if not scope.everywhere or not settings.public_reads:
                    headers["Cache-Control"] = "private"
                spool_bytes = settings.download_spool_mb * 1024 * 1024
                media_type = ea_export.MEDIA_TYPES[fmt]
                if asked_headers_only(request):  # (a HEAD: the file is not built)
                    release()
                    return headers_only(media_type, headers)
                if fmt in ("geojson", "csv"):
                    make = ea_export.spool_geojson if fmt == "geojson" else ea_export.spool_csv
                    spool = await make(pool, selection, spool_bytes)
                    return SpooledResponse(
                        spool, release, settings.send_timeout_s, media_type, headers
                    )
                path = await ea_export.build_file(pool, selection, fmt)
    except BaseException:
        release()
        raise
    if job is not None:
        release()  # (the job's file is the worker's to build; the answer waits for it)
        return await processes.answer_by_job(
            request, pool, jobs, *job, settings, language, wait=False
        )
    return TemporaryFileResponse(path, release, settings.send_timeout_s, media_type, headers)


@router.get(
    "/maps/export",
    summary="The map as a PNG or PDF page",
    responses={200: {"content": {"image/png": _BINARY, "application/pdf": _BINARY}}},
)
async def map_export(
    request: Request,
    pool: Pool,
    renders: Renders,
    settings: Settings,
    collection: maps.Collection,
    indicator: maps.Indicator,
    period: maps.Period = None,
    method: maps.Method = "quantiles",
    k: maps.Classes = 5,
    palette: maps.Palette = None,
    breaks: maps.Breaks = None,
    compare: maps.Compare = None,
    compare_vintage: maps.CompareVintage = None,
    change: maps.Change = "absolute",
    within: maps.Within = None,
    bbox: maps.Bbox = None,
    extent: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=NUMBERS,
            description="the map's frame W,S,E,N (longitude/latitude): the viewer's view",
        ),
    ] = None,
    layout: Annotated[
        str, Query(max_length=10, pattern=CODE, description="slide (16:9), a4 or a3")
    ] = "a4",
    orientation: Annotated[
        str, Query(max_length=10, pattern=CODE, description="landscape or portrait")
    ] = "landscape",
    lang: Annotated[str, Query(max_length=2, pattern=CODE, description="vi or en")] = "vi",
    format: Annotated[str, Query(max_length=4, pattern=CODE, description="png or pdf")] = "pdf",
    title: Annotated[
        str | None, Query(max_length=200, description="instead of the indicator's name")
    ] = None,
    labels: Annotated[bool, Query(description="write unit names where they fit")] = True,
) -> Response:
    """The choropleth of `/maps/choropleth` (same parameters, same classes and colours)
    drawn on a page: title, subtitle, legend with method and breaks, suppressed and
    not-available swatches, scale bar, north arrow, source, licence, date and office; made
    in full before it is sent."""
    maps_outputs.check_page(layout, orientation, format, lang)
    frame = _extent(extent) if extent else None
    asked = maps_outputs.ExportRequest(
        maps._query(collection, indicator, period, compare, compare_vintage, change, within, bbox),
        method,
        k,
        palette,
        breaks,
        frame,
        layout,
        orientation,
        lang,
        format,
        check_text(title, "title", 200) if title else None,
        labels,
    )
    # (a few pages drawn at once, each client one; no connection held while drawing)
    async with renders.slot(client_address(request)) as held:
        async with pool.connection() as conn:
            prepared = await maps_outputs.prepare_map(conn, asked, settings)
        made = await held.thread(maps_outputs.draw_prepared, prepared)
    name = f"{indicator}-{collection}-{layout}.{format}"
    return Response(
        made.content,
        media_type=made.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Map-Crs": f"EPSG:{made.epsg}",
            "Map-Extent": ",".join(f"{v:.2f}" for v in made.extent),
            "Map-Frame": ",".join(str(v) for v in made.frame_px),
        },
    )


def _extent(text: str) -> tuple[float, float, float, float]:
    """A W,S,E,N frame in longitude/latitude; an error names `extent`."""
    try:
        box = parse_bbox(text)
    except InvalidParameter as exc:
        raise InvalidParameter(exc.message.replace("bbox", "extent"), parameter="extent") from exc
    _check_lonlat(box, "extent")
    return box


def _check_lonlat(box: tuple[float, float, float, float], parameter: str) -> None:
    if not (-180 <= box[0] < box[2] <= 180 and -90 <= box[1] < box[3] <= 90):
        raise InvalidParameter(
            f"{parameter} must be west,south,east,north in longitude/latitude",
            parameter=parameter,
        )


PDF = "application/pdf"
Lang = Annotated[Literal["vi", "en"], Query(description="the page's language")]


@router.get(
    "/collections/enumeration-areas/items/{featureId}/field-map.pdf",
    summary="An EA's field map (A4 PDF) for its enumerator",
    responses={200: {"content": {PDF: _BINARY}}},
)
async def ea_field_map(
    featureId: Annotated[int, Path(ge=1, le=2**63 - 1, description="the EA's id")],
    request: Request,
    pool: Pool,
    renders: Renders,
    user: ReaderReleased,
    scope: EaScopeReleased,
    settings: Settings,
    lang: Lang = "vi",
) -> Response:
    """The EA over the loaded roads, rivers and railways, its neighbours with their codes,
    the commune boundary, code, commune, province, households, enumerator and supervisor,
    a boundary description field, scale bar and north arrow."""
    async with renders.slot(f"user {user.name}" if user else client_address(request)) as held:
        async with pool.connection() as conn:
            row = await fetch(conn, featureId)
            await check_commune(conn, scope, row["commune_code"], vintage=row["commune_vintage"])
            sheet = await field_maps.field_map_sheet(conn, row, settings, lang, scope.codes)
        content = await held.thread(field_maps.field_map_pdf, sheet, row["code"])
    return Response(
        content,
        media_type=PDF,
        headers={"Content-Disposition": f'attachment; filename="ea-{row["code"]}.pdf"'},
    )


@router.get(
    "/communes/{code}/ea-map-book.pdf",
    summary="A commune's EA map book (PDF): an overview, then one page per EA",
    responses={200: {"content": {PDF: _BINARY}}},
)
async def ea_map_book(
    code: Annotated[str, Path(pattern=r"^\d{5}$", description="the commune's code")],
    request: Request,
    pool: Pool,
    user: ReaderReleased,
    scope: EaScopeReleased,
    settings: Settings,
    downloads: Downloads,
    renders: Renders,
    workers: BookWorkers,
    jobs: JobsDep,
    language: Language,
    census_round: Annotated[
        str | None, Query(alias="round", pattern=r"^\d{4}$", description="default: the latest")
    ] = None,
    lang: Lang = "vi",
) -> Response:
    """Every EA of the commune in one PDF, written page by page to disk (memory stays flat)
    and sent once complete. A book of more than `GEO_SERVICE_MAP_BOOK_SYNC_EAS` EAs is made
    as a background job (joined when the same book is being made): the answer waits for it
    while the response deadline allows, then is 202 with `Location: /jobs/{id}`."""
    client = f"user {user.name}" if user else client_address(request)
    async with pool.connection() as conn:
        book = await map_books.book_request(conn, code, census_round, lang, scope)
        if book.eas > settings.map_book_sync_eas:
            job, joined = await jobs.submit(conn, book, client)
        else:
            sheet = await field_maps.commune_sheet(
                conn, code, book.census_round, settings, lang, vintage=book.vintage
            )
    if book.eas > settings.map_book_sync_eas:
        return await processes.answer_by_job(request, pool, jobs, job, joined, settings, language)
    release = downloads.open(client)
    try:
        async with renders.slot(client) as held:
            path = await held.thread(field_maps.map_book_file, sheet, workers)
    except BaseException:
        release()
        raise
    headers = {"Content-Disposition": f'attachment; filename="{book.file_name}"'}
    return TemporaryFileResponse(path, release, settings.send_timeout_s, PDF, headers)

"""Long outputs as background jobs, in the shape of OGC API – Processes (Part 1): a map
book, an area report or an EA download is asked for with `POST /processes/{id}/execution` (201,
`Location: /jobs/{id}`), followed at `/jobs/{id}` (steps done of the total), fetched from
`/jobs/{id}/results` and cancelled with `DELETE /jobs/{id}`. Jobs live in the database: any
instance answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Header, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ValidationError

from geo_core.errors import NotFound
from geo_service.ea.access import ReadScope
from geo_service.features.sql import statement_time_limit
from geo_service.http.area_requests import area_report_job
from geo_service.http.auth import EaScopeReleased, ReaderReleased
from geo_service.http.deps import JobsDep, Language, Pool, ServicesDep, client_address
from geo_service.http.documents import (
    AreaReportExecute,
    EaExportExecute,
    JobList,
    JobStatus,
    Link,
    MapBookExecute,
    ProcessDescription,
    ProcessInput,
    ProcessList,
    ProcessOutput,
    ProcessSummary,
)
from geo_service.http.ea_requests import MAX_EA_DOWNLOAD, check_scope, export_job, list_filter
from geo_service.jobs import area_reports, ea_exports, map_books
from geo_service.jobs.catalogue import kind_of
from geo_service.jobs.service import Jobs, Reader, job_message, may_read
from geo_service.outputs import ea_export
from geo_service.outputs.area_report import MEDIA_TYPES
from geo_service.settings import ServiceSettings
from geo_service.users import User

router = APIRouter(tags=["jobs"])
JSON = "application/json"
RESULTS_REL = "http://www.opengis.net/def/rel/ogc/1.0/results"
JobId = Annotated[str, Path(max_length=64, description="the job's id")]


def client_of(request: Request, user: User | None) -> str:
    """Who asks: a signed-in user by name, anyone else by address."""
    return f"user {user.name}" if user else client_address(request)


def reader_of(request: Request, user: User | None, scope: ReadScope) -> Reader:
    """The request's reader of jobs."""
    admin = user is not None and user.role == "admin"
    return Reader(client_of(request, user), admin, scope)


def _root(request: Request) -> str:
    return str(request.url_for("landing_page")).rstrip("/")


# id -> title, description, title of its execution link
_PROCESSES = {
    map_books.PROCESS: (
        "A commune's EA map book (PDF)",
        "An overview page of every EA of the commune, then one field map "
        "per EA, as GET /communes/{code}/ea-map-book.pdf draws it; made in the background.",
        "Ask for a map book",
    ),
    area_reports.PROCESS: (
        "An area report (PDF or Excel)",
        "A report on a drawn area or one unit, as POST /reports/area makes it (the same "
        "figures, covered share and disclosure), made in the background; readable only by "
        "who asked for it.",
        "Ask for an area report",
    ),
    ea_exports.PROCESS: (
        "EAs as a file (GeoPackage, Shapefile, GeoJSON or CSV)",
        "The EAs the filters select, as GET /collections/enumeration-areas/items?f=… writes "
        "them (each with its commune, figures, status and assignment), within the asking "
        "reader's scope; a download of more than GEO_SERVICE_EA_EXPORT_SYNC_EAS EAs becomes "
        "this job by itself; readable only by who asked for it.",
        "Ask for an EA file",
    ),
}


def _summary(request: Request, process_id: str) -> dict[str, Any]:
    root = _root(request)
    title, description, execute_title = _PROCESSES[process_id]
    return {
        "id": process_id,
        "title": title,
        "description": description,
        "version": "1.0.0",
        "jobControlOptions": ["async-execute", "dismiss"],
        "outputTransmission": ["value"],
        "links": [
            Link(
                href=f"{root}/processes/{process_id}",
                rel="self",
                type=JSON,
                title="The process",
            ),
            Link(
                href=f"{root}/processes/{process_id}/execution",
                rel="http://www.opengis.net/def/rel/ogc/1.0/execute",
                type=JSON,
                title=execute_title,
            ),
        ],
    }


@router.get(
    "/processes",
    summary="The processes offered as jobs",
    response_model=ProcessList,
    response_model_exclude_unset=True,
)
async def processes(request: Request) -> ProcessList:
    """The outputs made in the background (OGC API – Processes)."""
    return ProcessList(
        processes=[ProcessSummary(**_summary(request, p)) for p in _PROCESSES],
        links=[Link(href=f"{_root(request)}/processes", rel="self", type=JSON)],
    )


_STRING = {"type": "string"}
_LANG = ProcessInput(
    title="Language",
    description="the output's language",
    schema={**_STRING, "enum": ["vi", "en"], "default": "vi"},
    minOccurs=0,
    maxOccurs=1,
)


def _inputs(process_id: str) -> dict[str, ProcessInput]:
    """A process's inputs."""
    if process_id == ea_exports.PROCESS:
        return _export_inputs()
    if process_id == map_books.PROCESS:
        return {
            "commune": ProcessInput(
                title="Commune",
                description="the commune's code",
                schema={**_STRING, "pattern": r"^\d{5}$"},
                minOccurs=1,
                maxOccurs=1,
            ),
            "round": ProcessInput(
                title="Census round",
                description="the round's year (default: the latest with EAs)",
                schema={**_STRING, "pattern": r"^\d{4}$"},
                minOccurs=0,
                maxOccurs=1,
            ),
            "lang": _LANG,
        }
    optional = {"minOccurs": 0, "maxOccurs": 1}
    return {
        "geometry": ProcessInput(
            title="Drawn area",
            description="GeoJSON Polygon/MultiPolygon or Feature (or give unit and vintage)",
            schema={"type": "object"},
            **optional,
        ),
        "collection": ProcessInput(
            title="Units",
            description="the units whose values are apportioned (default: commune-2025)",
            schema=_STRING,
            **optional,
        ),
        "indicators": ProcessInput(
            title="Indicators",
            description="default: every indicator with values on the collection",
            schema={"type": "array", "items": _STRING},
            **optional,
        ),
        "method": ProcessInput(
            title="Method",
            description="apportioning by area or by population",
            schema={**_STRING, "enum": ["area", "population"], "default": "area"},
            **optional,
        ),
        "crs": ProcessInput(
            title="CRS",
            description="the geometry's CRS (default: CRS84)",
            schema=_STRING,
            **optional,
        ),
        "unit": ProcessInput(
            title="Unit",
            description="a unit's code, instead of a geometry",
            schema=_STRING,
            **optional,
        ),
        "vintage": ProcessInput(
            title="Boundary vintage",
            description="the unit's vintage",
            schema=_STRING,
            **optional,
        ),
        "format": ProcessInput(
            title="Format",
            description="PDF or Excel",
            schema={**_STRING, "enum": ["pdf", "xlsx"], "default": "pdf"},
            **optional,
        ),
        "lang": _LANG,
    }


def _export_inputs() -> dict[str, ProcessInput]:
    """The inputs of `ea-export`: the EA list's filters and the file's format."""
    optional = {"minOccurs": 0, "maxOccurs": 1}

    def text(title: str, description: str, **schema: Any) -> ProcessInput:
        return ProcessInput(
            title=title, description=description, schema={**_STRING, **schema}, **optional
        )

    return {
        "commune": text(
            "Commune",
            "a commune's code (default: every EA the reader may read)",
            pattern=r"^\d{5}$",
        ),
        "status": text(
            "Status", "the EAs' status", enum=["draft", "submitted", "approved", "rejected"]
        ),
        "round": text("Census round", "the round's year", pattern=r"^\d{4}$"),
        "bbox": text("Bounding box", "minx,miny,maxx,maxy (longitude/latitude)"),
        "filter": text(
            "Filter",
            "a CQL2 filter over the EA queryables (/collections/enumeration-areas/queryables)",
        ),
        "filter-lang": text(
            "Filter language",
            "the filter's encoding",
            enum=["cql2-text", "cql2-json"],
            default="cql2-text",
        ),
        "limit": ProcessInput(
            title="Limit",
            description="at most this many EAs",
            schema={"type": "integer", "minimum": 1},
            **optional,
        ),
        "offset": ProcessInput(
            title="Offset",
            description="EAs skipped first",
            schema={"type": "integer", "minimum": 0, "default": 0},
            **optional,
        ),
        "format": text(
            "Format",
            "GeoPackage, zipped Shapefile, GeoJSON or CSV (WKT)",
            enum=list(ea_exports.FORMATS),
            default="gpkg",
        ),
    }


def _outputs(process_id: str) -> dict[str, ProcessOutput]:
    if process_id == ea_exports.PROCESS:
        files = [{**_STRING, "contentMediaType": t} for t in ea_export.MEDIA_TYPES.values()]
        return {"file": ProcessOutput(title="The EAs' file", schema={"oneOf": files})}
    if process_id == map_books.PROCESS:
        book = {**_STRING, "contentMediaType": map_books.MEDIA_TYPE}
        return {"book": ProcessOutput(title="The map book", schema=book)}
    types = [{**_STRING, "contentMediaType": t} for t in MEDIA_TYPES.values()]
    return {"report": ProcessOutput(title="The report", schema={"oneOf": types})}


@router.get(
    "/processes/{processId}",
    summary="A process: its inputs and outputs",
    response_model=ProcessDescription,
    response_model_exclude_unset=True,
)
async def process(
    request: Request, processId: Annotated[str, Path(max_length=64)]
) -> ProcessDescription:
    """A process's inputs and output."""
    _known(processId)
    return ProcessDescription(
        **_summary(request, processId), inputs=_inputs(processId), outputs=_outputs(processId)
    )


def _known(process_id: str) -> None:
    if process_id not in _PROCESSES:
        raise NotFound(
            f"unknown process {process_id!r}; processes: {', '.join(_PROCESSES)}",
            parameter="processId",
        )


Execute = TypeVar("Execute", bound=BaseModel)


def _validated(model: type[Execute], data: Any) -> Execute:
    """The body as the process's model (errors as FastAPI's, located in the body)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{**err, "loc": ("body", *err["loc"])} for err in exc.errors()]
        raise RequestValidationError(errors) from exc


@router.post(
    "/processes/{processId}/execution",
    summary="Ask for a map book, an area report or an EA file: a job (201, "
    "Location: /jobs/{jobId})",
    status_code=201,
    response_model=JobStatus,
    response_model_exclude_unset=True,
)
async def execute(
    request: Request,
    processId: Annotated[str, Path(max_length=64)],
    body: Annotated[dict[str, Any], Body(description="{inputs: …} as /processes/{id} says")],
    pool: Pool,
    jobs: JobsDep,
    services: ServicesDep,
    user: ReaderReleased,
    scope: EaScopeReleased,
    lang: Language,
    prefer: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """Runs asynchronously whatever `Prefer` says (the only mode offered): 201 with the
    job's status and `Location`; the same request made again while it is being made joins
    that job (`joined`). 429 past the client's jobs, 503 when the queue is full."""
    _known(processId)
    async with pool.connection() as conn:
        if processId == map_books.PROCESS:
            asked = _validated(MapBookExecute, body).inputs
            book = await map_books.book_request(conn, asked.commune, asked.round, asked.lang, scope)
            job, joined = await jobs.submit(conn, book, client_of(request, user))
        elif processId == ea_exports.PROCESS:
            export = await _export_request(conn, body, scope, user, services.settings)
            job, joined = await jobs.submit(conn, export, client_of(request, user))
        else:
            inputs = _validated(AreaReportExecute, body).inputs
            report = await area_report_job(conn, inputs, services.settings, services.raster_work)
            job, joined = await jobs.submit(conn, report, client_of(request, user))
    status = status_document(request, job, lang, joined)
    headers = {"Location": status.links[0].href}
    if prefer and "respond-async" in prefer:
        headers["Preference-Applied"] = "respond-async"
    return JSONResponse(
        status.model_dump(by_alias=True, exclude_none=True), status_code=201, headers=headers
    )


async def _export_request(
    conn: Any, body: Any, scope: ReadScope, user: User | None, settings: ServiceSettings
) -> ea_exports.ExportJob:
    """An `ea-export` body checked as the EA list checks its query (400 naming the input,
    403 naming `commune` outside the reader's scope)."""
    asked = _validated(EaExportExecute, body).inputs
    filters = list_filter(
        scope,
        asked.commune,
        asked.status,
        asked.round,
        asked.bbox,
        asked.filter,
        asked.filter_lang,
    )
    await check_scope(conn, scope, asked.commune)
    # (an anonymous filter gets the anonymous database time, as on the EA list)
    anonymous = filters.filter is not None and user is None
    timeout = settings.anonymous_statement_timeout_ms if anonymous else None
    limit = None if asked.limit is None else min(asked.limit, MAX_EA_DOWNLOAD)
    selection = ea_export.EaSelection(filters, limit, asked.offset, timeout)
    async with statement_time_limit(conn, timeout):
        return await export_job(conn, selection, asked.format)


@router.get(
    "/jobs",
    summary="The jobs the client asked for",
    response_model=JobList,
    response_model_exclude_unset=True,
)
async def job_list(
    request: Request,
    pool: Pool,
    jobs: JobsDep,
    user: ReaderReleased,
    scope: EaScopeReleased,
    lang: Language,
) -> JobList:
    """The client's jobs (by user, or by address when not signed in), newest first, those
    it may still read."""
    reader = reader_of(request, user, scope)
    async with pool.connection() as conn:
        found = await jobs.mine(conn, reader.client)
    readable = [j for j in found if may_read(j, reader)]
    return JobList(
        jobs=[status_document(request, job, lang) for job in readable],
        links=[Link(href=f"{_root(request)}/jobs", rel="self", type=JSON)],
    )


@router.get(
    "/jobs/{jobId}",
    summary="A job's status: steps (pages, figures) done of the total",
    response_model=JobStatus,
    response_model_exclude_unset=True,
)
async def job_status(
    request: Request,
    jobId: JobId,
    pool: Pool,
    jobs: JobsDep,
    user: ReaderReleased,
    scope: EaScopeReleased,
    lang: Language,
) -> JobStatus:
    """A map book's job is readable by whoever may read the commune's map book, an area
    report's by who asked for it (and admins): else 403 naming `jobId`."""
    async with pool.connection() as conn:
        job = await jobs.read(conn, jobId, reader_of(request, user, scope))
    return status_document(request, job, lang)


@router.get(
    "/jobs/{jobId}/results",
    summary="A job's result: the map book (PDF), the report (PDF or Excel) or the EAs' file",
    responses={
        200: {
            "content": {
                t: {"schema": {"type": "string"}}
                for t in (
                    map_books.MEDIA_TYPE,
                    *MEDIA_TYPES.values(),
                    *ea_export.MEDIA_TYPES.values(),
                )
            }
        }
    },
)
async def job_results(
    request: Request,
    jobId: JobId,
    pool: Pool,
    jobs: JobsDep,
    user: ReaderReleased,
    scope: EaScopeReleased,
) -> Response:
    """The file once the job is successful; 404 naming `jobId` before (not ready), and for a
    failed or cancelled job (saying why)."""
    async with pool.connection() as conn:
        job = await jobs.read(conn, jobId, reader_of(request, user, scope))
    jobs.check_result(job)
    return result_response(pool, jobs, job)


def result_response(pool: Any, jobs: Any, job: dict[str, Any]) -> Response:
    """A successful job's stored file, streamed chunk by chunk with its length."""
    headers = {
        "Content-Disposition": f'attachment; filename="{job["result_name"]}"',
        "Content-Length": str(job["result_bytes"]),
        "Cache-Control": "private",
    }
    return StreamingResponse(jobs.result(pool, job), media_type=job["result_type"], headers=headers)


async def answer_by_job(
    request: Request,
    pool: AsyncConnectionPool,
    jobs: Jobs,
    job: dict[str, Any],
    joined: bool,
    settings: ServiceSettings,
    language: str,
    wait: bool = True,
) -> Response:
    """For a synchronous route whose output became a job: the file once made, if that
    happens before the response deadline (less a margin to send it); else 202 with the
    job's status and `Location`. Not `wait`: 202 at once (a job known to outlast the
    deadline holds no connection for nothing)."""
    deadline = settings.response_deadline_s
    wait_s = max(1.0, deadline - 10.0) if deadline > 0 else 3600.0
    done = (await jobs.wait(pool, job["id"], wait_s) if wait else None) or job
    if done["status"] in ("successful", "failed", "dismissed"):
        jobs.check_result(done)  # (failed or cancelled: 404 saying why)
        return result_response(pool, jobs, done)
    status = status_document(request, done, language, joined)
    return JSONResponse(
        status.model_dump(by_alias=True, exclude_none=True),
        status_code=202,
        headers={"Location": status.links[0].href, "Retry-After": "10"},
    )


@router.delete(
    "/jobs/{jobId}",
    summary="Cancel a job (dismiss)",
    response_model=JobStatus,
    response_model_exclude_unset=True,
)
async def job_dismiss(
    request: Request,
    jobId: JobId,
    pool: Pool,
    jobs: JobsDep,
    user: ReaderReleased,
    scope: EaScopeReleased,
    lang: Language,
) -> JobStatus:
    """The client leaves the job; it stops (`dismissed`) when no client that asked for it
    is left, or at once when an admin cancels it. Only who asked (or an admin): 403."""
    async with pool.connection() as conn:
        job = await jobs.cancel(conn, jobId, reader_of(request, user, scope))
    return status_document(request, job, lang)


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def status_document(
    request: Request, job: dict[str, Any], lang: str, joined: bool | None = None
) -> JobStatus:
    """The job as OGC statusInfo, its message in the client's language."""
    root = _root(request)
    job_id = str(job["id"])
    total = int(job["pages_total"])
    done = total if job["status"] == "successful" else min(int(job["pages_done"]), total)
    links = [Link(href=f"{root}/jobs/{job_id}", rel="self", type=JSON, title="This job")]
    if job["status"] == "successful":
        links.append(
            Link(
                href=f"{root}/jobs/{job_id}/results",
                rel=RESULTS_REL,
                type=job["result_type"],
                title=job["result_name"],
            )
        )
    said = job_message(job)
    hidden = kind_of(job["process"]).hidden_inputs
    inputs = {
        k: _input_text(v) for k, v in job["inputs"].items() if k not in hidden and v is not None
    }
    fields: dict[str, Any] = {
        "jobID": job_id,
        "processID": job["process"],
        "type": "process",
        "status": job["status"],
        "message": said.in_language(lang) if said is not None else None,
        "created": _time(job["created"]),
        "started": _time(job["started"]),
        "finished": _time(job["finished"]),
        "updated": _time(job["updated"]),
        "progress": round(100 * done / total) if total else 0,
        "pagesDone": done,
        "pagesTotal": total,
        "expires": _time(job["expires"]),
        "inputs": inputs,
        "joined": joined,
        "links": links,
    }
    return JobStatus(**{k: v for k, v in fields.items() if v is not None})


def _input_text(value: Any) -> str:
    """An input as the status shows it (a list as comma-separated codes)."""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)

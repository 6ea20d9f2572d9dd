"""Long outputs as background jobs, in the shape of OGC API – Processes (Part 1): a map
book is asked for with `POST /processes/ea-map-book/execution` (201, `Location: /jobs/{id}`),
followed at `/jobs/{id}` (pages done of the total), fetched from `/jobs/{id}/results` and
cancelled with `DELETE /jobs/{id}`. Jobs live in the database: any instance answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from geo_core.errors import NotFound
from geo_service.http.auth import EaScopeReleased, ReaderReleased
from geo_service.http.deps import JobsDep, Language, Pool, client_address
from geo_service.http.documents import (
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
from geo_service.jobs import map_books
from geo_service.jobs.service import job_message
from geo_service.users import User

router = APIRouter(tags=["jobs"])
JSON = "application/json"
RESULTS_REL = "http://www.opengis.net/def/rel/ogc/1.0/results"
JobId = Annotated[str, Path(max_length=64, description="the job's id")]


def client_of(request: Request, user: User | None) -> str:
    """Who asks: a signed-in user by name, anyone else by address."""
    return f"user {user.name}" if user else client_address(request)


def _root(request: Request) -> str:
    return str(request.url_for("landing_page")).rstrip("/")


def _summary(request: Request) -> dict[str, Any]:
    root = _root(request)
    return {
        "id": map_books.PROCESS,
        "title": "A commune's EA map book (PDF)",
        "description": "An overview page of every EA of the commune, then one field map "
        "per EA, as GET /communes/{code}/ea-map-book.pdf draws it; made in the background.",
        "version": "1.0.0",
        "jobControlOptions": ["async-execute", "dismiss"],
        "outputTransmission": ["value"],
        "links": [
            Link(
                href=f"{root}/processes/{map_books.PROCESS}",
                rel="self",
                type=JSON,
                title="The process",
            ),
            Link(
                href=f"{root}/processes/{map_books.PROCESS}/execution",
                rel="http://www.opengis.net/def/rel/ogc/1.0/execute",
                type=JSON,
                title="Ask for a map book",
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
        processes=[ProcessSummary(**_summary(request))],
        links=[Link(href=f"{_root(request)}/processes", rel="self", type=JSON)],
    )


@router.get(
    "/processes/{processId}",
    summary="A process: its inputs and outputs",
    response_model=ProcessDescription,
    response_model_exclude_unset=True,
)
async def process(
    request: Request, processId: Annotated[str, Path(max_length=64)]
) -> ProcessDescription:
    """The map book process's inputs (commune, round, lang) and output (the PDF)."""
    _known(processId)
    string = {"type": "string"}
    return ProcessDescription(
        **_summary(request),
        inputs={
            "commune": ProcessInput(
                title="Commune",
                description="the commune's code",
                schema={**string, "pattern": r"^\d{5}$"},
                minOccurs=1,
                maxOccurs=1,
            ),
            "round": ProcessInput(
                title="Census round",
                description="the round's year (default: the latest with EAs)",
                schema={**string, "pattern": r"^\d{4}$"},
                minOccurs=0,
                maxOccurs=1,
            ),
            "lang": ProcessInput(
                title="Language",
                description="the book's language",
                schema={**string, "enum": ["vi", "en"], "default": "vi"},
                minOccurs=0,
                maxOccurs=1,
            ),
        },
        outputs={
            "book": ProcessOutput(
                title="The map book",
                schema={**string, "contentMediaType": map_books.MEDIA_TYPE},
            )
        },
    )


def _known(process_id: str) -> None:
    if process_id != map_books.PROCESS:
        raise NotFound(
            f"unknown process {process_id!r}; processes: {map_books.PROCESS}",
            parameter="processId",
        )


@router.post(
    "/processes/{processId}/execution",
    summary="Ask for a map book: a job (201, Location: /jobs/{jobId})",
    status_code=201,
    response_model=JobStatus,
    response_model_exclude_unset=True,
)
async def execute(
    request: Request,
    processId: Annotated[str, Path(max_length=64)],
    body: MapBookExecute,
    pool: Pool,
    jobs: JobsDep,
    user: ReaderReleased,
    scope: EaScopeReleased,
    lang: Language,
    prefer: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """Runs asynchronously whatever `Prefer` says (the only mode offered): 201 with the
    job's status and `Location`; the same book asked again while it is being made joins
    that job (`joined`). 429 past the client's jobs, 503 when the queue is full."""
    _known(processId)
    asked = body.inputs
    async with pool.connection() as conn:
        book = await map_books.book_request(conn, asked.commune, asked.round, asked.lang, scope)
        job, joined = await jobs.submit(conn, book, client_of(request, user))
    status = status_document(request, job, lang, joined)
    headers = {"Location": status.links[0].href}
    if prefer and "respond-async" in prefer:
        headers["Preference-Applied"] = "respond-async"
    return JSONResponse(
        status.model_dump(by_alias=True, exclude_none=True), status_code=201, headers=headers
    )


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
    async with pool.connection() as conn:
        found = await jobs.mine(conn, client_of(request, user))
    readable = [j for j in found if scope.covers(j["commune_code"], j["province_code"])]
    return JobList(
        jobs=[status_document(request, job, lang) for job in readable],
        links=[Link(href=f"{_root(request)}/jobs", rel="self", type=JSON)],
    )


@router.get(
    "/jobs/{jobId}",
    summary="A job's status: pages done of the total",
    response_model=JobStatus,
    response_model_exclude_unset=True,
)
async def job_status(
    request: Request,
    jobId: JobId,
    pool: Pool,
    jobs: JobsDep,
    scope: EaScopeReleased,
    lang: Language,
) -> JobStatus:
    """Readable by whoever may read the commune's map book (403 naming `jobId`)."""
    async with pool.connection() as conn:
        job = await jobs.read(conn, jobId, scope)
    return status_document(request, job, lang)


@router.get(
    "/jobs/{jobId}/results",
    summary="A job's result: the map book (PDF)",
    responses={200: {"content": {map_books.MEDIA_TYPE: {"schema": {"type": "string"}}}}},
)
async def job_results(
    jobId: JobId,
    pool: Pool,
    jobs: JobsDep,
    scope: EaScopeReleased,
) -> Response:
    """The PDF once the job is successful; 404 naming `jobId` before (not ready), and for a
    failed or cancelled job (saying why)."""
    async with pool.connection() as conn:
        job = await jobs.read(conn, jobId, scope)
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
    admin = user is not None and user.role == "admin"
    async with pool.connection() as conn:
        job = await jobs.cancel(conn, jobId, client_of(request, user), admin, scope)
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
    inputs = {k: str(v) for k, v in job["inputs"].items()}
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

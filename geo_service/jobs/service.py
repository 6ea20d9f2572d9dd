"""What the HTTP edge asks of jobs: submit (or join) a job of any kind, read a job as its
reader may (by its kind's rule), cancel, wait for one, read its result."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg_pool import AsyncConnectionPool

from geo_core.errors import Busy, Forbidden, NotFound, TooManyRequests
from geo_service.ea.access import ReadScope
from geo_service.jobs import sql
from geo_service.jobs.catalogue import kind_of
from geo_service.messages import Said, said
from geo_service.settings import ServiceSettings

FINISHED = ("successful", "failed", "dismissed")


class Asked(Protocol):
    """A checked request for a job (a map book, an area report)."""

    @property
    def process(self) -> str:
        """The job's process."""
        ...

    def job(self) -> dict[str, Any]:
        """The job's row."""
        ...


@dataclass(frozen=True)
class Reader:
    """Who reads a job: the client, whether an admin, and the EAs it may read."""

    client: str
    admin: bool
    scope: ReadScope


class Jobs:
    """Background jobs as the requests of one instance see them."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings

    @property
    def keep_s(self) -> float:
        """How long a finished job and its result are kept."""
        return self.settings.job_result_hours * 3600

    async def submit(
        self, conn: psycopg.AsyncConnection, asked: Asked, client: str
    ) -> tuple[dict[str, Any], bool]:
        """A new job for the request, or the running job of the same request (joined);
        whether it was joined. 429 past the client's jobs, 503 when the queue is full (said
        in the words of the job's kind)."""
        kind = kind_of(asked.process)
        try:
            return await sql.submit(
                conn,
                asked.job(),
                client,
                self.settings.jobs_per_client,
                self.settings.job_queue_size,
            )
        except sql.LimitReached as full:
            if full.what == "client":
                raise TooManyRequests(
                    said(kind.client_limit, limit=full.limit), parameter="limit", limit=full.limit
                ) from None
            raise Busy(
                said(kind.queue_full, limit=full.limit), parameter="limit", limit=full.limit
            ) from None

    async def read(
        self, conn: psycopg.AsyncConnection, job_id: str, reader: Reader
    ) -> dict[str, Any]:
        """The job, if this reader may read it (404, 403 naming `jobId`)."""
        job = await sql.get(conn, self._id(job_id))
        if job is None:
            raise self._missing(job_id)
        if not may_read(job, reader):
            kind = kind_of(job["process"])
            if kind.private:
                raise Forbidden(said(kind.not_yours, job=job_id), parameter="jobId")
            scope = reader.scope
            scope.check(job["commune_code"], job["province_code"], "jobId")
        return job

    async def mine(self, conn: psycopg.AsyncConnection, client: str) -> list[dict[str, Any]]:
        """The client's jobs, newest first."""
        return await sql.of_client(conn, client)

    async def cancel(
        self, conn: psycopg.AsyncConnection, job_id: str, reader: Reader
    ) -> dict[str, Any]:
        """The client leaves the job (an admin stops it for everyone); it is dismissed when
        nobody is left. A finished job is returned as it is."""
        job = await self.read(conn, job_id, reader)
        if job["status"] in FINISHED:
            return job
        client, admin = reader.client, reader.admin
        if not admin and client not in job["clients"]:
            raise Forbidden(said("job_not_yours", job=job_id), parameter="jobId")
        left = await sql.leave(conn, job["id"], client, admin, self.keep_s)
        return left or await self.read(conn, job_id, reader)

    async def wait(
        self, pool: AsyncConnectionPool, job_id: uuid.UUID, seconds: float
    ) -> dict[str, Any] | None:
        """The job once finished, or as it is after `seconds` (None: gone)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while True:
            async with pool.connection() as conn:
                job = await sql.get(conn, job_id)
            if job is None or job["status"] in FINISHED or loop.time() >= until:
                return job
            await asyncio.sleep(min(1.0, max(0.05, until - loop.time())))

    def result(self, pool: AsyncConnectionPool, job: dict[str, Any]) -> AsyncIterator[bytes]:
        """A successful job's result, chunk by chunk (404 / 409-like refusals first: see
        `check_result`)."""
        size = int(job["result_bytes"] or 0)
        count = -(-size // sql.CHUNK_BYTES)
        return sql.chunks(pool.connection, job["id"], count)

    def check_result(self, job: dict[str, Any]) -> None:
        """Refuse a job whose result is not there: not ready (404, as OGC API – Processes
        says), failed or cancelled."""
        job_id = str(job["id"])
        if job["status"] == "successful":
            return
        if job["status"] in ("failed", "dismissed"):
            why = job_message(job) or said(kind_of(job["process"]).failed)
            raise NotFound(said("job_failed", job=job_id, why=why), parameter="jobId")
        raise NotFound(said("job_not_ready", job=job_id, status=job["status"]), parameter="jobId")

    def _id(self, job_id: str) -> uuid.UUID:
        try:
            return uuid.UUID(job_id)
        except ValueError:
            raise self._missing(job_id) from None

    def _missing(self, job_id: str) -> NotFound:
        hours = f"{self.settings.job_result_hours:g}"
        return NotFound(said("no_job", job=job_id, hours=hours), parameter="jobId")


def may_read(job: dict[str, Any], reader: Reader) -> bool:
    """Whether the reader may read the job: a private kind's (an area report) by its
    clients and admins, a map book by whoever may read its commune's EAs."""
    if kind_of(job["process"]).private:
        return reader.admin or reader.client in job["clients"]
    return reader.scope.covers(job["commune_code"], job["province_code"])


def job_message(job: dict[str, Any]) -> Said | None:
    """The job's message (stored as a catalogue key and values), or None."""
    text = job.get("message")
    if not text:
        return None
    try:
        stored = json.loads(text)
        return said(stored["key"], **stored.get("args", {}))
    except (ValueError, KeyError, TypeError):
        return None

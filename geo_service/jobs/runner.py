"""The workers of one instance: they claim jobs from the database (any instance may run any
job), draw them, report their pages as a heartbeat and store the result.

Each of `settings.job_slots` workers waits for a render slot (the same slots field maps and
exports take, so jobs never hold more than their share of them), then claims the oldest job
waiting, or one whose worker stopped beating for `job_stale_s` (its instance died or hung),
with FOR UPDATE SKIP LOCKED. A notification (`output_job`) wakes them when a job is
submitted; they also look every `job_poll_s`. A job dismissed by its clients, or taken
over by another instance after a long pause, stops at its next page: every write of a
worker names its claim (worker and attempt), so a late worker changes nothing. Finished
jobs past their time are deleted by whichever instance looks first."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from geo_service.jobs import sql
from geo_service.jobs.catalogue import kind_of
from geo_service.jobs.kinds import Context, Progress, Stopped
from geo_service.outputs.page_workers import PageWorkers
from geo_service.settings import ServiceSettings

log = logging.getLogger(__name__)


def message(key: str, **args: Any) -> str:
    """A job's message as stored: a catalogue key and its values."""
    return json.dumps({"key": key, "args": args})


class JobRunner:
    """This instance's job workers (`run` until cancelled)."""

    def __init__(
        self,
        settings: ServiceSettings,
        pool: Callable[[], AsyncConnectionPool],
        listen_url: str,
        render_slot: Callable[[], AbstractAsyncContextManager[Any]],
        page_workers: PageWorkers | None,
    ) -> None:
        self.settings = settings
        self._pool, self._listen_url = pool, listen_url
        self._slot, self._page_workers = render_slot, page_workers
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._running: dict[Any, dict[str, Any]] = {}  # job id -> claimed row
        self.done = 0  # jobs this instance finished (any outcome)

    async def run(self) -> None:
        """Listen for new jobs, run the workers and clean up, until cancelled."""
        tasks = [asyncio.create_task(self._listen())]
        tasks += [asyncio.create_task(self._worker()) for _ in range(self.settings.job_slots)]
        tasks.append(asyncio.create_task(self._clean()))
        try:
            await asyncio.gather(*tasks)
        finally:
            drawing = list(self._running.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._give_back(drawing)

    async def _listen(self) -> None:
        """Wake the workers on each `output_job` notification (reconnects)."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._listen_url,
                    autocommit=True,
                    application_name="geo-service-jobs",
                    connect_timeout=self.settings.connect_timeout_s,
                ) as conn:
                    await conn.execute("LISTEN output_job")
                    self._wake.set()
                    async for _ in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # (polling goes on meanwhile)
                log.warning("job listener: %s; reconnecting", exc)
                await asyncio.sleep(self.settings.job_poll_s)

    async def _worker(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.job_poll_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                while await self._one():
                    pass
            except asyncio.CancelledError:
                raise
            except (psycopg.OperationalError, PoolTimeout) as exc:  # (look again later)
                log.warning("job worker: the database is not available (%s)", exc)
            except Exception:
                log.exception("job worker")

    async def _one(self) -> bool:
        """Claim and run one job within a render slot; whether there was one."""
        async with self._slot():
            async with self._pool().connection() as conn:
                job = await sql.claim(conn, self.name, self.settings.job_stale_s)
            if job is None:
                return False
            self._running[job["id"]] = job
            try:
                await self._execute(job)
            finally:
                self._running.pop(job["id"], None)
                self.done += 1
        return True

    async def _execute(self, job: dict[str, Any]) -> None:
        keep_s = self.settings.job_result_hours * 3600
        if job["attempts"] > self.settings.job_attempts:
            async with self._pool().connection() as conn:
                key = kind_of(job["process"]).worker_lost
                lost = message(key, attempts=job["attempts"] - 1)
                await sql.fail(conn, job, lost, keep_s)
            return
        progress = Progress()
        beating = asyncio.create_task(self._beat(job, progress))
        path: Path | None = None
        try:
            kind = kind_of(job["process"])
            context = Context(self.settings, self._pool, self._page_workers, progress)
            made = await kind.produce(context, job["inputs"])
            path = made.path
            async with self._pool().connection() as conn:
                await sql.succeed(conn, job, path, made.name, made.media_type, keep_s)
        except Stopped:
            log.info("job %s stopped (dismissed or taken over)", job["id"])
        except asyncio.CancelledError:
            raise  # (the job stays running; another worker takes it over when it goes stale)
        except psycopg.OperationalError as stopped:
            # (a statement stopped or the connection lost half-way: the job fails saying so
            # once the database answers; while it does not, the failing write raises too,
            # the job stays running, and another worker takes it over when it goes stale)
            log.warning("job %s: the database stopped it (%s)", job["id"], stopped)
            async with self._pool().connection() as conn:
                await sql.fail(conn, job, message(kind_of(job["process"]).database), keep_s)
        except Exception:
            log.exception("job %s failed", job["id"])
            async with self._pool().connection() as conn:
                await sql.fail(conn, job, message(kind_of(job["process"]).failed), keep_s)
        finally:
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)
            if path is not None:
                shutil.rmtree(path.parent, ignore_errors=True)

    async def _beat(self, job: dict[str, Any], progress: Progress) -> None:
        """Every `job_heartbeat_s`: record the pages done; stop the drawing when the job is
        no longer ours."""
        while True:
            await asyncio.sleep(self.settings.job_heartbeat_s)
            try:
                async with self._pool().connection() as conn:
                    ours = await sql.beat(conn, job, progress.pages)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("job %s heartbeat: %s", job["id"], exc)
                continue
            if not ours:
                progress.stop.set()
                return

    async def _clean(self) -> None:
        """Delete finished jobs past their time, about once a minute."""
        while True:
            try:
                async with self._pool().connection() as conn:
                    await sql.delete_expired(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("job clean-up: %s", exc)
            await asyncio.sleep(max(60.0, self.settings.job_poll_s))

    async def _give_back(self, drawing: list[dict[str, Any]]) -> None:
        """On a clean stop, the jobs still drawing go back to the queue for another
        instance (at once, rather than after `job_stale_s`)."""
        for job in drawing:
            try:
                async with self._pool().connection(timeout=2) as conn:
                    await sql.give_back(conn, job)
            except Exception as exc:
                log.warning("job %s not given back: %s", job["id"], exc)

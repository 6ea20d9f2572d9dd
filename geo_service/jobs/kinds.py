"""What makes one kind of job differ from another: its process id, who may read it, the
messages of its limits and its producer (what it reads and draws); `catalogue` lists the
kinds offered."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from psycopg_pool import AsyncConnectionPool

from geo_service.outputs.page_workers import PageWorkers
from geo_service.settings import ServiceSettings

T = TypeVar("T")


class Stopped(Exception):
    """The job is no longer this worker's to draw (dismissed or taken over)."""


class Progress:
    """Pages drawn so far, told by the producer; it stops the producer when asked."""

    def __init__(self) -> None:
        self.pages = 0
        self.stop = threading.Event()

    def __call__(self, pages: int) -> None:
        """Record the steps done; raise Stopped when the job is no longer ours."""
        self.pages = pages
        if self.stop.is_set():
            raise Stopped()


@dataclass(frozen=True)
class Made:
    """A job's result: its file (in a temporary folder the runner deletes), name and type."""

    path: Path
    name: str
    media_type: str


@dataclass
class Context:
    """What a producer may use: the settings, a pool, the page workers, its progress."""

    settings: ServiceSettings
    pool: Callable[[], AsyncConnectionPool]
    page_workers: PageWorkers | None
    progress: Progress

    async def thread(self, work: Callable[..., T], *args: Any) -> T:
        """`work(*args)` in a thread; when the job is cancelled the thread is told to stop
        (it ends at its next page) while the cancellation goes on."""
        running = asyncio.ensure_future(asyncio.to_thread(work, *args))
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            self.progress.stop.set()
            raise


Producer = Callable[[Context, dict[str, Any]], Awaitable[Made]]


@dataclass(frozen=True)
class Kind:
    """One kind of job."""

    process: str
    produce: Producer
    # readable by the clients that asked for it (and admins) only, rather than by whoever
    # may read its commune: a drawn area is the client's own
    private: bool
    client_limit: str  # message keys of the per-client and the queue limits
    queue_full: str
    hidden_inputs: tuple[str, ...] = ()  # not repeated in the job's status
    # message keys naming what the job makes: its instance stopped too often, it failed, the
    # database stopped it half-way, a private job read by another client
    worker_lost: str = "job_worker_lost"
    failed: str = "job_error"
    database: str = "job_database"
    not_yours: str = "job_private"

"""Processes that draw the pages of a map book beside each other.

A map book's pages are drawn by matplotlib in Python: CPU-bound work that one process runs
on one core whatever threads it has. The book's EA pages are cut into one run of pages per
worker process, each written to a PDF file of its own, and the files are joined (pypdf,
which copies the pages' objects without drawing anything again). The processes are started
on first use from a clean server process (`forkserver`: the service's threads and open
connections are never forked), kept for the next book and stopped with the app; there are
at most `size` of them (the service's `map_book_workers`, within `renders_at_once`), shared
by every book. A size of 1 starts none: the book is drawn in its request's thread.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

log = logging.getLogger(__name__)


class PageWorkers:
    """A pool of at most `size` page-drawing processes, started when first needed."""

    def __init__(self, size: int) -> None:
        self.size = max(int(size), 1)
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None

    def submit(self, work: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run `work(*args)` in a worker process (its arguments and result are pickled)."""
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    self.size, mp_context=multiprocessing.get_context("forkserver")
                )
            executor = self._executor
        try:
            return executor.submit(work, *args)
        except BrokenProcessPool:
            self.reset(executor)
            raise

    def reset(self, broken: ProcessPoolExecutor | None = None) -> None:
        """Drop a pool whose process died (the next book starts a new one)."""
        with self._lock:
            if self._executor is not None and self._executor in (broken, None):
                log.warning("page workers: a process died; a new pool starts on next use")
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None

    def close(self) -> None:
        """Stop the processes (with the app)."""
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None

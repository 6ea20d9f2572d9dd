"""Concurrency limits of one kind of expensive request, globally and per client."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from geo_core.errors import Busy, TooManyRequests

T = TypeVar("T")


class ConcurrencyLimits:
    """At most `at_once` requests of a kind run at the same time (the rest wait up to
    `wait_s`, then get a 503), and one client runs at most `per_client` at once (more: 429),
    as downloads are limited. Both answers carry Retry-After and name the limit."""

    def __init__(self, what: str, at_once: int, per_client: int, wait_s: float) -> None:
        self.what, self.at_once, self.per_client, self.wait_s = what, at_once, per_client, wait_s
        self._running = asyncio.Semaphore(at_once)
        self._open: Counter[str] = Counter()  # (only clients with requests running: bounded)

    @asynccontextmanager
    async def slot(self, client: str) -> AsyncIterator[Slot]:
        """Run one request of the client (refused or made to wait as above). Work started
        with the slot's `thread` keeps the slot until it ends, even when the request is
        cancelled (its deadline, a client gone): a thread cannot be stopped, so requests
        given up on must not let more drawings run than the limits allow."""
        if self._open[client] >= self.per_client:
            raise TooManyRequests(
                f"at most {self.per_client} {self.what} at once from one client; wait for "
                "one to finish",
                parameter="limit",
                limit=self.per_client,
            )
        self._open[client] += 1
        try:
            async with asyncio.timeout(self.wait_s):
                await self._running.acquire()
        except TimeoutError as exc:
            self._close(client)
            raise Busy(
                f"the service computes at most {self.at_once} {self.what} at once and "
                "is at that limit; retry shortly",
                parameter="limit",
                limit=self.at_once,
            ) from exc
        except BaseException:
            self._close(client)
            raise
        held = Slot()
        try:
            yield held
        finally:
            if held.running is not None and not held.running.done():
                held.running.add_done_callback(lambda _: self._release(client))
            else:
                self._release(client)

    @asynccontextmanager
    async def background(self) -> AsyncIterator[None]:
        """One slot for background work (a job's drawing): it waits as long as it must and
        counts against `at_once` like any request, so requests still find the other slots."""
        await self._running.acquire()
        try:
            yield
        finally:
            self._running.release()

    def _release(self, client: str) -> None:
        self._running.release()
        self._close(client)

    def _close(self, client: str) -> None:
        self._open[client] -= 1
        if self._open[client] <= 0:
            del self._open[client]


class Slot:
    """A request's place among the running ones."""

    def __init__(self) -> None:
        self.running: asyncio.Future[Any] | None = None

    async def thread(self, work: Callable[..., T], *args: Any) -> T:
        """`work(*args)` in a worker thread; the slot is held until it ends."""
        running = asyncio.ensure_future(asyncio.to_thread(work, *args))
        self.running = running
        return await asyncio.shield(running)

"""Concurrency limits of one kind of expensive request, globally and per client."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from geo_core.errors import Busy, TooManyRequests


class ConcurrencyLimits:
    """At most `at_once` requests of a kind run at the same time (the rest wait up to
    `wait_s`, then get a 503), and one client runs at most `per_client` at once (more: 429),
    as downloads are limited. Both answers carry Retry-After and name the limit."""

    def __init__(self, what: str, at_once: int, per_client: int, wait_s: float) -> None:
        self.what, self.at_once, self.per_client, self.wait_s = what, at_once, per_client, wait_s
        self._running = asyncio.Semaphore(at_once)
        self._open: Counter[str] = Counter()  # (only clients with requests running: bounded)

    @asynccontextmanager
    async def slot(self, client: str) -> AsyncIterator[None]:
        """Run one request of the client (refused or made to wait as above)."""
        if self._open[client] >= self.per_client:
            raise TooManyRequests(
                f"at most {self.per_client} {self.what} at once from one client; wait for "
                "one to finish",
                parameter="limit",
                limit=self.per_client,
            )
        self._open[client] += 1
        try:
            try:
                async with asyncio.timeout(self.wait_s):
                    await self._running.acquire()
            except TimeoutError as exc:
                raise Busy(
                    f"the service computes at most {self.at_once} {self.what} at once and "
                    "is at that limit; retry shortly",
                    parameter="limit",
                    limit=self.at_once,
                ) from exc
            try:
                yield
            finally:
                self._running.release()
        finally:
            self._open[client] -= 1
            if self._open[client] <= 0:
                del self._open[client]

"""A drawing given up on (its deadline passed, its client gone) keeps its slot until its
thread ends: threads cannot be stopped, so cancelled requests must not let more drawings
run than `GEO_SERVICE_RENDERS_AT_ONCE` allows (issue #22, fourth attack pass)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from geo_core.errors import Busy, TooManyRequests
from geo_service.http.limits import ConcurrencyLimits


def test_a_cancelled_request_keeps_its_slot_until_its_drawing_ends() -> None:
    started, finish = threading.Event(), threading.Event()

    def drawing() -> str:
        started.set()
        finish.wait(30)
        return "page"

    async def request(limits: ConcurrencyLimits, client: str) -> str:
        async with limits.slot(client) as held:
            return await held.thread(drawing)

    async def scenario() -> None:
        limits = ConcurrencyLimits("drawings", at_once=1, per_client=1, wait_s=0.5)
        given_up = asyncio.ensure_future(request(limits, "a"))
        await asyncio.to_thread(started.wait, 30)
        given_up.cancel()  # as the response deadline does
        with pytest.raises(asyncio.CancelledError):
            await given_up
        with pytest.raises(Busy):  # the drawing still runs: nobody else starts one
            async with limits.slot("b"):
                pass
        with pytest.raises(TooManyRequests):  # nor the same client
            async with limits.slot("a"):
                pass
        finish.set()
        started.clear()
        finish.clear()
        finished = asyncio.ensure_future(request(limits, "b"))
        await asyncio.to_thread(started.wait, 30)
        finish.set()
        assert await finished == "page"

    # (in a thread of its own: a browser test run before in this process may leave an event
    # loop running in this one)
    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, scenario()).result()

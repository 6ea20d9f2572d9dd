"""Downloads: how many read the database at once and per client, and the responses that
send a spooled body or a built file (with a timeout on every write to the client)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.datastructures import Headers
from starlette.responses import MalformedRangeHeader
from starlette.responses import RangeNotSatisfiable as Unsatisfiable
from starlette.types import Receive, Scope, Send

from geo_core.errors import Busy, InvalidParameter, RangeNotSatisfiable, TooManyRequests
from geo_service.features.export import Spool

Release = Callable[[], None]

# set by HeadAsGet on the GET it runs for a HEAD: a download may then skip building its body
HEAD_ONLY = "geo_service.head_only"


def asked_headers_only(request: Request) -> bool:
    """Whether the request is a HEAD (run as a GET): only the headers will be sent."""
    return bool(request.scope.get(HEAD_ONLY))


def headers_only(media_type: str, headers: dict[str, str], status_code: int = 200) -> Response:
    """A HEAD's answer to a download whose body costs a full read: the GET's headers less
    Content-Length (RFC 9110 lets a HEAD leave it out; the length is known only once the
    body is built, which is what a HEAD must not cost)."""
    response = Response(status_code=status_code, media_type=media_type, headers=headers)
    response.raw_headers = [(k, v) for k, v in response.raw_headers if k != b"content-length"]
    return response


class DownloadLimits:
    """At most `at_once` downloads read from the database at the same time (the rest wait
    a while, then get a 503), and one client has at most `per_client` open (else 429)."""

    def __init__(self, at_once: int, per_client: int, wait_s: float) -> None:
        self._reading = asyncio.Semaphore(at_once)
        self.per_client, self.wait_s = per_client, wait_s
        self._open: Counter[str] = Counter()  # (only clients with open downloads: bounded)

    def open(self, client: str) -> Release:
        """Count one more download of the client; what to call when it has been sent."""
        if self._open[client] >= self.per_client:
            raise TooManyRequests(
                f"at most {self.per_client} downloads at once from one client; wait for one "
                "to finish",
                parameter="limit",
                limit=self.per_client,
            )
        self._open[client] += 1
        done = False

        def release() -> None:
            nonlocal done
            if not done:
                done = True
                self._open[client] -= 1
                if self._open[client] <= 0:
                    del self._open[client]

        return release

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[None]:
        """A slot to read from the database; 503 when none frees up within wait_s."""
        try:
            async with asyncio.timeout(self.wait_s):
                await self._reading.acquire()
        except TimeoutError as exc:
            raise Busy(
                "too many downloads are being read from the database at once; retry shortly",
                parameter="limit",
            ) from exc
        try:
            yield
        finally:
            self._reading.release()


def _timed(send: Send, seconds: float, release: Release) -> Send:
    """`send`, but a client that does not take a message within `seconds` is dropped; the
    client's download slot is freed as the last bytes go out, before the client can have
    read them (freed after, a client that asks again at once could find it still taken)."""
    left: int | None = None  # bytes of a declared Content-Length still to send

    async def timed(message: Any) -> None:
        nonlocal left
        if message["type"] == "http.response.start":
            left = _content_length(message.get("headers", []))
        elif message["type"] == "http.response.body":
            # a stream's last data chunk reaches the client before its empty closing message
            if left is not None:
                left -= len(message.get("body", b""))
            if not message.get("more_body", False) or (left is not None and left <= 0):
                release()
        async with asyncio.timeout(seconds):
            await send(message)

    return timed


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The declared Content-Length of a response start message, if any."""
    for name, value in headers:
        if name.lower() == b"content-length":
            return int(value)
    return None


class SpooledResponse(StreamingResponse):
    """A spooled body, sent with its length; the spool and the client's download slot are
    freed however the sending ends (the slot as the last bytes go out)."""

    def __init__(
        self,
        spool: Spool,
        release: Release,
        send_timeout_s: float,
        media_type: str,
        headers: dict[str, str],
    ) -> None:
        super().__init__(
            spool.chunks(),
            media_type=media_type,
            headers={**headers, "Content-Length": str(spool.size)},
        )
        self.spool, self.release, self.send_timeout_s = spool, release, send_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the body, dropping a client that stops reading."""
        try:
            await super().__call__(scope, receive, _timed(send, self.send_timeout_s, self.release))
        finally:
            self.spool.close()
            self.release()


class KeptFileResponse(FileResponse):
    """A file kept for later requests (byte ranges and If-Range answered): sent, not
    deleted; the client's download slot is freed however the sending ends."""

    def __init__(
        self,
        path: Path,
        release: Release,
        send_timeout_s: float,
        media_type: str,
        headers: dict[str, str],
    ) -> None:
        super().__init__(path, media_type=media_type, headers=headers)
        self.release, self.send_timeout_s = release, send_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the file (or the ranges asked for), dropping a client that stops reading; a
        Range the file cannot answer is a domain error (raised before anything is sent, so
        the error handlers answer it in JSON, like every other refusal)."""
        try:
            self.stat_result = await asyncio.to_thread(os.stat, self.path)
            self.set_stat_headers(self.stat_result)  # (the validators If-Range compares)
            self._check_range(scope)
            await super().__call__(scope, receive, _timed(send, self.send_timeout_s, self.release))
        finally:
            self.release()

    def _check_range(self, scope: Scope) -> None:
        """Refuse a Range header that cannot be served. A range unit other than bytes is
        ignored, as RFC 9110 requires: the whole file is sent."""
        headers = Headers(scope=scope)
        asked, if_range = headers.get("range"), headers.get("if-range")
        if (
            asked is None
            or scope["method"].upper() not in ("GET", "HEAD")
            or (if_range is not None and not self._should_use_range(if_range))
        ):
            return
        if asked.split("=", 1)[0].strip().lower() != "bytes":
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"range"]
            return
        assert self.stat_result is not None
        size = self.stat_result.st_size
        try:
            self._parse_range_header(asked, size)
        except MalformedRangeHeader as exc:
            problem = (exc.content or "not a byte range").removeprefix("Range header: ")
            raise InvalidParameter(f"Range: {problem}", parameter="Range") from exc
        except Unsatisfiable as exc:
            raise RangeNotSatisfiable(
                f"Range: the file has {size} bytes; no range asked for starts inside it",
                parameter="Range",
                size=size,
            ) from exc


class TemporaryFileResponse(KeptFileResponse):
    """A file built for this one response: sent like a kept one, then its folder deleted
    however the sending ends."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the file, dropping a client that stops reading, then delete it."""
        try:
            await super().__call__(scope, receive, send)
        finally:
            await asyncio.to_thread(shutil.rmtree, Path(self.path).parent, True)

"""ASGI middleware of the app (pure ASGI, so streamed responses pass through untouched):
bad bytes, body limits, the response deadline, gzip, and tile purges after writes."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.datastructures import Headers
from starlette.middleware.gzip import (
    DEFAULT_EXCLUDED_CONTENT_TYPES,
    GZipMiddleware,
    GZipResponder,
    IdentityResponder,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geo_core.errors import DatabaseUnavailable, InvalidParameter, PayloadTooLarge
from geo_service.http.downloads import HEAD_ONLY
from geo_service.http.errors import error_response
from geo_service.http.negotiation import LANGUAGE_READ, accepts_encoding, request_language
from geo_service.http.services import Services

logger = logging.getLogger(__name__)
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def _bad_bytes(scope: Any) -> tuple[str, str] | None:
    """(parameter, problem) for a NUL byte or invalid UTF-8 in the path or query, else None."""
    path = unquote_to_bytes(scope.get("raw_path") or scope.get("path", "").encode())
    if b"\x00" in path:
        return "path", "the path contains a NUL byte"
    try:
        path.decode("utf-8")
    except UnicodeDecodeError:
        return "path", "the path is not valid UTF-8"
    for part in (scope.get("query_string") or b"").split(b"&"):
        name, _, value = part.replace(b"+", b" ").partition(b"=")
        name, value = unquote_to_bytes(name), unquote_to_bytes(value)
        label = name.replace(b"\x00", b"").decode("utf-8", "replace") or "query"
        if b"\x00" in name + value:
            return label, f"{label} contains a NUL byte"
        try:
            (name + value).decode("utf-8")
        except UnicodeDecodeError:
            return label, f"{label} is not valid UTF-8"
    return None


class RefuseNulBytes:
    """ASGI middleware: a NUL byte or invalid UTF-8 in the path or query is a 400 up front."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Answer 400 naming the parameter, else pass the request on."""
        if scope["type"] == "http" and (found := _bad_bytes(scope)) is not None:
            parameter, problem = found
            await error_response(InvalidParameter(problem, parameter=parameter))(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)


class RefuseWebSockets:
    """ASGI middleware: the service speaks no WebSocket, so an Upgrade gets a JSON 400
    naming the `Upgrade` header (uvicorn alone closed it with an empty 403)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Refuse a WebSocket handshake in the service's error shape; pass the rest on."""
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        await receive()  # (the handshake: websocket.connect)
        if "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 1008})  # (a server without
            return  # denial responses: a plain refusal)
        refusal = InvalidParameter(
            "this service has no WebSocket endpoints; send the request without Upgrade",
            parameter="Upgrade",
        )
        await error_response(refusal)(scope, receive, send)


class ResponseDeadline:
    """ASGI middleware: a request whose response has not started in time gets a 503.

    statement_timeout ends slow queries, but not a database that stopped answering (a hung
    host, a lost network): such a request would wait forever and hold its connection. The
    503 goes out at the deadline itself: the request is cancelled without waiting for it to
    wind down (cancelling a query on a database that does not answer takes as long again).
    Once the response has started (a download being sent), the deadline no longer applies.
    """

    def __init__(self, app: Any, seconds: float):
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Pass the request on; answer 503 if nothing was sent before the deadline."""
        if scope["type"] != "http" or self.seconds <= 0:
            await self.app(scope, receive, send)
            return
        started = late = False

        async def watch(message: Any) -> None:
            nonlocal started
            if late:  # (the deadline has answered already)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        work = asyncio.create_task(self.app(scope, receive, watch))
        done, _ = await asyncio.wait({work}, timeout=self.seconds)
        if done or started:
            await work
            return
        late = True
        work.cancel()
        work.add_done_callback(lambda t: t.cancelled() or t.exception())
        logger.warning(
            "no response within %.0f s: %s %s", self.seconds, scope["method"], scope["path"]
        )
        # (a long output on a busy machine meets the deadline as often as a lost database)
        timeout = DatabaseUnavailable(
            f"no answer within {self.seconds:g} s: the service is busy or the database"
            " unreachable; retry later"
        )
        lang = request_language(Headers(scope=scope).get("accept-language", ""))
        await error_response(timeout, {"Retry-After": "5"}, lang)(scope, receive, send)


class LimitBodySize:
    """ASGI middleware: a request body over the limit is refused with 413 before the app runs.

    A body without Content-Length (chunked) is read up to the limit and then handed on
    unchanged. The rest of a refused body is read and dropped (up to 16 times the limit) so
    that the client, still sending, gets the answer rather than a reset connection.
    """

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def _refuse(self, scope: Any, receive: Any, send: Any, received: int, more: bool) -> None:
        while more and received <= 16 * self.max_bytes:
            message = await receive()
            received += len(message.get("body", b""))
            more = message["type"] == "http.request" and message.get("more_body", False)
        refused = PayloadTooLarge(
            f"the request body is over the limit of {self.max_bytes} bytes",
            parameter="body",
            limit=self.max_bytes,
        )
        await error_response(refused, {"Connection": "close"})(scope, receive, send)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Refuse too large bodies; pass everything else on as it came."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"").strip()
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send, 0, int(declared) <= 16 * self.max_bytes)
            return
        buffered: list[Any] = []
        size = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, size, more)
                return
            if not more:
                break

        async def replay() -> Any:
            return buffered.pop(0) if buffered else await receive()

        await self.app(scope, replay, send)


class GZipUnlessRefused(GZipMiddleware):
    """Starlette's gzip middleware, but `gzip;q=0` (or `*;q=0`) refuses gzip as it should."""

    def __init__(
        self, app: ASGIApp, minimum_size: int = 500, exclude: tuple[str, ...] = ()
    ) -> None:
        super().__init__(
            app, minimum_size, exclude_content_types=DEFAULT_EXCLUDED_CONTENT_TYPES + exclude
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Compress the response when the client accepts gzip."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        responder: ASGIApp
        if accepts_encoding(Headers(scope=scope).get("accept-encoding", ""), "gzip"):
            responder = GZipResponder(
                self.app,
                self.minimum_size,
                compresslevel=self.compresslevel,
                thread_minimum_size=self.thread_minimum_size,
                exclude_content_types=self.exclude_content_types,
            )
        else:
            responder = IdentityResponder(
                self.app, self.minimum_size, exclude_content_types=self.exclude_content_types
            )
        await responder(scope, receive, send)


class PurgeTilesAfterWrites:
    """Before a successful write (POST, PUT, PATCH, DELETE) is answered, purge what it changed
    from the caches that are served without a freshness check.

    nginx serves the directory cache without asking the service, so a client that saw its
    write succeed must not get the old tile from nginx afterwards. When the response starts
    the write has committed and its triggers have recorded the change; syncing the change
    log purges the affected tiles.
    """

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app, self.services = app, services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; hold a write's answer until its tiles are purged."""
        if scope["type"] != "http" or scope["method"] in _READS:
            await self.app(scope, receive, send)
            return

        async def send_when_purged(message: Message) -> None:
            if (
                message["type"] == "http.response.start"
                and message["status"] < 400
                and self.services.started
            ):
                await self.services.tiles.purge_committed_changes()
            await send(message)

        await self.app(scope, receive, send_when_purged)


class VaryByLanguage:
    """An answer chosen by Accept-Language says `Vary: Accept-Language`, so that no cache
    (a browser's, an office proxy's) hands one client's Vietnamese to another's English.
    Routes mark that they read the header (the `Language` dependency); errors say it
    themselves."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the header to a marked request's answer; pass everything else on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def varied(message: Message) -> None:
            if message["type"] == "http.response.start" and scope.get(LANGUAGE_READ):
                headers = list(message.get("headers", []))
                vary = b", ".join(v for k, v in headers if k.lower() == b"vary")
                if b"accept-language" not in vary.lower():
                    headers = [(k, v) for k, v in headers if k.lower() != b"vary"]
                    named = vary + b", Accept-Language" if vary else b"Accept-Language"
                    headers.append((b"vary", named))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, varied)


class HeadAsGet:
    """HEAD on any GET route: the GET's answer, headers only.

    FastAPI routes answer only the methods they declare, so HEAD was a 405 everywhere; GDAL's
    /vsicurl/ and QGIS ask HEAD for a download's length before reading it in ranges. The
    request runs as the GET it stands for (so the headers are the GET's) and the body is
    dropped on the way out. Downloads whose body is a full read (CSV, GeoJSON, EA files)
    see the mark HEAD_ONLY and answer from their checks, without Content-Length.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer HEAD as GET without the body; pass everything else on."""
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        # (downloads whose body costs a full read answer a HEAD from their checks alone)
        as_get = {**scope, "method": "GET", HEAD_ONLY: True}
        try:
            await self.app(as_get, receive, headers_only)
        finally:
            # what routing found, for the access log and the metrics outside (they would
            # otherwise see no route: "unmatched")
            for key in ("route", "endpoint", "path_params"):
                if key in as_get:
                    scope[key] = as_get[key]

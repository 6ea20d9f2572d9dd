"""The HTTP server's own refusals in the service's JSON error shape, with limits.

uvicorn answers a request it cannot parse before the app sees it, in text/plain, and
with httptools it takes a request line and headers of any size: a 30 MB header was read
whole, and a URL past 64 KiB (httptools' URL parser counts in 16 bits) got "Invalid HTTP
request received.". This protocol cuts the URL and the headers at limits above what the
generated nginx front lets through (8 KiB a line) and answers every refusal as JSON: 414
for the URL, 431 for the headers, 400 for anything else unreadable. `geo-service serve`
uses it (`http=` of uvicorn.run).

It also times the client as nginx does: a request head must arrive within
GEO_SERVICE_REQUEST_HEAD_TIMEOUT_S (408, JSON) and a body may pause at most
GEO_SERVICE_REQUEST_BODY_IDLE_S between reads (the connection is closed); uvicorn alone
kept a silent connection, a head that never ends or a body that never comes for ever.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from functools import cache
from http import HTTPStatus

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from geo_service.settings import ServiceSettings

MAX_URL_BYTES = 32 * 1024  # (well under the parser's 64 KiB; nginx refuses past 8 KiB)
MAX_HEADER_BYTES = 64 * 1024  # names and values together
MAX_HEADERS = 100

# status: (title, detail, the parameter at fault)
REFUSALS: dict[int, tuple[str, str, str]] = {
    400: ("BadRequest", "the request is not HTTP that can be read", "request"),
    408: ("RequestTimeout", "the request head was not sent in time", "request"),
    414: ("URITooLong", f"the request URI is longer than {MAX_URL_BYTES} bytes", "path"),
    431: (
        "RequestHeaderFieldsTooLarge",
        f"the request headers are larger than {MAX_HEADER_BYTES} bytes or more than {MAX_HEADERS}",
        "headers",
    ),
}


@cache
def _timeouts() -> tuple[float, float]:
    """(head, body idle) seconds, read once per server process."""
    settings = ServiceSettings()
    return settings.request_head_timeout_s, settings.request_body_idle_s


class _Refused(Exception):
    """Raised in a parser callback: httptools stops and reports a parser error."""


def refusal_body(status: int) -> bytes:
    """The JSON body of a refusal the server makes before the app sees the request."""
    title, detail, parameter = REFUSALS[status]
    body = {"status": status, "title": title, "detail": detail, "parameter": parameter}
    return json.dumps(body, separators=(",", ":")).encode()


class JsonErrorsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with bounded request heads and JSON refusals."""

    _refusal = 400
    _header_bytes = 0
    _timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """A new connection: its first request head must come in time."""
        super().connection_made(transport)
        self._arm(_timeouts()[0], self._head_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the timer with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        """A new request: nothing refused or counted yet; its head must come in time."""
        super().on_message_begin()
        self._refusal, self._header_bytes = 400, 0
        self._arm(_timeouts()[0], self._head_too_slow)

    def on_headers_complete(self) -> None:
        """The head is in: from now on the body may not pause too long."""
        self._arm(_timeouts()[1], self._body_too_slow)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        """More of the body: its pause ends."""
        self._arm(_timeouts()[1], self._body_too_slow)
        super().on_body(body)

    def on_message_complete(self) -> None:
        """The request is in whole: no timer (uvicorn's keep-alive takes over)."""
        self._disarm()
        super().on_message_complete()

    def _arm(self, seconds: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_too_slow(self) -> None:
        self._timer, self._refusal = None, 408
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # (a pipelined head behind a response still being sent)
            return
        self.send_400_response("")

    def _body_too_slow(self) -> None:
        # (the app may be running and answering: no response of ours, only the hang-up,
        # which the app reads as the client gone)
        self._timer = None
        self.transport.close()

    def on_url(self, url: bytes) -> None:
        """Refuse a URL past the limit as soon as it is, not after reading it whole."""
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            self._refuse(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Refuse headers past the limits as soon as they are."""
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES or len(self.headers) >= MAX_HEADERS:
            self._refuse(431)
        super().on_header(name, value)

    def _refuse(self, status: int) -> None:
        self._refusal = status
        raise _Refused(status)

    def send_400_response(self, msg: str) -> None:
        """Answer the refusal (uvicorn calls this for every request it cannot parse)."""
        status = self._refusal
        body = refusal_body(status)
        head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"x-content-type-options: nosniff\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()

"""Domain exceptions and their mapping to HTTP responses, in one place."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from geo_service.observability import request_id

logger = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """The JSON body of every error response (more fields may follow, e.g. `problems`)."""

    model_config = ConfigDict(extra="allow")

    status: int
    title: str
    detail: str
    parameter: str | None = None


# Declared on every operation: clients (and schemathesis) may expect these bodies.
# (Errors are JSON even where the operation answers GeoJSON, CSV or tiles.)
_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "content": _ERROR_CONTENT,
            "description": "The request was refused; `detail` says why and `parameter` names "
                           "the culprit"},
    503: {"model": ErrorBody, "content": _ERROR_CONTENT,
          "description": "The database is not available; retry later"},
}


_STANDARD_FIELDS = ("status", "title", "detail", "parameter")


class GeoServiceError(Exception):
    """Base of every error the service raises on purpose."""

    status_code = 500

    def __init__(self, message: str, *, parameter: str | None = None, **details: Any):
        super().__init__(message)
        self.message = message
        self.parameter = parameter
        self.details = details

    def body(self) -> dict[str, Any]:
        """The JSON error body sent to the client."""
        body: dict[str, Any] = {"status": self.status_code, "title": type(self).__name__,
                                "detail": self.message}
        if self.parameter:
            body["parameter"] = self.parameter
        # details add to the body but never replace its standard fields
        body.update({k: v for k, v in self.details.items() if k not in _STANDARD_FIELDS})
        return body


class InvalidParameter(GeoServiceError):
    """A query or path parameter has a bad value."""

    status_code = 400


class NotFound(GeoServiceError):
    """The requested resource does not exist."""

    status_code = 404


class NotAcceptable(GeoServiceError):
    """None of the formats the client accepts (Accept header) is offered."""

    status_code = 406


class Conflict(GeoServiceError):
    """The request conflicts with the current state."""

    status_code = 409


class PreconditionFailed(GeoServiceError):
    """If-Match names a version that is no longer current."""

    status_code = 412


class PreconditionRequired(GeoServiceError):
    """A write to an existing resource came without If-Match."""

    status_code = 428


class Unprocessable(GeoServiceError):
    """Well-formed input that breaks a rule (e.g. an EA overlapping another)."""

    status_code = 422


class PayloadTooLarge(GeoServiceError):
    """The request body or requested result is over a configured limit."""

    status_code = 413


class DatabaseUnavailable(GeoServiceError):
    """The database does not answer."""

    status_code = 503


class LocalDatabaseError(GeoServiceError):
    """The embedded PostgreSQL cluster could not be managed."""


class LoaderError(GeoServiceError):
    """A loader refused its input; nothing was written."""

    status_code = 400


def _error_response(request: Request, status: int, body: dict[str, Any],
                    headers: dict[str, str] | None = None) -> JSONResponse:
    rid = request_id(request.scope)
    if status >= 500 and rid:
        # Server-side failures carry the id that finds them in the log.
        body = {**body, "request_id": rid}
        headers = {**(headers or {}), "X-Request-Id": rid}
    return JSONResponse(body, status_code=status, headers=headers)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GeoServiceError)
    if exc.status_code >= 500:
        logger.error("%s on %s: %s", type(exc).__name__, request.url.path, exc.message)
    return _domain_error_body(request, exc)


def _culprit(err: Any) -> str:
    loc = [str(part) for part in err.get("loc", ())]
    if err.get("type") == "json_invalid" or loc == ["body"]:
        return "body"
    return ".".join(loc[1:]) or (loc[0] if loc else "request")


def _problem(err: Any) -> str:
    if err.get("type") == "json_invalid":
        position = err["loc"][1] if len(err.get("loc", ())) > 1 else "?"
        reason = (err.get("ctx") or {}).get("error", "")
        return f"not valid JSON at character {position}" + (f" ({reason})" if reason else "")
    return str(err.get("msg", "invalid value"))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [{"parameter": _culprit(err), "problem": _problem(err)} for err in exc.errors()]
    first = problems[0] if problems else {"parameter": None, "problem": "invalid request"}
    body = {"status": 400, "title": "InvalidParameter",
            "detail": f"{first['parameter']}: {first['problem']}",
            "parameter": first["parameter"], "errors": problems}
    return _error_response(request, 400, body)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    body: dict[str, Any] = {"status": exc.status_code, "title": "HTTPError",
                            "detail": str(exc.detail)}
    if exc.status_code == 404 and body["detail"] == "Not Found":  # no route matched
        body |= {"detail": "no such path (see /api for the paths)", "parameter": "path"}
    elif exc.status_code == 405:
        body |= {"detail": f"method {request.method} is not allowed here",
                 "parameter": "method"}
    elif exc.status_code == 400 and "parsing the body" in body["detail"]:
        # FastAPI could not read the JSON (nested too deep, a number too long, not UTF-8…)
        body |= {"detail": "the body is not JSON that can be read (not UTF-8, nested too "
                           "deeply or a number too long?)", "parameter": "body"}
    return _error_response(request, exc.status_code, body, dict(exc.headers or {}))


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("database unavailable on %s: %s", request.url.path, exc)
    return _domain_error_body(
        request, DatabaseUnavailable("the database is not available; retry shortly"))


def _domain_error_body(request: Request, exc: GeoServiceError) -> JSONResponse:
    headers = {"Retry-After": "5"} if isinstance(exc, DatabaseUnavailable) else None
    return _error_response(request, exc.status_code, exc.body(), headers)


async def _bad_value(request: Request, exc: Exception) -> JSONResponse:
    # A value the database cannot take (NUL byte, number out of range…): the client's input.
    logger.warning("value refused by the database on %s: %s", request.url.path, exc)
    where = "body" if request.method in ("POST", "PUT", "PATCH") else "query"
    return _domain_error_body(request, InvalidParameter(
        f"a {where} value cannot be stored or compared by the database", parameter=where))


async def _not_unicode(request: Request, exc: Exception) -> JSONResponse:
    # A lone surrogate (escaped in JSON) that no check caught before the database driver.
    logger.warning("text that is not valid Unicode on %s: %s", request.url.path, exc)
    return _domain_error_body(request, InvalidParameter(
        "a text value is not valid Unicode (a lone surrogate?)", parameter="body"))


async def _concurrent_change(request: Request, exc: Exception) -> JSONResponse:
    # A deadlock or serialization failure: the transaction was rolled back, nothing changed.
    logger.warning("transaction rolled back on %s: %s", request.url.path, exc)
    body = Conflict("a concurrent change got in the way; nothing was saved, retry").body()
    return _error_response(request, 409, body, {"Retry-After": "1"})


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Never leak SQL or stack traces; the log has the details.
    logger.exception("unexpected error on %s", request.url.path, exc_info=exc)
    return _error_response(request, 500, {"status": 500, "title": "InternalError",
                                 "detail": "internal error; see the service log"})


def add_exception_handlers(app: FastAPI) -> None:
    """Register every error → response mapping on the app."""
    app.add_exception_handler(GeoServiceError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(psycopg.DataError, _bad_value)
    app.add_exception_handler(UnicodeEncodeError, _not_unicode)
    app.add_exception_handler(psycopg.errors.TransactionRollback, _concurrent_change)
    app.add_exception_handler(psycopg.OperationalError, _database_down)
    app.add_exception_handler(PoolTimeout, _database_down)
    app.add_exception_handler(Exception, _unexpected_error)


def _bad_bytes(scope: Any) -> tuple[str, str] | None:
    """(parameter, problem) for a NUL byte or invalid UTF-8 in the path or query, else None."""
    from urllib.parse import unquote_to_bytes

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
            body = InvalidParameter(problem, parameter=parameter).body()
            await JSONResponse(body, status_code=400)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class ResponseDeadline:
    """ASGI middleware: a request whose response has not started in time gets a 503.

    statement_timeout ends slow queries, but not a database that stopped answering (a hung
    host, a lost network): such a request would wait forever and hold its connection. Once
    the response has started (a long download streaming), the deadline no longer applies.
    """

    def __init__(self, app: Any, seconds: float):
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Pass the request on; answer 503 if nothing was sent before the deadline."""
        if scope["type"] != "http" or self.seconds <= 0:
            await self.app(scope, receive, send)
            return
        started = False
        deadline = asyncio.timeout(self.seconds)

        async def watch(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                deadline.reschedule(None)
            await send(message)

        try:
            async with deadline:
                await self.app(scope, receive, watch)
            return
        except TimeoutError:
            if started or not deadline.expired():  # (not ours to answer)
                raise
        logger.warning("no response within %.0f s: %s %s", self.seconds, scope["method"],
                       scope["path"])
        body = DatabaseUnavailable(f"no answer within {self.seconds:g} s; the database may be "
                                   "unreachable, retry later").body()
        await JSONResponse(body, status_code=503, headers={"Retry-After": "5"})(
            scope, receive, send)


class LimitBodySize:
    """ASGI middleware: a request body over the limit is refused with 413 before the app runs.

    A body without Content-Length (chunked) is read up to the limit and then handed on
    unchanged. The rest of a refused body is read and dropped (up to 16 times the limit) so
    that the client, still sending, gets the answer rather than a reset connection.
    """

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def _refuse(self, scope: Any, receive: Any, send: Any, received: int,
                      more: bool) -> None:
        while more and received <= 16 * self.max_bytes:
            message = await receive()
            received += len(message.get("body", b""))
            more = message["type"] == "http.request" and message.get("more_body", False)
        body = PayloadTooLarge(f"the request body is over the limit of {self.max_bytes} bytes",
                               parameter="body", limit=self.max_bytes).body()
        await JSONResponse(body, status_code=413, headers={"Connection": "close"})(
            scope, receive, send)

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

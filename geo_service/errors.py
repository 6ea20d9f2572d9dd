"""Domain exceptions and their mapping to HTTP responses, in one place."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from geo_service.observability import request_id

logger = logging.getLogger(__name__)


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
        body.update(self.details)
        return body


class InvalidParameter(GeoServiceError):
    """A query or path parameter has a bad value."""

    status_code = 400


class NotFound(GeoServiceError):
    """The requested resource does not exist."""

    status_code = 404


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


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"parameter": ".".join(str(p) for p in err["loc"][1:]) or str(err["loc"][0]),
         "problem": err["msg"]}
        for err in exc.errors()
    ]
    first = problems[0] if problems else {"parameter": None, "problem": "invalid request"}
    body = {"status": 400, "title": "InvalidParameter",
            "detail": f"{first['parameter']}: {first['problem']}",
            "parameter": first["parameter"], "errors": problems}
    return _error_response(request, 400, body)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    body = {"status": exc.status_code, "title": "HTTPError", "detail": str(exc.detail)}
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
    return _domain_error_body(request, InvalidParameter(
        "a parameter has a value the database cannot store or compare", parameter="query"))


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
    app.add_exception_handler(psycopg.OperationalError, _database_down)
    app.add_exception_handler(PoolTimeout, _database_down)
    app.add_exception_handler(Exception, _unexpected_error)


class RefuseNulBytes:
    """ASGI middleware: a NUL byte in the path or query is refused with 400 up front."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Answer 400 for NUL bytes, else pass the request on."""
        if scope["type"] == "http":
            from urllib.parse import unquote_to_bytes

            raw = scope.get("raw_path", b"") + b"?" + scope.get("query_string", b"")
            if b"\x00" in unquote_to_bytes(raw):
                body = InvalidParameter("the request contains a NUL byte",
                                        parameter="query").body()
                await JSONResponse(body, status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)

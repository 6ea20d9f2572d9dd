"""Errors as HTTP responses, in one place: each domain error's status and its JSON body."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from geo_core.errors import (
    BeingRechecked,
    Busy,
    Conflict,
    DatabaseUnavailable,
    Forbidden,
    GeoServiceError,
    InvalidParameter,
    LoaderError,
    NotAcceptable,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    PreconditionRequired,
    RangeNotSatisfiable,
    TooExpensive,
    TooManyAttempts,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
)
from geo_service.http.i18n import localise
from geo_service.http.negotiation import request_language
from geo_service.http.observability import request_id

logger = logging.getLogger(__name__)

# The status of each kind of domain error (a subclass takes its nearest listed ancestor's).
STATUS: dict[type[GeoServiceError], int] = {
    InvalidParameter: 400,
    LoaderError: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    NotAcceptable: 406,
    Conflict: 409,
    PreconditionFailed: 412,
    PayloadTooLarge: 413,
    RangeNotSatisfiable: 416,
    Unprocessable: 422,
    TooExpensive: 422,
    PreconditionRequired: 428,
    TooManyAttempts: 429,
    TooManyRequests: 429,
    DatabaseUnavailable: 503,
    Busy: 503,
}
# Kinds worth retrying, and after how many seconds.
RETRY_AFTER: dict[type[GeoServiceError], str] = {
    DatabaseUnavailable: "5",
    BeingRechecked: "5",
    Busy: "2",
    TooManyRequests: "2",
    TooManyAttempts: "60",
}


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
    "4XX": {
        "model": ErrorBody,
        "content": _ERROR_CONTENT,
        "description": "The request was refused; `detail` says why and `parameter` names "
        "the culprit",
    },
    503: {
        "model": ErrorBody,
        "content": _ERROR_CONTENT,
        "description": "The database is not available; retry later",
    },
}

_STANDARD_FIELDS = ("status", "title", "detail", "parameter")


def status_of(exc: GeoServiceError) -> int:
    """The HTTP status of a domain error (500 for one no kind above covers)."""
    for kind in type(exc).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 500


def error_body(exc: GeoServiceError) -> dict[str, Any]:
    """The JSON error body sent to the client."""
    body: dict[str, Any] = {
        "status": status_of(exc),
        "title": type(exc).__name__,
        "detail": exc.message,
    }
    if exc.parameter:
        body["parameter"] = exc.parameter
    # details add to the body but never replace its standard fields
    body.update({k: v for k, v in exc.details.items() if k not in _STANDARD_FIELDS})
    return body


def error_response(
    exc: GeoServiceError, headers: dict[str, str] | None = None, lang: str = "en"
) -> JSONResponse:
    """A domain error as a response in `lang` (outside the app's handlers: middleware)."""
    headers = {**(headers or {}), "Content-Language": lang, "Vary": "Accept-Language"}
    return JSONResponse(
        localise(error_body(exc), lang), status_code=status_of(exc), headers=headers
    )


def _error_response(
    request: Request, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    rid = request_id(request.scope)
    if status >= 500 and rid:
        # Server-side failures carry the id that finds them in the log.
        body = {**body, "request_id": rid}
        headers = {**(headers or {}), "X-Request-Id": rid}
    # in the client's language (Accept-Language: vi; English by default): messages of the
    # catalogue (geo_service.messages) say themselves, others are translated by pattern
    lang = request_language(request.headers.get("accept-language", ""))
    headers = {**(headers or {}), "Content-Language": lang, "Vary": "Accept-Language"}
    return JSONResponse(localise(body, lang), status_code=status, headers=headers)


def _retry_after(exc: GeoServiceError) -> dict[str, str] | None:
    for kind in type(exc).__mro__:
        if kind in RETRY_AFTER:
            return {"Retry-After": RETRY_AFTER[kind]}
    return None


def _domain_error_body(request: Request, exc: GeoServiceError) -> JSONResponse:
    headers = _retry_after(exc)
    if isinstance(exc, RangeNotSatisfiable):  # (RFC 9110: the length the ranges missed)
        headers = {"Content-Range": f"bytes */{exc.details.get('size', '*')}"}
    return _error_response(request, status_of(exc), error_body(exc), headers)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GeoServiceError)
    if status_of(exc) >= 500:
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
    body = {
        "status": 400,
        "title": "InvalidParameter",
        "detail": f"{first['parameter']}: {first['problem']}",
        "parameter": first["parameter"],
        "errors": problems,
    }
    return _error_response(request, 400, body)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    body: dict[str, Any] = {
        "status": exc.status_code,
        "title": "HTTPError",
        "detail": str(exc.detail),
    }
    if exc.status_code == 404 and body["detail"] == "Not Found":  # no route matched
        body |= {"detail": "no such path (see /api for the paths)", "parameter": "path"}
    elif exc.status_code == 405:
        body |= {"detail": f"method {request.method} is not allowed here", "parameter": "method"}
    elif exc.status_code == 400 and "parsing the body" in body["detail"]:
        # FastAPI could not read the JSON (nested too deep, a number too long, not UTF-8…)
        body |= {
            "detail": "the body is not JSON that can be read (not UTF-8, nested too "
            "deeply or a number too long?)",
            "parameter": "body",
        }
    return _error_response(request, exc.status_code, body, dict(exc.headers or {}))


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("database unavailable on %s: %s", request.url.path, exc)
    return _domain_error_body(
        request, DatabaseUnavailable("the database is not available; retry shortly")
    )


async def _bad_value(request: Request, exc: Exception) -> JSONResponse:
    # A value the database cannot take (NUL byte, number out of range…): the client's input.
    logger.warning("value refused by the database on %s: %s", request.url.path, exc)
    where = "body" if request.method in ("POST", "PUT", "PATCH") else "query"
    return _domain_error_body(
        request,
        InvalidParameter(
            f"a {where} value cannot be stored or compared by the database", parameter=where
        ),
    )


async def _not_unicode(request: Request, exc: Exception) -> JSONResponse:
    # A lone surrogate (escaped in JSON) that no check caught before the database driver.
    logger.warning("text that is not valid Unicode on %s: %s", request.url.path, exc)
    return _domain_error_body(
        request,
        InvalidParameter("a text value is not valid Unicode (a lone surrogate?)", parameter="body"),
    )


async def _cancelled(request: Request, exc: Exception) -> JSONResponse:
    # statement_timeout ended the query: the request asks too much, the database is fine
    logger.warning("query cancelled on %s: %s", request.url.path, exc)
    return _domain_error_body(
        request,
        TooExpensive(
            "the database stopped this request at its time limit: it asks for too much at once; "
            "narrow it (a smaller area, page or selection)",
            parameter="request",
        ),
    )


async def _concurrent_change(request: Request, exc: Exception) -> JSONResponse:
    # A deadlock or serialization failure: the transaction was rolled back, nothing changed.
    logger.warning("transaction rolled back on %s: %s", request.url.path, exc)
    body = error_body(Conflict("a concurrent change got in the way; nothing was saved, retry"))
    return _error_response(request, 409, body, {"Retry-After": "1"})


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Never leak SQL or stack traces; the log has the details.
    logger.exception("unexpected error on %s", request.url.path, exc_info=exc)
    return _error_response(
        request,
        500,
        {"status": 500, "title": "InternalError", "detail": "internal error; see the service log"},
    )


def add_exception_handlers(app: FastAPI) -> None:
    """Register every error → response mapping on the app."""
    app.add_exception_handler(GeoServiceError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(psycopg.DataError, _bad_value)
    app.add_exception_handler(UnicodeEncodeError, _not_unicode)
    app.add_exception_handler(psycopg.errors.TransactionRollback, _concurrent_change)
    app.add_exception_handler(psycopg.errors.QueryCanceled, _cancelled)
    app.add_exception_handler(psycopg.OperationalError, _database_down)
    app.add_exception_handler(PoolTimeout, _database_down)
    app.add_exception_handler(Exception, _unexpected_error)

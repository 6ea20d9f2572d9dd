"""The errors the project raises on purpose; the HTTP edge maps each kind to a status."""

from __future__ import annotations

from typing import Any


class GeoServiceError(Exception):
    """Base of every error raised on purpose: a message, the culprit and more details."""

    def __init__(self, message: str, *, parameter: str | None = None, **details: Any):
        super().__init__(message)
        self.message = message
        self.parameter = parameter
        self.details = details


class InvalidParameter(GeoServiceError):
    """A parameter or input value is bad."""


class NotFound(GeoServiceError):
    """The requested resource does not exist."""


class NotAcceptable(GeoServiceError):
    """None of the formats the client accepts (Accept header) is offered."""


class Conflict(GeoServiceError):
    """The request conflicts with the current state."""


class PreconditionFailed(GeoServiceError):
    """If-Match names a version that is no longer current."""


class PreconditionRequired(GeoServiceError):
    """A write to an existing resource came without If-Match."""


class Unprocessable(GeoServiceError):
    """Well-formed input that breaks a rule (e.g. an EA overlapping another)."""


class PayloadTooLarge(GeoServiceError):
    """The request body or requested result is over a configured limit."""


class DatabaseUnavailable(GeoServiceError):
    """The database does not answer."""


class LocalDatabaseError(GeoServiceError):
    """The embedded PostgreSQL cluster could not be managed."""


class LoaderError(GeoServiceError):
    """A loader refused its input; nothing was written."""


class Unauthorized(GeoServiceError):
    """No token, or one that matches no active user."""


class Forbidden(GeoServiceError):
    """The user's role or scope does not allow this."""


class TooManyAttempts(GeoServiceError):
    """Too many failed authentications from one client."""


class TooManyRequests(GeoServiceError):
    """One client asks for more at once than it may (e.g. downloads)."""


class TooExpensive(GeoServiceError):
    """The request asks for more work than a request may take (a cost bound or a time
    limit of the database): narrowing it helps, retrying it as it is does not."""


class RangeNotSatisfiable(GeoServiceError):
    """A byte range that starts beyond the end of the file asked for."""


class Busy(GeoServiceError):
    """The service is at its limit for this kind of request; retry shortly."""


class BeingRechecked(Busy):
    """Values withheld while their disclosure protection is recomputed after a write; they
    come back within seconds, so the client should retry shortly."""

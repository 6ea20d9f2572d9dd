"""Read-your-writes with read replicas: a write's answer carries the WAL position of its
commit (a header for API clients, a short-lived cookie for pages); a later read carrying it
is served only by a replica that has replayed that far, else by the primary.

The position is self-contained: any instance behind the load balancer honours it, and no
state is kept per client. It is signed (HMAC-SHA-256 with `GEO_SERVICE_LSN_SECRET`, the same
on every instance behind one balancer): a client cannot make up a position to send every
read to the primary or make replicas wait; a forged or altered one is ignored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geo_core.errors import InvalidParameter
from geo_service.http.services import Services
from geo_service.replicas import parse_lsn
from geo_service.settings import ServiceSettings

logger = logging.getLogger(__name__)

LSN_HEADER = "X-Geo-Service-LSN"
LSN_COOKIE = "geo_service_lsn"
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
# (128 bits of the HMAC, base64url: enough against guessing, short in a cookie)
_SIGNATURE_CHARS = 22
_LONGEST_POSITION = 17  # (8 hex digits, a slash, 8 hex digits)
_WRITES_NOTHING = "geo_service.writes_nothing"


async def writes_nothing(request: Request) -> None:
    """Router dependency: these POSTs only read (a drawn area's statistics, a report); their
    answers carry no write position, which would only send the client's reads to the
    primary (an anonymous client could fetch fresh positions to do just that)."""
    request.scope[_WRITES_NOTHING] = True


def position_key(settings: ServiceSettings) -> bytes:
    """The key positions are signed with."""
    return settings.lsn_secret.get_secret_value().encode()


def _signature(position: str, key: bytes) -> str:
    digest = hmac.new(key, position.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:_SIGNATURE_CHARS]


def signed_position(position: str, key: bytes) -> str:
    """A WAL position as a client gets it: `16/B374D848.<signature>`."""
    return f"{position}.{_signature(position, key)}"


def _position_of(token: str) -> tuple[str, int, str] | None:
    """A token's position (as text and number) and signature; None when it holds no WAL
    position at all (an unsigned position has an empty signature)."""
    text, _, signature = token.partition(".")
    number = parse_lsn(text) if len(text) <= _LONGEST_POSITION else None
    return None if number is None else (text, number, signature)


def _verified(parts: tuple[str, int, str], key: bytes) -> int | None:
    """The position if its signature is this service's; None (ignored) otherwise."""
    text, number, signature = parts
    if hmac.compare_digest(signature.encode("ascii", "replace"), _signature(text, key).encode()):
        return number
    logger.debug("a write position with a wrong or no signature was ignored")
    return None


def written_at(request: Request, key: bytes) -> int | None:
    """The latest signed write position the request carries (header or cookie); None if
    none.

    A header that holds no position is the client's mistake (400); a position whose
    signature is wrong or missing is ignored (forged or altered: the read is served as any
    other), and so is a malformed cookie (a page cannot fix its cookies)."""
    positions = []
    header = request.headers.get(LSN_HEADER)
    if header is not None:
        parts = _position_of(header) if len(header) <= 64 else None
        if parts is None:
            raise InvalidParameter(
                f"{LSN_HEADER} must be a WAL position as a write's answer gave it "
                "(like 16/B374D848.3q2-7wVzzbBXm0a1cF1EeQ)",
                parameter=LSN_HEADER,
            )
        positions.append(_verified(parts, key))
    cookie = request.cookies.get(LSN_COOKIE, "")
    if len(cookie) <= 64 and (parts := _position_of(cookie)) is not None:
        positions.append(_verified(parts, key))
    return max((p for p in positions if p is not None), default=None)


def cookie_lifetime_s(services: Services) -> int:
    """How long a page's write position is worth sending: a replica still in rotation after
    this has replayed it (it is at most the lag limit behind, as last checked)."""
    settings = services.settings
    return math.ceil(settings.replica_max_lag_s + settings.replica_check_interval_s) + 1


class ReadYourWrites:
    """ASGI middleware: a successful write's answer (POST, PUT, PATCH, DELETE below 400) gets
    the primary's WAL position after its commit, when replicas are configured."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app, self.services = app, services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the position to a write's answer."""
        replicas = self.services.replicas
        if scope["type"] != "http" or scope["method"] in _READS or not replicas.configured:
            await self.app(scope, receive, send)
            return

        async def send_with_position(message: Message) -> None:
            if (
                message["type"] == "http.response.start"
                and message["status"] < 400
                and not scope.get(_WRITES_NOTHING)
                and self.services.started
                # (the response starts after the write's transaction has committed)
                and (position := await replicas.commit_position()) is not None
            ):
                token = signed_position(position, position_key(self.services.settings))
                headers = MutableHeaders(scope=message)
                headers[LSN_HEADER] = token
                headers.append("Set-Cookie", self._cookie(scope, token))
            await send(message)

        await self.app(scope, receive, send_with_position)

    def _cookie(self, scope: Scope, token: str) -> str:
        # (written by hand: http.cookies would quote the value for its slash; a signed
        # position is hex digits, a slash, a dot and base64url, which a cookie may carry)
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        lifetime = cookie_lifetime_s(self.services)
        return f"{LSN_COOKIE}={token}; Max-Age={lifetime}; Path=/; HttpOnly; SameSite=Lax{secure}"

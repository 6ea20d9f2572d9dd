"""Read-your-writes with read replicas: a write's answer carries the WAL position of its
commit (a header for API clients, a short-lived cookie for pages); a later read carrying it
is served only by a replica that has replayed that far, else by the primary.

The position is self-contained: any instance behind the load balancer honours it, and no
state is kept per client.
"""

from __future__ import annotations

import math

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geo_core.errors import InvalidParameter
from geo_service.http.services import Services
from geo_service.replicas import parse_lsn

LSN_HEADER = "X-Geo-Service-LSN"
LSN_COOKIE = "geo_service_lsn"
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def written_at(request: Request) -> int | None:
    """The latest write position the request carries (header or cookie); None if none.

    A malformed header is the client's mistake (400); a malformed cookie is ignored (a page
    cannot fix its cookies)."""
    positions = []
    header = request.headers.get(LSN_HEADER)
    if header is not None:
        position = parse_lsn(header) if len(header) <= 17 else None
        if position is None:
            raise InvalidParameter(
                f"{LSN_HEADER} must be a WAL position as a write's answer gave it "
                "(like 16/B374D848)",
                parameter=LSN_HEADER,
            )
        positions.append(position)
    cookie = request.cookies.get(LSN_COOKIE, "")
    if len(cookie) <= 17 and (position := parse_lsn(cookie)) is not None:
        positions.append(position)
    return max(positions, default=None)


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
                and self.services.started
                # (the response starts after the write's transaction has committed)
                and (position := await replicas.commit_position()) is not None
            ):
                headers = MutableHeaders(scope=message)
                headers[LSN_HEADER] = position
                headers.append("Set-Cookie", self._cookie(scope, position))
            await send(message)

        await self.app(scope, receive, send_with_position)

    def _cookie(self, scope: Scope, position: str) -> str:
        # (written by hand: http.cookies would quote the value for its slash; a position is
        # hex digits and one slash, which a cookie may carry as they are)
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        lifetime = cookie_lifetime_s(self.services)
        return (
            f"{LSN_COOKIE}={position}; Max-Age={lifetime}; Path=/; HttpOnly; SameSite=Lax{secure}"
        )

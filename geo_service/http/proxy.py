"""Who the client is and which origin the service's links name, from what may be trusted.

The client is the peer, or, when the peer is a proxy listed in GEO_SERVICE_TRUSTED_PROXIES,
the address it forwarded (X-Forwarded-For or Forwarded). Links (next pages, self, TileJSON
tiles) name GEO_SERVICE_PUBLIC_URL when set; else the host a trusted proxy forwarded, or else
the request's Host, when it is one of GEO_SERVICE_ALLOWED_HOSTS; else the service's own
address. A host nobody configured is never reflected in a link, however it came: a proxy
forwards the Host its client sent (nginx's $http_host), which is the client's to choose.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers

from geo_service.settings import ServiceSettings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(text: str) -> list[Network]:
    return [
        ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
    ]


def _is_in(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _forwarded(value: str) -> dict[str, str]:
    """The first element of an RFC 7239 Forwarded header, as {for, proto, host}."""
    first = value.split(",")[0]
    pairs = (part.split("=", 1) for part in first.split(";") if "=" in part)
    return {k.strip().lower(): v.strip().strip('"') for k, v in pairs}


def _host_name(host: str) -> str:
    """The name in a Host header value, without its port (IPv6 in brackets kept bare)."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class ClientAndOrigin:
    """ASGI middleware: sets the request's client address, scheme and Host as above."""

    def __init__(self, app: Any, settings: ServiceSettings) -> None:
        self.app = app
        self.proxies = _networks(settings.trusted_proxies)
        self.allowed = {
            h.strip().lower().strip("[]") for h in settings.allowed_hosts.split(",") if h.strip()
        }
        if settings.host not in ("0.0.0.0", "::"):
            self.allowed.add(settings.host.lower())
        public = urlsplit(settings.public_url) if settings.public_url else None
        self.public = (public.scheme, public.netloc) if public else None
        self.own = f"{settings.host}:{settings.port}"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Amend the scope, then pass the request on."""
        if scope["type"] in ("http", "websocket"):
            self._amend(scope)
        await self.app(scope, receive, send)

    def _amend(self, scope: Any) -> None:
        headers = Headers(scope=scope)
        peer = scope.get("client")[0] if scope.get("client") else ""
        scheme, host = scope.get("scheme", "http"), headers.get("host", "")
        if self.proxies and _is_in(peer, self.proxies):
            forwarded = _forwarded(headers.get("forwarded", ""))
            chain = [a.strip() for a in headers.get("x-forwarded-for", "").split(",") if a.strip()]
            chain = chain or ([forwarded["for"]] if "for" in forwarded else [])
            client = next((a for a in reversed(chain) if not _is_in(a, self.proxies)), peer)
            scope["client"] = (client.strip("[]"), 0)
            scheme = headers.get("x-forwarded-proto") or forwarded.get("proto") or scheme
            host = headers.get("x-forwarded-host") or forwarded.get("host") or host
        host = host.split(",")[0].strip()
        if _host_name(host).lower() not in self.allowed:
            host = self.own
        if scheme.split(",")[0].strip().lower() not in ("http", "https"):
            scheme = "http"
        if self.public:
            scheme, host = self.public
        scope["scheme"] = scheme.split(",")[0].strip()
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"host"] + [
            (b"host", host.split(",")[0].strip().encode("latin-1"))
        ]

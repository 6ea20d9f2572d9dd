"""Request ids, one JSON log line per request, and Prometheus metrics.

Everything here is pure ASGI (not BaseHTTPMiddleware) so streamed responses pass through
untouched: only the `http.response.start` message is looked at and amended.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.datastructures import MutableHeaders
from starlette.routing import Mount

from geo_core.errors import Forbidden, Unauthorized
from geo_service.http.deps import ServicesDep, client_address
from geo_service.http.services import Services
from geo_service.replicas import ReplicaSet
from geo_service.tiles.prerender import PrerenderStatus
from geo_service.tiles.service import TileService

ACCESS_LOGGER = "geo_service.access"
_SCOPE_KEY = "geo_service.request_id"
# Short and harmless in logs and headers; anything else is replaced by a generated id.
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Tiles and pages answer in milliseconds, exports and aggregates in seconds.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

router = APIRouter(tags=["service"])

# The *_created series double the output and no dashboard of ours reads them.
disable_created_metrics()


def request_id(scope: Any) -> str | None:
    """The id of the request this ASGI scope belongs to (None outside the middleware)."""
    value = scope.get(_SCOPE_KEY)
    return value if isinstance(value, str) else None


class Metrics:
    """One app's registry: request counters and latencies, plus state read at scrape time."""

    def __init__(self, services: Services):
        # A registry per app: tests build several apps in one process.
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "geo_service_http_requests",
            "HTTP requests by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "geo_service_http_request_duration_seconds",
            "Time to the last byte of the response, by route template and status",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StateCollector(services))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)


class _StateCollector(Collector):
    """Tile cache, invalidation and connection-pool figures, read when scraped."""

    def __init__(self, services: Services):
        self.services = services

    def collect(self) -> Iterator[Metric]:
        """Yield the current figures (nothing for parts not started yet)."""
        tiles = self.services.tiles_if_started()
        if tiles is not None:
            yield from _tile_metrics(tiles)
        if self.services.prerender is not None:
            yield from _prerender_metrics(self.services.prerender.status)
        pool = self.services.pool_if_started()
        if pool is not None:
            yield from _pool_metrics(pool.get_stats())
        if self.services.replicas.replicas:
            yield from _replica_metrics(self.services.replicas)


def _replica_metrics(replicas: ReplicaSet) -> Iterator[Metric]:
    """Per replica (by host:port): whether reads go to it, and its lag."""
    in_rotation = GaugeMetricFamily(
        "geo_service_replica_in_rotation",
        "1 when reads go to the replica (streaming within the lag limit), else 0",
        labels=["replica", "state"],
    )
    lag = GaugeMetricFamily(
        "geo_service_replica_lag_seconds",
        "Upper bound of how far the replica's data are behind the primary's (s)",
        labels=["replica"],
    )
    for replica in replicas.replicas:
        in_rotation.add_metric([replica.label, str(replica.state)], float(replica.in_rotation))
        if replica.lag_s is not None:
            lag.add_metric([replica.label], replica.lag_s)
    yield in_rotation
    yield lag


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _prerender_metrics(status: PrerenderStatus) -> Iterator[Metric]:
    yield _counter(
        "geo_service_tile_prerendered",
        "Tiles rendered into the cache by the background pre-render",
        status.rendered,
    )
    yield GaugeMetricFamily(
        "geo_service_tile_prerender_remaining",
        "Tiles the pre-render's current pass has still to check",
        value=status.remaining,
    )
    yield _counter(
        "geo_service_tile_prerender_errors",
        "Database errors the pre-render met (each retried with back-off)",
        status.errors,
    )


def _tile_metrics(tiles: TileService) -> Iterator[Metric]:
    yield _counter(
        "geo_service_tile_cache_hits", "Tiles served from a cache (fresh)", tiles.stats.hits
    )
    yield _counter(
        "geo_service_tile_cache_misses",
        "Tiles rendered because no fresh cached copy existed",
        tiles.stats.misses,
    )
    yield _counter(
        "geo_service_tile_rendered_bytes",
        "Bytes of tiles rendered by PostGIS",
        tiles.stats.rendered_bytes,
    )
    yield _counter(
        "geo_service_tile_change_notifications",
        "tile_change notifications received from the database",
        tiles.stats.notifications,
    )
    yield _counter(
        "geo_service_tile_changes",
        "Data changes applied to the tile change log",
        tiles.freshness.changes,
    )
    yield _counter(
        "geo_service_tile_invalidated_tiles",
        "Cached tiles purged after changes",
        tiles.freshness.purged,
    )
    corrupt = CounterMetricFamily(
        "geo_service_tile_cache_corrupt",
        "Cached tiles found corrupt and dropped",
        labels=["backend"],
    )
    errors = CounterMetricFamily(
        "geo_service_tile_cache_errors",
        "Cache backend failures (served uncached)",
        labels=["backend"],
    )
    degraded = GaugeMetricFamily(
        "geo_service_tile_cache_degraded",
        "1 when a purge of a cache others serve failed (stale tiles may be served)",
        labels=["backend"],
    )
    for cache in tiles.caches:
        corrupt.add_metric([cache.name], getattr(cache, "corrupt", 0))
        errors.add_metric([cache.name], getattr(cache, "errors", 0))
        degraded.add_metric([cache.name], float(getattr(cache, "degraded", False)))
    yield corrupt
    yield errors
    yield degraded


# psycopg_pool's get_stats(): current measures become gauges, running totals counters.
_POOL_GAUGES = {
    "pool_min": "Minimum connections of the pool",
    "pool_max": "Maximum connections of the pool",
    "pool_size": "Connections open or being opened",
    "pool_available": "Idle connections ready in the pool",
    "requests_waiting": "Requests waiting for a connection",
}
_POOL_COUNTERS = {
    "requests_num": "Connection requests",
    "requests_queued": "Connection requests that had to wait",
    "requests_errors": "Connection requests that failed (timeout, pool full)",
    "requests_wait_ms": "Total time waited for a connection (ms)",
    "usage_ms": "Total time connections were lent out (ms)",
    "connections_num": "Connection attempts to the database",
    "connections_errors": "Failed connection attempts",
    "connections_lost": "Connections found broken",
    "returns_bad": "Connections returned in a bad state",
}


def _pool_metrics(stats: dict[str, int]) -> Iterator[Metric]:
    for key, documentation in _POOL_GAUGES.items():
        yield GaugeMetricFamily(f"geo_service_db_{key}", documentation, value=stats.get(key, 0))
    for key, documentation in _POOL_COUNTERS.items():
        yield _counter(f"geo_service_db_{key}", documentation, stats.get(key, 0))


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, services: ServicesDep) -> Response:
    """Prometheus (or OpenMetrics, when asked for) text of this instance's metrics."""
    _check_scraper(request, services.settings.metrics_token)
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    assert services.metrics_registry is not None
    return Response(
        encoder(services.metrics_registry),
        media_type=content_type,
        headers={"Cache-Control": "no-store"},
    )


def operator_asks(request: Request, token: str | None) -> bool:
    """Whether /metrics would answer this request: the bearer token of
    GEO_SERVICE_METRICS_TOKEN when set, else a client on this machine asking directly."""
    if not token:
        return _asked_on_this_machine(request)
    sent = request.headers.get("authorization", "")
    return hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())


def _check_scraper(request: Request, token: str | None) -> None:
    """With GEO_SERVICE_METRICS_TOKEN set, only a scraper sending it as a bearer token;
    without, only a client on this machine asking directly (not through a proxy): the
    figures (routes, pool, cache and replica state) are for the operator, not the public."""
    if not token:
        if not _asked_on_this_machine(request):
            raise Forbidden(
                "/metrics answers other machines only with a bearer token: set"
                " GEO_SERVICE_METRICS_TOKEN",
                parameter="Authorization",
            )
        return
    sent = request.headers.get("authorization", "")
    if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        raise Unauthorized(
            "/metrics needs the bearer token set in GEO_SERVICE_METRICS_TOKEN",
            parameter="Authorization",
        )


def _asked_on_this_machine(request: Request) -> bool:
    """A loopback client, with no proxy's forwarding headers (a proxy on this machine that
    is not configured as trusted would otherwise make every client look local)."""
    if any(h in request.headers for h in ("x-forwarded-for", "forwarded", "x-real-ip")):
        return False
    try:
        return ipaddress.ip_address(client_address(request)).is_loopback
    except ValueError:
        return False


def access_logger() -> logging.Logger:
    """The logger of the JSON request lines; writes bare lines to stderr unless configured."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not logger.handlers:  # once per process, however many apps are built
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


class ObservabilityMiddleware:
    """ASGI middleware: request id, metrics and the access log line."""

    def __init__(self, app: Any, metrics: Metrics, access_log: bool = True):
        self.app = app
        self.metrics = metrics
        self.log = access_logger() if access_log else None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Handle one request, amending its response headers and recording it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_request_id(scope) or uuid.uuid4().hex
        scope[_SCOPE_KEY] = rid
        started = time.perf_counter()
        answered: float | None = None  # when the last byte was sent (work after it, such as
        status = 0  # keeping a rendered tile in the cache, is not the client's latency)

        async def send_with_headers(message: Any) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-Id"] = rid
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                answered = time.perf_counter()

        error: str | None = None
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            error = type(exc).__name__
            raise
        finally:
            # An exception before the response started becomes Starlette's 500.
            status = status or 500
            seconds = (answered or time.perf_counter()) - started
            method = scope["method"] if scope["method"] in _METHODS else "other"
            route = _route_template(scope)
            self.metrics.observe(method, route, status, seconds)
            if self.log is not None:
                self._log_line(rid, method, route, scope, status, seconds, error)

    def _log_line(
        self,
        rid: str,
        method: str,
        route: str,
        scope: Any,
        status: int,
        seconds: float,
        error: str | None,
    ) -> None:
        assert self.log is not None
        line: dict[str, Any] = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "request_id": rid,
            "method": method,
            "route": route,
            "path": scope["path"],
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
        }
        if error:
            line["error"] = error
        self.log.info(orjson.dumps(line).decode())


def _incoming_request_id(scope: Any) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _SAFE_REQUEST_ID.fullmatch(text) else None
    return None


def _route_template(scope: Any) -> str:
    """The matched route's path template, so metric labels stay few whatever the URLs."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    app = scope.get("app")
    for candidate in getattr(getattr(app, "router", None), "routes", ()):
        if isinstance(candidate, Mount) and scope["path"].startswith(candidate.path + "/"):
            return candidate.path
        if getattr(candidate, "endpoint", object()) is scope.get("endpoint"):
            return str(getattr(candidate, "path", "unmatched"))
    return "unmatched"


def install(app: FastAPI, services: Services) -> None:
    """Add /metrics and the middleware (outermost of the app's own middleware)."""
    metrics = Metrics(services)
    services.metrics_registry = metrics.registry
    app.include_router(router)
    app.add_middleware(
        ObservabilityMiddleware, metrics=metrics, access_log=services.settings.access_log
    )

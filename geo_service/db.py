"""Finding the database, connections for the command line, and the service's pool."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from geo_service.localdb import LocalCluster
from geo_service.settings import DatabaseSettings, ServiceSettings


def local_cluster(settings: ServiceSettings) -> LocalCluster:
    """The embedded cluster under `GEO_SERVICE_HOME`."""
    return LocalCluster(settings.home, settings.database_name, settings.pg_bindir)


def database_url(
    settings: ServiceSettings, db_settings: DatabaseSettings | None = None, start: bool = True
) -> str:
    """The URL to use: the configured database, else the embedded one (started on demand)."""
    db_settings = db_settings or DatabaseSettings()
    if db_settings.configured:
        return db_settings.url()
    cluster = local_cluster(settings)
    if start:
        cluster.start()
    return cluster.url()


# The login the web service uses on the embedded database: a member of geo_service_app
# (migration 0010), so it reads everything and writes only what requests change.
SERVICE_LOGIN = "geo_service_web"


def service_url(settings: ServiceSettings, db_settings: DatabaseSettings | None = None) -> str:
    """The URL the web service connects with: GEO_SERVICE_APP_DATABASE_URL (a login in role
    geo_service_app), else the configured database's, else the embedded database's own
    restricted login."""
    if settings.app_database_url:
        return settings.app_database_url
    db_settings = db_settings or DatabaseSettings()
    if db_settings.configured:
        return db_settings.url()
    return local_cluster(settings).service_url(SERVICE_LOGIN)


def grant_service_login(conn: psycopg.Connection, url: str) -> None:
    """Create (or update) the embedded database's service login, as a member of
    geo_service_app; nothing when that role does not exist (it was not created)."""
    parts = urlsplit(url)
    if parts.username != SERVICE_LOGIN or not parts.password:
        raise ValueError("not a URL of the service login")
    row = conn.execute(
        "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = 'geo_service_app'),"
        " EXISTS (SELECT FROM pg_roles WHERE rolname = %s)",
        (SERVICE_LOGIN,),
    ).fetchone()
    if row is None or not row[0]:
        return
    password = sql.Literal(unquote(parts.password))
    statement = (
        sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}")
        if row[1]
        else sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE geo_service_app")
    )
    conn.execute(statement.format(sql.Identifier(SERVICE_LOGIN), password))


def connect(url: str) -> psycopg.Connection:
    """An autocommit connection for command-line work (loaders open their own transactions)."""
    return psycopg.connect(url, application_name="geo-service-cli", autocommit=True)


async def open_pool(url: str, settings: ServiceSettings) -> AsyncConnectionPool:
    """Open the requests' pool at startup; the app starts even if the database is down."""
    return await _pool(
        url,
        settings,
        "geo-service",
        settings.pool_min_size,
        settings.pool_max_size,
        settings.statement_timeout_ms,
    )


async def open_control_pool(url: str, settings: ServiceSettings) -> AsyncConnectionPool:
    """A pool of two connections for /health and the tiles' freshness checks: whatever the
    requests' pool is busy with, these never wait for it."""
    # Checked every time they are lent: /health must not report a database that came back
    # as down because it drew a connection that died with the restart.
    return await _pool(url, settings, "geo-service-control", 1, 2, 5_000, check_idle_s=0.0)


async def open_jobs_pool(url: str, settings: ServiceSettings) -> AsyncConnectionPool:
    """The background jobs' own connections (claims, heartbeats, results): apart from the
    requests' pool, whose connections stay the requests' (and whose statements say so)."""
    size = settings.job_slots + 2  # (each job's heartbeat beside its work, the clean-up)
    return await _pool(url, settings, "geo-service-jobs", 0, size, settings.statement_timeout_ms)


async def _pool(
    url: str,
    settings: ServiceSettings,
    name: str,
    min_size: int,
    max_size: int,
    statement_timeout_ms: int,
    check_idle_s: float | None = None,
) -> AsyncConnectionPool:
    check, reset = _check_when_idle(
        settings.pool_check_idle_s if check_idle_s is None else check_idle_s
    )
    attempts = _ConnectAttempts()
    pool = AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs=connection_options(settings, name, statement_timeout_ms),
        check=check,
        reset=reset,
        configure=attempts.connected,
        timeout=settings.pool_timeout_s,
        reconnect_timeout=settings.pool_reconnect_timeout_s,
        open=False,
    )
    attempts.pool = pool
    _ATTEMPTS[pool] = attempts
    await pool.open(wait=False)
    return pool


class _ConnectAttempts:
    """Whether a pool's latest attempt to open a connection failed: it is then waiting out
    its reconnection backoff (1, 2, 4 … s), and a request may wait for it in vain even though
    the database answers again. psycopg_pool counts failed attempts; a success is recorded
    here (the pool's `configure` callback) with the count of failures at that moment."""

    def __init__(self) -> None:
        self.pool: AsyncConnectionPool | None = None
        self._failures_at_success: int | None = None

    async def connected(self, conn: psycopg.AsyncConnection) -> None:
        """`configure` callback: a new connection of the pool has just opened."""
        if self.pool is not None:
            self._failures_at_success = self.pool.get_stats().get("connections_errors", 0)

    def reconnecting(self, stats: dict[str, int]) -> bool:
        """True unless the pool has opened a connection since its last failed attempt."""
        failures = stats.get("connections_errors", 0)
        return self._failures_at_success is None or failures > self._failures_at_success


_ATTEMPTS: weakref.WeakKeyDictionary[AsyncConnectionPool, _ConnectAttempts] = (
    weakref.WeakKeyDictionary()
)


class WritesUnavailable(Exception):
    """The database answers, but the requests' pool cannot lend a working connection yet."""


async def check_pool_serves(pool: AsyncConnectionPool, timeout_s: float) -> None:
    """Raise WritesUnavailable unless `pool` lends a working connection within `timeout_s`,
    as a request would get one.

    A pool with no idle connection whose last attempt to open one succeeded has lent them
    all to requests: it is busy, not broken, and is not queued for (a health check waiting
    behind requests would report a loaded service as down)."""
    stats = pool.get_stats()
    attempts = _ATTEMPTS.get(pool)
    reconnecting = attempts is None or attempts.reconnecting(stats)
    if not reconnecting and not stats.get("pool_available", 0):
        return
    try:
        async with pool.connection(timeout=timeout_s) as conn:
            await AsyncConnectionPool.check_connection(conn)
    except (PoolTimeout, psycopg.OperationalError) as exc:
        raise WritesUnavailable(
            "the database answers, but the service's connections to it are still "
            f"reconnecting ({type(exc).__name__})"
        ) from exc


def connection_options(
    settings: ServiceSettings, name: str, statement_timeout_ms: int
) -> dict[str, Any]:
    """Keyword arguments of a pooled connection.

    Through PgBouncer in transaction mode each transaction may run on another server
    connection: a statement prepared on one is missing on the next (psycopg prepares a
    query it has run five times, unless `prepare_threshold` is None), and startup options
    are refused (the timeouts then come from the login role: ALTER ROLE … SET)."""
    kwargs: dict[str, Any] = {
        "application_name": name,
        "autocommit": True,
        "connect_timeout": settings.connect_timeout_s,
    }
    if settings.db_pgbouncer:
        kwargs["prepare_threshold"] = None
    else:
        kwargs["options"] = (
            f"-c statement_timeout={statement_timeout_ms}"
            f" -c idle_in_transaction_session_timeout={settings.idle_in_transaction_timeout_ms}"
        )
    return kwargs


Callback = Callable[[psycopg.AsyncConnection], Awaitable[None]]


def _check_when_idle(idle_s: float) -> tuple[Callback, Callback]:
    """Pool callbacks that ping a connection before lending it only if it sat idle a while.

    After a database restart the idle connections are dead: checking them as they are lent
    out replaces them instead of failing one request per stale connection. A connection
    handed back moments ago worked then; pinging it too would add a round trip to every
    request.
    """
    returned_at: weakref.WeakKeyDictionary[psycopg.AsyncConnection, float] = (
        weakref.WeakKeyDictionary()
    )

    async def check(conn: psycopg.AsyncConnection) -> None:
        if time.monotonic() - returned_at.get(conn, 0.0) >= idle_s:
            await AsyncConnectionPool.check_connection(conn)

    async def reset(conn: psycopg.AsyncConnection) -> None:
        returned_at[conn] = time.monotonic()

    return check, reset


async def close_pool(pool: AsyncConnectionPool) -> None:
    """Close the pool at shutdown."""
    await pool.close()


class HealthCheck:
    """The database's health, checked by at most one query at a time: a caller waits for it
    at most `timeout_s`, and a check stuck on a database that stopped answering is left to
    end on its own instead of being awaited (cancelling it could take as long again)."""

    def __init__(self) -> None:
        self._check: asyncio.Task[tuple[str | None, int | None]] | None = None

    async def status(
        self,
        pool: AsyncConnectionPool,
        timeout_s: float,
        writes: AsyncConnectionPool | None = None,
        writes_timeout_s: float | None = None,
    ) -> tuple[str | None, int | None]:
        """(PostGIS version, schema version) read through `pool`; TimeoutError when no answer
        within timeout_s; WritesUnavailable when the requests' pool `writes` cannot lend a
        working connection within `writes_timeout_s` (their own wait) though it answers."""
        if self._check is None or self._check.done():
            self._check = asyncio.create_task(
                _database_status(pool, timeout_s, writes, writes_timeout_s)
            )
            self._check.add_done_callback(lambda t: t.cancelled() or t.exception())
        # (this caller's check: once it is done, another caller may start the next one)
        check = self._check
        done, _ = await asyncio.wait({check}, timeout=timeout_s)
        if not done:
            raise TimeoutError(f"the database did not answer within {timeout_s:g} s")
        return check.result()


async def _database_status(
    pool: AsyncConnectionPool,
    timeout_s: float,
    writes: AsyncConnectionPool | None,
    writes_timeout_s: float | None,
) -> tuple[str | None, int | None]:
    started = time.monotonic()
    async with pool.connection(timeout=timeout_s) as conn:
        cur = await conn.execute(
            "SELECT postgis_lib_version(), (SELECT max(version) FROM schema_migration)"
        )
        row = await cur.fetchone()
    if writes is not None:
        # (after a restart the requests' pool may still wait out its reconnection backoff
        # when this check's own connection already answers: ok must mean a write works)
        left = timeout_s - (time.monotonic() - started)
        await check_pool_serves(writes, max(0.1, min(left, writes_timeout_s or left)))
    return (row[0], row[1]) if row else (None, None)

"""Finding the database, connections for the command line, and the service's pool."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable

import psycopg
from psycopg_pool import AsyncConnectionPool

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


def connect(url: str) -> psycopg.Connection:
    """An autocommit connection for command-line work (loaders open their own transactions)."""
    return psycopg.connect(url, application_name="geo-service-cli", autocommit=True)


async def open_pool(url: str, settings: ServiceSettings) -> AsyncConnectionPool:
    """Open the pool at startup; the app starts even if the database is down."""
    options = f"-c statement_timeout={settings.statement_timeout_ms}"
    check, reset = _check_when_idle(settings.pool_check_idle_s)
    pool = AsyncConnectionPool(
        url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        kwargs={
            "application_name": "geo-service",
            "options": options,
            "autocommit": True,
            "connect_timeout": settings.connect_timeout_s,
        },
        check=check,
        reset=reset,
        timeout=settings.pool_timeout_s,
        reconnect_timeout=settings.pool_reconnect_timeout_s,
        open=False,
    )
    await pool.open(wait=False)
    return pool


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


async def database_status(
    pool: AsyncConnectionPool, timeout_s: float
) -> tuple[str | None, int | None]:
    """(PostGIS version, schema version) when the database answers within the timeout."""
    async with asyncio.timeout(timeout_s):
        async with pool.connection(timeout=timeout_s) as conn:
            cur = await conn.execute(
                "SELECT postgis_lib_version(), (SELECT max(version) FROM schema_migration)"
            )
            row = await cur.fetchone()
    return (row[0], row[1]) if row else (None, None)

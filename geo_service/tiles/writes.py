"""Writes through the API purge the tiles they changed before they are answered."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tilecache.base import SyncedTileCache

logger = logging.getLogger(__name__)
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


class PurgeTilesAfterWrites:
    """Before a successful write (POST, PUT, PATCH, DELETE) is answered, purge what it changed
    from the caches that are served without a freshness check.

    nginx serves the directory cache without asking the service, so a client that saw its
    write succeed must not get the old tile from nginx afterwards. When the response starts
    the write has committed and its triggers have recorded the change; syncing the change
    log purges the affected tiles.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; hold a write's answer until its tiles are purged."""
        if scope["type"] != "http" or scope["method"] in _READS:
            await self.app(scope, receive, send)
            return

        async def send_when_purged(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                await purge_changes(scope["app"])
            await send(message)

        await self.app(scope, receive, send_when_purged)


async def purge_changes(app: Any) -> None:
    """Sync the change log with the database and wait until its changes are purged."""
    service = getattr(app.state, "tiles", None)
    pool = getattr(app.state, "pool", None)
    if service is None or pool is None or not _served_unchecked(service):
        return
    try:
        async with pool.connection() as conn:
            await service.freshness.sync(conn, purged=True)
    except (psycopg.Error, PoolTimeout, OSError) as exc:
        # the write has committed: answer it; the change listener purges when it can
        logger.warning("tiles changed by a write not purged before the answer: %s", exc)


def _served_unchecked(service: Any) -> bool:
    """True when some cached tile can be served without checking the change log first.

    With `strict` freshness, the service checks every cached tile it serves, so only a cache
    that others serve (nginx over the directory cache) must be purged before the answer.
    """
    if not service.caches:
        return False
    return service.settings.tile_freshness != "strict" or any(
        isinstance(cache, SyncedTileCache) for cache in service.caches)

"""Read replicas: which hot standbys may serve reads now, judged by their health and lag.

Each replica is checked every few seconds on a small pool of its own: it must answer, be
in recovery (a primary given as a replica is never used: reads there would not follow the
primary's writes) and not be over the lag limit. Reads go to a healthy replica in turn,
else to the primary.

The lag is an upper bound on how old the replica's data are, the smaller of two bounds:
the age of the last transaction it replayed (`pg_last_xact_replay_timestamp()`; on an
idle primary it grows although the replica is up to date) and the time since it was last
seen to have replayed everything the primary had written (its `pg_last_wal_replay_lsn()`
at least the primary's `pg_current_wal_lsn()` read just before).

Read-your-writes: a write's answer carries the primary's WAL insert position after its
commit (`commit_position`); a read carrying it goes to a replica that has replayed that far
(`read_pool_after`), waiting a little for one, else to the primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

logger = logging.getLogger(__name__)

PoolOpener = Callable[[str], Awaitable[AsyncConnectionPool]]

_PRIMARY_LSN = "SELECT pg_current_wal_lsn()::text"
# The end of everything inserted into the WAL so far, so also of a commit that has just
# returned. (pg_current_wal_lsn() is only what has been written out: with synchronous_commit
# off, a commit that returned may lie beyond it, and a replica that reached it could still
# miss the write.)
_COMMIT_POSITION = "SELECT pg_current_wal_insert_lsn()::text"
_REPLAY_POSITION = "SELECT pg_last_wal_replay_lsn()::text"
# (the comparison is made by the database: pg_lsn compares as a position, text does not)
_REPLICA_STATUS = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,"
    " extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8,"
    " pg_last_wal_replay_lsn() >= %s::pg_lsn"
)


def parse_lsn(text: str) -> int | None:
    """A WAL position as PostgreSQL writes it (`16/B374D848`) as a number; None if not one."""
    high, slash, low = text.strip().partition("/")
    if not slash or not (0 < len(high) <= 8 and 0 < len(low) <= 8):
        return None
    try:
        return int(high, 16) << 32 | int(low, 16)
    except ValueError:
        return None


def _note_replay(replica: Replica, text: str | None) -> None:
    """Record a replay position read from the replica; never go back (the health check and
    the read-your-writes poller read it on the same connection, either answer may come last)."""
    new, known = (parse_lsn(t) if t else None for t in (text, replica.replay_lsn))
    if new is not None and (known is None or new > known):
        replica.replay_lsn = text


class ReplicaState(enum.StrEnum):
    """What the last check found."""

    STREAMING = "streaming"
    LAGGING = "lagging"
    UNREACHABLE = "unreachable"
    NOT_A_STANDBY = "not a standby"
    INVALID_URL = "invalid URL"
    UNCHECKED = "unchecked"


def url_label(url: str) -> str | None:
    """`host:port` of a connection URL (never its user or password); None when unparseable."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return None
    host = str(parts.get("host") or parts.get("hostaddr") or "localhost")
    return f"{host}:{parts.get('port') or 5432}"


@dataclass
class Replica:
    """One configured replica and what its last check found."""

    url: str
    label: str
    state: ReplicaState = ReplicaState.UNCHECKED
    lag_s: float | None = None
    replay_lsn: str | None = None
    pool: AsyncConnectionPool | None = None  # the reads' (opened once it first streams)
    checks: psycopg.AsyncConnection | None = None  # the checks' own (never behind reads)
    caught_up_at: float | None = None  # (monotonic) when last seen with all primary's WAL

    @property
    def in_rotation(self) -> bool:
        """Whether reads may go to it."""
        return self.state is ReplicaState.STREAMING and self.pool is not None

    def has_replayed(self, position: int) -> bool:
        """Whether it was last seen to have replayed the primary's WAL up to `position`."""
        replayed = parse_lsn(self.replay_lsn) if self.replay_lsn else None
        return replayed is not None and replayed >= position


class ReplicaSet:
    """The configured replicas, checked in the background; hands out a read pool."""

    def __init__(
        self,
        urls: list[str],
        max_lag_s: float,
        check_interval_s: float = 1.0,
        check_timeout_s: float = 3.0,
    ) -> None:
        self.max_lag_s = max_lag_s
        self.check_interval_s = check_interval_s
        self.check_timeout_s = check_timeout_s
        self.replicas = [
            Replica(url, label or f"replica {n} (unparseable URL)")
            for n, url in enumerate(urls, 1)
            for label in [url_label(url)]
        ]
        for replica in self.replicas:
            if url_label(replica.url) is None:
                replica.state = ReplicaState.INVALID_URL
                logger.error("%s: not a PostgreSQL URL; never used for reads", replica.label)
        self._primary: AsyncConnectionPool | None = None
        self._primary_control: AsyncConnectionPool | None = None
        self._turn = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self.primary_lsn: str | None = None
        self._primary_read_at = 0.0
        self._open_pool: PoolOpener | None = None
        # reads waiting for a replica to replay a write: (position, woken when one has)
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []
        self._poller: asyncio.Task[None] | None = None
        self.replay_poll_s = 0.01

    @property
    def configured(self) -> bool:
        """Whether any replica is configured (the service then hands out write positions)."""
        return bool(self.replicas)

    async def start(
        self,
        primary: AsyncConnectionPool,
        primary_control: AsyncConnectionPool,
        open_pool: PoolOpener,
    ) -> None:
        """Start checking the replicas in the background (start-up never waits for them).

        A replica's read pool is opened when it is first found streaming: one that never
        answers costs no pool retrying to connect to it.
        """
        self._primary, self._primary_control = primary, primary_control
        self._open_pool = open_pool
        if any(r.state is not ReplicaState.INVALID_URL for r in self.replicas):
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop checking and close the replicas' pools."""
        for task in (self._task, self._poller):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for replica in self.replicas:
            if replica.checks is not None:
                await replica.checks.close()
            if replica.pool is not None:
                await replica.pool.close()

    def read_pool(self) -> AsyncConnectionPool:
        """A replica in rotation (each in turn), else the primary."""
        if self._primary is None:
            raise RuntimeError("the replica set has not started")
        healthy = [r for r in self.replicas if r.in_rotation]
        if not healthy:
            return self._primary
        pool = healthy[next(self._turn) % len(healthy)].pool
        assert pool is not None
        return pool

    async def read_pool_after(self, position: int | None, wait_s: float) -> AsyncConnectionPool:
        """The pool for a read that must see the client's writes up to WAL `position`: a
        replica in rotation that has replayed it (waiting up to `wait_s` for one), else the
        primary (with the primary down, a replica anyway: nothing newer can be read)."""
        if position is None:
            return self.read_pool()
        if self._primary is None:
            raise RuntimeError("the replica set has not started")
        healthy = [r for r in self.replicas if r.in_rotation]
        if not healthy:
            return self._primary
        caught_up = [r for r in healthy if r.has_replayed(position)]
        if not caught_up and wait_s > 0:
            await self._wait_replayed(position, wait_s)
            caught_up = [r for r in self.replicas if r.in_rotation and r.has_replayed(position)]
        if not caught_up and self.primary_lsn is None:
            caught_up = [r for r in self.replicas if r.in_rotation]
        if not caught_up:
            return self._primary
        pool = caught_up[next(self._turn) % len(caught_up)].pool
        assert pool is not None
        return pool

    async def _wait_replayed(self, position: int, wait_s: float) -> None:
        """Wait until a replica in rotation has replayed `position`, at most `wait_s`.

        The replay positions are read by one poller for all the waiting reads (a few ms
        apart, only while some wait), not by each read."""
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = (position, woken)
        self._waiting.append(waiting)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll_replay())
        try:
            await asyncio.wait_for(asyncio.shield(woken), wait_s)
        except TimeoutError:
            pass
        finally:
            with contextlib.suppress(ValueError):
                self._waiting.remove(waiting)

    async def _poll_replay(self) -> None:
        """Read the replicas' replay positions while reads wait; wake those now replayed."""
        while self._waiting:
            healthy = [r for r in self.replicas if r.in_rotation]
            await asyncio.gather(*(self._read_replay(r) for r in healthy))
            for position, woken in self._waiting:
                if not woken.done() and any(r.has_replayed(position) for r in healthy):
                    woken.set_result(None)
            await asyncio.sleep(self.replay_poll_s)

    async def _read_replay(self, replica: Replica) -> None:
        """The replica's replay position now, on its checks' connection (nothing on error:
        the health check reports it)."""
        conn = replica.checks
        if conn is None or conn.closed:
            return
        try:
            async with asyncio.timeout(self.check_timeout_s):
                cur = await conn.execute(_REPLAY_POSITION)
                row = await cur.fetchone()
        except Exception as exc:
            logger.debug("replica %s: replay position unavailable: %s", replica.label, exc)
            return
        if row and row[0]:
            _note_replay(replica, row[0])

    async def commit_position(self) -> str | None:
        """The primary's WAL insert position now (after a write's commit: at or past its
        commit record); None when the primary does not answer."""
        if self._primary_control is None:
            return None
        try:
            async with asyncio.timeout(self.check_timeout_s):
                async with self._primary_control.connection() as conn:
                    cur = await conn.execute(_COMMIT_POSITION)
                    row = await cur.fetchone()
        except Exception as exc:
            logger.warning("the write's WAL position could not be read: %s", exc)
            return None
        return str(row[0]) if row else None

    def serving(self) -> bool:
        """Whether a replica is in rotation (reads go to it)."""
        return any(r.in_rotation for r in self.replicas)

    def primary_unavailable(self) -> bool:
        """Whether the last check could not read the primary's WAL position while a replica
        is in rotation: reads then go to replicas, and nothing newer can be read anywhere."""
        return self.primary_lsn is None and self.serving()

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.check_interval_s)

    async def check(self) -> None:
        """Check every replica once (after reading the primary's WAL position); open the read
        pool of one found streaming for the first time."""
        # (a replica that replayed this position had all the primary wrote at this moment)
        self._primary_read_at = time.monotonic()
        self.primary_lsn = await self._read_primary_lsn()
        checked = [r for r in self.replicas if r.state is not ReplicaState.INVALID_URL]
        await asyncio.gather(*(self._check(r) for r in checked))
        for replica in checked:
            if replica.state is ReplicaState.STREAMING and replica.pool is None:
                assert self._open_pool is not None
                replica.pool = await self._open_pool(replica.url)

    async def _read_primary_lsn(self) -> str | None:
        """The primary's current WAL position; None when it cannot be read (primary down)."""
        assert self._primary_control is not None
        try:
            async with asyncio.timeout(self.check_timeout_s):
                async with self._primary_control.connection() as conn:
                    cur = await conn.execute(_PRIMARY_LSN)
                    row = await cur.fetchone()
            return row[0] if row else None
        except Exception as exc:  # (down, or itself a standby: nothing to compare with)
            logger.debug("primary WAL position unavailable: %s", exc)
            return None

    async def _status(self, replica: Replica) -> tuple[bool, str, float | None, bool | None]:
        """The replica's recovery, replay position and age, and whether it has replayed the
        primary's position, on its checks' connection (made again when it broke)."""
        async with asyncio.timeout(self.check_timeout_s):
            if replica.checks is None or replica.checks.closed:
                replica.checks = await psycopg.AsyncConnection.connect(
                    replica.url,
                    autocommit=True,
                    application_name="geo-service-control",
                    connect_timeout=max(1, round(self.check_timeout_s)),
                )
            cur = await replica.checks.execute(_REPLICA_STATUS, (self.primary_lsn,))
            row = await cur.fetchone()
        assert row is not None
        return row[0], row[1], row[2], row[3]

    async def _check(self, replica: Replica) -> None:
        primary_lsn = self.primary_lsn
        try:
            row = await self._status(replica)
        except Exception as exc:
            if replica.checks is not None:
                await replica.checks.close()
                replica.checks = None
            replica.replay_lsn = None
            self._set(replica, ReplicaState.UNREACHABLE, None, f"{type(exc).__name__}: {exc}")
            return
        in_recovery, replay_lsn, replay_age_s, caught_up = row
        _note_replay(replica, replay_lsn)
        if not in_recovery:
            self._set(replica, ReplicaState.NOT_A_STANDBY, None, "it is not in recovery")
            return
        now = time.monotonic()
        if caught_up:
            replica.caught_up_at = self._primary_read_at
            self._set(replica, ReplicaState.STREAMING, 0.0)
            return
        bounds = [b for b in (replay_age_s,) if b is not None]
        if replica.caught_up_at is not None:
            bounds.append(now - replica.caught_up_at)
        lag = min(bounds) if bounds else None
        if primary_lsn is None:
            # With the primary down nothing newer can be read anywhere: the replica serves.
            self._set(replica, ReplicaState.STREAMING, lag)
        elif lag is None or lag > self.max_lag_s:
            self._set(replica, ReplicaState.LAGGING, lag, f"over {self.max_lag_s:g} s behind")
        else:
            self._set(replica, ReplicaState.STREAMING, lag)

    def _set(
        self, replica: Replica, state: ReplicaState, lag_s: float | None, why: str = ""
    ) -> None:
        """Record a check's finding; log when a replica leaves or rejoins the rotation."""
        before = replica.state
        replica.state, replica.lag_s = state, lag_s
        if state is before:
            return
        if state is ReplicaState.STREAMING:
            logger.warning("replica %s: streaming, reads go to it", replica.label)
        else:
            logger.warning("replica %s: %s (%s); reads go elsewhere", replica.label, state, why)

    def report(self) -> list[dict[str, object]]:
        """Each replica for /health: its host and port, state and lag."""
        return [
            {
                "url": r.label,
                "state": str(r.state),
                "lag_s": None if r.lag_s is None else round(r.lag_s, 3),
            }
            for r in self.replicas
        ]

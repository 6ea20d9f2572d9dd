"""The SQL of background jobs (tables of migration 0025): submit or join, claim, heartbeat,
finish, dismiss, read, clean up. Values are always bound."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

ACTIVE = ("accepted", "running")
# a job's message is stored as a message of the catalogue (geo_service.messages): its key
# and values as JSON, said in the reader's language when read
CANCELLED = '{"key": "job_cancelled", "args": {}}'
CHUNK_BYTES = 1 << 20
# (one lock for the whole queue while a job is submitted: the limits are counted exactly)
_QUEUE_LOCK = 0x6A6F6273  # "jobs"
_COLUMNS = (
    "id, process, inputs, request_key, commune_code, province_code, clients, status, message,"
    " pages_done, pages_total, attempts, worker, heartbeat, created, started, finished,"
    " updated, expires, result_name, result_type, result_bytes"
)


class LimitReached(Exception):
    """A job was refused: `what` is "client" (its own jobs) or "queue" (everyone's)."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(what)
        self.what, self.limit = what, limit


async def submit(
    conn: psycopg.AsyncConnection,
    job: dict[str, Any],
    client: str,
    per_client: int,
    queue_size: int,
) -> tuple[dict[str, Any], bool]:
    """The running job of the same request (the client joins it) or a new one; whether it
    was joined. LimitReached when the client or the queue is full."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_QUEUE_LOCK,))
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            f"UPDATE output_job SET clients = CASE WHEN %(client)s = ANY(clients) THEN clients"
            f" ELSE clients || %(client)s END WHERE request_key = %(key)s"
            f" AND status IN ('accepted', 'running') RETURNING {_COLUMNS}",
            {"client": client, "key": job["request_key"]},
        )
        joined = await cur.fetchone()
        if joined is not None:
            return joined, True
        own, queued = await _counts(conn, client)
        if own >= per_client:
            raise LimitReached("client", per_client)
        if queued >= queue_size:
            raise LimitReached("queue", queue_size)
        await cur.execute(
            f"INSERT INTO output_job (id, process, inputs, request_key, commune_code,"
            f" province_code, clients, pages_total) VALUES (%(id)s, %(process)s,"
            f" %(inputs)s::jsonb, %(request_key)s, %(commune_code)s, %(province_code)s,"
            f" ARRAY[%(client)s], %(pages_total)s) RETURNING {_COLUMNS}",
            {**job, "id": uuid.uuid4(), "client": client},
        )
        made = await cur.fetchone()
        await conn.execute("SELECT pg_notify('output_job', 'accepted')")
    assert made is not None
    return made, False


async def _counts(conn: psycopg.AsyncConnection, client: str) -> tuple[int, int]:
    cur = await conn.execute(
        "SELECT count(*) FILTER (WHERE %s = ANY(clients)), count(*) FROM output_job"
        " WHERE status IN ('accepted', 'running')",
        (client,),
    )
    row = await cur.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def get(conn: psycopg.AsyncConnection, job_id: uuid.UUID) -> dict[str, Any] | None:
    """One job (None: unknown, or expired and deleted)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        f"SELECT {_COLUMNS} FROM output_job WHERE id = %s AND (expires IS NULL OR expires > now())",
        (job_id,),
    )
    return await cur.fetchone()


async def of_client(conn: psycopg.AsyncConnection, client: str) -> list[dict[str, Any]]:
    """The jobs a client asked for or joined, newest first."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        f"SELECT {_COLUMNS} FROM output_job WHERE %s = ANY(clients)"
        " AND (expires IS NULL OR expires > now()) ORDER BY created DESC LIMIT 100",
        (client,),
    )
    return await cur.fetchall()


async def leave(
    conn: psycopg.AsyncConnection, job_id: uuid.UUID, client: str, everyone: bool, keep_s: float
) -> dict[str, Any] | None:
    """The client leaves an accepted or running job (`everyone`: an admin stops it for all);
    the job is dismissed when nobody else is left (and stays in the list of who dismissed
    it). The job as it is then (None: not there)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        f"""UPDATE output_job SET
              clients = CASE WHEN %(everyone)s OR clients = ARRAY[%(client)s] THEN clients
                        ELSE array_remove(clients, %(client)s) END,
              status = CASE WHEN %(everyone)s OR clients = ARRAY[%(client)s] THEN 'dismissed'
                       ELSE status END,
              updated = now()
            WHERE id = %(id)s AND status IN ('accepted', 'running')
              AND (%(everyone)s OR %(client)s = ANY(clients))
            RETURNING {_COLUMNS}""",
        {"id": job_id, "client": client, "everyone": everyone},
    )
    row = await cur.fetchone()
    if row is not None and row["status"] == "dismissed":
        await conn.execute(
            "UPDATE output_job SET finished = now(), message = %s,"
            " expires = now() + make_interval(secs => %s) WHERE id = %s",
            (CANCELLED, keep_s, job_id),
        )
        row = {**row, "message": CANCELLED}
    return row


async def claim(
    conn: psycopg.AsyncConnection, worker: str, stale_s: float
) -> dict[str, Any] | None:
    """The oldest job waiting, or one whose worker stopped beating for `stale_s`, now this
    worker's (its attempt counted); None when there is none."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        f"""UPDATE output_job j SET status = 'running', worker = %(worker)s,
                attempts = j.attempts + 1, heartbeat = now(), updated = now(),
                started = coalesce(j.started, now()), pages_done = 0
            WHERE j.id = (
                SELECT id FROM output_job
                WHERE status = 'accepted' OR (status = 'running'
                      AND heartbeat < now() - make_interval(secs => %(stale)s))
                ORDER BY created LIMIT 1 FOR UPDATE SKIP LOCKED)
            RETURNING {_COLUMNS}""",
        {"worker": worker, "stale": stale_s},
    )
    return await cur.fetchone()


async def beat(conn: psycopg.AsyncConnection, job: dict[str, Any], pages_done: int) -> bool:
    """Record the pages done and that the worker lives; False when the job is no longer this
    worker's to run (dismissed, or taken over after a pause)."""
    cur = await conn.execute(
        "UPDATE output_job SET heartbeat = now(), updated = now(),"
        " pages_done = greatest(pages_done, %s) WHERE id = %s AND worker = %s"
        " AND attempts = %s AND status = 'running'",
        (pages_done, job["id"], job["worker"], job["attempts"]),
    )
    return cur.rowcount == 1


async def succeed(
    conn: psycopg.AsyncConnection,
    job: dict[str, Any],
    path: Path,
    name: str,
    media_type: str,
    keep_s: float,
) -> bool:
    """Store the result file in chunks and mark the job successful, in one transaction;
    False (nothing stored) when the job is no longer this worker's."""
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT 1 FROM output_job WHERE id = %s AND worker = %s AND attempts = %s"
            " AND status = 'running' FOR UPDATE",
            (job["id"], job["worker"], job["attempts"]),
        )
        if await cur.fetchone() is None:
            return False
        size = 0
        async with conn.cursor() as cursor:
            with path.open("rb") as source:
                n = 0
                while chunk := source.read(CHUNK_BYTES):
                    await cursor.execute(
                        "INSERT INTO output_job_chunk (job_id, n, data) VALUES (%s, %s, %s)",
                        (job["id"], n, chunk),
                    )
                    n, size = n + 1, size + len(chunk)
        await conn.execute(
            "UPDATE output_job SET status = 'successful', pages_done = pages_total,"
            " finished = now(), updated = now(), expires = now() + make_interval(secs => %s),"
            " result_name = %s, result_type = %s, result_bytes = %s, message = NULL"
            " WHERE id = %s",
            (keep_s, name, media_type, size, job["id"]),
        )
    return True


async def fail(
    conn: psycopg.AsyncConnection, job: dict[str, Any], message: str, keep_s: float
) -> None:
    """Mark this worker's job failed, saying why."""
    await conn.execute(
        "UPDATE output_job SET status = 'failed', message = %s, finished = now(),"
        " updated = now(), expires = now() + make_interval(secs => %s)"
        " WHERE id = %s AND worker = %s AND attempts = %s AND status = 'running'",
        (message, keep_s, job["id"], job["worker"], job["attempts"]),
    )


async def give_back(conn: psycopg.AsyncConnection, job: dict[str, Any]) -> None:
    """A stopping instance hands its running job back to the queue."""
    await conn.execute(
        "UPDATE output_job SET status = 'accepted', worker = NULL, heartbeat = NULL,"
        " updated = now(), attempts = greatest(attempts - 1, 0)"
        " WHERE id = %s AND worker = %s AND attempts = %s AND status = 'running'",
        (job["id"], job["worker"], job["attempts"]),
    )
    await conn.execute("SELECT pg_notify('output_job', 'accepted')")


async def chunks(conn_factory: Any, job_id: uuid.UUID, count: int) -> AsyncIterator[bytes]:
    """A result's chunks in order, each read on a pooled connection given back at once (a
    slow client never holds a connection)."""
    for n in range(count):
        async with conn_factory() as conn:
            cur = await conn.execute(
                "SELECT data FROM output_job_chunk WHERE job_id = %s AND n = %s", (job_id, n)
            )
            row = await cur.fetchone()
        if row is None:
            raise LookupError(f"chunk {n} of job {job_id} is gone")
        yield bytes(row[0])


async def delete_expired(conn: psycopg.AsyncConnection) -> int:
    """Delete the finished jobs (and their results) past their time; how many."""
    cur = await conn.execute("DELETE FROM output_job WHERE expires <= now()")
    return cur.rowcount

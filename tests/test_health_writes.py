"""/health after the primary restarts: it says "ok" only when a write would get through.

The requests' pool reconnects with backoff; /health once asked only its own two
connections, so it could say ok while writes still answered 503 for up to 2 s."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
from fastapi.testclient import TestClient

from geo_service.users import add_user
from tests.replication import PRIMARY_OPTIONS, Replication
from tests.test_replicas import service, states, wait_for, wait_for_primary

# A write's wait for a connection: short, so a pool still in its backoff answers 503; and
# reconnection retried long enough for the backoff to grow (1, 2, 4, 8 s …) while it is down.
POOL = {"pool_timeout_s": 1.0, "pool_reconnect_timeout_s": 30.0}
OUTAGE_WRITES = 10


def _create_user(client: TestClient, auth: dict[str, str]) -> int:
    """A write through the primary: a new account (status code)."""
    body = {"name": f"w-{uuid.uuid4().hex[:10]}", "role": "viewer", "password": "a long password"}
    return client.post("/admin/users", json=body, headers=auth).status_code


def _primary_ok(client: TestClient, with_replica: bool) -> bool:
    """Whether /health says writes work, and answers as documented when it says not."""
    response = client.get("/health")
    body = response.json()
    if body["status"] in ("ok", "degraded"):
        assert response.status_code == 200
        assert body.get("primary", "ok") == "ok" and body["database"] == "ok"
        return True
    # writes cannot be served: a retry hint always; 200 "read-only" while a replica reads
    assert int(response.headers["Retry-After"]) > 0, body
    if with_replica:
        assert (response.status_code, body["status"], body["primary"]) == (
            200,
            "read-only",
            "unavailable",
        ), body
    else:
        assert (response.status_code, body["status"]) == (503, "unavailable"), body
    return False


@pytest.mark.parametrize("with_replica", [True, False], ids=["replica", "primary-only"])
def test_after_a_primary_restart_health_says_ok_only_when_writes_work(
    replication: Replication, with_replica: bool
) -> None:
    with psycopg.connect(replication.primary_url, autocommit=True) as conn:
        token = add_user(conn, f"health-admin-{uuid.uuid4().hex[:6]}", "admin", [])
    auth = {"Authorization": f"Bearer {token}"}
    replicas = replication.standby_url if with_replica else ""
    with service(replication.primary_url, replicas, **POOL) as client:
        if with_replica:
            wait_for(client, states("streaming"))
        assert _primary_ok(client, with_replica) and _create_user(client, auth) == 201
        replication.primary.stop()
        try:
            if with_replica:
                wait_for_primary(client, "unavailable")
                assert not _primary_ok(client, with_replica)
            # writes while it is down (a second each): the requests' pool retries its
            # connections with a growing backoff and is still waiting out a delay when the
            # primary returns. (Without a replica nothing else asks for /health meanwhile:
            # its own connection, found dead when next asked, reconnects at once.)
            for _ in range(OUTAGE_WRITES):
                assert _create_user(client, auth) == 503
        finally:
            replication.primary.start(extra_options=PRIMARY_OPTIONS)
        # from the moment the primary is back: every "ok" is followed by a working write
        oks, deadline = 0, time.monotonic() + 30
        while oks < 5:
            assert time.monotonic() < deadline, "/health never said ok again"
            if _primary_ok(client, with_replica):
                oks += 1
                assert _create_user(client, auth) == 201, f"a write failed after ok {oks}"
            else:
                time.sleep(0.05)
    replication.wait_streaming()

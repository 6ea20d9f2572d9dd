"""Promotion: the primary is lost and the operator promotes the hot standby. The service,
not restarted, keeps reading meanwhile and then writes through the promoted server, its
tile freshness checks following it too (docs/scaling.md, "When the primary is lost")."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import psycopg

from geo_service.users import add_user
from tests.replication import Replication, hanoi_name, replicated
from tests.test_read_your_writes import rename
from tests.test_replica_tiles import names_in
from tests.test_replicas import (
    ITEMS,
    clock,
    served_since,
    service,
    states,
    wait_for,
    wait_for_primary,
    write_when_back,
)


def failover_url(replication: Replication) -> str:
    """DATABASE_URL naming both servers: libpq connects to the first that accepts writes
    (`target_session_attrs=read-write`), so new connections find the promoted one."""
    primary = replication.primary.load_state()
    standby = replication.standby.load_state()
    assert primary is not None and standby is not None
    user, rest = replication.primary_url.removeprefix("postgresql://").split("@", 1)
    database = rest.split("/", 1)[1]
    hosts = f"127.0.0.1:{primary.port},127.0.0.1:{standby.port}"
    return f"postgresql://{user}@{hosts}/{database}?target_session_attrs=read-write"


def test_after_promotion_the_service_writes_to_the_promoted_standby_without_a_restart() -> None:
    # (a pair of its own: promotion ends the standby's life as one)
    with replicated() as replication:
        with psycopg.connect(replication.primary_url, autocommit=True) as conn:
            token = add_user(conn, "promotion-admin", "admin", [])
        auth = {"Authorization": f"Bearer {token}"}
        settings = {
            "pool_timeout_s": 1.0,
            "tile_cache": "sqlite",
            "tile_cache_path": Path(tempfile.mkdtemp()) / "tiles.sqlite",
        }
        with service(failover_url(replication), replication.standby_url, **settings) as client:
            wait_for(client, states("streaming"))
            old_name = _hanoi(replication.primary_url)
            assert old_name in names_in(client)
            assert old_name in names_in(client)  # (the tile over Hà Nội, now cached)

            replication.primary.stop()  # lost, for good
            wait_for_primary(client, "unavailable")
            assert client.get(ITEMS).status_code == 200  # reads go on from the standby
            refused = client.post("/admin/users", json={}, headers=auth)
            assert refused.status_code == 503 and int(refused.headers["Retry-After"]) > 0

            replication.promote()
            assert wait_for_primary(client, "ok")["status"] == "ok"
            # a write reaches the promoted server (after a 503's Retry-After at most: the
            # requests' pool may still be in its reconnection backoff)
            name = f"after-promotion-{uuid.uuid4().hex[:8]}"
            user = {"name": name, "role": "viewer", "password": "a long password"}
            created = write_when_back(client, "/admin/users", auth, user)
            assert created.status_code == 201, created.text
            with psycopg.connect(replication.standby_url, autocommit=True) as conn:
                found = conn.execute("SELECT FROM app_user WHERE name = %s", (name,))
                assert found.fetchone() is not None
            # the promoted server is no longer a standby: /health says so and reads go to
            # it as the primary
            wait_for(client, states("not a standby"))
            before = clock(replication.standby_url)
            assert client.get(ITEMS).status_code == 200
            assert served_since(replication.standby_url, before)
            # a plain-SQL change on the new primary is not hidden by the cached tile
            new_name = f"Hà Nội {uuid.uuid4().hex[:6]}"
            rename(_on_promoted(replication), new_name)
            names = names_in(client)
            assert new_name in names and old_name not in names


def _on_promoted(replication: Replication) -> Replication:
    """The pair seen from the promoted server (it is the primary now)."""
    return Replication(replication.standby, replication.standby)


def _hanoi(url: str) -> str:
    """Hà Nội's name in the database at `url`."""
    return hanoi_name(url)

"""Read replicas against a real primary and a real hot standby: reads go to a healthy
replica, a bad or lagging replica is reported and never used, the service starts anyway."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from geo_service.http.app import create_app
from geo_service.localdb import free_port
from geo_service.settings import ServiceSettings
from tests.helpers import get_health, scrape
from tests.replication import PRIMARY_OPTIONS, Replication

ITEMS = "/collections/province-2025/items?limit=3"
# tiles over Hà Nội (province-2025 at z6 and z5)
TILES = (
    "/collections/province-2025/tiles/WebMercatorQuad/6/50/28",
    "/collections/province-2025/tiles/WebMercatorQuad/5/25/14",
)


@contextmanager
def service(
    primary_url: str, replica_urls: str, max_lag_s: float = 5.0, **settings: Any
) -> Iterator[TestClient]:
    """The app over the primary with these replicas, checked five times a second."""
    settings = ServiceSettings(
        home=Path(tempfile.mkdtemp()),
        replica_urls=replica_urls,
        replica_max_lag_s=max_lag_s,
        replica_check_interval_s=0.2,
        **{"tile_cache": "none", **settings},
    )
    with TestClient(create_app(settings, db_url=primary_url)) as client:
        yield client


def wait_for(client: TestClient, wanted: Callable[[list[dict[str, Any]]], bool]) -> None:
    """Wait until /health's replicas satisfy `wanted` (fail after 30 s)."""
    deadline = time.monotonic() + 30
    replicas: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        replicas = get_health(client).json().get("replicas", [])
        if wanted(replicas):
            return
        time.sleep(0.05)
    raise AssertionError(f"/health's replicas never got there: {replicas}")


def states(*wanted: str) -> Callable[[list[dict[str, Any]]], bool]:
    """The replicas are in these states, in order."""
    return lambda replicas: [r["state"] for r in replicas] == list(wanted)


def clock(url: str) -> datetime:
    """The server's clock now."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]


def served_since(url: str, since: datetime) -> bool:
    """Whether a request connection of the service (application_name geo-service) on this
    server ran a statement after `since` (the pool's own checks send an empty one; /health
    and the replica checks have connections of their own)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'geo-service'"
            " AND datname = current_database() AND query <> '' AND state_change > %s)",
            (since,),
        ).fetchone()
    return bool(row and row[0])


def read_items(client: TestClient, replication: Replication) -> tuple[bool, bool]:
    """GET the items; whether the (standby, primary) served them."""
    before = clock(replication.primary_url)
    response = client.get(ITEMS)
    assert response.status_code == 200
    assert len(response.json()["features"]) == 3
    return (
        served_since(replication.standby_url, before),
        served_since(replication.primary_url, before),
    )


def host_port(url: str) -> str:
    """host:port of a URL as /health names it."""
    return url.split("@", 1)[1].split("/", 1)[0]


def test_reads_go_to_a_streaming_replica(replication: Replication) -> None:
    with service(replication.primary_url, replication.standby_url) as client:
        wait_for(client, states("streaming"))
        health = get_health(client).json()
        assert health["status"] == "ok"
        assert health["replicas"] == [
            {"url": host_port(replication.standby_url), "state": "streaming", "lag_s": 0.0}
        ]
        assert read_items(client, replication) == (True, False)
        metrics = scrape(client)
        label = host_port(replication.standby_url)
        assert metrics[
            ("geo_service_replica_in_rotation", (("replica", label), ("state", "streaming")))
        ] == (1.0)


@pytest.mark.parametrize(
    "path",
    [
        "/collections/province-2025/items/01",
        "/collections/province-2025/items?q=ha&limit=2",
        "/collections/province-2025/items?filter=code%3D%2701%27",
    ],
)
def test_other_reads_go_to_the_replica(replication: Replication, path: str) -> None:
    with service(replication.primary_url, replication.standby_url) as client:
        wait_for(client, states("streaming"))
        before = clock(replication.primary_url)
        assert client.get(path).status_code == 200
        assert served_since(replication.standby_url, before)
        assert not served_since(replication.primary_url, before)


@pytest.mark.parametrize(
    "path",
    [
        "/collections/enumeration-areas/items?limit=2",
        "/collections/enumeration-areas/tiles/WebMercatorQuad/12/3257/1782",
        "/communes/00004/ea-coverage",
    ],
)
def test_ea_reads_stay_on_the_primary(replication: Replication, path: str) -> None:
    # (EA editing in the browser must never show EAs older than its own last save)
    with service(replication.primary_url, replication.standby_url) as client:
        wait_for(client, states("streaming"))
        before = clock(replication.primary_url)
        response = client.get(path)
        assert response.status_code < 500, response.text  # (no EA here: 422 too)
        assert served_since(replication.primary_url, before)
        assert not served_since(replication.standby_url, before)


def test_an_idle_primary_does_not_make_an_up_to_date_replica_lag(
    replication: Replication,
) -> None:
    # the last replayed transaction gets older than the lag limit while nothing happens:
    # the replica has replayed all the primary wrote, so it stays in rotation
    replication.write_on_primary()
    replication.wait_streaming()
    with service(replication.primary_url, replication.standby_url, max_lag_s=1.0) as client:
        wait_for(client, states("streaming"))
        time.sleep(2.5)
        with psycopg.connect(replication.standby_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())"
            ).fetchone()
        assert row is not None and row[0] > 1.0
        assert get_health(client).json()["replicas"][0]["state"] == "streaming"


def test_a_lagging_replica_leaves_the_rotation_and_comes_back(
    replication: Replication,
) -> None:
    with service(replication.primary_url, replication.standby_url, max_lag_s=1.0) as client:
        wait_for(client, states("streaming"))
        with replication.replay_paused():
            replication.write_on_primary()
            wait_for(client, states("lagging"))
            lag = get_health(client).json()["replicas"][0]["lag_s"]
            assert lag > 1.0
            assert read_items(client, replication) == (False, True)
        wait_for(client, states("streaming"))
        assert read_items(client, replication) == (True, False)


def test_bad_replicas_are_reported_never_used_and_the_service_starts(
    replication: Replication, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = f"postgresql://reader:secret-word@127.0.0.1:{free_port()}/geo_service"
    caplog.set_level(logging.WARNING, logger="geo_service.replicas")
    replicas = ",".join([replication.primary_url, unreachable, "not a URL at all"])
    with service(replication.primary_url, replicas) as client:
        wait_for(client, states("not a standby", "unreachable", "invalid URL"))
        response = get_health(client)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok"
        assert [r["url"] for r in body["replicas"]] == [
            host_port(replication.primary_url),
            host_port(unreachable),
            "replica 3 (unparseable URL)",
        ]
        assert "secret-word" not in response.text
        assert replication.primary.load_state().password not in response.text  # type: ignore[union-attr]
        # reads work, from the primary's own pool (not its pool "as a replica")
        services = client.app.state.services  # type: ignore[attr-defined]
        assert services.read_pool() is services.pool
        assert read_items(client, replication) == (False, True)
        metrics = scrape(client)
        for label, state in (
            (host_port(replication.primary_url), "not a standby"),
            (host_port(unreachable), "unreachable"),
        ):
            key = ("geo_service_replica_in_rotation", (("replica", label), ("state", state)))
            assert metrics[key] == 0.0
    logged = caplog.text
    assert (
        "not a standby" in logged and "unreachable" in logged and "not a PostgreSQL URL" in logged
    )
    assert "secret-word" not in logged


def test_without_replicas_everything_stays_on_the_primary(replication: Replication) -> None:
    with service(replication.primary_url, "") as client:
        body = get_health(client).json()
        assert "replicas" not in body
        services = client.app.state.services  # type: ignore[attr-defined]
        assert services.read_pool() is services.pool
        assert read_items(client, replication) == (False, True)


def wait_for_primary(client: TestClient, state: str) -> dict[str, Any]:
    """Wait until /health says the primary is in this state (fail after 60 s)."""
    deadline = time.monotonic() + 60
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = get_health(client).json()
        if body.get("primary") == state:
            return body
        time.sleep(0.1)
    raise AssertionError(f"/health never said the primary is {state}: {body}")


def write_when_back(
    client: TestClient, path: str, headers: dict[str, str], body: Any = None
) -> Any:
    """POST, again after each 503's Retry-After (for at most 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        response = client.post(path, headers=headers, json=body)
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        time.sleep(int(response.headers["Retry-After"]))


def test_with_the_primary_down_reads_go_on_writes_answer_503_until_it_is_back(
    replication: Replication,
) -> None:
    from geo_service.users import add_user

    with psycopg.connect(replication.primary_url, autocommit=True) as conn:
        token = add_user(conn, "replica-admin", "admin", [])
    auth = {"Authorization": f"Bearer {token}"}
    with service(
        replication.primary_url,
        replication.standby_url,
        pool_timeout_s=1.0,
        tile_cache="sqlite",
        tile_cache_path=Path(tempfile.mkdtemp()) / "tiles.sqlite",
    ) as client:
        wait_for(client, states("streaming"))
        cached, uncached = TILES
        assert client.get(cached).status_code == 200  # (kept in the cache)
        replication.primary.stop()
        try:
            body = wait_for_primary(client, "unavailable")
            response = get_health(client)
            assert response.status_code == 200  # (a load balancer keeps the instance)
            assert body["status"] == "read-only"
            assert body["replicas"][0]["state"] == "streaming"
            response = client.get(ITEMS)
            assert response.status_code == 200
            assert len(response.json()["features"]) == 3
            # tiles too: a cached one checked against what the replica has replayed (not
            # waiting for the primary's change log), an uncached one rendered by the replica
            for tile in (cached, uncached, cached):
                response = client.get(tile)
                assert response.status_code == 200, (tile, response.text)
                assert response.content
            # a write (revoking one's token) needs the primary: 503, try again later
            response = client.post("/users/sign-out", headers=auth)
            assert response.status_code == 503
            assert int(response.headers["Retry-After"]) > 0
        finally:
            replication.primary.start(extra_options=PRIMARY_OPTIONS)
        # the same service, not restarted, writes again (a client that follows Retry-After;
        # /health says ok only once the requests' pool serves: tests/test_health_writes.py)
        assert wait_for_primary(client, "ok")["status"] == "ok"
        response = write_when_back(client, "/users/sign-out", auth)
        assert response.status_code == 200
        assert response.json()["revoked"] == 1
        # (a read without the sign-out's WAL position: the standby may serve it before it has
        # replayed the sign-out, once it streams from the restarted primary again)
        client.cookies.clear()
        wait_for(client, states("streaming"))
        assert read_items(client, replication) == (True, False)
    replication.wait_streaming()


def test_the_harness_waits_for_every_commit_the_primary_returned(
    replication: Replication,
) -> None:
    # (the primary commits asynchronously: a commit that has returned may not be written
    # out yet; a wait that stopped at the written position let tests read the standby
    # before it had the change)
    query = "SELECT name FROM admin_unit WHERE vintage = '2025' AND level = 'province'"
    query += " AND code = '04'"
    with psycopg.connect(replication.primary_url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    try:
        for n in range(20):
            name = f"{row[0]} {n}"
            replication.commit_on_primary(
                "UPDATE admin_unit SET name = %s WHERE vintage = '2025'"
                " AND level = 'province' AND code = '04'",
                (name,),
            )
            replication.wait_streaming()
            with psycopg.connect(replication.standby_url, autocommit=True) as conn:
                assert conn.execute(query).fetchone() == (name,)
    finally:
        replication.commit_on_primary(
            "UPDATE admin_unit SET name = %s WHERE vintage = '2025'"
            " AND level = 'province' AND code = '04'",
            (row[0],),
        )
        replication.wait_streaming()

"""Read-your-writes against a real primary and a real hot standby whose replay is delayed
(`recovery_min_apply_delay`): a write's answer carries its commit's WAL position, and a
read carrying it never sees the replica's older data."""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
import pytest

from geo_service.http.consistency import signed_position
from geo_service.users import add_user
from tests.helpers import get_health
from tests.replication import Replication, hanoi_name
from tests.test_area_report import COMMUNE_INDICATORS, DRAWN
from tests.test_replicas import clock, served_since, service, states, wait_for

PROVINCE = "/collections/province-2025/items/01"
HEADER = "X-Geo-Service-LSN"
# (long enough that a loaded machine cannot see the standby apply the write during a test;
# the lag limit is longer still, so the standby stays in rotation meanwhile)
DELAY_S = 20.0
MAX_LAG_S = 120.0
# the key the services here sign write positions with (GEO_SERVICE_LSN_SECRET)
SECRET = "a secret of the test instances"
KEY = SECRET.encode()


def province_name(client: Any, **headers: str) -> str:
    """Hà Nội's name as a read of the features answers it."""
    response = client.get(PROVINCE, headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["properties"]["name"])


def rename(replication: Replication, name: str) -> str:
    """Rename Hà Nội on the primary; the WAL position after the commit (unsigned)."""
    return replication.commit_on_primary(
        "UPDATE admin_unit SET name = %s WHERE vintage = '2025' AND level = 'province'"
        " AND code = '01'",
        (name,),
    )


def on_standby(replication: Replication, statement: str, params: tuple[object, ...]) -> bool:
    """Whether the statement finds a row on the standby."""
    with psycopg.connect(replication.standby_url, autocommit=True) as conn:
        return conn.execute(statement, params).fetchone() is not None


@pytest.fixture
def original_name(replication: Replication) -> Any:
    """Hà Nội's name before the test; given back afterwards."""
    name = hanoi_name(replication.primary_url)
    yield name
    rename(replication, name)
    replication.wait_streaming()


def test_a_write_answers_with_the_position_of_its_commit(replication: Replication) -> None:
    with psycopg.connect(replication.primary_url, autocommit=True) as conn:
        token = add_user(conn, f"ryw-admin-{uuid.uuid4().hex[:8]}", "admin", [])
    name = f"ryw-{uuid.uuid4().hex[:8]}"
    with (
        replication.apply_delayed(DELAY_S),
        service(
            replication.primary_url, replication.standby_url, MAX_LAG_S, lsn_secret=SECRET
        ) as client,
    ):
        wait_for(client, states("streaming"))
        response = client.post(
            "/admin/users",
            json={"name": name, "role": "viewer", "password": "a long password"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 201, response.text
        token = response.headers[HEADER]
        position = token.partition(".")[0]
        assert token == signed_position(position, KEY)
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"geo_service_lsn={token};")
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=" in cookie
        # the standby has the WAL but has not applied the commit yet ...
        query = "SELECT FROM app_user WHERE name = %s"
        assert not on_standby(replication, query, (name,))
        # ... and once it has replayed up to the position given, it has the new user
        deadline = time.monotonic() + DELAY_S + 60
        while not replication.replayed(position):
            assert time.monotonic() < deadline, "the standby never replayed the position"
            time.sleep(0.05)
        assert on_standby(replication, query, (name,))
        # a read answers no position; a refused write neither
        assert HEADER not in client.get(PROVINCE).headers
        refused = client.post("/admin/users", json={}, headers={"Authorization": "Bearer x"})
        assert refused.status_code == 401 and HEADER not in refused.headers


def test_a_read_with_the_position_sees_the_write_without_it_may_not(
    replication: Replication, original_name: str
) -> None:
    new_name = f"Hà Nội {uuid.uuid4().hex[:6]}"
    with (
        replication.apply_delayed(DELAY_S),
        service(
            replication.primary_url,
            replication.standby_url,
            MAX_LAG_S,
            replica_wait_ms=200,
            lsn_secret=SECRET,
        ) as client,
    ):
        wait_for(client, states("streaming"))
        position = signed_position(rename(replication, new_name), KEY)
        before = clock(replication.primary_url)
        # with the position (header or cookie): the write, from the primary (the replica
        # has not replayed it within the wait)
        assert province_name(client, **{HEADER: position}) == new_name
        client.cookies.set("geo_service_lsn", position)
        assert province_name(client) == new_name
        client.cookies.clear()
        assert served_since(replication.primary_url, before)
        # without it: the replica's older data (it is in rotation, within the lag limit)
        assert province_name(client) == original_name
        assert get_health(client).json()["replicas"][0]["state"] == "streaming"


def test_a_read_with_the_position_goes_to_a_replica_that_has_replayed_it(
    replication: Replication, original_name: str
) -> None:
    new_name = f"Hà Nội {uuid.uuid4().hex[:6]}"
    with service(
        replication.primary_url, replication.standby_url, replica_wait_ms=5000, lsn_secret=SECRET
    ) as client:
        wait_for(client, states("streaming"))
        with replication.apply_delayed(0.5):
            position = signed_position(rename(replication, new_name), KEY)
            before = clock(replication.primary_url)
            # the read waits for the replica (up to 5 s here) and is served by it
            assert province_name(client, **{HEADER: position}) == new_name
            assert served_since(replication.standby_url, before)
            assert not served_since(replication.primary_url, before)


def test_a_forged_or_altered_position_is_ignored(
    replication: Replication, original_name: str
) -> None:
    new_name = f"Hà Nội {uuid.uuid4().hex[:6]}"
    with (
        replication.apply_delayed(DELAY_S),
        service(
            replication.primary_url,
            replication.standby_url,
            MAX_LAG_S,
            replica_wait_ms=200,
            lsn_secret=SECRET,
        ) as client,
    ):
        wait_for(client, states("streaming"))
        position = rename(replication, new_name)
        genuine = signed_position(position, KEY)
        high, low = position.split("/")
        later = f"{int(high, 16) + 1:X}/{low}"
        forged = [
            position,  # unsigned
            f"{position}.",
            signed_position(position, b"another instance's secret"),
            f"{later}.{genuine.partition('.')[2]}",  # another position, the genuine signature
            f"{position}.{genuine.partition('.')[2][:-1]}",  # a signature cut short
        ]
        before = clock(replication.primary_url)
        for token in forged:
            # neither sent to the primary nor kept waiting: the replica's older data
            assert province_name(client, **{HEADER: token}) == original_name, token
            client.cookies.set("geo_service_lsn", token)
            assert province_name(client) == original_name, token
            client.cookies.clear()
        assert not served_since(replication.primary_url, before)
        # the genuine one still sees the write (from the primary: the replica is behind)
        assert province_name(client, **{HEADER: genuine}) == new_name
        client.cookies.set("geo_service_lsn", genuine)
        assert province_name(client) == new_name
        # a forged header beside a genuine cookie: the genuine one counts
        assert province_name(client, **{HEADER: forged[2]}) == new_name


def test_a_post_that_only_reads_answers_no_position(demo_db: str) -> None:
    # (a position there would only let an anonymous client send its reads to the primary;
    # the demo database given as its own "replica" is refused as not a standby, but makes
    # the service hand out positions)
    with psycopg.connect(demo_db, autocommit=True) as conn:
        token = add_user(conn, f"ryw-post-{uuid.uuid4().hex[:8]}", "viewer", [])
    body = {"geometry": DRAWN, "indicators": COMMUNE_INDICATORS}
    with service(demo_db, demo_db) as client:
        response = client.post("/aggregate", json=body)
        assert response.status_code == 200, response.text
        assert HEADER not in response.headers
        assert "geo_service_lsn" not in response.headers.get("set-cookie", "")
        # a write there answers one
        response = client.post("/users/sign-out", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        assert HEADER in response.headers


@pytest.mark.parametrize(
    "value", ["yesterday", "0/", "1/2/3", "G/0", "123456789/0", "0/" + "1" * 20, "x" * 65]
)
def test_a_malformed_position_is_a_400_naming_the_header(
    replication: Replication, value: str
) -> None:
    with service(replication.primary_url, replication.standby_url) as client:
        response = client.get(PROVINCE, headers={HEADER: value})
        assert response.status_code == 400
        assert response.json()["parameter"] == HEADER
        # a malformed cookie is ignored (a page cannot mend its cookies)
        client.cookies.set("geo_service_lsn", value)
        assert client.get(PROVINCE).status_code == 200

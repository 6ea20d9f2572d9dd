"""The service through a real PgBouncer in transaction pooling mode: reads, tiles, an EA
edit, a disclosure write and change notifications all work (no session state assumed)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from shapely.geometry import mapping

from geo_core import grid
from geo_service.http.app import create_app
from geo_service.settings import ServiceSettings
from geo_service.users import add_user
from tests.pgbouncer import pgbouncer
from tests.test_enumeration_areas import COMMUNE, Env, _halves

HANOI = (105.85, 21.03)
X, Y = grid.tile_range((*HANOI, *HANOI), 6)[:2]
TILE = f"/collections/province-2025/tiles/WebMercatorQuad/6/{X}/{Y}"


def tile_names(client: TestClient) -> set[str]:
    """The province names in the tile over Hà Nội."""
    response = client.get(TILE, headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    layer = mapbox_vector_tile.decode(response.content)["province-2025"]
    return {f["properties"]["name"] for f in layer["features"]}


def wait_until(check: Any, what: str, timeout_s: float = 60) -> None:
    """Poll `check` until it is true (fail after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_the_service_works_through_pgbouncer_in_transaction_mode(
    demo_db: str, tmp_path: Path
) -> None:
    with psycopg.connect(demo_db, autocommit=True) as conn:
        tokens = {"editor": add_user(conn, "ed", "editor", ["01"])}
    with pgbouncer(demo_db, pool_size=2) as pooled:
        settings = ServiceSettings(
            home=tmp_path,
            db_pgbouncer=True,
            listen_url=demo_db,  # LISTEN directly
            tile_cache="sqlite",
            tile_freshness="notify",  # cached tiles trust the notifications alone
        )
        app = create_app(settings, db_url=pooled, owner_url=demo_db)
        with TestClient(app) as client:
            services = app.state.services
            # the same query many times: psycopg would prepare it on one server connection
            # and run it on another
            for _ in range(12):
                response = client.get("/collections/commune-2025/items?limit=5&parent=01")
                assert response.status_code == 200, response.text
                assert client.get("/collections/province-2025/items/01").status_code == 200
            # an anonymous CQL2 filter runs with a lower statement timeout (in a transaction)
            response = client.get("/collections/province-2025/items?filter=code%3D%2701%27")
            assert response.status_code == 200 and response.json()["numberReturned"] == 1

            # tiles, cached, and a change notification (plain SQL on the database) is heard
            names = tile_names(client)
            assert "Thành phố Hà Nội" in names or any("Hà Nội" in n for n in names)
            heard = services.tiles.stats.notifications
            with psycopg.connect(demo_db, autocommit=True) as conn:
                conn.execute(
                    "UPDATE admin_unit SET name = 'Hà Nội qua PgBouncer' WHERE vintage = '2025'"
                    " AND level = 'province' AND code = '01'"
                )
            wait_until(lambda: services.tiles.stats.notifications > heard, "no notification")
            assert "Hà Nội qua PgBouncer" in tile_names(client)

            # an EA edit (a write with If-Match, in transactions) and its tile
            env = Env(client, demo_db, tokens)
            west, east = _halves(env.commune())
            created = env.create(west)
            assert created.status_code == 201, created.text
            ea = created.json()
            etag = client.get(f"/collections/enumeration-areas/items/{ea['id']}").headers["ETag"]
            feature = {
                "type": "Feature",
                # grown over the whole commune (a change that releases land into no EA is
                # refused as a gap)
                "geometry": mapping(west.union(east)),
                "properties": {"census_round": "2029", "commune_code": COMMUNE},
            }
            replaced = client.put(
                f"/collections/enumeration-areas/items/{ea['id']}",
                json=feature,
                headers={**env.auth("editor"), "If-Match": etag},
            )
            assert replaced.status_code == 200, replaced.text

            # a disclosure write: a small count written with plain SQL is protected by the
            # service (its owner connection LISTENs directly) and never published
            with psycopg.connect(demo_db, autocommit=True) as conn:
                conn.execute("UPDATE indicator SET suppress_below = 1000 WHERE code = 'population'")
                conn.execute(
                    "UPDATE indicator_value SET value = 7 WHERE indicator = 'population'"
                    " AND level = 'commune' AND code = %s",
                    (COMMUNE,),
                )

                def protected() -> bool:
                    row = conn.execute("SELECT count(*) FROM disclosure_pending").fetchone()
                    return row == (0,)

                wait_until(protected, "the pending table was not protected")
            response = client.get(f"/collections/commune-2025/items/{COMMUNE}?indicator=population")
            assert response.status_code == 200, response.text
            assert response.json()["properties"]["population"] is None

            # every one of these ran through PgBouncer: its server connections did the work
            assert services.pool.get_stats()["requests_num"] > 20


def test_pgbouncer_mode_needs_a_direct_listen_url(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="GEO_SERVICE_LISTEN_URL"):
        ServiceSettings(home=tmp_path, db_pgbouncer=True)

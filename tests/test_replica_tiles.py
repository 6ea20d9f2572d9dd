"""Tiles and cached collection data read from a real hot standby: whatever a replica that
has not replayed a change yet renders or reads is never kept as fresh."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import pytest

from geo_core import grid
from tests.replication import Replication, hanoi_name
from tests.test_read_your_writes import rename
from tests.test_replicas import clock, served_since, service, states, wait_for

LAYER = "province-2025"
HANOI = (105.85, 21.03)
Z = 6
X, Y = grid.tile_range((*HANOI, *HANOI), Z)[:2]
TILE = f"/collections/{LAYER}/tiles/WebMercatorQuad/{Z}/{X}/{Y}"


def names_in(client: Any) -> set[str]:
    """The unit names the tile over Hà Nội carries."""
    response = client.get(TILE, headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    layer = mapbox_vector_tile.decode(response.content)[LAYER]
    return {f["properties"]["name"] for f in layer["features"]}


@pytest.fixture
def restored_name(replication: Replication) -> Any:
    """Hà Nội's name is given back after the test."""
    name = hanoi_name(replication.primary_url)
    yield name
    rename(replication, name)
    replication.wait_streaming()


def cached_service(replication: Replication) -> Any:
    """The app with an SQLite tile cache, reads on the standby (kept in rotation while its
    replay is paused: a generous lag limit)."""
    return service(
        replication.primary_url,
        replication.standby_url,
        max_lag_s=120.0,
        tile_cache="sqlite",
        tile_cache_path=Path(tempfile.mkdtemp()) / "tiles.sqlite",
    )


def test_a_tile_from_a_replica_behind_a_change_is_not_kept_as_fresh(
    replication: Replication, restored_name: str
) -> None:
    new_name = f"Hà Nội {uuid.uuid4().hex[:6]}"
    with cached_service(replication) as client:
        wait_for(client, states("streaming"))
        stats = client.app.state.services.tiles.stats  # type: ignore[attr-defined]
        before = clock(replication.primary_url)
        assert restored_name in names_in(client)
        # unit tiles are rendered by the replica
        assert served_since(replication.standby_url, before)
        assert not served_since(replication.primary_url, before)
        assert restored_name in names_in(client)
        assert stats.hits == 1
        with replication.replay_paused():
            rename(replication, new_name)
            # the change log (read from the primary) knows the change; the replica does not
            # have it: its tile shows the old name and is not kept
            misses = stats.misses
            assert restored_name in names_in(client)
            assert restored_name in names_in(client)
            assert stats.misses == misses + 2 and stats.hits == 1
        # once the replica has replayed the change: the new name, rendered once, then cached
        assert new_name in names_in(client)
        assert new_name in names_in(client)
        assert stats.hits == 2


def test_the_catalogue_read_from_a_replica_behind_a_change_is_not_kept(
    replication: Replication, restored_name: str
) -> None:
    with cached_service(replication) as client:
        wait_for(client, states("streaming"))
        services = client.app.state.services  # type: ignore[attr-defined]
        catalogue, tables = services.catalogue, services.unit_tables

        async def read_both() -> None:
            async with services.read_pool().connection() as conn:
                collection = await catalogue.get(conn, LAYER)
                await tables.get(conn, collection)

        def kept() -> bool:
            collection = catalogue.peek(LAYER)
            log = services.tiles.freshness.log
            entry = tables._entries.get(LAYER)
            fresh_table = entry is not None and not log.changed_since(LAYER, entry[1])
            return collection is not None and fresh_table

        client.portal.call(read_both)
        assert kept()
        with replication.replay_paused():
            rename(replication, f"Hà Nội {uuid.uuid4().hex[:6]}")
            # (the change log learns of the change: a strict read of a cached tile brings
            # it up to the primary's epoch first)
            client.get(TILE)
            client.get(TILE)
            assert not kept()
            client.portal.call(read_both)  # from the replica, which has not replayed it
            assert not kept()
        # once the replica has replayed it (the change log knew it already), what is read
        # is kept again
        client.portal.call(read_both)
        assert kept()

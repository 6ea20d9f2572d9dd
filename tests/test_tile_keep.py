"""Keeping a cold tile: written to the SQLite cache at once when nothing holds the file, and
without a database read per tile except where nginx serves the cache unchecked."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from geo_core import grid
from geo_service.http.app import create_app
from geo_service.settings import ServiceSettings
from geo_service.tiles.service import TileService
from tilecache.base import CachedTile, TileKey
from tilecache.sqlite import SQLiteTileCache

KEY = TileKey("commune-2025", "default", 10, 813, 450)
TILE = CachedTile(3, b"raw tile", b"gzip copy", b"brotli copy")
TILES = "/collections/commune-2025/tiles/WebMercatorQuad"
HANOI = (105.3, 20.6, 106.1, 21.4)


@pytest.fixture
def cache(tmp_path: Path) -> SQLiteTileCache:
    return SQLiteTileCache(tmp_path / "tiles.sqlite")


def test_a_tile_is_written_at_once_when_nothing_holds_the_file(cache: SQLiteTileCache) -> None:
    assert cache.put_now(KEY, TILE)
    assert cache.get(KEY) == TILE
    assert cache.stats()["bytes"] == len(TILE.encode())


def test_a_tile_is_not_written_at_once_while_another_thread_writes(
    cache: SQLiteTileCache,
) -> None:
    held, release = threading.Event(), threading.Event()

    def purge_in_progress() -> None:
        with cache._lock:  # (what a purge in a thread holds)
            held.set()
            release.wait(10)

    other = threading.Thread(target=purge_in_progress)
    other.start()
    try:
        assert held.wait(10)
        assert not cache.put_now(KEY, TILE)  # declined, not waited for
    finally:
        release.set()
        other.join()
    assert cache.get(KEY) is None
    assert cache.put_now(KEY, TILE) and cache.get(KEY) == TILE


def test_a_tile_is_not_written_at_once_while_another_process_writes(
    cache: SQLiteTileCache,
) -> None:
    other = sqlite3.connect(cache.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another instance sharing the file, writing
        assert not cache.put_now(KEY, TILE)
        other.execute("COMMIT")
        assert cache.get(KEY) is None and cache.errors == 0
        assert cache.put_now(KEY, TILE)
        # (the busy timeout is back: a thread's put waits for a writer as before)
        assert cache._db.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    finally:
        other.close()


def test_a_tile_that_needs_an_eviction_is_left_to_a_thread(tmp_path: Path) -> None:
    cache = SQLiteTileCache(tmp_path / "tiles.sqlite", max_bytes=len(TILE.encode()) + 10)
    assert cache.put_now(KEY, TILE)
    second = TileKey(KEY.layer, KEY.variant, KEY.z, KEY.x + 1, KEY.y)
    assert not cache.put_now(second, TILE)
    assert cache.stats()["tiles"] == 1  # (nothing written by the declined call)
    cache.put(second, TILE)  # (the thread's put evicts)
    assert int(cache.stats()["bytes"]) <= cache.max_bytes


def test_a_cache_distrusted_after_a_failed_purge_takes_nothing_at_once(
    cache: SQLiteTileCache,
) -> None:
    cache._suspect = True  # a purge failed: only `put` may empty the file and go on
    assert not cache.put_now(KEY, TILE)
    cache.put(KEY, TILE)
    assert cache.get(KEY) == TILE


def _cold_tiles(client: TestClient, count: int) -> None:
    tiles = list(grid.tiles_in(HANOI, 10))[:count]
    assert len(tiles) == count
    for x, y in tiles:
        assert client.get(f"{TILES}/10/{x}/{y}").status_code == 200


@contextmanager
def _counting_syncs(
    demo_ro: str, home: Path, cache: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, list[str]]]:
    """A strict service with this cache, and a record of each time it brings its change
    log up to the database's epoch."""
    settings = ServiceSettings(home=home, tile_cache=cache, tile_freshness="strict")
    calls: list[str] = []
    original = TileService._sync

    async def counted(self: TileService, reads: object) -> None:
        calls.append("sync")
        await original(self, reads)  # type: ignore[arg-type]

    monkeypatch.setattr(TileService, "_sync", counted)
    with TestClient(create_app(settings, db_url=demo_ro)) as client:
        calls.clear()  # (only what the tiles below cause)
        yield client, calls


def test_strict_mode_keeps_cold_tiles_without_a_read_per_tile(
    demo_ro: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _counting_syncs(demo_ro, tmp_path, "sqlite", monkeypatch) as (client, syncs):
        _cold_tiles(client, 6)
        cache = client.app.state.services.tiles.caches[0]  # type: ignore[attr-defined]
        assert cache.stats()["tiles"] == 6
        assert syncs == []
        # every read of a kept tile still brings the log up first
        _cold_tiles(client, 6)
        assert len(syncs) == 6 and cache.hits == 6


def test_strict_mode_syncs_before_keeping_a_tile_nginx_serves(
    demo_ro: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _counting_syncs(demo_ro, tmp_path, "directory", monkeypatch) as (client, syncs):
        _cold_tiles(client, 3)
        assert len(syncs) == 3

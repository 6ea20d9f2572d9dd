"""The directory tile cache: files nginx can serve, checked, bounded, purged, shared."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gzip
import os
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import brotli
import psycopg
import pytest

from tilecache.base import DEFAULT_VARIANT, CachedTile, SyncedTileCache, TileKey
from tilecache.directory import DirectoryTileCache
from tilecache.freshness import Change, Freshness

LAYER = "commune-2025"
T = TypeVar("T")


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a loop of its own (the browser tests leave one running here)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _tile(raw: bytes, epoch: int = 7) -> CachedTile:
    return CachedTile(epoch, raw, gzip.compress(raw, mtime=0), brotli.compress(raw))


def _key(
    x: int = 813, y: int = 450, z: int = 10, variant: str = DEFAULT_VARIANT, layer: str = LAYER
) -> TileKey:
    return TileKey(layer, variant, z, x, y)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[DirectoryTileCache]:
    cache = DirectoryTileCache(tmp_path / "tiles")
    yield cache
    cache.close()


def test_round_trip_and_layout(cache: DirectoryTileCache) -> None:
    tile = _tile(b"\x1a\x02mvt" * 100)
    cache.put(_key(), tile)
    assert cache.get(_key()) == tile
    base = cache.root / LAYER / "default" / "10" / "813" / "450"
    assert _files(cache.root) == [
        f"{LAYER}/default/10/813/{name}"
        for name in ("450.epoch", "450.mvt", "450.mvt.br", "450.mvt.gz")
    ]
    # what nginx sends: the raw file, and its gzip_static / brotli_static siblings
    assert Path(f"{base}.mvt").read_bytes() == tile.raw
    assert gzip.decompress(Path(f"{base}.mvt.gz").read_bytes()) == tile.raw
    assert brotli.decompress(Path(f"{base}.mvt.br").read_bytes()) == tile.raw
    assert Path(f"{base}.epoch").read_text().split()[0] == "7"
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in cache.root.rglob("*.*"))
    assert cache.get(_key(x=814)) is None
    assert (cache.hits, cache.misses) == (1, 1)


def test_empty_tile_has_no_compressed_siblings(cache: DirectoryTileCache) -> None:
    cache.put(_key(), _tile(b"something"))
    cache.put(_key(), _tile(b""))  # the old siblings must not outlive their tile
    assert _files(cache.root) == [
        f"{LAYER}/default/10/813/450.epoch",
        f"{LAYER}/default/10/813/450.mvt",
    ]
    got = cache.get(_key())
    assert got is not None and got.raw == b"" and got.epoch == 7


DAMAGE = {
    "truncated raw": (".mvt", b"\x1a"),
    "truncated gzip": (".mvt.gz", b"\x1f"),
    "missing brotli": (".mvt.br", None),
    "bad epoch": (".epoch", b"seven 123\n"),
    "empty epoch": (".epoch", b""),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_corrupt_tiles_are_dropped(cache: DirectoryTileCache, damage: str) -> None:
    cache.put(_key(), _tile(b"x" * 5000))
    suffix, content = DAMAGE[damage]
    path = cache.root / LAYER / "default" / "10" / "813" / f"450{suffix}"
    if content is None:
        path.unlink()
    else:
        path.write_bytes(content)
    assert cache.get(_key()) is None
    assert cache.corrupt == 1
    assert _files(cache.root) == []  # nginx must not go on serving it either


def test_partial_files_are_ignored(cache: DirectoryTileCache) -> None:
    column = cache.root / LAYER / "default" / "10" / "813"
    column.mkdir(parents=True)
    (column / "450.mvt").write_bytes(b"written before its epoch file")  # no .epoch: a miss
    (column / ".451.mvt.abc.tmp").write_bytes(b"a writer died here")
    assert cache.get(_key()) is None and cache.get(_key(y=451)) is None
    assert cache.corrupt == 0
    assert cache.stats()["tiles"] == 1
    old = column / ".451.mvt.abc.tmp"
    os.utime(old, (1, 1))  # left long ago: the next measurement removes it
    cache.shrink()
    assert not old.exists()
    cache.put(_key(), _tile(b"fine"))
    assert cache.get(_key()) == _tile(b"fine")


def test_eviction_drops_the_oldest(tmp_path: Path) -> None:
    cache = DirectoryTileCache(tmp_path / "tiles", max_bytes=60_000)
    tiles = [(_key(x=x), _tile(os.urandom(4000), epoch=x)) for x in range(20)]
    for i, (key, tile) in enumerate(tiles):
        cache.put(key, tile)
        for path in (cache.root / LAYER / "default" / "10" / str(key.x)).iterdir():
            os.utime(path, (1000 + i, 1000 + i))  # written in this order
    cache.close()  # waits for the evictions the writes started
    kept = [key.x for key, _ in tiles if cache.get(key) is not None]
    assert kept and kept == list(range(20 - len(kept), 20))  # the newest stayed
    assert int(cache.stats()["bytes"]) <= 60_000
    assert cache.shrink() == 0


class _PausedEviction(DirectoryTileCache):
    """A directory cache whose first eviction, once it has measured the tree, waits."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        super().__init__(root, max_bytes)
        self.measured, self.resume = threading.Event(), threading.Event()

    def shrink(self) -> int:
        dropped = super().shrink()
        if not self.measured.is_set():
            self.measured.set()
            assert self.resume.wait(60)
        return dropped


def test_tiles_written_during_an_eviction_are_evicted_once_it_ends(tmp_path: Path) -> None:
    cache = _PausedEviction(tmp_path / "tiles", max_bytes=60_000)
    cache.put(_key(x=0), _tile(os.urandom(4000)))  # the first write measures the tree
    assert cache.measured.wait(60)
    for x in range(1, 20):  # written while that eviction still runs, after its walk
        cache.put(_key(x=x), _tile(os.urandom(4000)))
    assert int(cache.stats()["bytes"]) > 60_000
    cache.resume.set()
    cache.close()
    assert int(cache.stats()["bytes"]) <= 60_000
    assert cache.shrink() == 0


def test_purge_range_and_layer(cache: DirectoryTileCache) -> None:
    for x in range(10, 14):
        for y in range(20, 24):
            cache.put(_key(x=x, y=y), _tile(b"a"))
            cache.put(_key(x=x, y=y, variant="0123456789abcdef"), _tile(b"b"))
    cache.put(_key(z=9, x=11, y=21), _tile(b"c"))
    cache.put(_key(layer="province-2025"), _tile(b"d"))
    # every variant of the 2 x 2 tiles; other zooms and layers stay
    assert cache.purge_range(LAYER, 10, 11, 21, 12, 22) == 8
    assert cache.get(_key(x=11, y=21)) is None
    assert cache.get(_key(x=11, y=21, variant="0123456789abcdef")) is None
    assert cache.get(_key(x=10, y=21)) is not None and cache.get(_key(x=11, y=23)) is not None
    assert cache.get(_key(z=9, x=11, y=21)) is not None
    # emptied columns are removed, the others stay
    zoom = cache.root / LAYER / "default" / "10"
    cache.purge_range(LAYER, 10, 13, 0, 13, 2**16 - 1)
    assert sorted(p.name for p in zoom.iterdir()) == ["10", "11", "12"]
    # a range of a whole zoom 16 is walked through the columns that exist, not 2^32 names
    assert cache.purge_range(LAYER, 10, 0, 0, 2**16 - 1, 2**16 - 1) == 24 - 8
    assert list(zoom.iterdir()) == []
    assert cache.purge_range(LAYER, 16, 0, 0, 2**16 - 1, 2**16 - 1) == 0
    assert cache.purge_layer(LAYER) == 1
    assert cache.get(_key(layer="province-2025")) is not None
    assert cache.purge_layer() == 1
    assert _files(cache.root) == []


@pytest.mark.parametrize("layer", ["../etc", "a/b", ".hidden", "", "x" * 200, "sp ace"])
def test_path_components_are_refused(cache: DirectoryTileCache, layer: str) -> None:
    with pytest.raises(ValueError):
        cache.put(_key(layer=layer), _tile(b"x"))
    with pytest.raises(ValueError):
        cache.put(_key(variant=layer), _tile(b"x"))
    assert cache.get(_key(layer=layer)) is None
    assert cache.purge_range(layer, 10, 0, 0, 1000, 1000) == 0
    assert cache.purge_layer(layer) == 0
    assert list(cache.root.parent.iterdir()) == [cache.root]
    assert _files(cache.root) == []


def test_concurrent_writers_leave_whole_tiles(cache: DirectoryTileCache) -> None:
    # two writers (threads here; instances sharing the tree alike) rewrite the same tiles
    versions = [_tile(b"a" * 3000, epoch=1), _tile(os.urandom(5000), epoch=2)]
    errors: list[BaseException] = []

    def write(tile: CachedTile) -> None:
        try:
            for i in range(150):
                cache.put(_key(x=i % 5), tile)
                if i % 10 == 0:
                    cache.purge_range(LAYER, 10, 0, 0, 2, 1000)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and cache.errors == 0
    for x in range(5):
        got = cache.get(_key(x=x))
        assert got is None or got in versions  # never a mix of the two
    assert not [p for p in cache.root.rglob(".*") if p.is_file()]  # no temporary files left
    for x in range(5):
        cache.put(_key(x=x), versions[1])
        assert cache.get(_key(x=x)) == versions[1]


def test_synced_epoch_mark(cache: DirectoryTileCache) -> None:
    assert isinstance(cache, SyncedTileCache)
    assert cache.synced_epoch() is None
    cache.mark_synced(42)
    assert cache.synced_epoch() == 42 and cache.stats()["synced_epoch"] == 42
    (cache.root / ".epoch").write_text("garbage")
    assert cache.synced_epoch() is None


# --- freshness with nobody checking in front: the tree itself must never keep a stale tile


class ChangeDuringWrite(DirectoryTileCache):
    """A directory cache in which a change arrives while a tile is being written."""

    def __init__(self, root: Path, freshness: Freshness, change: Change):
        super().__init__(root)
        self.freshness, self.change = freshness, change

    def put(self, key: TileKey, tile: CachedTile) -> None:
        # The listener's purge of the change ran before the file was there; it has already
        # added the change to the log (always before purging).
        super().put(key, tile)
        self.freshness.log.add(self.change)


def test_a_change_during_the_write_removes_the_tile(tmp_path: Path) -> None:
    freshness = Freshness([])
    freshness.log.epoch = 7  # the database's epoch when the tile was rendered
    change = Change(8, LAYER, (105.8, 21.0, 105.9, 21.1))  # touches z10/813/450
    cache = ChangeDuringWrite(tmp_path / "tiles", freshness, change)
    freshness.caches = [cache]
    stored = _run(freshness.store(_key(), _tile(b"rendered at 7", epoch=7)))
    assert stored is False
    assert _files(cache.root) == []
    # a tile the change does not touch stays
    assert _run(freshness.store(_key(x=700), _tile(b"far away", epoch=7))) is True
    assert cache.get(_key(x=700)) is not None


def test_a_stale_render_is_not_written(tmp_path: Path) -> None:
    cache = DirectoryTileCache(tmp_path / "tiles")
    freshness = Freshness([cache])
    freshness.log.add(Change(8, LAYER, None))
    assert _run(freshness.store(_key(), _tile(b"rendered at 7", epoch=7))) is False
    assert _run(freshness.store(_key(), _tile(b"rendered at 8", epoch=8))) is True
    assert _files(cache.root) != []


def _record_change(url: str, bbox: tuple[float, float, float, float] | None) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        envelope = "ST_MakeEnvelope(%s, %s, %s, %s, 4326)" if bbox else "NULL"
        conn.execute(f"SELECT record_tile_change('{LAYER}', {envelope}, 'test')", bbox)
        row = conn.execute("SELECT epoch FROM tile_epoch").fetchone()
    assert row is not None
    return int(row[0])


def _start(url: str, cache: DirectoryTileCache) -> Freshness:
    async def start() -> Freshness:
        freshness = Freshness([cache])
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await freshness.start(conn)
        return freshness

    return _run(start())


def test_start_purges_what_changed_while_nothing_ran(empty_db: str, tmp_path: Path) -> None:
    cache = DirectoryTileCache(tmp_path / "tiles")
    _start(empty_db, cache)  # a new tree: marked at the database's epoch
    assert cache.synced_epoch() == 0
    cache.put(_key(), _tile(b"near", epoch=0))
    cache.put(_key(x=700), _tile(b"far", epoch=0))
    # changes while no instance runs: one touching z10/813/450, one elsewhere in the layer
    assert _record_change(empty_db, (105.8, 21.0, 105.9, 21.1)) == 1
    assert _record_change(empty_db, (-50.0, -10.0, -49.9, -9.9)) == 2
    freshness = _start(empty_db, cache)
    assert cache.get(_key()) is None and cache.get(_key(x=700)) is not None
    assert cache.synced_epoch() == 2 == freshness.purged_epoch
    # a change after the mark is missing from the history: nothing can be trusted
    _record_change(empty_db, (-50.0, -10.0, -49.9, -9.9))
    _record_change(empty_db, (-50.0, -10.0, -49.9, -9.9))
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("DELETE FROM tile_change WHERE epoch = 3")
    _start(empty_db, cache)
    assert cache.get(_key(x=700)) is None and cache.synced_epoch() == 4
    cache.put(_key(x=700), _tile(b"far", epoch=4))
    _start(empty_db, cache)  # nothing changed since: nothing purged
    assert cache.get(_key(x=700)) is not None
    cache.mark_synced(100)  # ahead of the database: the tree of another (or restored) one
    _start(empty_db, cache)
    assert cache.get(_key(x=700)) is None and cache.synced_epoch() == 4

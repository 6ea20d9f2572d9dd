"""The embedded default: tiles in one SQLite file on disk, bounded in size (LRU-ish eviction)."""

from __future__ import annotations

import logging
import sqlite3
import stat
import threading
import time
from pathlib import Path

from tilecache.base import DEFAULT_VARIANT, CachedTile, CorruptTile, TileKey

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tile (
    layer TEXT NOT NULL, variant TEXT NOT NULL, z INTEGER NOT NULL, x INTEGER NOT NULL,
    y INTEGER NOT NULL, blob BLOB NOT NULL, size INTEGER NOT NULL, accessed REAL NOT NULL,
    PRIMARY KEY (layer, z, x, y, variant)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tile_accessed ON tile (accessed);
"""
# Reads refresh the access time at most this often (seconds), so a read is not a write.
_TOUCH_AFTER = 300.0


# How long a statement waits for another process's write to end (sqlite3's default).
_BUSY_TIMEOUT_MS = 5000


def _open(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(
        path, timeout=_BUSY_TIMEOUT_MS / 1000, check_same_thread=False, isolation_level=None
    )
    # the cache is the service's alone (SQLite gives its -wal and -shm files the same mode):
    # a file made 0644 under an older, looser umask loses what others could read
    path.chmod(stat.S_IMODE(path.stat().st_mode) & 0o640)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_SCHEMA)
    return db


class SQLiteTileCache:
    """Tiles in a SQLite file; size-bounded; safe to share between threads of one process.

    Failures of the file (disk full, I/O errors) are absorbed like a shared backend's: the
    tile is served uncached. A purge that failed leaves tiles that may be stale, so nothing
    is read from the file until a purge of everything succeeds.
    """

    name = "sqlite"

    def __init__(self, path: Path, max_bytes: int = 512 * 1024 * 1024):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        try:
            self._db = _open(path)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) or not path.exists():
                raise
            # a cache is only a cache: a file that is not one is set aside, not repaired
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            logger.warning("tile cache %s is not a SQLite file (%s): moved to %s", path, exc, aside)
            for suffix in ("", "-wal", "-shm"):  # (a journal left beside it goes with it)
                part = path.with_name(path.name + suffix)
                if part.exists():
                    part.rename(aside.with_name(aside.name + suffix))
            self._db = _open(path)
        row = self._db.execute("SELECT coalesce(sum(size), 0) FROM tile").fetchone()
        self._bytes = int(row[0])
        self.hits = self.misses = self.corrupt = self.errors = 0
        self._suspect = False  # a purge failed: tiles in the file may be stale

    def _failed(self, what: str, exc: sqlite3.Error) -> None:
        self.errors += 1
        logger.warning("tile cache %s: %s failed (%s); serving uncached", self.path, what, exc)

    def get(self, key: TileKey) -> CachedTile | None:
        """The cached tile, or None (missing, corrupt, or the file failing)."""
        if self._suspect:
            self.misses += 1
            return None
        try:
            return self._get(key)
        except sqlite3.Error as exc:
            self._failed("read", exc)
            return None

    def _get(self, key: TileKey) -> CachedTile | None:
        where = (key.layer, key.z, key.x, key.y, key.variant)
        with self._lock:
            row = self._db.execute(
                "SELECT blob, accessed FROM tile WHERE layer = ? AND z = ? AND x = ? AND y = ?"
                " AND variant = ?",
                where,
            ).fetchone()
            if row is None:
                self.misses += 1
                return None
            now = time.time()
            if now - row[1] > _TOUCH_AFTER:
                self._db.execute(
                    "UPDATE tile SET accessed = ? WHERE layer = ? AND z = ? AND"
                    " x = ? AND y = ? AND variant = ?",
                    (now, *where),
                )
        try:
            tile = CachedTile.decode(row[0])
        except CorruptTile as exc:
            logger.warning("corrupt cached tile %s dropped: %s", key, exc)
            self.corrupt += 1
            self._delete(key)
            return None
        self.hits += 1
        return tile

    def _delete(self, key: TileKey) -> None:
        with self._lock:
            self._db.execute(
                "DELETE FROM tile WHERE layer = ? AND z = ? AND x = ? AND y = ? AND variant = ?",
                (key.layer, key.z, key.x, key.y, key.variant),
            )

    def put(self, key: TileKey, tile: CachedTile) -> None:
        """Store a tile, evicting the least recently used ones when over the limit."""
        if self._suspect and not self._clear_suspect():
            return
        try:
            self._put(key, tile)
        except sqlite3.Error as exc:
            self._failed("write", exc)

    def put_now(self, key: TileKey, tile: CachedTile) -> bool:
        """Store a tile at once when nothing holds the file (no other thread or process
        writing, no eviction due); False otherwise, and nothing was written. A cold tile is
        then kept without a hand-off to a thread, which costs more than the write itself."""
        blob = tile.encode()
        if self._suspect or self._bytes + len(blob) > self.max_bytes:
            return False
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self._db.execute("PRAGMA busy_timeout = 0")  # (another process writing: decline)
            try:
                self._write(key, blob)
            finally:
                self._db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return False
            self._failed("write", exc)
        except sqlite3.Error as exc:
            self._failed("write", exc)
        finally:
            self._lock.release()
        return True

    def _clear_suspect(self) -> bool:
        """Empty the file after a failed purge; True once it is trustworthy again."""
        try:
            self._purge_all()
        except sqlite3.Error:
            return False
        self._suspect = False
        logger.info("tile cache %s emptied after a failed purge; caching again", self.path)
        return True

    def _put(self, key: TileKey, tile: CachedTile) -> None:
        blob = tile.encode()
        with self._lock:
            self._write(key, blob)
            if self._bytes > self.max_bytes:
                self._evict()

    def _write(self, key: TileKey, blob: bytes) -> None:
        """Insert or replace one tile's blob (the caller holds the lock)."""
        old = self._db.execute(
            "SELECT size FROM tile WHERE layer = ? AND z = ? AND x = ? AND y = ? AND variant = ?",
            (key.layer, key.z, key.x, key.y, key.variant),
        ).fetchone()
        self._db.execute(
            "INSERT OR REPLACE INTO tile VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key.layer, key.variant, key.z, key.x, key.y, blob, len(blob), time.time()),
        )
        self._bytes += len(blob) - (old[0] if old else 0)

    def _evict(self) -> None:
        target = int(self.max_bytes * 0.9)
        while self._bytes > target:
            rows = self._db.execute(
                "SELECT layer, z, x, y, variant, size FROM tile ORDER BY accessed LIMIT 200"
            ).fetchall()
            if not rows:
                self._bytes = 0
                return
            self._db.executemany(
                "DELETE FROM tile WHERE layer = ? AND z = ? AND x = ? AND y = ? AND variant = ?",
                [r[:5] for r in rows],
            )
            self._bytes -= sum(r[5] for r in rows)

    def purge_range(self, layer: str, z: int, x0: int, y0: int, x1: int, y1: int) -> int:
        """Drop every variant of the tiles in the range."""
        return self._purge(
            "DELETE FROM tile WHERE layer = ? AND z = ? AND x BETWEEN ? AND ?"
            " AND y BETWEEN ? AND ? RETURNING size",
            (layer, z, x0, x1, y0, y1),
        )

    def purge_layer(self, layer: str | None = None) -> int:
        """Drop every tile of a layer, or everything."""
        if layer is None:
            return self._purge("DELETE FROM tile RETURNING size", ())
        return self._purge("DELETE FROM tile WHERE layer = ? RETURNING size", (layer,))

    def purge_values(self, layer: str) -> int:
        """Drop every variant of a layer's tiles but the geometry-only one."""
        return self._purge(
            "DELETE FROM tile WHERE layer = ? AND variant <> ? RETURNING size",
            (layer, DEFAULT_VARIANT),
        )

    def _purge(self, statement: str, params: tuple[object, ...]) -> int:
        try:
            with self._lock:
                sizes = [r[0] for r in self._db.execute(statement, params).fetchall()]
                self._bytes -= sum(sizes)
        except sqlite3.Error as exc:
            self._suspect = True
            self._failed("purge", exc)
            return 0
        return len(sizes)

    def _purge_all(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM tile")
            self._bytes = 0

    def newest_epoch(self) -> int | None:
        """The highest data epoch of a cached tile (None when empty or unreadable)."""
        try:
            with self._lock:
                # the blob starts with the epoch as a big-endian int64: bytes sort as numbers
                row = self._db.execute("SELECT max(substr(blob, 1, 8)) FROM tile").fetchone()
        except sqlite3.Error as exc:
            self._failed("read", exc)
            return None
        return int.from_bytes(row[0], "big", signed=True) if row and row[0] else None

    def stats(self) -> dict[str, int | str]:
        """Tiles, bytes, hits and misses."""
        try:
            with self._lock:
                count = self._db.execute("SELECT count(*) FROM tile").fetchone()[0]
        except sqlite3.Error as exc:
            self._failed("count", exc)
            count = -1
        return {
            "backend": self.name,
            "path": str(self.path),
            "tiles": count,
            "bytes": self._bytes,
            "max_bytes": self.max_bytes,
            "hits": self.hits,
            "misses": self.misses,
            "corrupt": self.corrupt,
            "errors": self.errors,
        }

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

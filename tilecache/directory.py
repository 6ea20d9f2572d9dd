"""Tiles as a directory tree that nginx serves as static files; the service fills and purges it.

Layout: `{root}/{layer}/{variant}/{z}/{x}/{y}.mvt` (raw MVT), beside it `{y}.mvt.gz` and
`{y}.mvt.br` (what nginx's gzip_static and brotli_static send; none for an empty tile) and
`{y}.epoch` ("EPOCH SHA1": the data epoch the tile was rendered at and a checksum of the whole
tile, for the service's own freshness and integrity checks). `{root}/.epoch` holds the epoch up
to which every change has been purged from the tree.

Every file is written under a temporary name in its folder and renamed into place, the `.mvt`
last: nginx looks for the `.mvt` only, so it never serves a tile before its siblings are
there. Several instances (and threads) may write and purge one tree at the same time.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tilecache.base import DEFAULT_VARIANT, CachedTile, TileKey

logger = logging.getLogger(__name__)

# One path component: no separator, no "..", nothing hidden (temporary files start with ".").
COMPONENT = r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}"
_COMPONENT = re.compile(COMPONENT)
_MVT, _GZIP, _BROTLI, _EPOCH = ".mvt", ".mvt.gz", ".mvt.br", ".epoch"
# Deleted in this order: nginx stops serving a tile as soon as its .mvt is gone.
_SUFFIXES = (_MVT, _GZIP, _BROTLI, _EPOCH)
MARK = ".epoch"
_STALE_TEMP_S = 3600.0  # a temporary file this old was left by a writer that died
# Re-measure the tree after writing this share of the limit: other instances write too.
_REMEASURE_SHARE = 0.1


class DirectoryTileCache:
    """Tiles as files under `root`, bounded in size (the oldest written are evicted first)."""

    name = "directory"

    def __init__(self, root: Path, max_bytes: int = 512 * 1024 * 1024):
        _make_folders(str(root))
        self.root = root
        self.max_bytes = max_bytes
        self.hits = self.misses = self.corrupt = self.errors = 0
        # files a purge could not delete: while any, the tree's epoch mark stays where it was
        # (nginx may serve them), so the next start purges those changes again
        self.purge_failures = 0
        self._lock = threading.Lock()  # the byte count and the eviction thread
        self._bytes = 0  # an estimate until the tree is measured (at the first write)
        self._written = 0  # bytes written since the tree was last measured
        self._measured = False
        self._evictor: threading.Thread | None = None
        self._evicting = False  # an eviction thread runs (or is about to)
        self._again = False  # writes came while it ran: it measures once more
        self._warned_at = 0.0

    # -- paths

    def _folder(self, *names: str) -> str | None:
        """root/names..., or None when a name is not a plain path component."""
        if all(_COMPONENT.fullmatch(name) for name in names):
            return os.path.join(self.root, *names)
        return None

    def _base(self, key: TileKey) -> str | None:
        """The tile's path without suffix, or None when its key cannot name a file."""
        folder = self._folder(key.layer, key.variant)
        if folder is None or min(key.z, key.x, key.y) < 0:
            return None
        return os.path.join(folder, str(key.z), str(key.x), str(key.y))

    # -- the protocol

    def get(self, key: TileKey) -> CachedTile | None:
        """The cached tile, or None (missing, corrupt or unreadable)."""
        base = self._base(key)
        for _ in range(2):  # a mismatch may be a rewrite in progress: read once more
            try:
                tile = _read(base) if base else None
            except FileNotFoundError:
                tile = None
            except OSError as exc:
                self._failed(exc)
                return None
            if tile is None:
                self.misses += 1
                return None
            if isinstance(tile, CachedTile):
                self.hits += 1
                return tile
        logger.warning("corrupt cached tile %s dropped", key)
        self.corrupt += 1
        if base:
            self._drop(base)
        return None

    def put(self, key: TileKey, tile: CachedTile) -> None:
        """Store a tile (siblings and epoch first, the .mvt last), evicting when over."""
        base = self._base(key)
        if base is None:
            raise ValueError(
                f"cannot store tile {key}: layer and variant must match {_COMPONENT.pattern}"
            )
        for attempt in range(2):
            try:
                grown = _write_tile(base, tile)
                break
            except FileNotFoundError:  # its folder was removed meanwhile: once more
                if attempt:
                    self._failed(OSError(f"{base}: folder keeps disappearing"))
                    return
            except OSError as exc:
                self._failed(exc)
                return
        self._grew(grown)

    def put_now(self, key: TileKey, tile: CachedTile) -> bool:
        """Never: a tile is several files, each written and renamed (a thread does it)."""
        return False

    def purge_range(self, layer: str, z: int, x0: int, y0: int, x1: int, y1: int) -> int:
        """Drop every variant of the tiles in the range (walking only the columns that exist)."""
        layer_folder = self._folder(layer)
        if layer_folder is None:
            return 0
        dropped = 0
        for variant in _subfolders(layer_folder):
            for column in _subfolders(os.path.join(variant, str(z))):
                x = os.path.basename(column)
                if x.isdigit() and x0 <= int(x) <= x1:
                    dropped += self._drop_in(column, lambda y: y0 <= y <= y1)
        return dropped

    def purge_values(self, layer: str) -> int:
        """Drop every variant of a layer's tiles but the geometry-only one (the files nginx
        serves stay)."""
        layer_folder = self._folder(layer)
        if layer_folder is None:
            return 0
        return sum(
            self._drop_in(column, lambda y: True)
            for variant in _subfolders(layer_folder)
            if os.path.basename(variant) != DEFAULT_VARIANT
            for zoom in _subfolders(variant)
            for column in _subfolders(zoom)
        )

    def purge_layer(self, layer: str | None = None) -> int:
        """Drop every tile of a layer, or of all layers."""
        if layer is not None and self._folder(layer) is None:
            return 0
        return sum(self._drop_in(column, lambda y: True) for column in self._columns(layer))

    def stats(self) -> dict[str, int | str]:
        """Tiles and bytes on disk (measured now), hits, misses, corrupt, errors, epoch."""
        tiles, total = self._measure()
        synced = self.synced_epoch()
        return {
            "backend": self.name,
            "path": str(self.root),
            "tiles": sum(1 for *_, whole in tiles if whole),
            "bytes": total,
            "max_bytes": self.max_bytes,
            "hits": self.hits,
            "misses": self.misses,
            "corrupt": self.corrupt,
            "errors": self.errors,
            "purge_failures": self.purge_failures,
            "synced_epoch": "unknown" if synced is None else synced,
        }

    def close(self) -> None:
        """Wait for an eviction in progress."""
        evictor = self._evictor
        if evictor is not None:
            evictor.join()

    # -- SyncedTileCache: nginx serves this tree without any freshness check

    def synced_epoch(self) -> int | None:
        """The epoch up to which every change was purged from the tree (None: unknown)."""
        try:
            return int((self.root / MARK).read_text().strip())
        except (OSError, ValueError):
            return None

    @property
    def degraded(self) -> bool:
        """True when a purge failed: nginx may serve stale tiles until a start purges them."""
        return self.purge_failures > 0

    def mark_synced(self, epoch: int) -> None:
        """Record that every change up to `epoch` was purged (not after a failed purge)."""
        if self.degraded:
            logger.error(
                "tile directory %s: %d file(s) could not be purged; its epoch mark stays at %s "
                "and the next start purges again (nginx may serve stale tiles until then)",
                self.root,
                self.purge_failures,
                self.synced_epoch(),
            )
            return
        try:
            _write_atomically(os.path.join(self.root, MARK), f"{epoch}\n".encode())
        except OSError as exc:
            self._failed(exc)

    # -- size

    def shrink(self) -> int:
        """Measure the tree; while over the limit, delete the oldest tiles. Returns how many."""
        tiles, total = self._measure()
        dropped = 0
        if total > self.max_bytes:
            target = int(self.max_bytes * 0.9)
            for _, base, size, _ in sorted(tiles):
                if total <= target:
                    break
                self._drop(base)
                total -= size
                dropped += 1
        with self._lock:
            self._bytes = total
        return dropped

    def _grew(self, grown: int) -> None:
        with self._lock:
            self._bytes += grown
            self._written += max(grown, 0)
            due = (
                not self._measured
                or self._bytes > self.max_bytes
                or self._written > self.max_bytes * _REMEASURE_SHARE
            )
            if not due:
                return
            self._measured = True
            self._written = 0
            if self._evicting:
                # (its walk may have passed this tile's folder: without one more, the tree
                # could stay over the limit until some later write)
                self._again = True
                return
            self._evicting = True
            # a walk of a large tree takes seconds: not in the request that wrote a tile
            self._evictor = threading.Thread(
                target=self._evict, daemon=True, name="tile-directory-eviction"
            )
            self._evictor.start()

    def _evict(self) -> None:
        """Shrink the tree, once more for as long as writes came during the last walk."""
        again = True
        try:
            while again:
                self._shrink_logged()
                with self._lock:  # (decided with the lock a write takes to ask for one more)
                    again, self._again = self._again, False
                    self._evicting = again
        except BaseException:
            with self._lock:
                self._evicting = self._again = False
            raise

    def _shrink_logged(self) -> None:
        try:
            dropped = self.shrink()
        except OSError as exc:
            self._failed(exc)
            return
        if dropped:
            logger.info(
                "tile directory over %d bytes: %d oldest tiles evicted", self.max_bytes, dropped
            )

    def _measure(self) -> tuple[list[tuple[float, str, int, bool]], int]:
        """(newest mtime, base, bytes, has a .mvt) of every tile on disk; the total bytes."""
        found: dict[str, tuple[float, int, bool]] = {}
        now = time.time()
        for column in self._columns(None):
            for entry in _entries(column):
                try:
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if entry.name.startswith("."):
                    if now - stat.st_mtime > _STALE_TEMP_S:
                        with contextlib.suppress(OSError):
                            os.unlink(entry.path)
                    continue
                row, _, suffix = entry.name.partition(".")
                base = os.path.join(column, row)
                mtime, size, whole = found.get(base, (0.0, 0, False))
                found[base] = (
                    max(mtime, stat.st_mtime),
                    size + stat.st_size,
                    whole or suffix == _MVT[1:],
                )
        tiles = [(mtime, base, size, whole) for base, (mtime, size, whole) in found.items()]
        return tiles, sum(size for _, _, size, _ in tiles)

    # -- deleting

    def _columns(self, layer: str | None) -> Iterator[str]:
        """Every {layer}/{variant}/{z}/{x} folder (of one layer, or of all)."""
        layers = [os.path.join(self.root, layer)] if layer else _subfolders(str(self.root))
        for layer_folder in layers:
            for variant in _subfolders(layer_folder):
                for zoom in _subfolders(variant):
                    yield from _subfolders(zoom)

    def _drop_in(self, column: str, wanted: Callable[[int], bool]) -> int:
        """Delete the tiles of one column whose row is wanted; how many had a .mvt."""
        rows = {
            entry.name.split(".", 1)[0]
            for entry in _entries(column)
            if not entry.name.startswith(".")
        }
        dropped = sum(
            self._drop(os.path.join(column, row))
            for row in rows
            if row.isdigit() and wanted(int(row))
        )
        # an emptied column goes too, or purges would leave a tree of empty folders behind
        # (a writer finding it gone recreates it: see put)
        with contextlib.suppress(OSError):
            os.rmdir(column)
        return dropped

    def _drop(self, base: str) -> bool:
        """Delete a tile's files, the .mvt first; True when it had one."""
        freed = 0
        had_mvt = False
        for suffix in _SUFFIXES:
            try:
                size = os.lstat(base + suffix).st_size
                os.unlink(base + suffix)
            except FileNotFoundError:
                continue
            except OSError as exc:
                self.purge_failures += 1
                self._failed(exc)
                continue
            freed += size
            had_mvt = had_mvt or suffix == _MVT
        with self._lock:
            self._bytes -= freed
        return had_mvt

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        now = time.monotonic()
        if now - self._warned_at > 60:
            logger.warning("tile directory %s: %s; serving uncached", self.root, exc)
            self._warned_at = now


def _checksum(tile: CachedTile) -> str:
    return hashlib.sha1(tile.encode()).hexdigest()


def _stored(tile: CachedTile) -> CachedTile:
    """The tile as it is stored: an empty tile has no compressed siblings (none is served)."""
    return tile if tile.raw else CachedTile(tile.epoch, b"", b"", b"")


def _read(base: str) -> CachedTile | bool | None:
    """The tile; None when its .mvt or .epoch is missing; False when it does not check out."""
    try:
        with open(base + _EPOCH, "rb") as meta_file:
            meta = meta_file.read(200).split()
        with open(base + _MVT, "rb") as raw_file:
            raw = raw_file.read()
    except FileNotFoundError:
        return None
    try:
        epoch, digest = int(meta[0]), meta[1].decode()
    except (IndexError, ValueError, UnicodeDecodeError):
        return False
    tile = CachedTile(epoch, raw, _slurp(base + _GZIP), _slurp(base + _BROTLI))
    return tile if _checksum(tile) == digest else False


def _slurp(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError:
        return b""


def _size(path: str) -> int:
    try:
        return os.lstat(path).st_size
    except FileNotFoundError:
        return 0


def _make_folders(folder: str) -> None:
    """The folder and its missing parents, those made here open to nginx's worker (0755)
    whatever the process's umask (the service's own files are kept private with one): the
    tree holds only what nginx serves to anyone. Folders that exist keep their modes."""
    if os.path.isdir(folder):
        return
    parent = os.path.dirname(folder)
    if parent and parent != folder:
        _make_folders(parent)
    try:
        os.mkdir(folder)
    except FileExistsError:
        return  # (made by another writer at the same moment)
    os.chmod(folder, 0o755)


def _write_tile(base: str, tile: CachedTile) -> int:
    """Write a tile's files, the .mvt last; returns how many bytes the tree grew."""
    _make_folders(os.path.dirname(base))
    before = sum(_size(base + suffix) for suffix in _SUFFIXES)
    tile = _stored(tile)
    files = (
        (_EPOCH, f"{tile.epoch} {_checksum(tile)}\n".encode()),
        (_GZIP, tile.gzip),
        (_BROTLI, tile.brotli),
        (_MVT, tile.raw),
    )
    for suffix, body in files:
        if body or suffix == _MVT:
            _write_atomically(base + suffix, body)
        else:  # an older version's sibling must not outlive it
            with contextlib.suppress(FileNotFoundError):
                os.unlink(base + suffix)
    return sum(len(body) for _, body in files) - before


def _write_atomically(path: str, body: bytes) -> None:
    """Write a file under a temporary name in its folder, then rename it into place."""
    folder, name = os.path.split(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(body)
            os.fchmod(out.fileno(), 0o644)  # mkstemp makes it 0600: nginx's worker reads it
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _entries(folder: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _subfolders(folder: str) -> list[str]:
    """The folders in `folder` with plain names (not the mark, not temporary files)."""
    return [
        entry.path
        for entry in _entries(folder)
        if _COMPONENT.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)
    ]

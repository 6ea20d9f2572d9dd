"""Built download files (GeoPackages) kept for a while, so that a client reading one in byte
ranges gets the same file with every request.

GDAL's /vsicurl/ (and QGIS through it) opens a GeoPackage URL with a HEAD and then reads it
range by range, one request each; a file built afresh for every request would differ between
them (a GeoPackage records when it was written). So a file is built once per selection (its
key) and data epoch, kept under `<home>/downloads`, shared by the service's processes (a
file is published by a hard link, which fails when another process got there first), and
served until the data of its collection change or it has not been used for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

IDLE_S = 15 * 60  # a file not used for this long goes
YOUNG_S = 60  # a file this new is never removed to make room (it is being read)


def selection_key(collection: str, parts: Iterable[tuple[str, str]]) -> str:
    """A stable key of a selection: the collection and its request parameters."""
    digest = hashlib.sha256(collection.encode())
    for name, value in sorted(parts):
        digest.update(b"\0" + name.encode() + b"=" + value.encode())
    return digest.hexdigest()[:32]


class BuiltFiles:
    """A bounded folder of built files, by key and data epoch."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder, self.max_bytes = folder, max_bytes
        self._locks: dict[str, asyncio.Lock] = {}

    def path(self, key: str, epoch: int, suffix: str) -> Path:
        """Where the file of a key at an epoch lives."""
        return self.folder / f"{key}-{epoch}{suffix}"

    async def get(
        self,
        key: str,
        epoch: int,
        fresh: Callable[[int], bool],
        build: Callable[[], Awaitable[Path]],
        suffix: str = ".gpkg",
    ) -> tuple[Path, int]:
        """The file of `key` and its epoch: a kept one whose epoch is still `fresh`, else
        one `build` makes now (at `epoch`, the data epoch read before building)."""
        if len(self._locks) > 1000:  # (locks of finished keys go; the dict stays bounded)
            self._locks = {k: v for k, v in self._locks.items() if v.locked()}
        async with self._locks.setdefault(key, asyncio.Lock()):
            kept = await asyncio.to_thread(self._kept, key, suffix, fresh)
            if kept is not None:
                return kept
            built = await build()
            target = self.path(key, epoch, suffix)
            return await asyncio.to_thread(self._publish, built, target), epoch

    def _kept(self, key: str, suffix: str, fresh: Callable[[int], bool]) -> tuple[Path, int] | None:
        """The newest fresh file of the key (touched: it is in use), removing stale ones."""
        self.folder.mkdir(parents=True, exist_ok=True)
        found: list[tuple[int, Path]] = []
        for path in self.folder.glob(f"{key}-*{suffix}"):
            digits = path.name[len(key) + 1 : -len(suffix)]
            if digits.isdigit():
                found.append((int(digits), path))
        found.sort(reverse=True)
        for epoch, path in found:
            if fresh(epoch):
                with contextlib.suppress(FileNotFoundError):
                    os.utime(path)
                    return path, epoch
            else:
                path.unlink(missing_ok=True)
        return None

    def _publish(self, built: Path, target: Path) -> Path:
        """Move a built file into the folder (keeping another process's if it was first),
        then make room."""
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            os.link(built, target)
        except FileExistsError:
            pass
        finally:
            shutil.rmtree(built.parent, ignore_errors=True)
        self._make_room(keep=target)
        return target

    def _make_room(self, keep: Path) -> None:
        """Remove files unused for IDLE_S, then the least recently used until the folder
        fits in max_bytes (never one younger than YOUNG_S: it may be being read)."""
        now = time.time()
        files = []
        for path in self.folder.iterdir():
            with contextlib.suppress(FileNotFoundError):
                stat = path.stat()
                files.append((stat.st_mtime, stat.st_size, path))
        files.sort()
        total = sum(size for _, size, _ in files)
        for used, size, path in files:
            idle = now - used
            if path == keep or idle < YOUNG_S:
                continue
            if idle > IDLE_S or total > self.max_bytes:
                path.unlink(missing_ok=True)
                total -= size

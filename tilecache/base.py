"""What every cache backend offers, and how a cached tile is stored."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

# epoch, raw, gzip and brotli lengths, sha1 of the three (a flipped byte in a compressed
# copy would otherwise be sent as it is)
_HEADER = struct.Struct(">qIII20s")
# The variant of a tile asked for without query parameters: the one nginx can serve as a file.
DEFAULT_VARIANT = "default"


class CorruptTile(ValueError):
    """A cached blob that does not decode or does not match its checksum."""


@dataclass(frozen=True)
class CachedTile:
    """A rendered tile in its encodings, and the data epoch it was rendered at."""

    epoch: int
    raw: bytes
    gzip: bytes
    brotli: bytes

    @property
    def digest(self) -> str:
        """SHA-1 of the uncompressed tile (the base of its ETag)."""
        return hashlib.sha1(self.raw).hexdigest()

    def encode(self) -> bytes:
        """One blob for storage, with a checksum so corruption is detected on read."""
        body = self.raw + self.gzip + self.brotli
        header = _HEADER.pack(
            self.epoch, len(self.raw), len(self.gzip), len(self.brotli), hashlib.sha1(body).digest()
        )
        return header + body

    @classmethod
    def decode(cls, blob: bytes) -> CachedTile:
        """The tile stored in `blob`; CorruptTile when it is truncated or altered."""
        if len(blob) < _HEADER.size:
            raise CorruptTile("blob shorter than its header")
        epoch, n_raw, n_gz, n_br, digest = _HEADER.unpack_from(blob)
        body = blob[_HEADER.size :]
        if len(body) != n_raw + n_gz + n_br:
            raise CorruptTile("blob length does not match its header")
        if hashlib.sha1(body).digest() != digest:
            raise CorruptTile("checksum mismatch")
        return cls(epoch, body[:n_raw], body[n_raw : n_raw + n_gz], body[n_raw + n_gz :])


@dataclass(frozen=True)
class TileKey:
    """Which tile: layer (collection id), variant (hash of the query parameters), z/x/y."""

    layer: str
    variant: str
    z: int
    x: int
    y: int


class TileCache(Protocol):
    """A tile cache backend. Failures of a shared backend are absorbed, never raised."""

    name: str

    def get(self, key: TileKey) -> CachedTile | None:
        """The cached tile, or None (missing, corrupt or backend unavailable)."""

    def put(self, key: TileKey, tile: CachedTile) -> None:
        """Store a tile (evicting old ones when over the size limit)."""

    def put_now(self, key: TileKey, tile: CachedTile) -> bool:
        """Store a tile only if that cannot wait on anything (a lock, a busy file, the
        network); False when it was not stored and `put` must be called (in a thread)."""

    def purge_range(self, layer: str, z: int, x0: int, y0: int, x1: int, y1: int) -> int:
        """Drop every variant of the tiles in the inclusive range; return how many."""

    def purge_layer(self, layer: str | None = None) -> int:
        """Drop every tile of a layer (or of all layers); return how many."""

    def purge_values(self, layer: str) -> int:
        """Drop the tiles of a layer that carry values (every variant but the default, the
        geometry-only tile); return how many."""

    def stats(self) -> dict[str, int | str]:
        """Counts for `geo-service tiles stats` and /metrics."""

    def close(self) -> None:
        """Release connections and files."""


@runtime_checkable
class SyncedTileCache(TileCache, Protocol):
    """A cache that others serve without asking the service (nginx serving a directory).

    Nobody checks its tiles' freshness when they are served, so it must be purged of every
    change, also of those made while no instance of the service was running: it remembers
    the epoch up to which it was purged.
    """

    def synced_epoch(self) -> int | None:
        """The epoch up to which every change was purged, or None when unknown."""

    def mark_synced(self, epoch: int) -> None:
        """Record that every change up to `epoch` was purged."""

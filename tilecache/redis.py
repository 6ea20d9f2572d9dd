"""The shared backend for several service instances: Redis. If Redis is unreachable the
service keeps serving uncached and logs a warning (at most once a minute)."""

from __future__ import annotations

import logging
import time

import redis

from tilecache.base import DEFAULT_VARIANT, CachedTile, CorruptTile, TileKey

logger = logging.getLogger(__name__)

# Ranges larger than this are purged by scanning the layer's keys instead of naming them.
_MAX_NAMED_KEYS = 4096


class RedisTileCache:
    """One Redis hash per tile (`gs:tile:{layer}:{z}:{x}:{y}`), one field per variant."""

    name = "redis"

    def __init__(self, url: str, prefix: str = "gs:tile", ttl_seconds: int = 7 * 24 * 3600):
        self.url = url
        self.prefix = prefix
        self.ttl = ttl_seconds
        self._redis = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._warned_at = 0.0
        self.hits = self.misses = self.errors = self.corrupt = 0

    def _key(self, layer: str, z: int, x: int, y: int) -> str:
        return f"{self.prefix}:{layer}:{z}:{x}:{y}"

    def _unavailable(self, exc: Exception) -> None:
        self.errors += 1
        now = time.monotonic()
        if now - self._warned_at > 60:
            logger.warning("Redis tile cache unavailable (%s); serving uncached", exc)
            self._warned_at = now

    def get(self, key: TileKey) -> CachedTile | None:
        """The cached tile, or None (also when Redis is down)."""
        name = self._key(key.layer, key.z, key.x, key.y)
        try:
            blob = self._redis.hget(name, key.variant)
        except redis.RedisError as exc:
            self._unavailable(exc)
            return None
        if blob is None:
            self.misses += 1
            return None
        try:
            tile = CachedTile.decode(blob)  # type: ignore[arg-type]
        except CorruptTile as exc:
            logger.warning("corrupt cached tile %s dropped: %s", key, exc)
            self.corrupt += 1
            try:
                self._redis.hdel(name, key.variant)
            except redis.RedisError as error:
                self._unavailable(error)
            return None
        self.hits += 1
        return tile

    def put(self, key: TileKey, tile: CachedTile) -> None:
        """Store a tile (Redis's own maxmemory policy evicts)."""
        name = self._key(key.layer, key.z, key.x, key.y)
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.hset(name, key.variant, tile.encode())
            pipe.expire(name, self.ttl)
            pipe.execute()
        except redis.RedisError as exc:
            self._unavailable(exc)

    def put_now(self, key: TileKey, tile: CachedTile) -> bool:
        """Never: a write here can wait (on the network)."""
        return False

    def purge_range(self, layer: str, z: int, x0: int, y0: int, x1: int, y1: int) -> int:
        """Drop every variant of the tiles in the range."""
        try:
            if (x1 - x0 + 1) * (y1 - y0 + 1) <= _MAX_NAMED_KEYS:
                names = [
                    self._key(layer, z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)
                ]
                return int(self._redis.unlink(*names)) if names else 0
            return self._scan_delete(
                f"{self.prefix}:{layer}:{z}:*", lambda x, y: x0 <= x <= x1 and y0 <= y <= y1
            )
        except redis.RedisError as exc:
            self._unavailable(exc)
            return 0

    def purge_values(self, layer: str) -> int:
        """Drop every variant of a layer's tiles but the geometry-only one (hash fields)."""
        dropped = 0
        try:
            for name in self._redis.scan_iter(match=f"{self.prefix}:{layer}:*", count=1000):
                fields = [f for f in self._redis.hkeys(name) if f != DEFAULT_VARIANT.encode()]
                if fields:
                    dropped += int(self._redis.hdel(name, *fields))
        except redis.RedisError as exc:
            self._unavailable(exc)
        return dropped

    def _scan_delete(self, pattern: str, keep_if: object = None) -> int:
        deleted = 0
        batch: list[bytes] = []
        for name in self._redis.scan_iter(match=pattern, count=1000):
            if callable(keep_if):
                *_, x, y = name.decode().rsplit(":", 2)
                if not keep_if(int(x), int(y)):
                    continue
            batch.append(name)
            if len(batch) >= 500:
                deleted += int(self._redis.unlink(*batch))
                batch = []
        if batch:
            deleted += int(self._redis.unlink(*batch))
        return deleted

    def purge_layer(self, layer: str | None = None) -> int:
        """Drop every tile of a layer, or everything under the prefix."""
        try:
            return self._scan_delete(f"{self.prefix}:{layer or '*'}:*")
        except redis.RedisError as exc:
            self._unavailable(exc)
            return 0

    def stats(self) -> dict[str, int | str]:
        """Hits, misses, errors (and key count when reachable)."""
        stats: dict[str, int | str] = {
            "backend": self.name,
            "hits": self.hits,
            "misses": self.misses,
            "errors": self.errors,
            "corrupt": self.corrupt,
        }
        try:
            stats["tiles"] = sum(
                1 for _ in self._redis.scan_iter(match=f"{self.prefix}:*", count=1000)
            )
        except redis.RedisError as exc:
            self._unavailable(exc)
        return stats

    def close(self) -> None:
        """Close the connection pool."""
        self._redis.close()

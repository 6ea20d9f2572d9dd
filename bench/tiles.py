"""Benchmark: our vector tiles against tipg 1.6.1 (uncached) and nginx static files (cached).

Usage: .venv/bin/python bench/tiles.py [--short] [--duration 30] [--repeat 3]
       [--connections 8] [--no-cache] [--output FILE]

Everything runs on one throwaway PostgreSQL + PostGIS cluster with the demo loaded, set up by
`bench/features.py` (`prepare_database`: `migrate` + `load_demo`, or the cached `pg_dump` of
them). In the same database `bench.communes` (code primary key, name, geom with a GiST index;
the 2025 communes of `admin_unit`) is what tipg serves.

The tiles: a fixed, seeded list of 2,110 distinct WebMercatorQuad tiles over Vietnam, every
tile z5-z8 over the communes' extent plus a seeded random sample at z9-z12 of the tiles that
intersect a commune; written to bench/results/tile_list.txt in the order wrk cycles through.

Servers (one uvicorn worker each: uvloop + httptools, access log off; nginx with one worker):

- uncached: ours with `GEO_SERVICE_TILE_CACHE=none` vs tipg (which has no cache);
- cached: ours with the SQLite cache seeded by one pass over the list and with a Redis cache
  (seeded the same way), each in both freshness modes (`strict`, `notify`), and ours with the
  directory cache behind an nginx front (`geo-service tiles nginx-conf`; seeded by one pass
  through the front), vs nginx serving the same tiles (fetched once from ours) as static
  files `z/x/y.pbf`.

wrk runs a Lua script cycling through the list (the one of bench/features.py), the same
connections and duration for every server, servers interleaved, medians of `--repeat` runs.

Also measured: the size of the z5 tiles of both, one cold pass over the list on one
connection, and edit → fresh tile latency: two instances of ours sharing Redis, commune 00004
(Ba Đình) scaled by 0.9 and back with plain SQL, the tile z10/813/450 polled on the second
instance until it changes; the same through the nginx front.

The Markdown report is printed and written to bench/results/tiles.md.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import dataclasses
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import redis
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    NGINX,
    NGINX_FRONT,
    RESULTS_DIR,
    TIPG,
    TIPG_VERSION,
    WRK_LUA,
    Client,
    Server,
    WrkRun,
    clean_env,
    describe,
    ensure_nginx,
    ensure_tipg,
    ensure_wrk,
    ours_command,
    prepare_database,
    run_wrk,
    shown,
    start_nginx,
    start_nginx_front,
    start_server,
    stop_server,
    tipg_command,
)
from geo_core import grid
from geo_service.features.catalogue import read_collection
from geo_service.features.query import RawItemParams, build_item_query
from geo_service.localdb import LocalCluster, free_port
from geo_service.settings import ServiceSettings
from geo_service.tiles.prerender import Prerenderer
from geo_service.tiles.service import TileService
from geo_service.tiles.sql import MvtOptions, tile_sql
from tilecache.base import CachedTile, TileKey
from tilecache.redis import RedisTileCache

RESULTS = RESULTS_DIR / "tiles.md"
TILE_LIST = RESULTS_DIR / "tile_list.txt"

SEED = 20251123
TARGET_TILES = 2110
FULL_ZOOMS = range(5, 9)  # every tile over the communes' extent
SAMPLED_ZOOMS = range(9, 13)  # a seeded sample of the tiles that intersect a commune
OUR_TILES = "/collections/commune-2025/tiles/WebMercatorQuad"
TIPG_TILES = "/collections/bench.communes/tiles/WebMercatorQuad"
EDIT_CODE = "00004"  # Ba Đình, Hà Nội
EDIT_TILE = (10, 813, 450)
EDIT_TIMEOUT_S = 10.0
SHORT_DURATION = 4
CHECK_SAMPLE = 300  # tiles fetched once from the instances not used for seeding

Tile = tuple[int, int, int]

# the columns ours puts in its tiles (code, name); tipg serves every column of its table
TIPG_COLUMNS_SQL = (
    "ALTER TABLE bench.communes DROP COLUMN parent_code, DROP COLUMN unit_type,"
    " DROP COLUMN area_km2",
    "VACUUM FULL bench.communes",
    "ANALYZE bench.communes",
)

EDIT_SQL = """
UPDATE admin_unit SET geom = ST_Multi(ST_Scale(geom, ST_MakePoint(%(f)s, %(f)s),
                                               ST_Centroid(geom)))
WHERE vintage = '2025' AND level = 'commune' AND code = %(code)s
"""


@dataclasses.dataclass(frozen=True)
class Ours:
    """One configuration of our service."""

    key: str  # also the server's folder name
    label: str
    cache: str
    freshness: str


OURS_NONE = Ours("ours-none", "ours, no cache (strict)", "none", "strict")
OURS_CACHED = (
    Ours("ours-sqlite-strict", "ours, SQLite cache, strict", "sqlite", "strict"),
    Ours("ours-sqlite-notify", "ours, SQLite cache, notify", "sqlite", "notify"),
    Ours("ours-redis-strict", "ours, Redis cache, strict", "redis", "strict"),
    Ours("ours-redis-notify", "ours, Redis cache, notify", "redis", "notify"),
)
# ours with the directory cache, behind an nginx front that serves its files
OURS_DIRECTORY = Ours(
    "ours-directory", "ours, directory cache (behind the nginx front)", "directory", "strict"
)
# second instances for the edit → fresh tile test (sharing Redis with the first ones)
OURS_SECOND = (
    Ours("ours-redis-strict-b", "ours, Redis cache, strict (2nd instance)", "redis", "strict"),
    Ours("ours-redis-notify-b", "ours, Redis cache, notify (2nd instance)", "redis", "notify"),
)


@dataclasses.dataclass
class Pass:
    """One pass over a list of tiles: time, sizes and HTTP statuses."""

    seconds: float
    sizes: dict[Tile, int]
    statuses: Counter[int]
    bodies: dict[Tile, bytes]

    @property
    def ok(self) -> bool:
        """True when every response was 2xx."""
        return all(200 <= s < 300 for s in self.statuses)


@dataclasses.dataclass
class Edits:
    """Edit → fresh tile latencies on the second instance."""

    mode: str
    latencies_ms: list[float]
    polls: list[int]
    failures: int


# ------------------------------------------------------------------------------ helpers


def tile_path(prefix: str, tile: Tile) -> str:
    """The URL path of a tile under a server's tile prefix."""
    z, x, y = tile
    return f"{prefix}/{z}/{x}/{y}"


def one_pass(
    base: str,
    prefix: str,
    tiles: list[Tile],
    threads: int = 1,
    keep: bool = False,
    suffix: str = "",
) -> Pass:
    """Fetch every tile once, on `threads` keep-alive connections (list split between them)."""
    sizes: dict[Tile, int] = {}
    bodies: dict[Tile, bytes] = {}
    statuses: Counter[int] = Counter()

    def work(part: list[Tile]) -> Counter[int]:
        client = Client(base)
        seen: Counter[int] = Counter()
        try:
            for tile in part:
                status, _, body = client.get(tile_path(prefix, tile) + suffix)
                seen[status] += 1
                sizes[tile] = len(body)
                if keep:
                    bodies[tile] = body
        finally:
            client.close()
        return seen

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(work, tiles[i::threads]) for i in range(threads)]:
            statuses.update(future.result())
    return Pass(time.perf_counter() - started, sizes, statuses, bodies)


def empty_sqlite_cache(path: Path) -> None:
    """Drop every tile of a SQLite tile cache (a service using it keeps running): the next
    pass over the list is cold again."""
    db = sqlite3.connect(path, timeout=30)
    try:
        with db:
            db.execute("DELETE FROM tile")
    finally:
        db.close()


@dataclasses.dataclass
class ColdWalks:
    """Seconds of each cold single-connection walk over the tile list, interleaved."""

    tiles: int
    ours: list[float]
    peer: list[float]
    statuses: Counter[int]


def cold_walks(
    ours: Server,
    ours_cache: Path,
    peer: Server,
    peer_prefix: str,
    tiles: list[Tile],
    repeat: int,
    log: Callable[[str], None] = print,
) -> ColdWalks:
    """A map opened for the first time: every tile of the list once, on one connection,
    ours with its default cache (SQLite, emptied before each walk: misses are rendered and
    stored) against tipg (no cache); `repeat` walks each, who goes first alternating."""
    walks = ColdWalks(len(tiles), [], [], Counter())
    for i in range(repeat):
        for side in ("ours", "peer") if i % 2 == 0 else ("peer", "ours"):
            if side == "ours":
                empty_sqlite_cache(ours_cache)
                walk = one_pass(ours.base, OUR_TILES, tiles)
                walks.ours.append(walk.seconds)
            else:
                walk = one_pass(peer.base, peer_prefix, tiles)
                walks.peer.append(walk.seconds)
            walks.statuses.update(walk.statuses)
            log(f"cold walk {i + 1}/{repeat} {side}: {walk.seconds:.2f} s {dict(walk.statuses)}")
    return walks


async def _prerender_seconds(db_url: str, home: Path, layer: str) -> tuple[float, int]:
    settings = ServiceSettings(
        home=home, tile_cache="sqlite", tile_cache_path=home / "pyramid.sqlite"
    )
    service = TileService(settings)
    try:
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            await service.freshness.start(conn)
            job = Prerenderer(service, settings, db_url, busy=lambda: False)
            started = time.perf_counter()
            rendered = await job.render_layers(conn, [layer])
            return time.perf_counter() - started, rendered
    finally:
        for cache in service.caches:
            cache.close()


def prerender_seconds(db_url: str, workdir: Path, layer: str = "commune-2025") -> tuple[float, int]:
    """The background job's pass over one collection's pyramid (default z0–z12, with its
    pause between tiles, nothing else asking) into an empty SQLite cache: seconds, tiles."""
    home = workdir / "prerender"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    return asyncio.run(_prerender_seconds(db_url, home, layer))


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ----------------------------------------------------------------------------- the tiles


def make_tile_list(
    conn: psycopg.Connection, table: str = "bench.communes", target: int = TARGET_TILES
) -> tuple[list[Tile], tuple[float, ...]]:
    """Every tile z5-z8 over the table's extent, then a seeded sample z9-z12 of tiles
    intersecting one of its geometries, up to `target`; shuffled with the same seed."""
    relation = sql.SQL(".").join(sql.Identifier(part) for part in table.split("."))
    row = conn.execute(
        sql.SQL(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM"
            " (SELECT ST_Extent(geom)::geometry AS e FROM {}) s"
        ).format(relation)
    ).fetchone()
    assert row is not None
    extent = (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
    rng = random.Random(SEED)
    tiles: list[Tile] = [(z, x, y) for z in FULL_ZOOMS for x, y in grid.tiles_in(extent, z)]
    if len(tiles) > target:  # a wide extent: keep a seeded sample of the low zooms too
        tiles = rng.sample(tiles, target)
    remaining = target - len(tiles)
    zooms = list(SAMPLED_ZOOMS)
    for i, z in enumerate(zooms):
        # an equal share of what is left; a zoom with fewer tiles leaves more to the next
        quota = -(-remaining // (len(zooms) - i))
        candidates = list(grid.tiles_in(extent, z))
        rng.shuffle(candidates)
        chosen: list[Tile] = []
        for start in range(0, len(candidates), 1000):
            batch = candidates[start : start + 1000]
            hits = conn.execute(
                sql.SQL(
                    "SELECT t.i FROM unnest(%s::int[], %s::int[]) WITH ORDINALITY AS t(x, y, i)"
                    " WHERE EXISTS (SELECT 1 FROM {} c WHERE ST_Intersects(c.geom,"
                    " ST_Transform(ST_TileEnvelope(%s, t.x, t.y), 4326))) ORDER BY t.i"
                ).format(relation),
                ([c[0] for c in batch], [c[1] for c in batch], z),
            ).fetchall()
            chosen += [(z, *batch[int(h[0]) - 1]) for h in hits]
            if len(chosen) >= quota:
                break
        tiles += chosen[:quota]
        remaining -= len(chosen[:quota])
    if len(set(tiles)) != len(tiles):
        raise SystemExit("the tile list has duplicates")
    rng.shuffle(tiles)
    return tiles, extent


# ------------------------------------------------------------------------------ servers


def ours_env(config: Ours, db_url: str, workdir: Path, redis_url: str) -> dict[str, str]:
    """The environment of one instance of ours (SQLite instances share one cache file)."""
    path = workdir / ("tiles-directory" if config.cache == "directory" else "tiles.sqlite")
    return {
        **clean_env(),
        "DATABASE_URL": db_url,
        "GEO_SERVICE_HOME": str(workdir / "home" / config.key),
        "GEO_SERVICE_TILE_CACHE": config.cache,
        "GEO_SERVICE_TILE_FRESHNESS": config.freshness,
        "GEO_SERVICE_TILE_CACHE_PATH": str(path),
        "GEO_SERVICE_TILE_CACHE_MAX_MB": "2048",
        "GEO_SERVICE_REDIS_URL": redis_url,
    }


def start_all(db_url: str, tipg_python: Path, workdir: Path, redis_url: str) -> dict[str, Server]:
    """Ours in every configuration and tipg, started in parallel; name → server."""
    command = ours_command()
    jobs: list[tuple[str, list[str], dict[str, str], str, str]] = [
        (c.key, command, ours_env(c, db_url, workdir, redis_url), "/health", OUR_TILES)
        for c in (OURS_NONE, *OURS_CACHED, *OURS_SECOND, OURS_DIRECTORY)
    ]
    jobs.append(
        (
            TIPG,
            tipg_command(tipg_python),
            {**clean_env(), "DATABASE_URL": db_url, "TIPG_DB_SCHEMAS": '["bench"]'},
            "/healthz",
            TIPG_TILES,
        )
    )
    servers: dict[str, Server] = {}
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        futures = {
            name: pool.submit(start_server, name, cmd, env, ready, prefix, workdir)
            for name, cmd, env, ready, prefix in jobs
        }
        errors: list[BaseException] = []
        for name, future in futures.items():
            try:
                servers[name] = future.result()
            except BaseException as exc:  # stop the others, then re-raise
                errors.append(exc)
    if errors:
        for server in servers.values():
            stop_server(server)
        raise errors[0]
    return servers


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """A throwaway redis-server on a free port (no persistence); yields its URL."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory",
            "1gb",
            "--maxmemory-policy",
            "allkeys-lru",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            raise SystemExit("redis-server did not start")
        client.close()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def copy_sqlite_to_redis(path: Path, redis_url: str) -> int:
    """Put every tile of the SQLite cache into Redis as it is (same keys, epochs, bytes)."""
    target = RedisTileCache(redis_url)
    count = 0
    with sqlite3.connect(path) as db:
        for layer, variant, z, x, y, blob in db.execute(
            "SELECT layer, variant, z, x, y, blob FROM tile"
        ):
            target.put(TileKey(layer, variant, z, x, y), CachedTile.decode(blob))
            count += 1
    target.close()
    return count


def write_static(root: Path, bodies: dict[Tile, bytes]) -> None:
    """The tiles as static files root/z/x/y.pbf."""
    for (z, x, y), body in bodies.items():
        path = root / str(z) / str(x) / f"{y}.pbf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)


# ------------------------------------------------------------------------------ measures


def feature_count(body: bytes) -> int | None:
    """Features in an MVT (all layers), or None when mapbox-vector-tile is not installed."""
    try:
        import mapbox_vector_tile
    except ImportError:
        return None
    if not body:
        return 0
    layers = mapbox_vector_tile.decode(body)
    return sum(len(layer["features"]) for layer in layers.values())


def measure_edits(
    db_url: str,
    first: Server,
    second: Server,
    mode: str,
    iterations: int,
    log: Callable[[str], None],
) -> Edits:
    """Scale commune EDIT_CODE by 0.9 and back, and time commit → new tile on `second`.

    The tile is new when its body changes (our ETag is the body's hash; nginx's is not).
    """
    path = tile_path(OUR_TILES, EDIT_TILE)
    a, b = Client(first.base), Client(second.base)
    latencies: list[float] = []
    polls: list[int] = []
    failures = 0
    try:
        for client in (a, b):
            status, _, _ = client.get(path)
            if status != 200:
                raise SystemExit(f"{path}: HTTP {status}")
        with psycopg.connect(db_url) as conn:
            for i in range(iterations):
                a.get(path)  # both instances have it cached (and know every change)
                status, _, before = b.get(path)
                factor = 0.9 if i % 2 == 0 else 1 / 0.9
                conn.execute(EDIT_SQL, {"f": factor, "code": EDIT_CODE})
                started = time.perf_counter()  # from the moment COMMIT is sent
                conn.commit()
                count = 0
                while True:
                    count += 1
                    status, _, body = b.get(path)
                    elapsed = time.perf_counter() - started
                    if status == 200 and body != before:
                        latencies.append(elapsed * 1000)
                        polls.append(count)
                        break
                    if elapsed > EDIT_TIMEOUT_S:
                        failures += 1
                        log(f"  edit {i + 1}: tile still stale after {EDIT_TIMEOUT_S:.0f} s")
                        break
                time.sleep(0.2)
    finally:
        a.close()
        b.close()
    return Edits(mode, latencies, polls, failures)


async def _step_times(db_url: str, tiles: list[Tile], repeats: int) -> dict[Tile, dict[str, float]]:
    """Median ms of each database step of our tile request, run here on one connection."""
    result: dict[Tile, dict[str, float]] = {}
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        for z, x, y in tiles:
            times: dict[str, list[float]] = {}
            for _ in range(repeats):
                t0 = time.perf_counter()
                collection = await read_collection(conn, "commune-2025")
                t1 = time.perf_counter()
                query = await build_item_query(conn, collection, RawItemParams())
                t2 = time.perf_counter()
                await (await conn.execute("SELECT epoch FROM tile_epoch")).fetchone()
                t3 = time.perf_counter()
                statement, params = tile_sql(query, z, x, y, MvtOptions())
                await (await conn.execute(statement, params)).fetchone()
                t4 = time.perf_counter()
                for step, seconds in (
                    ("read_collection", t1 - t0),
                    ("build_item_query", t2 - t1),
                    ("epoch (strict)", t3 - t2),
                    ("tile SQL", t4 - t3),
                ):
                    times.setdefault(step, []).append(seconds * 1000)
            result[(z, x, y)] = {step: _median(v) for step, v in times.items()}
    return result


def step_times(db_url: str, tiles: list[Tile], repeats: int) -> dict[Tile, dict[str, float]]:
    """`_step_times`, run in its own event loop."""
    return asyncio.run(_step_times(db_url, tiles, repeats))


def single_latency(base: str, path: str, repeats: int) -> float:
    """Median ms of `repeats` sequential GETs on one keep-alive connection (after one more)."""
    client = Client(base)
    try:
        client.get(path)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            status, _, _ = client.get(path)
            times.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise SystemExit(f"{base}{path}: HTTP {status}")
        return _median(times)
    finally:
        client.close()


def wrk_runs(
    wrk: str, lua: Path, server: Server, paths: Path, connections: int, duration: int
) -> WrkRun:
    """One wrk measurement (bench/features.py's runner, cycling through the tile list)."""
    return run_wrk(wrk, lua, server.base, paths, connections, duration, server.name)


# -------------------------------------------------------------------------------- report


def _fmt_rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def throughput_table(
    title: str,
    names: list[str],
    labels: dict[str, str],
    runs: dict[str, list[WrkRun]],
    reference: str,
    target: float,
    passes_ok: dict[str, bool],
) -> str:
    """Medians per server, with the ratio to the reference server's req/s."""
    header = [
        "Scenario",
        "server",
        "req/s",
        "p50 ms",
        "p99 ms",
        "MB/s",
        "KB/response",
        "errors",
        f"× {labels[reference]}",
        f"target ≥ {target:g}×",
    ]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|",
    ]
    ref = _median([r.rps for r in runs[reference]])
    for i, name in enumerate(names):
        measured = runs[name]
        rps = _median([r.rps for r in measured])
        errors = sum(r.error_count for r in measured)
        errors_text = str(errors) + ("" if passes_ok.get(name, True) else " + non-2xx in check")
        ratio = rps / ref if ref else float("nan")
        reached = "" if name == reference else ("yes" if ratio >= target else "**no**")
        kb = _median([r.bytes / r.requests / 1e3 for r in measured if r.requests])
        cells = [
            title if i == 0 else "",
            labels[name],
            _fmt_rate(rps),
            f"{_median([r.p50_ms for r in measured]):.2f}",
            f"{_median([r.p99_ms for r in measured]):.1f}",
            f"{_median([r.mb_per_s for r in measured]):.1f}",
            f"{kb:.1f}",
            errors_text,
            "" if name == reference else f"**{ratio:.3g}**",
            reached,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detail_table(labels: dict[str, str], runs: dict[str, list[WrkRun]]) -> str:
    """Every wrk run."""
    header = [
        "server",
        "run",
        "requests",
        "s",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "MB/s",
        "errors (connect/read/write/status/timeout)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for name, measured in runs.items():
        for i, r in enumerate(measured, 1):
            errors = "/".join(
                str(r.errors[k]) for k in ("connect", "read", "write", "status", "timeout")
            )
            lines.append(
                "| "
                + " | ".join(
                    [
                        labels[name],
                        str(i),
                        str(r.requests),
                        f"{r.seconds:.1f}",
                        f"{r.rps:.1f}",
                        f"{r.p50_ms:.2f}",
                        f"{r.p90_ms:.2f}",
                        f"{r.p99_ms:.1f}",
                        f"{r.max_ms:.0f}",
                        f"{r.mb_per_s:.1f}",
                        errors,
                    ]
                )
                + " |"
            )
    return "\n".join(lines)


def size_table(
    z5: list[Tile],
    sizes: dict[str, dict[Tile, int]],
    features: dict[str, dict[Tile, int | None]],
    all_sizes: dict[str, dict[Tile, int]],
) -> str:
    """Max and median bytes of the z5 tiles (and of the whole list where measured)."""
    header = [
        "server",
        "z5 tiles",
        "empty",
        "median KB (non-empty)",
        "max KB",
        "features per z5 tile",
        "whole list: median KB",
        "whole list: total MB",
    ]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for name, measured in sizes.items():
        values = [measured[t] for t in z5]
        nonempty = [v for v in values if v > 0]
        counts = [features[name].get(t) for t in z5]
        count_text = ", ".join("?" if c is None else str(c) for c in counts)
        whole = list(all_sizes.get(name, {}).values())
        lines.append(
            "| "
            + " | ".join(
                [
                    name,
                    str(len(values)),
                    str(len(values) - len(nonempty)),
                    f"{_median([v / 1e3 for v in nonempty]):.1f}",
                    f"{max(values) / 1e3:.1f}",
                    count_text,
                    f"{_median([v / 1e3 for v in whole]):.2f}" if whole else "—",
                    f"{sum(whole) / 1e6:.1f}" if whole else "—",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def edits_table(edits: list[Edits]) -> str:
    """Latency from COMMIT to a fresh tile on the second instance."""
    header = [
        "freshness",
        "edits",
        "median ms",
        "max ms",
        "min ms",
        "polls (median)",
        "stale after 10 s",
    ]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for e in edits:
        lat = e.latencies_ms
        lines.append(
            "| "
            + " | ".join(
                [
                    e.mode,
                    str(len(lat) + e.failures),
                    f"{_median(lat):.1f}",
                    f"{max(lat):.1f}" if lat else "—",
                    f"{min(lat):.1f}" if lat else "—",
                    f"{_median([float(p) for p in e.polls]):.0f}",
                    str(e.failures),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def _tile_name(tile: Tile) -> str:
    return "/".join(map(str, tile))


def latency_table(latencies: dict[str, float]) -> str:
    """Median ms of single sequential requests."""
    lines = ["| Request (one keep-alive connection, sequential) | median ms |", "|---|---:|"]
    lines += [f"| {label} | {ms:.1f} |" for label, ms in latencies.items()]
    return "\n".join(lines)


def steps_table(steps: dict[Tile, dict[str, float]]) -> str:
    """Median ms of each database step of our tile request."""
    names = list(next(iter(steps.values())))
    lines = [
        "| tile | " + " | ".join(names) + " |",
        "|---|" + "|".join(["---:"] * len(names)) + "|",
    ]
    for tile, values in steps.items():
        lines.append(
            f"| {_tile_name(tile)} | " + " | ".join(f"{values[n]:.1f}" for n in names) + " |"
        )
    return "\n".join(lines)


def zoom_counts(tiles: list[Tile]) -> str:
    """'z5: 4, z6: 12, ...'."""
    counts = Counter(z for z, _, _ in tiles)
    return ", ".join(f"z{z}: {counts[z]}" for z in sorted(counts))


# ---------------------------------------------------------------------------------- main


def run(args: argparse.Namespace, log: Callable[[str], None] = print) -> str:
    """Set everything up, measure, tear it down; return the Markdown report."""
    started = time.perf_counter()
    wrk = ensure_wrk(log)
    nginx = ensure_nginx(log)
    tipg_python = ensure_tipg(log)
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    if float(load_before[0]) > 0.5:
        log(
            f"warning: load average {load_before[0]} before starting; other work may skew "
            "the figures"
        )
    workdir = Path(tempfile.mkdtemp(prefix="geo-service-bench-tiles-"))
    workdir.chmod(0o755)  # postgres (data) and nginx's worker (tiles) must reach it as root
    cluster = LocalCluster(workdir / "cluster", database="postgres")
    servers: dict[str, Server] = {}
    try:
        log(f"starting a throwaway cluster in {workdir}")
        cluster.start(
            extra_options="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        db_url, how = prepare_database(cluster, not args.no_cache, log)
        with psycopg.connect(db_url, autocommit=True) as conn:
            for statement in TIPG_COLUMNS_SQL:
                conn.execute(statement)
            tiles, extent = make_tile_list(conn)
            row = conn.execute(
                "SELECT name, ST_Intersects(geom, ST_Transform(ST_TileEnvelope(%s, %s, %s),"
                " 4326)) FROM admin_unit WHERE vintage = '2025' AND level = 'commune'"
                " AND code = %s",
                (*EDIT_TILE, EDIT_CODE),
            ).fetchone()
        if not row or not row[1]:
            raise SystemExit(f"commune {EDIT_CODE} is not in tile {EDIT_TILE}: {row}")
        edit_name = str(row[0])
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        TILE_LIST.write_text("".join(f"{z}/{x}/{y}\n" for z, x, y in tiles))
        log(f"{len(tiles)} tiles ({zoom_counts(tiles)}) over {extent}; written to {TILE_LIST}")
        header = describe(cluster, tipg_python, wrk)
        lua = workdir / "cycle.lua"
        lua.write_text(WRK_LUA)
        z5 = sorted(t for t in tiles if t[0] == 5)

        with redis_server(workdir) as redis_url:
            t0 = time.perf_counter()
            servers = start_all(db_url, tipg_python, workdir, redis_url)
            log(f"{len(servers)} servers started in {time.perf_counter() - t0:.0f} s")

            # one cold pass on one connection: seeds the SQLite cache
            first = servers[OURS_CACHED[0].key]
            seed_sqlite = one_pass(first.base, OUR_TILES, tiles, 2 if args.short else 1, keep=True)
            log(
                f"seeded SQLite ({'2 connections' if args.short else '1 connection, cold'}): "
                f"{seed_sqlite.seconds:.1f} s, statuses {dict(seed_sqlite.statuses)}"
            )
            if args.short:  # copy the rendered tiles instead of rendering them again
                t0 = time.perf_counter()
                copied = copy_sqlite_to_redis(workdir / "tiles.sqlite", redis_url)
                redis_how = (
                    f"copied from the SQLite cache ({copied} tiles, same keys and "
                    f"bytes; short mode) in {time.perf_counter() - t0:.1f} s"
                )
                checks: dict[str, Pass] = {OURS_CACHED[0].key: seed_sqlite}
                redis_check = [OURS_CACHED[2]]
            else:
                seed_redis = one_pass(servers[OURS_CACHED[2].key].base, OUR_TILES, tiles, 2)
                redis_how = (
                    f"seeded by one pass of `{OURS_CACHED[2].key}` on 2 connections "
                    f"({seed_redis.seconds:.1f} s)"
                )
                checks = {OURS_CACHED[0].key: seed_sqlite, OURS_CACHED[2].key: seed_redis}
                redis_check = []
            log(f"Redis {redis_how}")
            sample = sorted(t for t in tiles if t[0] <= 8) + tiles[:CHECK_SAMPLE]
            sample = list(dict.fromkeys(sample if not args.short else z5 + tiles[:50]))
            for config in (*redis_check, OURS_CACHED[1], OURS_CACHED[3], OURS_NONE):
                checks[config.key] = one_pass(servers[config.key].base, OUR_TILES, sample, 2)
                log(
                    f"check {config.key} ({len(sample)} tiles): "
                    f"{checks[config.key].seconds:.1f} s, "
                    f"statuses {dict(checks[config.key].statuses)}"
                )
            tipg = servers[TIPG]
            tipg_tiles = tiles if not args.short else z5 + tiles[:100]
            checks[TIPG] = one_pass(tipg.base, TIPG_TILES, tipg_tiles)
            log(
                f"tipg pass over {len(tipg_tiles)} tiles (1 connection, cold): "
                f"{checks[TIPG].seconds:.1f} s, statuses {dict(checks[TIPG].statuses)}"
            )

            # static copy for nginx, from ours (raw, as served without Accept-Encoding)
            root = workdir / "static"
            write_static(root, seed_sqlite.bodies)
            servers[NGINX] = start_nginx(
                nginx, workdir, root, f"/{tiles[0][0]}/{tiles[0][1]}/{tiles[0][2]}.pbf"
            )
            checks[NGINX] = one_pass(servers[NGINX].base, "", tiles, suffix=".pbf")
            log(f"nginx: {servers[NGINX].base}, check {dict(checks[NGINX].statuses)}")
            # ours's directory cache behind an nginx front, seeded by one pass through it
            servers[NGINX_FRONT] = start_nginx_front(
                nginx,
                workdir,
                ours_env(OURS_DIRECTORY, db_url, workdir, redis_url),
                servers[OURS_DIRECTORY.key].base,
            )
            checks[NGINX_FRONT] = one_pass(servers[NGINX_FRONT].base, OUR_TILES, tiles, 2)
            log(
                f"nginx front: seeded in {checks[NGINX_FRONT].seconds:.1f} s, statuses "
                f"{dict(checks[NGINX_FRONT].statuses)}"
            )

            # sizes of the z5 tiles
            tipg_z5 = one_pass(tipg.base, TIPG_TILES, z5, keep=True)
            sizes = {
                "ours": {t: seed_sqlite.sizes[t] for t in z5},
                TIPG: {t: tipg_z5.sizes[t] for t in z5},
            }
            features = {
                "ours": {t: feature_count(seed_sqlite.bodies[t]) for t in z5},
                TIPG: {t: feature_count(tipg_z5.bodies[t]) for t in z5},
            }
            all_sizes = {"ours": seed_sqlite.sizes}
            if not args.short:
                all_sizes[TIPG] = checks[TIPG].sizes

            # where the time goes: single requests on one connection, and the SQL steps
            big5 = max(z5, key=lambda t: seed_sqlite.sizes[t])
            small = EDIT_TILE
            cached_one, none_one = servers[OURS_CACHED[0].key], servers[OURS_NONE.key]
            probes = [
                ("ours: GET /health", cached_one, "/health", 20),
                (
                    "ours: GET /collections/commune-2025",
                    cached_one,
                    "/collections/commune-2025",
                    20,
                ),
                (
                    f"ours, SQLite cache, strict: tile {_tile_name(small)} (hit)",
                    cached_one,
                    tile_path(OUR_TILES, small),
                    20,
                ),
                (
                    f"ours, SQLite cache, notify: tile {_tile_name(small)} (hit)",
                    servers[OURS_CACHED[1].key],
                    tile_path(OUR_TILES, small),
                    20,
                ),
                (
                    f"ours, no cache: tile {_tile_name(small)}",
                    none_one,
                    tile_path(OUR_TILES, small),
                    20,
                ),
                (f"tipg: tile {_tile_name(small)}", tipg, tile_path(TIPG_TILES, small), 20),
                (
                    f"ours, no cache: tile {_tile_name(big5)}",
                    none_one,
                    tile_path(OUR_TILES, big5),
                    5,
                ),
                (f"tipg: tile {_tile_name(big5)}", tipg, tile_path(TIPG_TILES, big5), 5),
            ]
            latencies = {
                label: single_latency(server.base, path, n) for label, server, path, n in probes
            }
            steps = step_times(db_url, [small, big5], 5)
            for label, ms in latencies.items():
                log(f"{label}: {ms:.1f} ms")

            # wrk: URL lists, warm-up, interleaved measurements
            prefixes = {TIPG: TIPG_TILES, NGINX: ""}
            files: dict[str, Path] = {}
            for name in servers:
                suffix = ".pbf" if name == NGINX else ""
                prefix = prefixes.get(name, OUR_TILES)
                files[name] = workdir / f"paths-{re.sub(r'[^A-Za-z0-9.]+', '-', name)}.txt"
                files[name].write_text("".join(tile_path(prefix, t) + suffix + "\n" for t in tiles))
            uncached = [OURS_NONE.key, TIPG]
            cached = [c.key for c in OURS_CACHED] + [NGINX_FRONT, NGINX]
            labels = {
                c.key: c.label for c in (OURS_NONE, *OURS_CACHED, *OURS_SECOND, OURS_DIRECTORY)
            }
            labels[NGINX_FRONT] = NGINX_FRONT
            labels[TIPG] = f"tipg {TIPG_VERSION}"
            labels[NGINX] = NGINX
            warm = 1 if args.short else 2
            for name in uncached + cached:
                wrk_runs(wrk, lua, servers[name], files[name], args.connections, warm)
            runs: dict[str, list[WrkRun]] = {name: [] for name in uncached + cached}
            for i in range(args.repeat):
                for group in (uncached, cached):
                    for name in group if i % 2 == 0 else group[::-1]:
                        result = wrk_runs(
                            wrk, lua, servers[name], files[name], args.connections, args.duration
                        )
                        runs[name].append(result)
                        log(
                            f"run {i + 1}/{args.repeat} {name}: {result.rps:,.1f} req/s, "
                            f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.1f} ms, "
                            f"{result.mb_per_s:.1f} MB/s, errors {result.errors}"
                        )

            # edit → fresh tile, with two instances sharing Redis
            edits: list[Edits] = []
            iterations = 10 if args.short else 20
            pairs = [
                (servers[c.key], servers[second.key], c.freshness)
                for c, second in zip(OURS_CACHED[2:], OURS_SECOND, strict=True)
            ]
            pairs.append((servers[NGINX_FRONT], servers[NGINX_FRONT], "nginx front"))
            for first_server, polled, freshness in pairs:
                result_edits = measure_edits(
                    db_url, first_server, polled, freshness, iterations, log
                )
                edits.append(result_edits)
                log(
                    f"edit → fresh ({freshness}): median "
                    f"{_median(result_edits.latencies_ms):.1f} ms, max "
                    f"{max(result_edits.latencies_ms, default=float('nan')):.1f} ms, "
                    f"failures {result_edits.failures}"
                )
            for name, server in servers.items():
                if server.process.poll() is not None:
                    raise SystemExit(f"{name} died: {server.log.read_text()[-2000:]}")
        load_after = Path("/proc/loadavg").read_text().split()[:3]
        return report(
            args,
            header,
            how,
            tiles,
            labels,
            runs,
            uncached,
            cached,
            checks,
            seed_sqlite,
            z5,
            sizes,
            features,
            all_sizes,
            edits,
            edit_name,
            latencies,
            steps,
            redis_how,
            load_before,
            load_after,
            servers,
            time.perf_counter() - started,
        )
    finally:
        for server in servers.values():
            stop_server(server)
        cluster.destroy()
        shutil.rmtree(workdir, ignore_errors=True)


def report(
    args: argparse.Namespace,
    header: str,
    how: str,
    tiles: list[Tile],
    labels: dict[str, str],
    runs: dict[str, list[WrkRun]],
    uncached: list[str],
    cached: list[str],
    checks: dict[str, Pass],
    seed: Pass,
    z5: list[Tile],
    sizes: dict[str, dict[Tile, int]],
    features: dict[str, dict[Tile, int | None]],
    all_sizes: dict[str, dict[Tile, int]],
    edits: list[Edits],
    edit_name: str,
    latencies: dict[str, float],
    steps: dict[Tile, dict[str, float]],
    redis_how: str,
    load_before: list[str],
    load_after: list[str],
    servers: dict[str, Server],
    seconds: float,
) -> str:
    """The whole Markdown report."""
    ok = {name: p.ok for name, p in checks.items()}
    check_lines = "\n".join(
        f"- {labels.get(name, name)}: {sum(p.statuses.values())} tiles, statuses "
        f"{dict(sorted(p.statuses.items()))}, {p.seconds:.1f} s"
        for name, p in checks.items()
    )
    commands = "\n".join(
        f"- {labels[name]}: `{shown(s.command)}`"
        for name, s in servers.items()
        if name in labels and name != NGINX
    )
    mode = "Short mode. " if args.short else ""
    tipg_pass = checks[TIPG]
    cold = (
        f"ours (SQLite cache being seeded, so render + compress + store): "
        f"**{seed.seconds:.1f} s**; tipg: **{tipg_pass.seconds:.1f} s**"
        if not args.short
        else f"short mode, not measured: ours seeded SQLite on 2 connections in "
        f"{seed.seconds:.1f} s; tipg fetched only {sum(tipg_pass.statuses.values())} tiles "
        f"({tipg_pass.seconds:.1f} s)"
    )
    return f"""# Vector tiles: ours vs tipg {TIPG_VERSION} (uncached) and vs nginx (cached)

{header}

Setup: one throwaway PostGIS cluster, {how}. tipg serves `bench.communes` (code primary key,
name, geom with a GiST index: the 3,321 communes of 2025 copied from `admin_unit`, full
geometry in EPSG:4326), ours serves `commune-2025` (per-zoom-band coverage-simplified
geometry, stored in EPSG:3857); both tiles carry `code` and `name`. One uvicorn worker per
server (uvloop + httptools, access log off), nginx with one worker process:
{commands}
- nginx: `nginx -c nginx.conf -g 'daemon off;'` (`worker_processes 1`, `sendfile on`,
  `access_log off`, files `z/x/y.pbf` fetched once from ours)

Tiles: {len(tiles)} distinct tiles ({zoom_counts(tiles)}): every tile z5–z8 over the
communes' extent and a random sample (seed {SEED}) z9–z12 of tiles intersecting a commune,
cycled through in the order of `bench/results/tile_list.txt`. wrk: {args.connections}
keep-alive connections, {min(2, args.connections)} threads, {args.duration} s per run
(after a {1 if args.short else 2} s warm-up), servers interleaved, {args.repeat} repeat(s),
medians; no `Accept-Encoding`, so every server sends uncompressed MVT. {mode}Whole run
{seconds / 60:.1f} min. Load average before {" ".join(load_before)}, after
{" ".join(load_after)} (other sessions share the 2 CPUs).

## Uncached: ours (`GEO_SERVICE_TILE_CACHE=none`) vs tipg

{throughput_table("uncached", uncached, labels, runs, TIPG, 2.0, ok)}

## Cached: ours vs nginx serving the same tiles as static files

{throughput_table("cached", cached, labels, runs, NGINX, 0.5, ok)}

`strict` reads the change log's epoch from PostgreSQL on every request (one small query);
`notify` relies on LISTEN/NOTIFY only. The SQLite cache was seeded by one pass of
`{OURS_CACHED[0].key}` over the list; the Redis cache was {redis_how}. Each `notify`
instance served from the same cache as its `strict` sibling. The nginx front serves the
directory cache of `{OURS_DIRECTORY.key}` (`GEO_SERVICE_TILE_CACHE=directory`), seeded by
one pass through the front, with the configuration `geo-service tiles nginx-conf
--standalone` prints (one worker, the static nginx's http settings).

errors = wrk's socket errors, timeouts and HTTP ≥ 400 over all runs; every URL was also
fetched once per server before the runs (any non-2xx is flagged in the table):
{check_lines}

## One cold pass over the list on one connection

{cold}.

## Tile sizes (uncompressed MVT)

{size_table(z5, sizes, features, all_sizes)}

Features per z5 tile are listed in the order of the tiles {
        ", ".join(f"{z}/{x}/{y}" for z, x, y in z5)
    }.

## Where the time goes

Single requests, one after the other on one keep-alive connection (no other load from this
benchmark; medians of 20, or 5 for the z5 tile):

{latency_table(latencies)}

The database steps of our tile request, run by this script on one connection with the
service's own functions (`read_collection`, `build_item_query`, the strict-mode epoch read,
`tile_sql`), median ms of 5:

{steps_table(steps)}

## Edit → fresh tile

Two instances of ours sharing Redis (`GEO_SERVICE_TILE_CACHE=redis`, same freshness mode),
tile {"/".join(map(str, EDIT_TILE))} warmed on both; then each time commune {EDIT_CODE}
({edit_name}) is scaled by 0.9 (or back by 1/0.9) around its centroid with plain SQL
(`UPDATE admin_unit SET geom = ...`, committed), and the second instance is polled on a
keep-alive connection until the tile changes. Latency from sending COMMIT to the
first response with the new tile; 0.2 s pause between edits. `nginx front`: the same,
polled through the nginx front (its files are purged by the NOTIFY listener of ours).

{edits_table(edits)}

## Every wrk run

{detail_table(labels, runs)}
"""


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run, print the report and write it to the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--short",
        action="store_true",
        help=f"about a minute: {SHORT_DURATION} s per measurement, 1 repeat",
    )
    parser.add_argument(
        "--duration", type=int, default=None, help="seconds per wrk measurement (default 30)"
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="measurements per server (default 3)"
    )
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="load the demo afresh instead of restoring the cached dump",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="Markdown file to write")
    args = parser.parse_args(argv)
    args.duration = args.duration or (SHORT_DURATION if args.short else 30)
    args.repeat = args.repeat or (1 if args.short else 3)
    if args.duration < 1 or args.repeat < 1 or args.connections < 1:
        parser.error("--duration, --repeat and --connections must be at least 1")
    text = run(args)
    print()
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CPU of one tile request through the whole ASGI app, in process (no network, no server).

Usage: .venv/bin/python -m bench.tile_inprocess DATABASE_URL [--path TILE_PATH]
       [--cache none] [--requests 1000] [--profile]

Builds the app as `geo-service serve` does (`create_app`, lifespan started), then calls it
`--requests` times for one tile, and prints the CPU microseconds per request (process time,
so other work on the machine changes it little). With `--cache none` every request renders
the tile in PostgreSQL; the PostgreSQL side is not counted. `--profile` prints the
functions by cumulative CPU time (cProfile on process time) over 300 more requests.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


async def _one(app: Any, path: str) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"accept", b"*/*")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    if sent[0]["status"] != 200:
        raise SystemExit(f"{path}: HTTP {sent[0]['status']}")


async def _measure(args: argparse.Namespace) -> None:
    from geo_service.http.app import create_app

    app = create_app()
    async with app.router.lifespan_context(app):
        for _ in range(50):  # warm: prepared statements, the catalogue
            await _one(app, args.path)
        started = time.process_time()
        for _ in range(args.requests):
            await _one(app, args.path)
        per_request = (time.process_time() - started) / args.requests * 1e6
        print(f"{args.path}: {per_request:.0f} µs of CPU a request ({args.requests} requests)")
        if args.profile:
            profile = cProfile.Profile(time.process_time)
            profile.enable()
            for _ in range(300):
                await _one(app, args.path)
            profile.disable()
            pstats.Stats(profile).sort_stats("cumulative").print_stats(40)


def main() -> None:
    """Parse the options, set the service's environment, measure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("url")
    parser.add_argument(
        "--path", default="/collections/commune-2025/tiles/WebMercatorQuad/12/3248/1928"
    )
    parser.add_argument("--cache", default="none")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    os.environ.update(
        DATABASE_URL=args.url,
        GEO_SERVICE_HOME=tempfile.mkdtemp(prefix="geo-service-inprocess-"),
        GEO_SERVICE_TILE_CACHE=args.cache,
        GEO_SERVICE_PRERENDER_MAX_ZOOM="0",
        GEO_SERVICE_ACCESS_LOG="false",
    )
    asyncio.run(_measure(args))


if __name__ == "__main__":
    main()

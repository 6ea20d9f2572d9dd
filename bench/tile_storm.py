"""Two running services side by side (issue #22): uncached tiles and a storm on dense EA tiles.

`uncached`: the same distinct z10 commune tiles from each service in turn (start both with
GEO_SERVICE_TILE_CACHE=none), 8 client threads; tiles per second and the server process's
CPU per tile (from /proc, so a loaded machine shifts both alike).

`storm`: one EA edit by plain SQL (purging the dense tiles over it), then N clients at
once asking for five low-zoom EA tiles of round 2031 over it, while /health, a cached unit
tile, an items page and an EA page are asked for in a loop; statuses and slowest answers.
Needs a database with many EAs in round 2031 (e.g. 100,000 added by plain SQL).

    python -m bench.tile_storm uncached --ports 18640,18641 --rounds 4
    python -m bench.tile_storm storm --ports 18600 --clients 20 --database-url URL
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

LOW_ZOOM_EA_TILES = [(0, 0, 0), (1, 1, 0), (2, 3, 1), (3, 6, 3), (4, 12, 7)]


def _tile(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 2**z
    y = (1 - math.log(math.tan(math.radians(lat)) + 1 / math.cos(math.radians(lat))) / math.pi) / 2
    return z, int((lon + 180) / 360 * n), int(y * n)


def _get(url: str, timeout: float = 300) -> tuple[int, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            answer.read()
            status = answer.status
    except urllib.error.HTTPError as refused:
        status = refused.code
    except OSError:
        status = -1
    return status, time.monotonic() - started


def _cpu_seconds(port: int) -> float:
    """utime + stime of the process listening on the port."""
    found = subprocess.run(
        ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    pid = found.split("pid=")[1].split(",")[0]
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _one_round(port: int, tiles: list[tuple[int, int, int]]) -> str:
    """Every tile once from the service on `port`, 8 clients at a time."""
    queue, lock, statuses = list(tiles), threading.Lock(), Counter[int]()

    def client() -> None:
        while True:
            with lock:
                if not queue:
                    return
                z, x, y = queue.pop()
            path = f"/collections/commune-2025/tiles/WebMercatorQuad/{z}/{x}/{y}"
            status, _ = _get(f"http://127.0.0.1:{port}{path}", 60)
            with lock:
                statuses[status] += 1

    cpu, started = _cpu_seconds(port), time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.monotonic() - started, _cpu_seconds(port) - cpu
    return (
        f"port {port}: {len(tiles) / wall:.1f} tiles/s, "
        f"server CPU {cpu / len(tiles) * 1000:.2f} ms/tile, {dict(statuses)}"
    )


def uncached(ports: list[int], rounds: int) -> None:
    """The same uncached tiles from each service, alternating which goes first."""
    places = {_tile(103 + i * 0.06, 10 + j * 0.1, 10) for i in range(100) for j in range(120)}
    tiles = sorted(places)[:600]
    print(f"{len(tiles)} tiles, load {os.getloadavg()[0]:.1f}")
    for n in range(rounds):
        for port in ports if n % 2 else list(reversed(ports)):
            print(f"round {n} {_one_round(port, tiles)}")
    print(f"load {os.getloadavg()[0]:.1f}")


def storm(port: int, clients: int, database_url: str) -> None:
    """Dense EA tiles purged by one edit, then asked for by many clients at once."""
    import psycopg

    base = f"http://127.0.0.1:{port}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE enumeration_area SET households = households + 1 WHERE id ="
            " (SELECT min(id) FROM enumeration_area WHERE census_round = '2031')"
        )
    time.sleep(1.5)  # (the change reaches the service)
    probes = {
        "health": "/health",
        "cached tile": "/collections/commune-2025/tiles/WebMercatorQuad/5/25/14",
        "items": "/collections/commune-2025/items?limit=10",
        "EA page": "/collections/enumeration-areas/items?limit=5",
    }
    answers: dict[str, list[tuple[int, float]]] = {name: [] for name in probes}
    tiles: list[tuple[int, float]] = []
    done = threading.Event()

    def attacker(i: int) -> None:
        z, x, y = LOW_ZOOM_EA_TILES[i % len(LOW_ZOOM_EA_TILES)]
        tiles.append(
            _get(
                f"{base}/collections/enumeration-areas/tiles/WebMercatorQuad/{z}/{x}/{y}?round=2031"
            )
        )

    def prober() -> None:
        while not done.is_set():
            for name, path in probes.items():
                answers[name].append(_get(base + path, 60))
            time.sleep(0.5)

    print(f"load {os.getloadavg()[0]:.1f}")
    watching = threading.Thread(target=prober)
    watching.start()
    started = time.monotonic()
    threads = [threading.Thread(target=attacker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watching.join()
    print(
        f"{clients} clients: {time.monotonic() - started:.1f} s, tiles "
        f"{dict(Counter(s for s, _ in tiles))}, slowest {max(t for _, t in tiles):.1f} s"
    )
    for name, got in answers.items():
        print(
            f"  {name}: {dict(Counter(s for s, _ in got))}, slowest {max(t for _, t in got):.2f} s"
        )
    print(f"load {os.getloadavg()[0]:.1f}")


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=["uncached", "storm"])
    parser.add_argument("--ports", default="18640,18641")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    args = parser.parse_args()
    ports = [int(p) for p in args.ports.split(",")]
    if args.scenario == "uncached":
        uncached(ports, args.rounds)
    else:
        storm(ports[0], args.clients, args.database_url)


if __name__ == "__main__":
    main()

"""Two service instances behind a real nginx, reading from a real hot standby and sharing one
tile cache (the directory cache nginx serves, or Redis): a plain-SQL change on the primary
reaches every answer through the front, whichever instance or cache gives it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx2
import mapbox_vector_tile
import pytest

from geo_service.localdb import free_port
from geo_service.tiles.nginx import standalone_conf
from tests.conftest import REPO, live_process
from tests.helpers import scrape
from tests.replication import Replication, hanoi_name
from tests.test_nginx_front import NGINX, fetch, served_by_nginx
from tests.test_read_your_writes import rename
from tests.test_replica_tiles import LAYER, TILE

ITEM = f"/collections/{LAYER}/items/01"
# generous: the change reaches the instances by NOTIFY and the standby by streaming, both
# within a second on a quiet machine; the bound only keeps a broken set-up from hanging
DEADLINE_S = 60.0
COMPOSE_FRONT = REPO / "deploy" / "scale" / "nginx.conf"


class ScaledFront:
    """Two instances over the primary (reads on the standby) and nginx in front of them."""

    def __init__(self, instances: list[str], nginx: str) -> None:
        self.instances, self.nginx = instances, nginx

    def tile_names(self, base: str | None = None) -> tuple[set[str], bool]:
        """The names the tile over Hà Nội carries (through nginx unless `base` is given),
        and whether nginx served it from a file."""
        response = fetch(base or self.nginx, TILE)
        assert response[0] == 200, response
        layer = mapbox_vector_tile.decode(response[2])[LAYER]
        return {f["properties"]["name"] for f in layer["features"]}, served_by_nginx(response)

    def item_name(self) -> str:
        """Hà Nội's name as the items route answers it through nginx."""
        status, _, body = fetch(self.nginx, ITEM, Accept="application/geo+json")
        assert status == 200, body
        return str(httpx2.Response(200, content=body).json()["properties"]["name"])

    def item_answers(self) -> list[float]:
        """How many single items each instance has answered (its own /metrics)."""
        counts = []
        for url in self.instances:
            with httpx2.Client(base_url=url) as client:
                samples = scrape(client)
            counts.append(
                sum(
                    count
                    for (name, labels), count in samples.items()
                    if name == "geo_service_http_requests_total"
                    and dict(labels).get("route", "").endswith("/items/{featureId}")
                )
            )
        return counts

    def tile_hits(self) -> float:
        """The instances' tile cache hits, together."""
        total = 0.0
        for url in self.instances:
            with httpx2.Client(base_url=url) as client:
                samples = scrape(client)
            total += samples.get(("geo_service_tile_cache_hits_total", ()), 0.0)
        return total


def _nginx_conf(cache: str, listen: str, instances: list[str], env: dict[str, str]) -> str:
    """The front's nginx.conf: for the directory cache, what `geo-service tiles nginx-conf`
    prints for both instances; for Redis, compose's scale front (a load balancer only)."""
    if cache == "directory":
        upstreams = [arg for url in instances for arg in ("--upstream", url)]
        command = [sys.executable, "-m", "geo_service", "tiles", "nginx-conf", "--standalone"]
        command += ["--workers", "1", "--listen", listen, *upstreams]
        return subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    server = COMPOSE_FRONT.read_text()
    server = re.sub(r"listen 80;", f"listen {listen};", server)
    for name, url in zip(("scale-a", "scale-b"), instances, strict=True):
        server = server.replace(f"{name}:8000", url.removeprefix("http://"))
    return standalone_conf(server, workers="1")


@contextmanager
def running_nginx(conf: str, workdir: Path) -> Iterator[str]:
    """nginx with this configuration; its URL once it answers /health."""
    prefix = workdir / "nginx"
    prefix.mkdir()
    (prefix / "nginx.conf").write_text(conf)
    listen = re.search(r"listen ([0-9.]+:[0-9]+);", conf)
    assert listen is not None
    url = f"http://{listen.group(1)}"
    with (prefix / "stderr.log").open("wb") as log:
        process = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
            stderr=log,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, (prefix / "stderr.log").read_text()
                try:
                    if fetch(url, "/health")[0] == 200:
                        break
                except OSError:
                    assert time.monotonic() < deadline, "nginx did not answer"
                time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=15)


@contextmanager
def scaled_front(replication: Replication, cache: str, redis_url: str | None) -> Iterator[Any]:
    """Two instances sharing `cache`, reads on the standby, and nginx in front."""
    workdir = Path(tempfile.mkdtemp(prefix="geo-service-scale-"))
    workdir.chmod(0o755)  # nginx's worker (nobody, when the tests run as root) reads tiles
    env = {
        "GEO_SERVICE_REPLICA_URLS": replication.standby_url,
        "GEO_SERVICE_REPLICA_CHECK_INTERVAL_S": "0.2",
        "GEO_SERVICE_PRERENDER_MAX_ZOOM": "0",  # (tiles are rendered by the requests here)
        "GEO_SERVICE_TILE_CACHE": cache,
        "GEO_SERVICE_TILE_CACHE_PATH": str(workdir / "tiles"),
        "GEO_SERVICE_REDIS_URL": redis_url or "",
    }
    try:
        with ExitStack() as stack:
            instances = [
                stack.enter_context(live_process(replication.primary_url, **env))[0]
                for _ in range(2)
            ]
            listen = f"127.0.0.1:{free_port()}"
            conf = _nginx_conf(cache, listen, instances, {**os.environ, **env})
            nginx = stack.enter_context(running_nginx(conf, workdir))
            front = ScaledFront(instances, nginx)
            for url in instances:  # (both read from the standby before the test begins)
                _wait(partial(_replica_streaming, url), "the standby in rotation")
            yield front
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _replica_streaming(url: str) -> bool:
    with httpx2.Client(base_url=url) as client:
        replicas = client.get("/health").json().get("replicas", [])
    return [r["state"] for r in replicas] == ["streaming"]


def _wait(done: Callable[[], bool], what: str) -> None:
    """Wait until `done()` (fail after DEADLINE_S)."""
    deadline = time.monotonic() + DEADLINE_S
    while not done():
        assert time.monotonic() < deadline, f"not within {DEADLINE_S:g} s: {what}"
        time.sleep(0.1)


@pytest.fixture
def restored_name(replication: Replication) -> Iterator[str]:
    """Hà Nội's name before the test; given back (and replayed) afterwards."""
    name = hanoi_name(replication.primary_url)
    yield name
    rename(replication, name)
    replication.wait_streaming()


@pytest.mark.parametrize("cache", ["directory", "redis"])
def test_two_instances_behind_nginx_show_a_plain_sql_change(
    replication: Replication, restored_name: str, cache: str, request: pytest.FixtureRequest
) -> None:
    redis_url = request.getfixturevalue("redis_url") if cache == "redis" else None
    with scaled_front(replication, cache, redis_url) as front:
        # before: the tile is cached (a file nginx serves, or a Redis hit of an instance)
        hits = front.tile_hits()

        def cached() -> bool:
            names, from_file = front.tile_names()
            assert restored_name in names
            return from_file if cache == "directory" else front.tile_hits() > hits

        _wait(cached, "the tile served from the shared cache")
        # ... and both instances have read Hà Nội (and keep its collection in memory)
        answered = front.item_answers()
        assert {front.item_name() for _ in range(4)} == {restored_name}
        assert all(n > a for n, a in zip(front.item_answers(), answered, strict=True))

        new_name = f"Hà Nội {uuid.uuid4().hex[:6]}"
        rename(replication, new_name)  # plain SQL on the primary, no service involved

        def fresh() -> bool:
            return new_name in front.tile_names()[0] and front.item_name() == new_name

        _wait(fresh, "the new name through nginx")
        # from then on every answer has it: through nginx, from either instance, and
        # from each instance's view of the shared cache
        for _ in range(6):
            names, _ = front.tile_names()
            assert new_name in names and restored_name not in names
        answered = front.item_answers()
        # (in a row: nginx takes turns over every request, tiles included)
        assert {front.item_name() for _ in range(6)} == {new_name}
        assert all(n > a for n, a in zip(front.item_answers(), answered, strict=True))
        for url in front.instances:
            names, _ = front.tile_names(url)
            assert new_name in names and restored_name not in names
        if cache == "directory":
            assert front.tile_names()[1]  # (cached again: a file nginx serves)

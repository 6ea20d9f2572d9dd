"""The plain geometry tile's short route: the same answers as the tiles router, without its
route matching and dependency resolution; everything else still goes through the router."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from geo_service.http import deps
from geo_service.http.app import create_app
from geo_service.settings import ServiceSettings
from geo_service.tiles.service import TileService
from tilecache.base import DEFAULT_VARIANT, TileKey

TILES = "/collections/commune-2025/tiles/WebMercatorQuad"
HANOI_Z10 = (10, 813, 450)
# headers that differ between any two answers
_PER_REQUEST = {"x-request-id", "date"}


@pytest.fixture
def counted(demo_ro: str, tmp_path: Path) -> Iterator[tuple[TestClient, list[str]]]:
    """A client with the SQLite cache and a record of each resolution of the Tiles
    dependency (the real service; only the tiles router resolves it)."""
    settings = ServiceSettings(home=tmp_path / "home", tile_cache="sqlite", prerender_max_zoom=0)
    app = create_app(settings, db_url=demo_ro)
    resolved: list[str] = []

    async def tiles_counted(request: Request) -> TileService:
        resolved.append(request.url.path)
        return await deps._tiles(await deps.get_services(request))

    app.dependency_overrides[deps._tiles] = tiles_counted
    with TestClient(app) as client:
        yield client, resolved


def _headers(response: object) -> dict[str, str]:
    headers = response.headers  # type: ignore[attr-defined]
    return {k: v for k, v in headers.items() if k.lower() not in _PER_REQUEST}


def test_a_plain_tile_skips_the_router_and_answers_as_the_router_does(
    counted: tuple[TestClient, list[str]],
) -> None:
    client, resolved = counted
    tiles = client.app.state.services.tiles  # type: ignore[attr-defined]
    z, x, y = HANOI_Z10
    url = f"{TILES}/{z}/{x}/{y}"
    first = client.get(url)  # a miss: rendered, answered, then kept in the cache
    assert first.status_code == 200 and first.content
    assert resolved == []  # not through the router's dependencies
    assert tiles.caches[0].get(TileKey("commune-2025", DEFAULT_VARIANT, z, x, y)) is not None
    hits = tiles.stats.hits
    # `f=json` is accepted on every OGC route: the same tile through the tiles router
    for headers in ({}, {"Accept-Encoding": "gzip"}, {"Accept-Encoding": "br"}):
        short = client.get(url, headers=headers)
        routed = client.get(url, params={"f": "json"}, headers=headers)
        assert short.status_code == routed.status_code == 200
        assert short.content == routed.content == first.content
        assert _headers(short) == _headers(routed)
        etag = short.headers["ETag"]
        not_modified = client.get(url, headers={**headers, "If-None-Match": etag})
        assert not_modified.status_code == 304
        routed_304 = client.get(
            url, params={"f": "json"}, headers={**headers, "If-None-Match": etag}
        )
        assert _headers(not_modified) == _headers(routed_304)
        head, routed_head = client.head(url, headers=headers), client.head(f"{url}?f=json")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["ETag"] == etag and routed_head.status_code == 200
    assert resolved == [url] * 9  # only the `f=json` requests went through the router
    assert tiles.stats.hits == hits + 18  # every one after the first from the cache


@pytest.mark.parametrize(
    ("path", "status", "parameter"),
    [
        (f"{TILES}/10/813/450?colour=red", 400, "colour"),  # unknown parameter
        (f"{TILES}/23/0/0", 400, "z"),  # beyond the deepest zoom
        (f"{TILES}/3/8/0", 400, "x"),  # outside the grid
        ("/collections/commune-2025/tiles/WorldCRS84Quad/3/1/1", 404, "tileMatrixSetId"),
        ("/collections/no-such-thing/tiles/WebMercatorQuad/3/1/1", 404, None),
    ],
)
def test_what_the_short_route_leaves_is_answered_by_the_router(
    client: TestClient, path: str, status: int, parameter: str | None
) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/")
    if parameter is not None:
        assert parameter in response.text


def test_other_methods_on_a_tile_are_refused_as_before(client: TestClient) -> None:
    response = client.post(f"{TILES}/10/813/450")
    assert response.status_code == 405

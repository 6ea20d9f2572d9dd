"""A fresh demo serves its first map view from the cache (issue #25): `geo-service demo`
renders the tiles of the map's first view into the tile cache before the service listens
(so before `/health` can answer), the sea between the islands too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from geo_core import grid
from geo_service.http.app import create_app
from geo_service.settings import ServiceSettings
from geo_service.tiles.prerender import FIRST_VIEW_MAX_ZOOM

# what /map frames first (the 2025 communes; province outlines over them), from a phone to
# a 4K screen: z4–z7 over the mainland and the near islands
FIRST_VIEW = (102.1, 8.4, 109.5, 23.4)
LAYERS = ("commune-2025", "province-2025")


def test_a_fresh_demo_serves_its_first_view_from_the_cache(demo_db: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = subprocess.run(
        [sys.executable, "-m", "geo_service", "demo", "--no-serve"],
        env={
            **os.environ,
            "DATABASE_URL": demo_db,
            "GEO_SERVICE_HOME": str(home),
            "GEO_SERVICE_TILE_CACHE": "sqlite",
            # (the tests switch the pre-render off; the demo runs with the default, z12)
            "GEO_SERVICE_PRERENDER_MAX_ZOOM": "12",
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("first map view:"))
    assert int(line.split()[3]) > 100, line
    assert f"tiles z0–z{FIRST_VIEW_MAX_ZOOM} rendered into the cache" in line
    # the service as it starts next; its own background job off, so only the demo filled
    # the cache
    settings = ServiceSettings(home=home, tile_cache="sqlite", prerender_max_zoom=0)
    with TestClient(create_app(settings, db_url=demo_db)) as client:
        assert client.get("/health").status_code == 200
        stats = client.app.state.services.tiles.stats  # type: ignore[attr-defined]
        asked = 0
        for layer in LAYERS:
            for z in range(4, FIRST_VIEW_MAX_ZOOM + 1):
                for x, y in grid.tiles_in(FIRST_VIEW, z):
                    path = f"/collections/{layer}/tiles/WebMercatorQuad/{z}/{x}/{y}"
                    assert client.get(path).status_code == 200, path
                    asked += 1
        assert asked > 50
        assert (stats.hits, stats.misses) == (asked, 0)

"""The base maps and overlays of the service: the operator's files from the settings, the
built-in WorldPop overlay (the population raster) and the national roads and railways.
Each file is opened once at start-up; one that is missing or unreadable is named in the
log and listed as unavailable, and the map works without it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geo_core.errors import NotFound
from geo_service.basemaps.sources import Tile, TileSource, open_source
from geo_service.settings import BaseMapSetting, ServiceSettings

logger = logging.getLogger(__name__)

WORLDPOP_TITLE = {
    "vi": "Nơi dân cư sinh sống (WorldPop 2020)",
    "en": "Where people live (WorldPop 2020)",
}
WORLDPOP_ATTRIBUTION = "WorldPop 2020 (CC BY 4.0)"
ROADS_TITLE = {"vi": "Đường bộ và đường sắt quốc gia", "en": "National roads and railways"}
ROADS_ATTRIBUTION = "CTU-SematX LegoCity, opendata/giaothong (CC BY-SA 4.0)"


@dataclass
class BaseMap:
    """One layer of the switcher: tiles from a file, a GeoJSON overlay, or a remote XYZ URL."""

    id: str
    title: dict[str, str]
    kind: str  # "tiles", "geojson" or "xyz"
    overlay: bool
    attribution: str = ""
    source: TileSource | None = None
    path: Path | None = None
    url: str | None = None
    problem: str | None = None  # why it is unavailable
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def available(self) -> bool:
        """Whether the layer can be drawn."""
        return self.problem is None

    def describe(self) -> dict[str, Any]:
        """The layer as the switcher and `/basemaps` list it."""
        info = self.source.info if self.source is not None else None
        return {
            "id": self.id,
            "title": self.title,
            "kind": self.kind,
            "overlay": self.overlay,
            "attribution": self.attribution or (info.attribution if info else ""),
            "available": self.available,
            "problem": self.problem,
            "format": info.format if info else ("geojson" if self.kind == "geojson" else None),
            "minZoom": info.min_zoom if info else None,
            "maxZoom": info.max_zoom if info else None,
            "bounds": list(info.bounds) if info and info.bounds else None,
            "layers": info.layers if info else [],
            "url": self.url,
        }


def _problem(exc: Exception) -> str:
    if isinstance(exc, FileNotFoundError):
        return "missing"
    return "unreadable"


def _from_file(entry: BaseMapSetting) -> BaseMap:
    title = {"vi": entry.title_vi or entry.title or entry.id, "en": entry.title or entry.id}
    layer = BaseMap(entry.id, title, "tiles", entry.overlay, entry.attribution, path=entry.path)
    try:
        layer.source = open_source(entry.path, entry.colormap, entry.scale)
    except (OSError, ValueError) as exc:
        layer.problem = _problem(exc)
        logger.error("base map %r (%s) is not available: %s", entry.id, entry.path, exc)
    return layer


class BaseMaps:
    """Every configured layer, by id, in the switcher's order."""

    def __init__(self, settings: ServiceSettings):
        self.layers: dict[str, BaseMap] = {}
        if settings.basemap_url:
            self._add(
                BaseMap(
                    "xyz",
                    {"vi": "Bản đồ nền", "en": "Base map"},
                    "xyz",
                    False,
                    settings.basemap_attribution,
                    url=settings.basemap_url,
                )
            )
        for entry in settings.basemaps:
            self._add(_from_file(entry))
        if settings.roads_geojson is not None:
            roads = BaseMap(
                "roads",
                ROADS_TITLE,
                "geojson",
                True,
                ROADS_ATTRIBUTION,
                path=settings.roads_geojson,
            )
            if not settings.roads_geojson.is_file():
                roads.problem = "missing"
                logger.error("the roads layer %s is missing", settings.roads_geojson)
            self._add(roads)
        if settings.population_raster.is_file() and "worldpop" not in self.layers:
            self._add(
                _from_file(
                    BaseMapSetting(
                        id="worldpop",
                        path=settings.population_raster,
                        attribution=WORLDPOP_ATTRIBUTION,
                        overlay=True,
                    )
                )
            )
            self.layers["worldpop"].title = WORLDPOP_TITLE

    def _add(self, layer: BaseMap) -> None:
        if layer.id in self.layers:
            logger.error("base map id %r is configured twice; the second is ignored", layer.id)
            return
        self.layers[layer.id] = layer

    def listing(self) -> list[dict[str, Any]]:
        """Every layer, available or not (with why not)."""
        return [layer.describe() for layer in self.layers.values()]

    def get(self, layer_id: str) -> BaseMap:
        """The layer; NotFound names the id."""
        layer = self.layers.get(layer_id)
        if layer is None:
            raise NotFound(
                f"unknown basemap {layer_id!r}; configured: {', '.join(self.layers) or 'none'}",
                parameter="basemapId",
            )
        return layer

    def tile(self, layer_id: str, z: int, x: int, y: int) -> Tile | None:
        """A tile of a file-backed layer, None where it has none."""
        layer = self.get(layer_id)
        if layer.source is None:
            raise NotFound(
                f"basemap {layer_id!r} has no tiles ({layer.problem or layer.kind})",
                parameter="basemapId",
            )
        return layer.source.tile(z, x, y)

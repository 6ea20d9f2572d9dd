"""Statistical mapping service: boundaries, indicators, GeoJSON and vector tiles."""

__version__ = "0.1.0"

"""Base maps and overlays served by the service itself: MBTiles, PMTiles, GeoTIFF/COG."""

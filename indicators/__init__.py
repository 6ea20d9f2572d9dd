"""Indicators: the catalogue, loading values (tables, raster zonal statistics, carry-over to
new boundaries) and reading them back through disclosure control."""

"""Serving units as OGC API features: collections, item queries, downloads, area statistics."""

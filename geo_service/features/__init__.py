"""OGC API - Features: collections, items, exports and area statistics."""

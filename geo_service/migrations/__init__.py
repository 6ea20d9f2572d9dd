"""Ordered SQL migrations, applied by `geo_service.migrate`."""

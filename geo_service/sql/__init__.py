"""Longer SQL queries, loaded with `geo_service.sql.load`."""

from functools import cache
from importlib import resources


@cache
def load(name: str) -> str:
    """The text of `geo_service/sql/{name}.sql`."""
    return resources.files(__name__).joinpath(f"{name}.sql").read_text(encoding="utf-8")

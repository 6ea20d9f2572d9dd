"""Boundary vintages: which set of units was in force when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import psycopg

from boundaries import sql
from geo_core.errors import LoaderError


@dataclass(frozen=True)
class Vintage:
    """A boundary vintage; `valid_to` is exclusive (None = still in force)."""

    id: str
    valid_from: date
    valid_to: date | None = None
    description: str = ""
    source: str = ""
    licence: str = ""


def add_vintage(conn: psycopg.Connection, vintage: Vintage, update: bool = False) -> bool:
    """Create (or with `update`, overwrite) a vintage; return True when something changed."""
    if vintage.valid_to is not None and vintage.valid_to <= vintage.valid_from:
        raise LoaderError("--valid-to must be after --valid-from", parameter="--valid-to")
    return sql.add_vintage(
        conn,
        (
            vintage.id,
            vintage.valid_from,
            vintage.valid_to,
            vintage.description,
            vintage.source,
            vintage.licence,
        ),
        update,
    )


def list_vintages(conn: psycopg.Connection) -> list[Vintage]:
    """All vintages, oldest first."""
    return [Vintage(*row) for row in sql.vintage_rows(conn)]

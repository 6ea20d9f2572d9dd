"""Boundary vintages: which set of units was in force when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import psycopg

from geo_service.errors import LoaderError


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
    conflict = (
        "DO UPDATE SET valid_from = EXCLUDED.valid_from, valid_to = EXCLUDED.valid_to,"
        " description = EXCLUDED.description, source = EXCLUDED.source,"
        " licence = EXCLUDED.licence"
        if update else "DO NOTHING"
    )
    cur = conn.execute(
        "INSERT INTO vintage (id, valid_from, valid_to, description, source, licence)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) " + conflict,
        (vintage.id, vintage.valid_from, vintage.valid_to, vintage.description, vintage.source,
         vintage.licence),
    )
    return cur.rowcount > 0


def list_vintages(conn: psycopg.Connection) -> list[Vintage]:
    """All vintages, oldest first."""
    rows = conn.execute(
        "SELECT id, valid_from, valid_to, description, source, licence FROM vintage"
        " ORDER BY valid_from, id"
    ).fetchall()
    return [Vintage(*row) for row in rows]

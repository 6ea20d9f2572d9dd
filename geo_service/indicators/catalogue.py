"""The indicator catalogue: what each indicator is and how it may be published."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import class_row

from geo_service.errors import LoaderError

KINDS = ("count", "rate", "ratio", "index", "density", "share")
# Kinds that are numerator / denominator and so must be recomputed, never averaged.
QUOTIENT_KINDS = ("rate", "ratio", "density", "share")


@dataclass
class Indicator:
    """One catalogue entry (mirrors the `indicator` table)."""

    code: str
    name_vi: str
    name_en: str
    kind: str
    unit: str = ""
    description: str = ""
    source: str = ""
    licence: str = ""
    decimals: int = 0
    numerator: str | None = None
    denominator: str | None = None
    multiplier: float = 1.0
    suppress_below: float | None = None
    disclosure_basis: str | None = None


_COLUMNS = [f.name for f in fields(Indicator)]


def save_indicator(conn: psycopg.Connection, indicator: Indicator) -> None:
    """Insert or update one catalogue entry."""
    if indicator.kind not in KINDS:
        raise LoaderError(f"indicator {indicator.code}: kind {indicator.kind!r} is not one of "
                          f"{', '.join(KINDS)}", parameter="kind")
    placeholders = ", ".join(["%s"] * len(_COLUMNS))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS if c != "code")
    try:
        conn.execute(
            f"INSERT INTO indicator ({', '.join(_COLUMNS)}) VALUES ({placeholders})"
            f" ON CONFLICT (code) DO UPDATE SET {updates}",
            list(asdict(indicator).values()),
        )
    except psycopg.errors.CheckViolation as exc:
        raise LoaderError(f"indicator {indicator.code!r}: {exc.diag.message_primary}") from exc
    except psycopg.errors.ForeignKeyViolation as exc:
        raise LoaderError(f"indicator {indicator.code!r} refers to an unknown indicator "
                          f"({exc.diag.message_detail})") from exc


def _optional(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


def read_catalogue(path: Path) -> list[Indicator]:
    """Read a catalogue CSV whose columns are the Indicator fields."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"code", "name_vi", "name_en", "kind"} - set(reader.fieldnames or [])
        if missing:
            raise LoaderError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        entries = []
        for line, row in enumerate(reader, start=2):
            try:
                entries.append(_catalogue_row(row))
            except ValueError as exc:
                raise LoaderError(f"{path}: line {line}: {exc}") from exc
    return entries


def _catalogue_row(row: dict[str, Any]) -> Indicator:
    text = {k: (row.get(k) or "").strip() for k in _COLUMNS}
    return Indicator(
        code=text["code"], name_vi=text["name_vi"], name_en=text["name_en"], kind=text["kind"],
        unit=text["unit"], description=text["description"], source=text["source"],
        licence=text["licence"], decimals=int(text["decimals"] or 0),
        numerator=_optional(text["numerator"]), denominator=_optional(text["denominator"]),
        multiplier=float(text["multiplier"] or 1),
        suppress_below=float(text["suppress_below"]) if text["suppress_below"] else None,
        disclosure_basis=_optional(text["disclosure_basis"]),
    )


def load_catalogue(conn: psycopg.Connection, path: Path) -> int:
    """Save every entry of a catalogue CSV in one transaction; return how many."""
    entries = read_catalogue(path)
    # referenced indicators must exist first: save plain ones, then those with references
    entries.sort(key=lambda e: bool(e.numerator or e.denominator or e.disclosure_basis))
    with conn.transaction():
        for entry in entries:
            save_indicator(conn, entry)
    return len(entries)


def get_indicator(conn: psycopg.Connection, code: str) -> Indicator | None:
    """One catalogue entry, or None."""
    with conn.cursor(row_factory=class_row(Indicator)) as cur:
        cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM indicator WHERE code = %s", (code,))
        return cur.fetchone()

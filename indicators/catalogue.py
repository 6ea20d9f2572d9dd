"""The indicator catalogue: what each indicator is and how it may be published."""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import psycopg

from geo_core.errors import LoaderError
from indicators import sql

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
    # the unit, definition, source and licence in Vietnamese, for the pages
    unit_vi: str = ""
    description_vi: str = ""
    source_vi: str = ""
    licence_vi: str = ""


_COLUMNS = [f.name for f in fields(Indicator)]


_REFERENCES = ("numerator", "denominator", "disclosure_basis")


def save_indicator(
    conn: psycopg.Connection, indicator: Indicator, given: frozenset[str] | None = None
) -> None:
    """Insert or update one catalogue entry; an existing one keeps the fields not `given`
    (a catalogue file without a suppress_below column does not lift the rules)."""
    if indicator.kind not in KINDS:
        raise LoaderError(
            f"indicator {indicator.code}: kind {indicator.kind!r} is not one of {', '.join(KINDS)}",
            parameter="kind",
        )
    _refuse_kind_change(conn, indicator)
    updated = [c for c in _COLUMNS if c != "code" and (given is None or c in given)]
    try:
        sql.save_indicator(conn, asdict(indicator), updated)
    except psycopg.errors.CheckViolation as exc:
        raise LoaderError(f"indicator {indicator.code!r}: {exc.diag.message_primary}") from exc
    except psycopg.errors.ForeignKeyViolation as exc:
        raise LoaderError(
            f"indicator {indicator.code!r} refers to an unknown indicator "
            f"({exc.diag.message_detail})"
        ) from exc


def _refuse_kind_change(conn: psycopg.Connection, indicator: Indicator) -> None:
    """A kind decides how values are apportioned and recomputed: not changed under them."""
    kind = sql.kind_with_values(conn, indicator.code)
    if kind is not None and kind != indicator.kind:
        raise LoaderError(
            f"indicator {indicator.code!r} has values as a {kind}; its kind "
            f"cannot become {indicator.kind!r} (delete its values first)",
            parameter="kind",
        )


def _optional(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


def read_catalogue(path: Path) -> tuple[list[Indicator], frozenset[str]]:
    """Read a catalogue CSV whose columns are the Indicator fields: the entries and which
    fields the file gives."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        given = frozenset(reader.fieldnames or []) & set(_COLUMNS)
        missing = {"code", "name_vi", "name_en", "kind"} - given
        if missing:
            raise LoaderError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        entries: dict[str, Indicator] = {}
        for line, row in enumerate(reader, start=2):
            try:
                entry = _catalogue_row(row)
            except ValueError as exc:
                raise LoaderError(f"{path}: line {line}: {exc}") from exc
            if entry.code in entries:
                raise LoaderError(f"{path}: line {line}: indicator {entry.code!r} is listed twice")
            entries[entry.code] = entry
    return _referenced_first(path, entries), given


def _referenced_first(path: Path, entries: dict[str, Indicator]) -> list[Indicator]:
    """The entries in an order that saves every indicator before those that refer to it;
    a loop of references is refused."""
    ordered: list[Indicator] = []
    state: dict[str, str] = {}  # code → "visiting" | "done"

    def visit(code: str, chain: list[str]) -> None:
        if state.get(code) == "done" or code not in entries:
            return
        if state.get(code) == "visiting":
            raise LoaderError(
                f"{path}: indicators refer to each other in a loop: {' → '.join([*chain, code])}"
            )
        state[code] = "visiting"
        entry = entries[code]
        for name in _REFERENCES:
            if (ref := getattr(entry, name)) is not None:
                visit(ref, [*chain, code])
        state[code] = "done"
        ordered.append(entry)

    for code in entries:
        visit(code, [])
    return ordered


def _catalogue_row(row: dict[str, Any]) -> Indicator:
    text = {k: (row.get(k) or "").strip() for k in _COLUMNS}
    for name in ("multiplier", "suppress_below"):
        if text[name] and not math.isfinite(float(text[name])):
            raise ValueError(f"{name} {text[name]!r} is not a finite number")
    if text["code"] and text["code"] in (text[n] for n in _REFERENCES):
        raise ValueError(f"indicator {text['code']!r} refers to itself")
    return Indicator(
        code=text["code"],
        name_vi=text["name_vi"],
        name_en=text["name_en"],
        kind=text["kind"],
        unit=text["unit"],
        description=text["description"],
        source=text["source"],
        licence=text["licence"],
        decimals=int(text["decimals"] or 0),
        numerator=_optional(text["numerator"]),
        denominator=_optional(text["denominator"]),
        multiplier=float(text["multiplier"] or 1),
        suppress_below=float(text["suppress_below"]) if text["suppress_below"] else None,
        disclosure_basis=_optional(text["disclosure_basis"]),
        unit_vi=text["unit_vi"],
        description_vi=text["description_vi"],
        source_vi=text["source_vi"],
        licence_vi=text["licence_vi"],
    )


def load_catalogue(conn: psycopg.Connection, path: Path) -> int:
    """Save every entry of a catalogue CSV in one transaction; return how many."""
    entries, given = read_catalogue(path)
    with conn.transaction():
        for entry in entries:
            save_indicator(conn, entry, given)
        _refuse_loops(conn)
    return len(entries)


def _refuse_loops(conn: psycopg.Connection) -> None:
    """References across files may close a loop too (a → b here, b → a loaded before)."""
    loop = sql.reference_loop(conn)
    if loop is not None:
        raise LoaderError(
            "nothing was loaded: indicators refer to each other in a loop: " + " → ".join(loop)
        )


def get_indicator(conn: psycopg.Connection, code: str) -> Indicator | None:
    """One catalogue entry, or None."""
    row = sql.catalogue_entry(conn, code, _COLUMNS)
    return None if row is None else Indicator(**row)

"""The indicator catalogue: what each indicator is and how it may be published."""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import psycopg

from geo_core.errors import LoaderError
from indicators import protect, relations, sql
from indicators.values import is_period

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
    period_aggregation: str | None = None
    denominator_period: str | None = None
    protection_lower: float | None = None
    protection_upper: float | None = None
    protection_absolute: float | None = None
    relation_tolerance: float = 0.0
    cell_key_noise: int | None = None
    # breakdowns: this indicator = the sum of each group's parts (kept in indicator_breakdown)
    sum_of: tuple[tuple[str, ...], ...] = ()
    # the unit, definition, source and licence in Vietnamese, for the pages
    unit_vi: str = ""
    description_vi: str = ""
    source_vi: str = ""
    licence_vi: str = ""


_FIELDS = [f.name for f in fields(Indicator)]
_COLUMNS = [name for name in _FIELDS if name != "sum_of"]  # the `indicator` table's


_REFERENCES = ("numerator", "denominator", "disclosure_basis")
_NUMBERS = ("protection_lower", "protection_upper", "protection_absolute", "relation_tolerance")
PERIOD_AGGREGATIONS = ("sum",)


def save_indicator(
    conn: psycopg.Connection,
    indicator: Indicator,
    given: frozenset[str] | None = None,
    *,
    protect_now: bool = True,
) -> None:
    """Insert or update one catalogue entry; an existing one keeps the fields not `given`
    (a catalogue file without a suppress_below column does not lift the rules). Its values
    are protected again unless the caller does it once for several entries."""
    if indicator.kind not in KINDS:
        raise LoaderError(
            f"indicator {indicator.code}: kind {indicator.kind!r} is not one of {', '.join(KINDS)}",
            parameter="kind",
        )
    _refuse_kind_change(conn, indicator)
    updated = [c for c in _COLUMNS if c != "code" and (given is None or c in given)]
    row = {k: v for k, v in asdict(indicator).items() if k != "sum_of"}
    with conn.transaction():
        try:
            sql.save_indicator(conn, row, updated)
            if given is None or "sum_of" in given:
                sql.replace_breakdowns(conn, indicator.code, indicator.sum_of)
        except psycopg.errors.CheckViolation as exc:
            # (the database names the column when its own rule refused, e.g. cell_key_noise)
            raise LoaderError(
                f"indicator {indicator.code!r}: {exc.diag.message_primary}",
                parameter=exc.diag.column_name,
            ) from exc
        except psycopg.errors.ForeignKeyViolation as exc:
            raise LoaderError(
                f"indicator {indicator.code!r} refers to an unknown indicator "
                f"({exc.diag.message_detail})"
            ) from exc
        if protect_now:
            relations.check(conn, [indicator.code])
            protect.refresh(conn)


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
        given = frozenset(reader.fieldnames or []) & set(_FIELDS)
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
            LINES[(str(path), entry.code)] = line
    return _referenced_first(path, entries), given


# (path, code) → line of the catalogue file it was read from, for messages
LINES: dict[tuple[str, str], int] = {}


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
        refs = [getattr(entry, name) for name in _REFERENCES]
        refs += [part for group in entry.sum_of for part in group]
        for ref in refs:
            if ref is not None:
                visit(ref, [*chain, code])
        state[code] = "done"
        ordered.append(entry)

    for code in entries:
        visit(code, [])
    return ordered


def _number(text: str, name: str, *, negative: bool = True) -> float | None:
    """A finite number from a catalogue cell (None when empty)."""
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} {text!r} is not a finite number")
    if not negative and number < 0:
        raise ValueError(f"{name} {text!r} cannot be negative")
    return number


def _sum_of(text: str, code: str) -> tuple[tuple[str, ...], ...]:
    """'a + b; c + d' → (('a', 'b'), ('c', 'd')): the breakdowns whose parts add up to it."""
    groups = []
    for group in (g for g in text.split(";") if g.strip()):
        parts = tuple(p.strip() for p in group.split("+"))
        if len(parts) < 2 or not all(parts):
            raise ValueError(f"sum_of {group.strip()!r} needs two or more parts joined by +")
        if code in parts:
            raise ValueError(f"indicator {code!r} cannot be a part of itself")
        if len(set(parts)) != len(parts):
            raise ValueError(f"sum_of {group.strip()!r} names a part twice")
        groups.append(parts)
    return tuple(groups)


def _catalogue_row(row: dict[str, Any]) -> Indicator:
    text = {k: (row.get(k) or "").strip() for k in _FIELDS}
    _number(text["multiplier"], "multiplier")
    _number(text["suppress_below"], "suppress_below")
    numbers = {name: _number(text[name], name, negative=False) for name in _NUMBERS}
    if text["code"] and text["code"] in (text[n] for n in _REFERENCES):
        raise ValueError(f"indicator {text['code']!r} refers to itself")
    if text["period_aggregation"] not in ("", *PERIOD_AGGREGATIONS):
        raise ValueError(
            f"period_aggregation {text['period_aggregation']!r} is not one of "
            f"{', '.join(PERIOD_AGGREGATIONS)} (or empty)"
        )
    if text["denominator_period"] and not is_period(text["denominator_period"]):
        raise ValueError(f"denominator_period {text['denominator_period']!r} is not a period")
    noise = _number(text["cell_key_noise"], "cell_key_noise", negative=False)
    if noise is not None and (noise < 1 or not noise.is_integer()):
        raise ValueError(f"cell_key_noise {text['cell_key_noise']!r} is not a whole number ≥ 1")
    if (text["period_aggregation"] or text["sum_of"]) and text["kind"] != "count":
        raise ValueError("sum_of and period_aggregation are for counts (kind count)")
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
        period_aggregation=_optional(text["period_aggregation"]),
        denominator_period=_optional(text["denominator_period"]),
        protection_lower=numbers["protection_lower"],
        protection_upper=numbers["protection_upper"],
        protection_absolute=numbers["protection_absolute"],
        relation_tolerance=numbers["relation_tolerance"] or 0.0,
        cell_key_noise=None if noise is None else int(noise),
        sum_of=_sum_of(text["sum_of"], text["code"]),
        unit_vi=text["unit_vi"],
        description_vi=text["description_vi"],
        source_vi=text["source_vi"],
        licence_vi=text["licence_vi"],
    )


@dataclass
class CatalogueLoad:
    """What a catalogue load did, and the likely relations nobody declared."""

    saved: int
    warnings: list[str]


def load_catalogue(conn: psycopg.Connection, path: Path) -> int:
    """Save every entry of a catalogue CSV in one transaction; return how many."""
    return load_catalogue_report(conn, path).saved


def load_catalogue_report(conn: psycopg.Connection, path: Path) -> CatalogueLoad:
    """Save every entry of a catalogue CSV in one transaction (refused whole when a declared
    relation does not hold in the loaded values); say what relations look undeclared."""
    entries, given = read_catalogue(path)
    codes = [e.code for e in entries]
    with conn.transaction():
        for entry in entries:
            save_indicator(conn, entry, given, protect_now=False)
        _refuse_loops(conn)
        try:
            relations.check(conn, codes)
        except LoaderError as exc:
            line = LINES.get((str(path), str(exc.details.get("indicator"))))
            where = f"{path}: line {line}: " if line else f"{path}: "
            raise LoaderError(
                f"nothing was loaded: {where}{exc.message}", errors=exc.details.get("errors")
            ) from exc
        protect.refresh(conn)
        warnings = relations.likely_undeclared(conn, codes)
    return CatalogueLoad(len(entries), warnings)


def _refuse_loops(conn: psycopg.Connection) -> None:
    """References across files may close a loop too (a → b here, b → a loaded before)."""
    loop = sql.reference_loop(conn) or relations.breakdown_loop(conn)
    if loop is not None:
        raise LoaderError(
            "nothing was loaded: indicators refer to each other in a loop: " + " → ".join(loop)
        )


def get_indicator(conn: psycopg.Connection, code: str) -> Indicator | None:
    """One catalogue entry, or None."""
    row = sql.catalogue_entry(conn, code, _COLUMNS)
    return None if row is None else Indicator(**row)

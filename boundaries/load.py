"""Load checked boundaries into PostGIS in one transaction, with generalised geometries."""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import psycopg
import shapely

from boundaries import sql
from boundaries.checks import (
    CODE_PATTERNS,
    CODE_WIDTHS,
    CheckReport,
    FieldMap,
    Problem,
    check_features,
    missing_fields,
    outside_parent_shares,
)
from boundaries.generalise import generalise_async
from boundaries.readers import FEATURE_INDEX, NOTES, SOURCE_FILE, listed, read_boundaries
from geo_core.errors import LoaderError
from geo_core.names import fold
from geo_core.text import as_code, first_of

# Children sticking out of their parent by more than this share of their area are reported.
DEFAULT_OUTSIDE_TOLERANCE = 0.01

Progress = Callable[[str, int, int], None]


@dataclass
class LoadOptions:
    """What to load and how."""

    vintage: str
    level: str
    fields: FieldMap
    layer: str | None = None
    src_crs: str | None = None
    code_pattern: str | None = None
    pad_codes: bool = False
    recode: dict[str, tuple[str, str]] = field(default_factory=dict)  # source → (code, reason)
    parent_level: str | None = None
    replace: bool = False
    gap_width: float = 0.0
    outside_tolerance: float = DEFAULT_OUTSIDE_TOLERANCE
    encoding: str | None = None  # of the source's text (e.g. a .dbf without .cpg)

    def __post_init__(self) -> None:
        if not self.gap_width >= 0:
            raise LoaderError(
                f"--gap-width must be 0 or more, not {self.gap_width}", parameter="--gap-width"
            )
        if self.encoding is not None:
            try:
                codecs.lookup(self.encoding)
            except LookupError as exc:
                raise LoaderError(
                    f"unknown --encoding {self.encoding!r} (e.g. UTF-8, cp1258, latin-1)",
                    parameter="--encoding",
                ) from exc


@dataclass
class LoadSummary:
    """What a load did."""

    loaded: int = 0
    replaced: int = 0
    seconds: float = 0.0
    report: CheckReport = field(default_factory=CheckReport)


def _no_progress(stage: str, done: int, total: int) -> None:
    """Default progress callback: silent."""


def load_boundaries(
    conn: psycopg.Connection,
    paths: Sequence[Path],
    options: LoadOptions,
    progress: Progress = _no_progress,
) -> LoadSummary:
    """Read, check, generalise and write; any problem raises LoaderError and writes nothing."""
    started = time.perf_counter()
    _check_target(conn, options)
    parent_level = _parent_level(conn, options)
    progress("read", 0, 1)
    frame = read_boundaries(
        paths, options.layer, options.src_crs, options.encoding, options.fields.code
    )
    progress("read", 1, 1)
    if problems := missing_fields(frame, options.fields):
        raise LoaderError("; ".join(problems), parameter="fields")
    frame, corrected = _correct_codes(frame, options, parent_level)
    pattern = options.code_pattern or CODE_PATTERNS.get(options.level, r".+")
    units, report = check_features(frame, options.fields, pattern)
    report.repaired[:0] = corrected
    report.warnings[:0] = [
        Problem(source, None, None, note) for source, note in frame.attrs.get(NOTES, [])
    ]
    progress("check", 0, 1)
    # Generalisation (most of a load's time) runs in a second thread beside the parent check
    # and the writing of the units: shapely releases the GIL, so it gets a core of its own.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="generalise") as pool:
        bands: dict[int, Future[np.ndarray]] = {}
        if not report.errors:  # only for a load that can still succeed
            geoms = np.asarray(units.geometry.values, dtype=object)
            bands = generalise_async(pool, geoms, options.gap_width)
        try:
            _check_parents(conn, units, options, parent_level, report)
            progress("check", 1, 1)
            if report.errors:
                raise LoaderError(
                    listed([str(p) for p in report.errors]), errors=[str(p) for p in report.errors]
                )
            summary = LoadSummary(report=report)
            summary.replaced = _write(conn, units, bands, options, progress)
            if 3 in bands:
                report.warnings += _area_changes(units, bands[3].result())
        except BaseException:
            for future in bands.values():
                future.cancel()
            raise
    summary.loaded = len(units)
    summary.seconds = time.perf_counter() - started
    return summary


def _write(
    conn: psycopg.Connection,
    units: gpd.GeoDataFrame,
    bands: dict[int, Future[np.ndarray]],
    options: LoadOptions,
    progress: Progress,
) -> int:
    """Write the units, then each band as soon as it is ready, in one transaction; return
    how many units were replaced."""
    try:
        with conn.transaction():
            # one load of a vintage and level at a time: a second one waits for the first
            sql.lock_level_for_loading(conn, options.vintage, options.level)
            _check_target(conn, options)  # (again: a load that just ended may have written)
            replaced = sql.delete_units(conn, options.vintage, options.level)
            _copy_units(conn, units, options, progress)
            _refuse_orphans(conn, options)
            # statistics for the bands' key checks against the units just written
            sql.analyze_units(conn, bands=False)
            _copy_bands(conn, units, bands, options, progress)
    except psycopg.errors.ForeignKeyViolation as exc:
        # indicator values refer to units by code; a reload may not make them orphans
        raise LoaderError(
            f"nothing was written: units that indicator values refer to would "
            f"disappear ({exc.diag.message_detail})",
            parameter="--replace",
        ) from exc
    sql.analyze_units(conn)
    return replaced


def _check_target(conn: psycopg.Connection, options: LoadOptions) -> None:
    vintages = sql.vintage_ids(conn)
    if options.vintage not in vintages:
        known = ", ".join(vintages) or "none yet"
        raise LoaderError(
            f"unknown vintage {options.vintage!r} (known: {known}); create it "
            "with `geo-service vintage add`",
            parameter="--vintage",
        )
    levels = sql.level_ids(conn)
    for option, level in (("--level", options.level), ("--parent-level", options.parent_level)):
        if level is not None and level not in levels:
            raise LoaderError(
                f"unknown level {level!r}; levels are: {', '.join(levels)}", parameter=option
            )
    existing = sql.count_units(conn, options.vintage, options.level)
    if existing and not options.replace:
        raise LoaderError(
            f"vintage {options.vintage} already has {existing} {options.level} "
            "units; pass --replace to replace them",
            parameter="--replace",
        )


def _corrected_code(code: str, options: LoadOptions) -> tuple[str, str] | None:
    """(new code, reason) when the code is listed in --recode or lost its leading zeros."""
    if code in options.recode:
        return options.recode[code]
    return _padded(code, options.level, options)


def _padded(code: str, level: str | None, options: LoadOptions) -> tuple[str, str] | None:
    width = CODE_WIDTHS.get(level or "", 0)
    if options.pad_codes and code.isdigit() and len(code) < width:
        return code.zfill(width), "leading zeros restored (--pad-codes)"
    return None


def _correct_codes(
    frame: gpd.GeoDataFrame, options: LoadOptions, parent_level: str | None
) -> tuple[gpd.GeoDataFrame, list[Problem]]:
    """Apply code corrections (to parent codes, only restoring zeros), reporting each one."""
    if not options.recode and not options.pad_codes:
        return frame, []
    notes: list[Problem] = []
    frame = frame.copy()
    fixes: list[tuple[str, str, Callable[[str], tuple[str, str] | None]]] = [
        (options.fields.code, "code", lambda c: _corrected_code(c, options))
    ]
    if options.fields.parent:
        fixes.append(
            (options.fields.parent, "parent code", lambda c: _padded(c, parent_level, options))
        )
    for field_name, what, fix_of in fixes:
        codes = [as_code(c) for c in frame[field_name]]
        for i, code in enumerate(codes):
            fix = fix_of(code) if code is not None else None
            if fix is None:
                continue
            new, reason = fix
            notes.append(
                Problem(
                    str(frame[SOURCE_FILE].iat[i]),
                    int(frame[FEATURE_INDEX].iat[i]),
                    as_code(frame[options.fields.code].iat[i]),
                    f"{what} {code!r} corrected to {new!r}: {reason}",
                )
            )
            codes[i] = new
        frame[field_name] = codes
    return frame, notes


def read_recode_file(path: Path) -> dict[str, tuple[str, str]]:
    """Read a code-corrections CSV with columns source_code, code, reason."""
    import csv

    if not path.exists():
        raise LoaderError(f"{path}: no such file", parameter="--recode")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not {"source_code", "code"} <= set(reader.fieldnames or []):
            raise LoaderError(
                f"{path}: needs columns source_code, code[, reason]", parameter="--recode"
            )
        return {
            row["source_code"].strip(): (
                row["code"].strip(),
                (row.get("reason") or "listed in the corrections file").strip(),
            )
            for row in reader
        }


def _parent_level(conn: psycopg.Connection, options: LoadOptions) -> str | None:
    """The explicit parent level, else the nearest higher level that has units."""
    if options.parent_level or not options.fields.parent:
        return options.parent_level
    level = sql.nearest_level_above(conn, options.level, options.vintage)
    if level is None:
        raise LoaderError(
            f"--parent-field given but vintage {options.vintage} has no units of a "
            f"level above {options.level!r}; load the parents first",
            parameter="--parent-field",
        )
    return level


def _check_parents(
    conn: psycopg.Connection,
    units: gpd.GeoDataFrame,
    options: LoadOptions,
    parent_level: str | None,
    report: CheckReport,
) -> None:
    """Unknown parent codes are errors; children sticking out of their parent are warnings."""
    if parent_level is None:
        return
    rows = sql.unit_geometries(conn, options.vintage, parent_level)
    parents = {code: shapely.from_wkb(wkb) for code, wkb in rows}
    has_parent = units["parent_code"].isin(parents.keys()) & units.geometry.notna()
    orphans = units[~has_parent & units["parent_code"].notna()]
    for row in orphans.drop(columns="geometry").to_dict("records"):
        report.errors.append(
            Problem(
                str(row[SOURCE_FILE]),
                int(row[FEATURE_INDEX]),
                row["code"],
                f"parent {parent_level} {row['parent_code']!r} does not exist in vintage "
                f"{options.vintage}",
            )
        )
    children = units[has_parent]
    if children.empty:
        return
    parent_geoms = gpd.GeoSeries([parents[c] for c in children["parent_code"]], crs="EPSG:4326")
    shares = outside_parent_shares(children.geometry, parent_geoms)
    for (_, child), share in zip(children.iterrows(), shares, strict=True):
        if share > options.outside_tolerance:
            report.warnings.append(
                Problem(
                    str(child[SOURCE_FILE]),
                    int(child[FEATURE_INDEX]),
                    str(child["code"]),
                    f"{share:.1%} of its area lies outside parent {child['parent_code']}",
                )
            )


def _refuse_orphans(conn: psycopg.Connection, options: LoadOptions, shown: int = 10) -> None:
    """A replaced level must still hold the parents of the levels below it."""
    rows = sql.orphaned_parents(conn, options.vintage, options.level)
    if not rows:
        return
    orphans = sum(n for *_, n in rows)
    named = first_of([f"{code} ({n} {level})" for level, code, n in rows], shown)
    raise LoaderError(
        f"nothing was written: {orphans} units of vintage {options.vintage} below "
        f"{options.level} level would lose their parent, which this load "
        f"removes: {named}; include those units, or load the levels "
        "below again first",
        parameter="--replace",
    )


def _area_changes(
    units: gpd.GeoDataFrame, cleaned: np.ndarray, tolerance: float = 0.01
) -> list[Problem]:
    """Units whose area cleaning into a coverage changed by more than `tolerance`: an
    overlap given to a neighbour, or a gap closed into the unit."""
    before = shapely.area(np.asarray(units.geometry.values, dtype=object))
    after = shapely.area(cleaned)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.where(before > 0, after / before - 1, 0.0)
    problems = []
    for i in np.flatnonzero(np.abs(change) > tolerance):
        why = (
            "lost to overlapping neighbours"
            if change[i] < 0
            else "gained from closed gaps and overlaps"
        )
        problems.append(
            Problem(
                str(units[SOURCE_FILE].iat[i]),
                int(units[FEATURE_INDEX].iat[i]),
                str(units["code"].iat[i]),
                f"{abs(change[i]):.1%} of its area {why} when cleaned into a "
                "coverage (the generalised geometries; the unit keeps its own)",
            )
        )
    return problems


def _copy_units(
    conn: psycopg.Connection, units: gpd.GeoDataFrame, options: LoadOptions, progress: Progress
) -> None:
    wkb = shapely.to_wkb(np.asarray(units.geometry.values, dtype=object))
    total = len(units)

    def rows() -> Iterator[tuple[object, ...]]:
        for i, (row, geom) in enumerate(zip(units.itertuples(), wkb, strict=True)):
            # (pandas turns a missing type into NaN, which COPY cannot send as text)
            unit_type = row.unit_type if isinstance(row.unit_type, str) else None
            yield row.code, row.parent_code, row.name, fold(row.name), unit_type, geom
            if i % 500 == 0:
                progress("write", i, total)
        progress("write", total, total)

    sql.copy_units(conn, options.vintage, options.level, rows())


def _copy_bands(
    conn: psycopg.Connection,
    units: gpd.GeoDataFrame,
    bands: dict[int, Future[np.ndarray]],
    options: LoadOptions,
    progress: Progress,
) -> None:
    codes = units["code"].tolist()

    def rows() -> Iterator[tuple[object, ...]]:
        # finest first: the order the generalising thread finishes them in
        for done, band in enumerate(sorted(bands, reverse=True)):
            progress("generalise", done, len(bands))
            geoms = bands[band].result()
            progress("write bands", done, len(bands))
            wkb = shapely.to_wkb(shapely.set_srid(geoms, 4326), include_srid=True)
            for code, geom in zip(codes, wkb, strict=True):
                yield options.vintage, options.level, code, band, geom
        progress("generalise", len(bands), len(bands))
        progress("write bands", len(bands), len(bands))

    sql.copy_bands(conn, rows())


def write_report(report: CheckReport, path: Path) -> None:
    """Write every repair and warning of a load as CSV (kind, file, feature, code, message)."""
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["kind", "file", "feature", "code", "message"])
        for kind, problems in (("repaired", report.repaired), ("warning", report.warnings)):
            for p in problems:
                writer.writerow(
                    [kind, p.source, "" if p.index is None else p.index, p.code or "", p.message]
                )

"""Crosswalks computed from geometry: the overlay of two vintages' coverages at one level,
with area shares on an equal-area projection and population shares from a raster
(fractional pixel coverage, as the zonal statistics), slivers dropped and reported, and the
quality of each unit (how much of it the other vintage covers).

A piece is a **sliver** when it is below the threshold (2 % by default) of both its old and
its new unit's area: the edges of two boundary sets drawn at different times and scales never
match exactly, and such a strip says nothing about where people moved (the 2009 province
outlines stick out of the 2025 ones by up to 1.9 % of a province's area: README, "Crosswalks
computed from geometry"). An old unit always
keeps its largest piece. The shares of an old unit are taken over the pieces it keeps, so
they add up to 1 and carry-over conserves the old total; what the new vintage does not
cover of an old unit (and the slivers dropped) is in that unit's quality figures. An old unit
no new unit covers at all has no link: its values are not carried (the report lists it).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from boundaries import sql as units
from boundaries.overlay import EQUAL_AREA_CRS, Overlay, overlay
from geo_core.errors import InvalidParameter, LoaderError, NotFound
from geo_core.text import first_of
from indicators import sql as indicator_sql
from indicators.store import carry_over
from indicators.zonal import RasterSums

WEIGHTS = ("area", "population")
DEFAULT_SLIVER = 0.02
# Pieces of one unit adding up to more than its area by this share: the other side overlaps.
OVERLAP_TOLERANCE = 1e-3


@dataclass(frozen=True)
class BuiltLink:
    """One computed old → new link."""

    from_code: str
    to_code: str
    relation: str  # whole (the old unit's only link) or partial
    area_share: float
    population_share: float | None
    area_km2: float  # of the piece
    population: float | None  # of the piece, from the raster


@dataclass(frozen=True)
class UnitQuality:
    """How much of a unit the other vintage's units cover (before slivers are dropped)."""

    side: str  # "from" or "to"
    code: str
    covered_share: float
    sliver_share: float = 0.0  # of its area in dropped slivers
    area_weighted: bool = False  # an old unit with no population in the raster: area shares


@dataclass
class CrosswalkBuild:
    """A computed crosswalk with its quality figures and provenance."""

    links: list[BuiltLink]
    quality: list[UnitQuality]
    slivers: list[str]  # "old → new (share of old, share of new)"
    weights: tuple[str, ...]
    sliver_threshold: float
    raster: str | None = None
    notes: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def unlinked(self) -> list[str]:
        """Old units no new unit covers (their values cannot be carried)."""
        linked = {link.from_code for link in self.links}
        return [q.code for q in self.quality if q.side == "from" and q.code not in linked]


def compute_crosswalk(
    old: gpd.GeoDataFrame,
    new: gpd.GeoDataFrame,
    *,
    weights: Sequence[str] = ("area",),
    raster: Path | None = None,
    sliver: float = DEFAULT_SLIVER,
    names: tuple[str, str] = ("old", "new"),
) -> CrosswalkBuild:
    """The crosswalk between two coverages (frames with `code` and lon/lat geometry)."""
    started = time.perf_counter()
    weights = _checked_weights(weights, raster)
    if not 0 <= sliver < 1:
        raise InvalidParameter(f"--sliver must be in [0, 1), not {sliver}", parameter="--sliver")
    with _collector_paused():
        build = _computed(old, new, weights, raster, sliver, names)
    build.seconds = time.perf_counter() - started
    return build


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused for the build: its tens of thousands of new
    objects (pieces, links, quality figures) are not cycles, yet each collection they set
    off walks every object of the process while holding the GIL the cutting threads need
    (~0.09 s of CPU of ~3.7 on the 2009 → 2025 communes). Cycles made meanwhile are
    collected once it resumes."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _computed(
    old: gpd.GeoDataFrame,
    new: gpd.GeoDataFrame,
    weights: tuple[str, ...],
    raster: Path | None,
    sliver: float,
    names: tuple[str, str],
) -> CrosswalkBuild:
    """`compute_crosswalk` once its parameters are checked."""
    old_codes = old["code"].astype(str).to_numpy(dtype=object)
    new_codes = new["code"].astype(str).to_numpy(dtype=object)
    with RasterSums(raster) if "population" in weights and raster else nullcontext() as sums:
        # (the population of a run of old units' pieces is summed as soon as they are cut,
        # beside the cutting of the next runs)
        pieces = overlay(
            np.asarray(old.geometry.values),
            np.asarray(new.geometry.values),
            then=None if sums is None else partial(_piece_population, sums=sums, sliver=sliver),
        )
    if len(pieces.piece_area) == 0:
        raise LoaderError(
            f"{names[0]} and {names[1]} do not overlap: no unit of one intersects a unit of "
            "the other",
            parameter="--to",
        )
    _refuse_overlaps(pieces, old_codes, new_codes, names)
    kept, slivers = _slivers(pieces, sliver, old_codes, new_codes)
    population = pieces.measured
    if population is not None:
        _refuse_uncovered(pieces, kept, population, raster, names)
    links, area_weighted = _links(pieces, kept, population, old_codes, new_codes)
    quality = _quality(pieces, kept, old_codes, new_codes, area_weighted)
    build = CrosswalkBuild(
        links,
        quality,
        slivers,
        tuple(weights),
        sliver,
        str(raster) if population is not None else None,
    )
    build.figures = _figures(build, pieces, kept, population)
    build.notes = _notes(build, area_weighted)
    return build


def _checked_weights(weights: Sequence[str], raster: Path | None) -> tuple[str, ...]:
    unknown = [w for w in weights if w not in WEIGHTS]
    if unknown or not weights:
        raise InvalidParameter(
            f"--weights must be among {', '.join(WEIGHTS)}, not {', '.join(unknown) or 'nothing'}",
            parameter="--weights",
        )
    if "population" in weights and raster is None:
        raise InvalidParameter(
            "population weights need a population raster (--raster FILE)", parameter="--raster"
        )
    if "population" in weights and raster is not None and not Path(raster).is_file():
        raise LoaderError(f"raster file not found: {raster}", parameter="--raster")
    return tuple(w for w in WEIGHTS if w in weights)


def _refuse_overlaps(
    pieces: Overlay, old_codes: np.ndarray, new_codes: np.ndarray, names: tuple[str, str]
) -> None:
    """Pieces of one unit adding up to more than its area: units of the other side overlap."""
    problems = []
    for index, area, codes, other, name in (
        (pieces.old_index, pieces.old_area, old_codes, names[1], names[0]),
        (pieces.new_index, pieces.new_area, new_codes, names[0], names[1]),
    ):
        covered = np.bincount(index, weights=pieces.piece_area, minlength=len(area))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(area > 0, covered / area, 0.0)
        for i in np.flatnonzero(ratio > 1 + OVERLAP_TOLERANCE):
            problems.append(
                f"units of {other} overlap: inside {name} unit {codes[i]} they cover "
                f"{ratio[i]:.4f} of its area"
            )
    if problems:
        raise LoaderError(
            f"{len(problems)} overlap(s), nothing was written: {first_of(problems, 10)}",
            errors=problems,
        )


def _slivers(
    pieces: Overlay, threshold: float, old_codes: np.ndarray, new_codes: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """Which pieces are kept, and the dropped slivers described."""
    sliver = _sliver_mask(pieces, threshold)
    of_old = pieces.piece_area / pieces.old_area[pieces.old_index]
    of_new = pieces.piece_area / pieces.new_area[pieces.new_index]
    # (as Python lists: formatting numpy scalars one by one costs several times more)
    dropped = np.flatnonzero(sliver)
    described = [
        f"{a} → {b} ({x:.4f} of old, {y:.4f} of new)"
        for a, b, x, y in zip(
            old_codes[pieces.old_index[dropped]].tolist(),
            new_codes[pieces.new_index[dropped]].tolist(),
            of_old[dropped].tolist(),
            of_new[dropped].tolist(),
            strict=True,
        )
    ]
    return ~sliver, described


def _sliver_mask(pieces: Overlay, threshold: float) -> np.ndarray:
    """The slivers among the pieces (decided old unit by old unit: a run of old units gets
    the same answer as the whole overlay)."""
    of_old = pieces.piece_area / pieces.old_area[pieces.old_index]
    of_new = pieces.piece_area / pieces.new_area[pieces.new_index]
    sliver = (of_old < threshold) & (of_new < threshold)
    # an old unit keeps its largest piece, however small: it is covered by something
    order = np.lexsort((-pieces.piece_area, pieces.old_index))
    first = np.ones(len(order), dtype=bool)
    first[1:] = pieces.old_index[order][1:] != pieces.old_index[order][:-1]
    sliver[order[first]] = False
    return sliver


def _piece_population(pieces: Overlay, *, sums: RasterSums, sliver: float) -> np.ndarray:
    """The raster's population in each kept piece of an old unit with several (fractional
    pixel coverage); NaN for the others: a unit kept whole needs no split, and a sliver none."""
    wanted = np.flatnonzero(_split_pieces(pieces, ~_sliver_mask(pieces, sliver)))
    values = np.full(len(pieces.piece_area), np.nan)
    if len(wanted):
        values[wanted] = sums.sums(pieces.pieces[wanted])
    return values


def _split_pieces(pieces: Overlay, kept: np.ndarray) -> np.ndarray:
    """The kept pieces of old units kept in several pieces (those need a population)."""
    links_per_old = np.bincount(pieces.old_index[kept], minlength=len(pieces.old_area))
    return kept & (links_per_old[pieces.old_index] > 1)


def _refuse_uncovered(
    pieces: Overlay,
    kept: np.ndarray,
    population: np.ndarray,
    raster: Path | None,
    names: tuple[str, str],
) -> None:
    """Refuse a raster with no valid pixel in any piece that needed its population."""
    wanted = _split_pieces(pieces, kept)
    if wanted.any() and np.isnan(population[wanted]).all():
        raise LoaderError(
            f"the raster {raster} does not cover {names[0]} or {names[1]}: no valid pixel "
            "falls in any piece of the overlay",
            parameter="--raster",
        )


def _links(
    pieces: Overlay,
    kept: np.ndarray,
    population: np.ndarray | None,
    old_codes: np.ndarray,
    new_codes: np.ndarray,
) -> tuple[list[BuiltLink], set[int]]:
    """Links from the kept pieces; shares over each old unit's kept pieces."""
    old_i, new_i = pieces.old_index[kept], pieces.new_index[kept]
    area = pieces.piece_area[kept]
    n_old = len(pieces.old_area)
    area_total = np.bincount(old_i, weights=area, minlength=n_old)
    links_per_old = np.bincount(old_i, minlength=n_old)
    pop = None if population is None else np.nan_to_num(population[kept], nan=0.0)
    pop_total = None if pop is None else np.bincount(old_i, weights=pop, minlength=n_old)
    area_weighted: set[int] = set()
    if pop_total is not None:
        area_weighted = {int(i) for i in np.flatnonzero(pop_total <= 0) if links_per_old[i] > 1}
    # shares computed for every piece at once (the same IEEE divisions as one by one), the
    # links built from Python lists in code order
    whole = links_per_old[old_i] == 1
    area_share = np.where(whole, 1.0, area / np.where(area_total > 0, area_total, 1.0)[old_i])
    pop_share: list[float | None] = [None] * len(old_i)
    if pop is not None and pop_total is not None:
        fallback = np.zeros(n_old, dtype=bool)
        fallback[list(area_weighted)] = True
        by_pop = pop / np.where(pop_total > 0, pop_total, 1.0)[old_i]
        pop_share = np.where(whole, 1.0, np.where(fallback[old_i], area_share, by_pop)).tolist()
    piece_population: list[float | None] = (
        [None] * len(old_i)
        if population is None
        else [None if np.isnan(v) else v for v in population[kept].tolist()]
    )
    old_code, new_code = old_codes[old_i].tolist(), new_codes[new_i].tolist()
    shares, km2, is_whole = area_share.tolist(), (area / 1e6).tolist(), whole.tolist()
    links = [
        BuiltLink(
            str(old_code[k]),
            str(new_code[k]),
            "whole" if is_whole[k] else "partial",
            shares[k],
            pop_share[k],
            km2[k],
            piece_population[k],
        )
        for k in sorted(range(len(old_i)), key=lambda k: (old_code[k], new_code[k]))
    ]
    return links, area_weighted


def _quality(
    pieces: Overlay,
    kept: np.ndarray,
    old_codes: np.ndarray,
    new_codes: np.ndarray,
    area_weighted: set[int],
) -> list[UnitQuality]:
    """Covered and sliver shares of every old and every new unit."""
    quality = []
    for side, index, area, codes in (
        ("from", pieces.old_index, pieces.old_area, old_codes),
        ("to", pieces.new_index, pieces.new_area, new_codes),
    ):
        covered = np.bincount(index, weights=pieces.piece_area, minlength=len(area))
        dropped = np.bincount(index[~kept], weights=pieces.piece_area[~kept], minlength=len(area))
        with np.errstate(divide="ignore", invalid="ignore"):
            covered_share = np.clip(np.where(area > 0, covered / area, 0.0), 0.0, 1.0)
            sliver_share = np.where(area > 0, dropped / area, 0.0)
        quality += [
            UnitQuality(
                side, str(code), covered, dropped_share, side == "from" and i in area_weighted
            )
            for i, (code, covered, dropped_share) in enumerate(
                zip(codes.tolist(), covered_share.tolist(), sliver_share.tolist(), strict=True)
            )
        ]
    return quality


def _figures(
    build: CrosswalkBuild, pieces: Overlay, kept: np.ndarray, population: np.ndarray | None
) -> dict[str, Any]:
    """Summary figures: counts, covered shares, slivers, population in the overlay."""
    figures: dict[str, Any] = {
        "equal_area_crs": EQUAL_AREA_CRS,
        "pieces": len(pieces.piece_area),
        "links": len(build.links),
        "whole": sum(link.relation == "whole" for link in build.links),
        "slivers": len(build.slivers),
        "sliver_area_km2": float(pieces.piece_area[~kept].sum() / 1e6),
    }
    for side in ("from", "to"):
        shares = np.asarray([q.covered_share for q in build.quality if q.side == side])
        figures[f"{side}_units"] = len(shares)
        figures[f"{side}_covered_min"] = float(shares.min()) if len(shares) else None
        figures[f"{side}_covered_median"] = float(np.median(shares)) if len(shares) else None
        figures[f"{side}_below_95"] = int((shares < 0.95).sum())
        figures[f"{side}_uncovered"] = int((shares == 0).sum())
    if population is not None:
        # (only the pieces of old units split between new ones are summed: the others
        # need no population to be apportioned)
        figures["population_in_split_units"] = float(np.nansum(population))
    return figures


def _notes(build: CrosswalkBuild, area_weighted: set[int]) -> list[str]:
    """What a user should know about the result."""
    notes = []
    unlinked = build.unlinked()
    if unlinked:
        notes.append(
            f"{len(unlinked)} old unit(s) overlap no new unit; their values cannot be carried: "
            f"{first_of(unlinked, 10)}"
        )
    uncovered = [q.code for q in build.quality if q.side == "to" and q.covered_share == 0]
    if uncovered:
        notes.append(
            f"{len(uncovered)} new unit(s) overlap no old unit (carried values: not available): "
            f"{first_of(uncovered, 10)}"
        )
    if area_weighted:
        fallback = [q.code for q in build.quality if q.area_weighted]
        notes.append(
            f"{len(fallback)} old unit(s) have no population in the raster; their population "
            f"shares are their area shares: {first_of(fallback, 10)}"
        )
    if build.slivers:
        notes.append(
            f"{len(build.slivers)} sliver(s) below {build.sliver_threshold:g} of both units "
            f"dropped ({build.figures['sliver_area_km2']:,.1f} km²), e.g. "
            f"{first_of(build.slivers, 5)}"
        )
    return notes


# ---- with the database ------------------------------------------------------------------


def _coverage(conn: Any, vintage: str, level: str) -> gpd.GeoDataFrame:
    """A vintage's units of a level as their cleaned coverage (code, lon/lat geometry)."""
    rows = units.coverage_geometries(conn, vintage, level)
    return gpd.GeoDataFrame(
        {"code": [r[0] for r in rows]},
        geometry=shapely.from_wkb([bytes(r[1]) for r in rows]),
        crs="EPSG:4326",
    )


def build_crosswalk(
    conn: Any,
    from_vintage: str,
    to_vintage: str,
    level: str,
    *,
    weights: Sequence[str] = ("area",),
    raster: Path | None = None,
    sliver: float = DEFAULT_SLIVER,
    replace: bool = False,
    store: bool = True,
) -> CrosswalkBuild:
    """Compute the crosswalk between two loaded vintages at one level and store it with its
    quality figures and provenance, all links or none."""
    _check_vintages(conn, from_vintage, to_vintage, level)
    if store and not replace and units.count_crosswalk_level(conn, from_vintage, to_vintage, level):
        raise LoaderError(
            f"a crosswalk {from_vintage} → {to_vintage} at {level} level is already loaded; "
            "pass --replace",
            parameter="--replace",
        )
    build = compute_crosswalk(
        _coverage(conn, from_vintage, level),
        _coverage(conn, to_vintage, level),
        weights=weights,
        raster=raster,
        sliver=sliver,
        names=(f"vintage {from_vintage} ({level})", f"vintage {to_vintage} ({level})"),
    )
    if store:
        with conn.transaction():
            _store(conn, build, from_vintage, to_vintage, level)
            # series carried through the old links are carried again through the new ones
            for code, derivation in indicator_sql.carried_through(
                conn, from_vintage, to_vintage, level
            ):
                weight = str(derivation.get("weight", "area"))
                carry_over(conn, code, from_vintage, to_vintage, level, weight, replace=True)
                build.notes.append(f"{code} carried over again through the new crosswalk")
    return build


def _check_vintages(conn: Any, from_vintage: str, to_vintage: str, level: str) -> None:
    """Both vintages known and with the level loaded; a refusal names the crosswalk asked
    for (both vintages) and what is wrong with it."""
    asked = f"crosswalk {from_vintage} → {to_vintage} at {level} level"
    if from_vintage == to_vintage:
        raise InvalidParameter(
            f"--from and --to are the same vintage {from_vintage!r}", parameter="--to"
        )
    levels = units.level_ids(conn)
    if level not in levels:
        raise InvalidParameter(
            f"unknown level {level!r} ({asked}); levels: {', '.join(levels)}",
            parameter="--level",
            valid=levels,
        )
    for vintage, option in ((from_vintage, "--from"), (to_vintage, "--to")):
        if not units.vintage_exists(conn, vintage):
            known = units.vintage_ids(conn)
            raise LoaderError(
                f"unknown vintage {vintage!r} ({asked}); vintages: {', '.join(known) or 'none'}",
                parameter=option,
            )
        if not units.count_units(conn, vintage, level):
            raise LoaderError(
                f"vintage {vintage} has no {level} level loaded ({asked})", parameter="--level"
            )


def _store(
    conn: Any, build: CrosswalkBuild, from_vintage: str, to_vintage: str, level: str
) -> None:
    provenance = {
        "method": "computed",
        "weights": list(build.weights),
        "raster": build.raster,
        "sliver_threshold": build.sliver_threshold,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "figures": build.figures,
    }
    with conn.transaction():
        units.replace_crosswalk_level(
            conn,
            from_vintage,
            to_vintage,
            level,
            (
                (
                    level,
                    lk.from_code,
                    level,
                    lk.to_code,
                    lk.relation,
                    lk.area_share,
                    lk.population_share,
                )
                for lk in build.links
            ),
        )
        units.save_crosswalk_provenance(
            conn,
            from_vintage,
            to_vintage,
            level,
            provenance,
            (
                (q.side, q.code, q.covered_share, q.sliver_share, q.area_weighted)
                for q in build.quality
            ),
        )


# ---- agreement with a stored crosswalk, and the report -------------------------------------


@dataclass
class Agreement:
    """How a computed crosswalk agrees with the one stored between the same vintages."""

    in_both: int
    only_computed: list[str]
    only_stored: list[str]
    stored_whole: int
    whole_agreeing: int  # stored whole links the computed crosswalk has as whole too
    whole_disagreeing: list[str]
    share_differences: list[float]  # |computed − stored| area share, links in both with both

    def summary(self) -> dict[str, Any]:
        """The figures as plain values (for the command's output and the README)."""
        diffs = np.asarray(self.share_differences)
        return {
            "links in both": self.in_both,
            "only computed": len(self.only_computed),
            "only stored": len(self.only_stored),
            "stored whole links": self.stored_whole,
            "whole in both": self.whole_agreeing,
            "area share difference max": float(diffs.max()) if len(diffs) else None,
            "area share difference median": float(np.median(diffs)) if len(diffs) else None,
        }


def compare_with_stored(
    conn: Any, build: CrosswalkBuild, from_vintage: str, to_vintage: str, level: str
) -> Agreement:
    """Compare a computed crosswalk with the stored links of the same vintages and level."""
    stored = {
        (str(f), str(t)): (str(rel), area)
        for f, t, rel, area, _ in units.crosswalk_link_rows(conn, from_vintage, to_vintage, level)
    }
    if not stored:
        raise LoaderError(
            f"no stored crosswalk {from_vintage} → {to_vintage} at {level} level to compare with",
            parameter="--compare",
        )
    computed = {(lk.from_code, lk.to_code): lk for lk in build.links}
    both = sorted(stored.keys() & computed.keys())
    whole = [key for key, (rel, _) in stored.items() if rel == "whole"]
    disagreeing = [
        f"{f} → {t}"
        for f, t in whole
        if (f, t) not in computed or computed[(f, t)].relation != "whole"
    ]
    return Agreement(
        in_both=len(both),
        only_computed=[f"{f} → {t}" for f, t in sorted(computed.keys() - stored.keys())],
        only_stored=[f"{f} → {t}" for f, t in sorted(stored.keys() - computed.keys())],
        stored_whole=len(whole),
        whole_agreeing=len(whole) - len(disagreeing),
        whole_disagreeing=disagreeing,
        share_differences=[
            abs(computed[key].area_share - float(stored[key][1]))
            for key in both
            if stored[key][1] is not None
        ],
    )


def write_report(build: CrosswalkBuild, path: Path) -> None:
    """The links, then every unit's quality, then the slivers, as one CSV."""
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(
            [
                "kind",
                "from_code",
                "to_code",
                "relation",
                "area_share",
                "population_share",
                "area_km2",
                "population",
                "covered_share",
                "sliver_share",
                "area_weighted",
            ]
        )
        for lk in build.links:
            out.writerow(
                [
                    "link",
                    lk.from_code,
                    lk.to_code,
                    lk.relation,
                    f"{lk.area_share:.9f}",
                    "" if lk.population_share is None else f"{lk.population_share:.9f}",
                    f"{lk.area_km2:.6f}",
                    "" if lk.population is None else f"{lk.population:.3f}",
                    "",
                    "",
                    "",
                ]
            )
        for q in build.quality:
            code = (q.code, "") if q.side == "from" else ("", q.code)
            out.writerow(
                [
                    "unit",
                    *code,
                    "",
                    "",
                    "",
                    "",
                    "",
                    f"{q.covered_share:.6f}",
                    f"{q.sliver_share:.6f}",
                    str(q.area_weighted).lower(),
                ]
            )
        for sliver in build.slivers:
            old, rest = sliver.split(" → ", 1)
            out.writerow(["sliver", old, rest.split(" ", 1)[0], "", "", "", "", "", "", "", ""])


# ---- reads for the service -------------------------------------------------------------------


async def crosswalk_quality(
    conn: Any, from_vintage: str, to_vintage: str, level: str
) -> dict[str, Any]:
    """How a crosswalk level was made and, per new unit, the share of it the old units cover
    and the share dropped as slivers."""
    head, rows = await units.crosswalk_quality(conn, from_vintage, to_vintage, level)
    if head is None:
        raise NotFound(
            f"no recorded crosswalk {from_vintage} → {to_vintage} at {level} level",
            parameter="level",
        )
    method, weights, raster, sliver, built_at, figures = head
    return {
        "from_vintage": from_vintage,
        "to_vintage": to_vintage,
        "level": level,
        "method": method,
        "weights": list(weights),
        "raster": Path(raster).name if raster else None,
        "sliver_threshold": sliver,
        "built_at": built_at.isoformat(timespec="seconds"),
        "figures": figures,
        "codes": [str(r[0]) for r in rows],
        "covered_share": [round(float(r[1]), 6) for r in rows],
        "sliver_share": [round(float(r[2]), 6) for r in rows],
    }

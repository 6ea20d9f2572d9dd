"""Store automatically pre-delineated EAs (geo_service.ea.delineate) as drafts, with history."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import psycopg
import shapely
import shapely.wkb
from shapely.geometry.base import BaseGeometry

from geo_core.errors import InvalidParameter
from geo_service.ea import sql
from geo_service.ea.blocks import Result, generate_many_along_lines, iter_along_lines
from geo_service.ea.delineate import DraftEA

GENERATOR = "generator"
BATCH = 50  # communes per transaction, so a long national run keeps what it finished


@dataclass
class GenerateSummary:
    """What a generation run did."""

    communes: int = 0
    eas: int = 0
    skipped: int = 0
    seconds: float = 0.0
    with_lines: int = 0  # communes crossed by a loaded line
    boundary_m: float = 0.0  # EA boundaries inside those communes
    along_lines_m: float = 0.0  # ... and the part of them along a line
    shares: dict[str, float] = field(default_factory=dict)  # per commune with lines

    @property
    def along_lines_share(self) -> float | None:
        """Share of the EA boundaries (in communes with lines) that follow a line."""
        return self.along_lines_m / self.boundary_m if self.boundary_m else None


def _communes(
    conn: psycopg.Connection, vintage: str, codes: list[str] | None
) -> list[tuple[str, BaseGeometry]]:
    rows = sql.communes_coverage(conn, vintage, codes)
    found = {code for code, _ in rows}
    missing = sorted(set(codes or []) - found)
    if missing:
        raise InvalidParameter(
            f"unknown commune(s) in vintage {vintage}: {', '.join(missing)}", parameter="--commune"
        )
    geoms: list[BaseGeometry] = list(shapely.from_wkb([wkb for _, wkb in rows]))
    return [(code, geom) for (code, _), geom in zip(rows, geoms, strict=True)]


def _rows(
    vintage: str, census_round: str, drafts: dict[str, list[DraftEA]], user: str
) -> Iterator[tuple[object, ...]]:
    # One WKB call for the batch: per EA, the call's own overhead was half the parent's cost.
    eas = [(commune, ea) for commune, some in drafts.items() for ea in some]
    wkbs = shapely.to_wkb([ea.geometry for _, ea in eas], hex=True, include_srid=False)
    for (commune, ea), wkb in zip(eas, wkbs, strict=True):
        yield (
            census_round,
            f"{commune}-{ea.serial:03d}",
            vintage,
            commune,
            "draft",
            ea.population,
            ea.households,
            wkb,
            user,
        )


def _measure(summary: GenerateSummary, code: str, share: tuple[float, float] | None) -> None:
    """Add how far a commune's new EA boundaries follow its lines."""
    if share is None:
        return
    total, along = share
    summary.with_lines += 1
    summary.boundary_m += total
    summary.along_lines_m += along
    if total > 0:
        summary.shares[code] = along / total


def _reason(households_per_ea: float) -> str:
    return f"generated, {households_per_ea:g} households per EA"


def generate(
    conn: psycopg.Connection,
    vintage: str,
    census_round: str,
    codes: list[str] | None,
    raster: Path,
    households_per_ea: float,
    household_size: float,
    replace: bool = False,
    progress: Callable[[int, int], None] = lambda d, t: None,
) -> GenerateSummary:
    """Draft EAs for each commune (skipping those that have EAs, unless replace)."""
    started = time.perf_counter()
    communes = _communes(conn, vintage, codes)
    taken = sql.communes_with_eas(conn, census_round)
    summary = GenerateSummary()
    todo = [(c, g) for c, g in communes if replace or c not in taken]
    summary.skipped = len(communes) - len(todo)
    lines = {
        code: list(shapely.from_wkb(wkbs))
        for code, wkbs in sql.lines_by_commune(conn, vintage, [c for c, _ in todo]).items()
    }
    made = iter_along_lines(
        [(c, g, lines.get(c, [])) for c, g in todo], raster, households_per_ea, household_size
    )
    # The workers go on with the next communes while a batch is written.
    for batch in _batches(made, BATCH):
        drafts = {code: eas for code, eas, _ in batch}
        for code, _, share in batch:
            _measure(summary, code, share)
        with conn.transaction():
            sql.replace_drafts(
                conn,
                census_round,
                list(drafts),
                _rows(vintage, census_round, drafts, GENERATOR),
                GENERATOR,
                _reason(households_per_ea),
            )
        summary.eas += sum(len(eas) for eas in drafts.values())
        summary.communes += len(batch)
        progress(summary.communes, len(todo))
    summary.seconds = time.perf_counter() - started
    return summary


def _batches(results: Iterator[Result], size: int) -> Iterator[list[Result]]:
    """The results in lists of `size` (the last one shorter)."""
    batch: list[Result] = []
    for result in results:
        batch.append(result)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def generate_one(
    conn: psycopg.AsyncConnection,
    vintage: str,
    code: str,
    census_round: str,
    raster: Path,
    households_per_ea: float,
    household_size: float,
    user: str,
    work: Executor | None = None,
) -> int:
    """Draft EAs of one commune that has none, inside the caller's transaction (the raster
    work on `work`'s threads)."""
    wkb = await sql.commune_coverage_wkb(conn, vintage, code)
    if wkb is None:
        raise InvalidParameter(
            f"commune {code} has no boundary in vintage {vintage}", parameter="code"
        )
    geometry = shapely.wkb.loads(wkb)
    lines = [shapely.from_wkb(w) for w in await sql.lines_of_commune(conn, vintage, code)]
    # The raster work is CPU-bound: keep the event loop serving other requests meanwhile.
    drafts = await asyncio.get_running_loop().run_in_executor(
        work,
        partial(
            generate_many_along_lines,
            [(code, geometry, lines)],
            raster,
            households_per_ea,
            household_size,
            workers=1,
        ),
    )
    await sql.add_drafts(
        conn,
        census_round,
        code,
        _rows(vintage, census_round, drafts, user),
        user,
        _reason(households_per_ea),
    )
    return sum(len(eas) for eas in drafts.values())

"""Store automatically pre-delineated EAs (boundaries.ea_generate) as drafts, with history."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import shapely
import shapely.wkb
from shapely.geometry.base import BaseGeometry

from boundaries.ea_generate import DraftEA, generate_many
from geo_service.errors import InvalidParameter

GENERATOR = "generator"
BATCH = 50  # communes per transaction, so a long national run keeps what it finished

_HISTORY = """
INSERT INTO ea_history (ea_id, action, after, user_name, reason)
SELECT id, 'generate', jsonb_build_object('type', 'Feature', 'id', id,
       'geometry', ST_AsGeoJSON(geom, 15)::jsonb,
       'properties', jsonb_build_object('code', code, 'census_round', census_round,
                                        'commune_code', commune_code, 'status', status,
                                        'population', population, 'households', households,
                                        'version', version)),
       %s, %s
FROM enumeration_area WHERE census_round = %s AND commune_code = ANY(%s)
"""


@dataclass
class GenerateSummary:
    """What a generation run did."""

    communes: int = 0
    eas: int = 0
    skipped: int = 0
    seconds: float = 0.0


def _communes(conn: psycopg.Connection, vintage: str, codes: list[str] | None
              ) -> list[tuple[str, BaseGeometry]]:
    rows = conn.execute("SELECT code, ST_AsBinary(geom) FROM commune_coverage WHERE vintage = %s"
                        " AND (%s::text[] IS NULL OR code = ANY(%s)) ORDER BY code",
                        (vintage, codes, codes)).fetchall()
    found = {code for code, _ in rows}
    missing = sorted(set(codes or []) - found)
    if missing:
        raise InvalidParameter(f"unknown commune(s) in vintage {vintage}: {', '.join(missing)}",
                               parameter="--commune")
    geoms: list[BaseGeometry] = list(shapely.from_wkb([wkb for _, wkb in rows]))
    return [(code, geom) for (code, _), geom in zip(rows, geoms, strict=True)]


_COPY = ("COPY enumeration_area (census_round, code, commune_vintage, commune_code, status,"
         " population, households, geom, updated_by) FROM STDIN")


def _rows(vintage: str, census_round: str, drafts: dict[str, list[DraftEA]], user: str
          ) -> Iterator[tuple[object, ...]]:
    for commune, eas in drafts.items():
        for ea in eas:
            yield (census_round, f"{commune}-{ea.serial:03d}", vintage, commune, "draft",
                   ea.population, ea.households,
                   shapely.to_wkb(ea.geometry, hex=True, include_srid=False), user)


def _reason(households_per_ea: float) -> str:
    return f"generated, {households_per_ea:g} households per EA"


def _store(conn: psycopg.Connection, vintage: str, census_round: str,
           drafts: dict[str, list[DraftEA]]) -> int:
    with conn.cursor().copy(_COPY) as copy:
        for row in _rows(vintage, census_round, drafts, GENERATOR):
            copy.write_row(row)
    return sum(len(eas) for eas in drafts.values())


def generate(conn: psycopg.Connection, vintage: str, census_round: str, codes: list[str] | None,
             raster: Path, households_per_ea: float, household_size: float,
             replace: bool = False, progress: Callable[[int, int], None] = lambda d, t: None
             ) -> GenerateSummary:
    """Draft EAs for each commune (skipping those that have EAs, unless replace)."""
    started = time.perf_counter()
    communes = _communes(conn, vintage, codes)
    taken = {r[0] for r in conn.execute(
        "SELECT DISTINCT commune_code FROM enumeration_area WHERE census_round = %s",
        (census_round,))}
    summary = GenerateSummary()
    todo = [(c, g) for c, g in communes if replace or c not in taken]
    summary.skipped = len(communes) - len(todo)
    for start in range(0, len(todo), BATCH):
        batch = todo[start:start + BATCH]
        drafts = generate_many(batch, raster, households_per_ea, household_size)
        batch_codes = [c for c, _ in batch]
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('ea-generate'))")
            conn.execute("DELETE FROM enumeration_area WHERE census_round = %s AND"
                         " commune_code = ANY(%s)", (census_round, batch_codes))
            summary.eas += _store(conn, vintage, census_round, drafts)
            conn.execute(_HISTORY, (GENERATOR, _reason(households_per_ea), census_round,
                                    batch_codes))
        summary.communes += len(batch)
        progress(summary.communes, len(todo))
    summary.seconds = time.perf_counter() - started
    return summary


async def generate_one(conn: psycopg.AsyncConnection, vintage: str, code: str,
                       census_round: str, raster: Path, households_per_ea: float,
                       household_size: float, user: str) -> int:
    """Draft EAs of one commune that has none, inside the caller's transaction."""
    cur = await conn.execute("SELECT ST_AsBinary(geom) FROM commune_coverage"
                             " WHERE vintage = %s AND code = %s", (vintage, code))
    row = await cur.fetchone()
    if row is None:
        raise InvalidParameter(f"commune {code} has no boundary in vintage {vintage}",
                               parameter="code")
    geometry = shapely.wkb.loads(row[0])
    # The raster work is CPU-bound: keep the event loop serving other requests meanwhile.
    drafts = await asyncio.to_thread(generate_many, [(code, geometry)], raster,
                                     households_per_ea, household_size, workers=1)
    async with conn.cursor().copy(_COPY) as copy:
        for values in _rows(vintage, census_round, drafts, user):
            await copy.write_row(values)
    await conn.execute(_HISTORY, (user, _reason(households_per_ea), census_round, [code]))
    return sum(len(eas) for eas in drafts.values())

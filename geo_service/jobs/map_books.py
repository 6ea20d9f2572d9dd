"""A commune's map book as a job's work: what the request names (checked as the map book
route checks it), its key (the same book asked twice is one job) and its drawing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from geo_core.errors import NotFound
from geo_service.ea import sql as ea_sql
from geo_service.ea.access import ReadScope
from geo_service.jobs.kinds import Context, Kind, Made
from geo_service.outputs import field_maps
from geo_service.outputs.page_workers import PageWorkers
from geo_service.settings import ServiceSettings

PROCESS = "ea-map-book"
MEDIA_TYPE = "application/pdf"


@dataclass(frozen=True)
class BookRequest:
    """A map book asked for: the commune, the round and vintage of its EAs, the language."""

    commune: dict[str, Any]  # code, name, province (of the EAs' boundary vintage)
    census_round: str
    vintage: str
    lang: str
    eas: int

    @property
    def process(self) -> str:
        """The job's process."""
        return PROCESS

    @property
    def code(self) -> str:
        """The commune's code."""
        return str(self.commune["code"])

    @property
    def file_name(self) -> str:
        """The book's file name."""
        return f"ea-map-book-{self.code}-{self.census_round}.pdf"

    def job(self) -> dict[str, Any]:
        """The job's row: its inputs, the key that joins the same request, who may read it."""
        inputs = {
            "commune": self.code,
            "round": self.census_round,
            "lang": self.lang,
            "vintage": self.vintage,
        }
        text = json.dumps([PROCESS, inputs], sort_keys=True)
        return {
            "process": PROCESS,
            "inputs": json.dumps(inputs),
            "request_key": hashlib.sha256(text.encode()).hexdigest(),
            "commune_code": self.code,
            "province_code": self.commune["province"],
            "pages_total": self.eas + 1,
        }


async def book_request(
    conn: psycopg.AsyncConnection,
    code: str,
    census_round: str | None,
    lang: str,
    scope: ReadScope,
) -> BookRequest:
    """The book of the commune's round (None: the latest), refused (naming `code` or
    `round`) when the commune is unknown, outside the reader's scope or has no EAs there."""
    commune = await ea_sql.commune_with_province(conn, code)
    if commune is None:
        raise NotFound(f"no commune {code!r}", parameter="code")
    rounds = await ea_sql.commune_rounds(conn, code)
    chosen = census_round or (rounds[0] if rounds else None)
    # (the commune the round's EAs nest in, and its province: the code may name another
    # unit in a later vintage)
    vintage = await ea_sql.round_vintage(conn, code, chosen) if chosen in rounds else None
    if vintage is not None and vintage != commune["vintage"]:
        commune = await ea_sql.commune_with_province(conn, code, vintage) or commune
    scope.check(code, commune["province"], "code")
    if chosen is None or vintage is None:
        raise NotFound(
            f"commune {code} has no EAs" + (f" in round {chosen}" if chosen else ""),
            parameter="round" if census_round else "code",
        )
    filters = ea_sql.ListFilter(commune=code, census_round=chosen, commune_vintage=vintage)
    count = await ea_sql.count_exported(conn, filters)
    return BookRequest(commune, chosen, vintage, lang, count)


async def sheet_of(
    conn: psycopg.AsyncConnection, inputs: dict[str, Any], settings: ServiceSettings
) -> field_maps.CommuneSheet:
    """What a job's book is drawn from (read when the job runs: the EAs as they are then)."""
    return await field_maps.commune_sheet(
        conn,
        inputs["commune"],
        inputs["round"],
        settings,
        inputs["lang"],
        vintage=inputs["vintage"],
    )


def draw(
    sheet: field_maps.CommuneSheet,
    workers: PageWorkers | None,
    progress: field_maps.Progress,
) -> Path:
    """The book's file (in a temporary folder the caller deletes), progress told per page."""
    return field_maps.map_book_file(sheet, workers, progress)


async def produce(ctx: Context, inputs: dict[str, Any]) -> Made:
    """The job's book: the EAs as they are when it runs, drawn page by page."""
    async with ctx.pool().connection() as conn:
        sheet = await sheet_of(conn, inputs, ctx.settings)
    path = await ctx.thread(draw, sheet, ctx.page_workers, ctx.progress)
    return Made(path, f"ea-map-book-{inputs['commune']}-{inputs['round']}.pdf", MEDIA_TYPE)


# (the limits count every kind of job: their messages name them all)
KIND = Kind(PROCESS, produce, False, "file_client_limit", "file_queue_full")

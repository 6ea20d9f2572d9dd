"""An area report (PDF or Excel) as a job's work: what the request names, checked as
`/reports/area` checks it before anything is computed, and its making, which is the
synchronous report's own code (same figures, same disclosure), one step per figure."""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import shapely
from shapely.geometry.base import BaseGeometry

from geo_service.features.aggregate import AreaLimits, check_area, requested_indicators
from geo_service.features.catalogue import read_collection
from geo_service.features.model import Collection
from geo_service.jobs.kinds import Context, Kind, Made
from geo_service.outputs import area_report
from geo_service.outputs.report_pdf import render_pdf
from geo_service.outputs.report_xlsx import render_xlsx

PROCESS = "area-report"
AREA = "area"  # the drawn area's input (WKB, lon/lat): kept out of the job's status


@dataclass(frozen=True)
class ReportJob:
    """An area report asked for: its inputs (as stored) and its steps (figures + file)."""

    inputs: dict[str, Any]
    steps: int

    @property
    def process(self) -> str:
        """The job's process."""
        return PROCESS

    def job(self) -> dict[str, Any]:
        """The job's row: its inputs, the key that joins the same request, who may read it
        (its clients: see `KIND`)."""
        text = json.dumps([PROCESS, self.inputs], sort_keys=True)
        return {
            "process": PROCESS,
            "inputs": json.dumps(self.inputs),
            "request_key": hashlib.sha256(text.encode()).hexdigest(),
            "commune_code": str(self.inputs.get("unit") or ""),
            "province_code": None,
            "pages_total": self.steps,
        }


async def drawn_request(
    conn: psycopg.AsyncConnection,
    collection: Collection,
    area: BaseGeometry,
    method: str,
    indicators: list[str] | None,
    limits: AreaLimits,
    fmt: str,
    lang: str,
) -> ReportJob:
    """A drawn (lon/lat) area's report, refused now (naming the parameter) for what the
    report itself would refuse: unknown indicators, an overlay too costly, an area too
    large."""
    area_report.check_output(fmt, lang)
    if indicators:
        await requested_indicators(conn, collection, indicators, None)
    await check_area(conn, collection, area, limits)
    inputs = {
        "report": "area",
        "collection": collection.id,
        "method": method,
        "indicators": indicators,
        "format": fmt,
        "lang": lang,
        AREA: shapely.to_wkb(area, hex=True),
    }
    return ReportJob(inputs, await area_report.figure_count(conn, collection, indicators) + 1)


async def unit_request(
    conn: psycopg.AsyncConnection, unit: str, vintage: str, fmt: str, lang: str
) -> ReportJob:
    """One unit's report (refused naming `unit` or `vintage` when there is no such unit)."""
    area_report.check_output(fmt, lang)
    _, collection = await area_report.unit_collection(conn, unit, vintage)
    inputs = {"report": "unit", "unit": unit, "vintage": vintage, "format": fmt, "lang": lang}
    return ReportJob(inputs, await area_report.figure_count(conn, collection, None) + 1)


def render_file(report: area_report.Report, fmt: str, lang: str) -> Path:
    """The report's file, in a temporary folder the caller deletes."""
    content = (render_pdf if fmt == "pdf" else render_xlsx)(report, lang)
    folder = Path(tempfile.mkdtemp(prefix="area-report-"))
    path = folder / f"report.{fmt}"
    path.write_bytes(content)
    return path


async def produce(ctx: Context, inputs: dict[str, Any]) -> Made:
    """The report as the synchronous route makes it, from the data as it is now."""
    fmt, lang = inputs["format"], inputs["lang"]
    settings = ctx.settings
    async with ctx.pool().connection() as conn:
        if inputs["report"] == "unit":
            report = await area_report.unit_report(
                conn, inputs["unit"], inputs["vintage"], settings, lang, ctx.progress
            )
        else:
            report = await area_report.drawn_area_report(
                conn,
                await read_collection(conn, inputs["collection"]),
                shapely.from_wkb(bytes.fromhex(inputs[AREA])),
                inputs["method"],
                AreaLimits(
                    settings.aggregate_max_vertices,
                    settings.aggregate_max_area_km2,
                    settings.aggregate_max_cost,
                ),
                settings.population_raster,
                None,
                settings,
                lang,
                inputs["indicators"],
                ctx.progress,
            )
    path = await ctx.thread(render_file, report, fmt, lang)
    name = area_report.file_name(inputs.get("unit"), fmt, lang)
    return Made(path, name, area_report.MEDIA_TYPES[fmt])


KIND = Kind(
    PROCESS,
    produce,
    True,
    "file_client_limit",
    "file_queue_full",
    (AREA,),
    worker_lost="report_worker_lost",
    failed="report_error",
    database="report_database",
)

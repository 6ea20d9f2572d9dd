"""A large EA download (GeoPackage, zipped Shapefile, GeoJSON or CSV) as a job's work: the
list's filters with the asking reader's scope (stored with the job, so the file holds what
that reader may read), written batch by batch as the synchronous download writes it, one
step per EA."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from geo_service.ea import sql as ea_sql
from geo_service.features.filter import parse_filter
from geo_service.jobs.kinds import Context, Kind, Made
from geo_service.outputs import ea_export

PROCESS = "ea-export"
FORMATS = ea_export.FORMATS


def file_name(commune: str | None, fmt: str) -> str:
    """The download's file name, as the synchronous download names it."""
    name = "enumeration-areas" + (f"-{commune}" if commune else "")
    return f"{name}.{ea_export.SUFFIXES[fmt]}"


@dataclass(frozen=True)
class ExportJob:
    """An EA download asked for: its filters (with the reader's scope) and its size."""

    inputs: dict[str, Any]
    eas: int

    @property
    def process(self) -> str:
        """The job's process."""
        return PROCESS

    def job(self) -> dict[str, Any]:
        """The job's row (readable by its clients only: see `KIND`)."""
        text = json.dumps([PROCESS, self.inputs], sort_keys=True)
        return {
            "process": PROCESS,
            "inputs": json.dumps(self.inputs),
            "request_key": hashlib.sha256(text.encode()).hexdigest(),
            "commune_code": str(self.inputs.get("commune") or ""),
            "province_code": None,
            "pages_total": max(1, self.eas),
        }


def export_request(selection: ea_export.EaSelection, fmt: str, eas: int) -> ExportJob:
    """The job of a download the route has checked (filters, scope, format)."""
    filters = selection.filters
    inputs = {
        "commune": filters.commune,
        "status": filters.status,
        "round": filters.census_round,
        "bbox": list(filters.bbox) if filters.bbox is not None else None,
        "scope": list(filters.scope) if filters.scope is not None else None,
        "commune_vintage": filters.commune_vintage,
        # (the CQL2 filter as sent, checked again when the job runs)
        "filter": list(filters.filter.source) if filters.filter is not None else None,
        "limit": selection.limit,
        "offset": selection.offset,
        "timeout_ms": selection.timeout_ms,
        "format": fmt,
    }
    return ExportJob(inputs, eas)


async def produce(ctx: Context, inputs: dict[str, Any]) -> Made:
    """The file of the EAs as they are when the job runs."""
    bbox = inputs["bbox"]
    scope = inputs["scope"]
    cql2 = inputs.get("filter")
    filters = ea_sql.ListFilter(
        inputs["commune"],
        inputs["status"],
        inputs["round"],
        (bbox[0], bbox[1], bbox[2], bbox[3]) if bbox is not None else None,
        tuple(scope) if scope is not None else None,
        inputs.get("commune_vintage"),
        parse_filter(cql2[0], cql2[1], ea_sql.QUERYABLES) if cql2 else None,
    )
    selection = ea_export.EaSelection(
        filters, inputs["limit"], inputs["offset"], inputs.get("timeout_ms")
    )
    fmt = inputs["format"]
    path = await ea_export.build_file(ctx.pool(), selection, fmt, ctx.progress)
    return Made(path, file_name(inputs["commune"], fmt), ea_export.MEDIA_TYPES[fmt])


# (private: the file holds what the asking reader's scope allows)
KIND = Kind(
    PROCESS,
    produce,
    True,
    "file_client_limit",
    "file_queue_full",
    ("scope",),
    worker_lost="export_worker_lost",
    failed="export_error",
    database="export_database",
    not_yours="export_private",
)

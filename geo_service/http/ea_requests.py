"""EA list requests, read the same way by `/collections/enumeration-areas/items` and the
`ea-export` process: the filters checked (box, CQL2, the reader's scope and commune), and a
download's job."""

from __future__ import annotations

import psycopg

from geo_core.errors import InvalidParameter
from geo_service.ea import sql
from geo_service.ea.access import ReadScope, check_commune
from geo_service.features.filter import parse_filter
from geo_service.features.query import parse_bbox
from geo_service.jobs import ea_exports
from geo_service.outputs import ea_export

MAX_EA_DOWNLOAD = 10_000_000  # (past every EA there could be: a larger limit is capped)


def list_filter(
    scope: ReadScope,
    commune: str | None,
    status: str | None,
    census_round: str | None,
    bbox: str | None,
    cql2: str | None,
    filter_lang: str,
) -> sql.ListFilter:
    """The EAs asked for within the reader's scope; 400 naming `bbox` or `filter`."""
    box = parse_bbox(bbox) if bbox is not None else None
    if box is not None and not (-180 <= box[0] <= box[2] <= 180 and -90 <= box[1] <= box[3] <= 90):
        raise InvalidParameter(
            "bbox must be longitude/latitude: -180..180, -90..90", parameter="bbox"
        )
    checked = None if cql2 is None else parse_filter(cql2, filter_lang, sql.QUERYABLES)
    return sql.ListFilter(commune, status, census_round, box, scope.codes, filter=checked)


async def check_scope(conn: psycopg.AsyncConnection, scope: ReadScope, commune: str | None) -> None:
    """403 naming `commune` when the reader may not read the commune's EAs."""
    if commune is not None and not scope.everywhere:
        await check_commune(conn, scope, commune)


async def export_job(
    conn: psycopg.AsyncConnection,
    selection: ea_export.EaSelection,
    fmt: str,
) -> ea_exports.ExportJob:
    """The job of a download (the EAs it holds counted now, for its steps)."""
    matched = await sql.count_exported(conn, selection.filters)
    limit = selection.limit
    returned = max(0, min(matched - selection.offset, limit if limit is not None else matched))
    return ea_exports.export_request(selection, fmt, returned)

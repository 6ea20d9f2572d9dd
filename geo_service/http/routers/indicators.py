"""`/indicators`: the catalogue and disclosure-controlled values (JSON or CSV)."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from geo_core.text import CODE, check_text, spreadsheet_safe
from geo_service.http.deps import Conn, Language
from geo_service.http.documents import (
    IndicatorDocument,
    IndicatorEntry,
    IndicatorList,
    IndicatorValues,
    Link,
    PublishedValue,
    Rechecking,
)
from geo_service.http.negotiation import best_media_type
from geo_service.http.rechecking import rechecking_headers
from indicators import partial_sums, read
from indicators.catalogue import KINDS

router = APIRouter(prefix="/indicators", tags=["indicators"])

CSV_COLUMNS = (
    "code",
    "name",
    "parent_code",
    "period",
    "value",
    "status",
    "moe",
    "parts_missing",
)


@router.get("", summary="The indicator catalogue")
async def list_indicators(
    request: Request,
    conn: Conn,
    kind: Annotated[Literal[KINDS] | None, Query(description="filter by kind")] = None,  # type: ignore[valid-type]
    source: Annotated[str | None, Query(max_length=200, description="text in the source")] = None,
) -> IndicatorList:
    """Every indicator with links to its metadata and values."""
    if source is not None:
        source = check_text(source, "source", 200)
    entries = await read.list_indicators(conn, kind, source)
    base = str(request.url_for("list_indicators"))
    return IndicatorList(
        numberReturned=len(entries),
        indicators=[
            IndicatorEntry(
                **entry,
                links=[
                    Link(rel="self", href=f"{base}/{entry['code']}"),
                    Link(rel="data", href=f"{base}/{entry['code']}/values"),
                ],
            )
            for entry in entries
        ],
    )


@router.get("/{code}", summary="One indicator's metadata and series")
async def get_indicator(code: Annotated[str, Path(pattern=CODE)], conn: Conn) -> IndicatorDocument:
    """Metadata with the vintages, levels and periods available (and how derived ones were made)."""
    return IndicatorDocument(**await read.get_indicator(conn, code))


@router.get(
    "/{code}/values",
    summary="Values of one indicator (suppressed values are null)",
    response_model=IndicatorValues,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def indicator_values(
    code: Annotated[str, Path(pattern=CODE)],
    conn: Conn,
    lang: Language,
    request: Request,
    response: Response,
    vintage: Annotated[str | None, Query(pattern=CODE)] = None,
    level: Annotated[str | None, Query(pattern=CODE)] = None,
    period: Annotated[str | None, Query(max_length=10, pattern=CODE)] = None,
    parent: Annotated[str | None, Query(pattern=CODE, description="children of this unit")] = None,
    unit: Annotated[str | None, Query(pattern=CODE, description="one unit's code")] = None,
    f: Annotated[
        Literal["json", "csv"] | None,
        Query(description="output format (default: by the Accept header, else json)"),
    ] = None,
) -> Any:
    """Values by unit code and period, with status; CSV is UTF-8 with BOM for Excel."""
    if f is None:
        chosen = best_media_type(
            request.headers.get("accept", ""), ["application/json", "text/csv"]
        )
        f = "csv" if chosen == "text/csv" else "json"
    meta = await read.get_indicator(conn, code)
    choice = read.choose_series(meta, vintage, level, period)
    # (the values and whether they are withheld, read by one statement)
    rows, withheld = await read.published_values_withheld(
        conn, choice, [code, meta.get("numerator"), meta.get("denominator")], parent, unit
    )
    # (a sum over parts some of which have no figure says so on its row, never silently)
    partial_sums.mark_rows(meta["series"], choice.vintage, choice.level, rows)
    if f == "csv":  # (a file is kept and passed on: it must not show every value hidden)
        read.refuse_withheld(withheld)
        return _csv_response(rows, f"{code}_{choice.vintage}_{choice.level}.csv")
    note = read.rechecking_note(withheld, lang)
    rechecking_headers(response, note)
    response.headers["Vary"] = "Accept"
    return IndicatorValues(
        indicator=code,
        vintage=choice.vintage,
        level=choice.level,
        period=choice.period,
        unit=meta["unit"],
        decimals=meta["decimals"],
        numberReturned=len(rows),
        values=[PublishedValue(**row) for row in rows],
        rechecking=Rechecking(**note) if note else None,
    )


def _csv_response(rows: list[dict[str, Any]], filename: str) -> Response:
    buffer = io.StringIO()
    buffer.write("\ufeff")  # BOM: Excel then reads the Vietnamese names as UTF-8
    writer = csv.DictWriter(
        buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\r\n"
    )
    writer.writeheader()
    writer.writerows({k: spreadsheet_safe(v) for k, v in row.items()} for row in rows)
    return Response(
        buffer.getvalue().encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Vary": "Accept"},
    )

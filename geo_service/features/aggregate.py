"""Statistics for a drawn area: apportion unit values by area or population share.

Counts are summed by share; rates, densities and shares are recomputed from apportioned
numerators and denominators; indexes are not apportioned.

Disclosure: by default (suppression) a result is computed from published values only and is
suppressed when it touches a hidden unit or falls below the indicator's threshold, so it
tells nothing the published tables do not. For counts whose catalogue entry offers it
(`cell_key_noise`), a client may ask for the cell-key method instead: hidden units then
count with a perturbed value fixed per unit and cell (see `cell_key_values` in migration
0011), so no query or combination of queries gives back more than that perturbed figure.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import psycopg
import shapely
from shapely.geometry.base import BaseGeometry

from geo_core.crs import OutputCrs
from geo_core.errors import InvalidParameter, NotFound, PayloadTooLarge, TooExpensive
from geo_core.geojson import polygon_from_geojson, to_lonlat
from geo_service.features import sql
from geo_service.features.model import Collection
from indicators import read
from indicators.apportion import Apportioned, worst
from indicators.catalogue import QUOTIENT_KINDS
from indicators.sql import Selection, cell_key_values, published_values
from indicators.zonal import zonal_statistics


@dataclass(frozen=True)
class AreaLimits:
    """How big a drawn area may be, and how much work its overlay may take."""

    max_vertices: int = 100_000
    max_area_km2: float = 500_000.0
    max_cost: int = 20_000_000  # vertices × units touched


def parse_polygon(geojson: dict[str, Any], crs: OutputCrs, limits: AreaLimits) -> BaseGeometry:
    """A valid (Multi)Polygon in lon/lat from a GeoJSON geometry or Feature."""
    if isinstance(geojson, dict) and geojson.get("type") == "Feature":
        geojson = geojson.get("geometry") or {}
    geom = polygon_from_geojson(geojson, limits.max_vertices)
    if not geom.is_valid:
        raise InvalidParameter(
            f"geometry is invalid: {shapely.is_valid_reason(geom)}", parameter="geometry"
        )
    return to_lonlat(geom, crs)


async def unit_shares(
    conn: psycopg.AsyncConnection,
    collection: Collection,
    area: BaseGeometry,
    method: str,
    raster: Path,
    work: Executor | None = None,
) -> list[dict[str, Any]]:
    """The units the area touches, with the share of each unit that lies inside it."""
    rows = [
        r
        for r in await sql.pieces(conn, collection.vintage, collection.level, shapely.to_wkb(area))
        if r["piece_m2"] > 0
    ]
    for row in rows:
        row["area_share"] = min(1.0, row["piece_m2"] / row["unit_m2"]) if row["unit_m2"] else 0.0
    if method == "population" and rows:
        await asyncio.get_running_loop().run_in_executor(work, _population_shares, rows, raster)
    for row in rows:
        row["share"] = row[f"{method}_share"]
        row["inside_km2"] = round(row["piece_m2"] / 1e6, 6)
        for key in ("piece", "unit", "unit_m2", "piece_m2"):
            row.pop(key)
    return rows


def _population_shares(rows: list[dict[str, Any]], raster: Path) -> None:
    pieces = gpd.GeoDataFrame(
        {"code": [f"p{i}" for i in range(len(rows))]},
        geometry=shapely.from_wkb([r["piece"] for r in rows]),
        crs="EPSG:4326",
    )
    units = gpd.GeoDataFrame(
        {"code": [f"u{i}" for i in range(len(rows))]},
        geometry=shapely.from_wkb([r["unit"] for r in rows]),
        crs="EPSG:4326",
    )
    inside = zonal_statistics(raster, pieces, "sum")
    whole = zonal_statistics(raster, units, "sum")
    for row, part, total in zip(rows, inside, whole, strict=True):
        if total.value:  # an unpopulated unit falls back to its area share
            row["population_share"] = min(1.0, (part.value or 0.0) / total.value)
        else:
            row["population_share"] = row["area_share"]


DISCLOSURE_METHODS = ("suppression", "cell-key")


async def _apportioned(
    conn: psycopg.AsyncConnection,
    indicator: str,
    period: str,
    collection: Collection,
    shares: list[dict[str, Any]],
    noise: int | None = None,
) -> Apportioned:
    codes = [s["code"] for s in shares]
    selection = Selection(indicator, collection.vintage, collection.level, period, codes=codes)
    if noise:
        rows = await cell_key_values(conn, selection, noise)
    else:
        rows = await published_values(conn, selection)
    values = {r["code"]: (r["value"], r["status"]) for r in rows}
    total = Apportioned()
    for s in shares:
        value, status = values.get(s["code"], (None, "not_available"))
        total.add(value, status, s["share"])
    return total


async def estimate(
    conn: psycopg.AsyncConnection,
    meta: dict[str, Any],
    period: str,
    collection: Collection,
    shares: list[dict[str, Any]],
    disclosure: str = "suppression",
) -> dict[str, Any]:
    """The indicator's value for the drawn area, with status and how it was obtained."""
    result: dict[str, Any] = {
        "indicator": meta["code"],
        "period": period,
        "unit": meta["unit"],
        "kind": meta["kind"],
        "value": None,
        "disclosure": "suppression",
    }
    noise = None
    if disclosure == "cell-key":
        if meta["kind"] == "count" and meta["cell_key_noise"]:
            noise = int(meta["cell_key_noise"])
            result["disclosure"] = "cell-key"
        else:
            result["note"] = f"the cell-key method is not offered for {meta['code']}"
    if not shares:  # a sum over no unit is unknown, not zero
        result.update(status="not_available", note=f"the area touches no unit of {collection.id}")
        return result
    if meta["kind"] == "count":
        total = await _apportioned(conn, meta["code"], period, collection, shares, noise)
        result["method"] = "sum of unit values × share"
        if noise:
            result["method"] += f" (hidden units perturbed by up to ±{noise}, cell key)"
    elif meta["kind"] in QUOTIENT_KINDS and meta["numerator"] and meta["denominator"]:
        num = await _apportioned(conn, meta["numerator"], period, collection, shares)
        den = await _apportioned(conn, meta["denominator"], period, collection, shares)
        total = Apportioned(
            num.value / den.value * meta["multiplier"] if den.value else 0.0,
            worst(num.status, den.status),
        )
        if not den.value and total.status == "ok":
            total.status = "not_available"
        result["method"] = f"apportioned {meta['numerator']} / apportioned {meta['denominator']}"
    else:
        result.update(
            status="not_available", note=f"a {meta['kind']} cannot be apportioned to a drawn area"
        )
        return result
    if (
        not noise
        and total.status in ("ok", "provisional")
        and await _below_threshold(conn, meta, period, collection, shares, total.value)
    ):
        total.status = "suppressed"
    result["status"] = total.status
    if total.status in ("ok", "provisional"):
        result["value"] = round(total.value, max(int(meta["decimals"]), 0) + 2)
    return result


async def _below_threshold(
    conn: psycopg.AsyncConnection,
    meta: dict[str, Any],
    period: str,
    collection: Collection,
    shares: list[dict[str, Any]],
    value: float,
) -> bool:
    """The disclosure rule applied to the drawn area's own (apportioned) count."""
    threshold = meta["suppress_below"]
    if threshold is None:
        return False
    if meta["disclosure_basis"]:
        basis = await _apportioned(conn, meta["disclosure_basis"], period, collection, shares)
        return basis.status == "suppressed" or basis.value < threshold
    return bool(value < threshold)


def _periods(meta: dict[str, Any], vintage: str, level: str) -> list[str]:
    for series in meta["series"]:
        if series["vintage"] == vintage and series["level"] == level:
            return [str(p) for p in series["periods"]]
    return []


async def _check_cost(
    conn: psycopg.AsyncConnection, collection: Collection, area: BaseGeometry, limits: AreaLimits
) -> None:
    """Refuse an overlay bigger than the bound before the database starts it."""
    vertices = int(shapely.get_num_coordinates(area))
    touched = await sql.units_in_bbox(conn, collection.vintage, collection.level, area.bounds)
    if vertices * touched > limits.max_cost:
        raise TooExpensive(
            f"the area has {vertices:,} vertices and reaches {touched:,} units: "
            f"{vertices * touched:,} vertex-unit overlays, more than the {limits.max_cost:,} a "
            "request may ask for; draw a simpler or smaller area",
            parameter="geometry",
            limit=limits.max_cost,
        )


@dataclass(frozen=True)
class Requested:
    """One indicator asked for a drawn area: its catalogue entry and the period to estimate
    (None: it has no values on the collection)."""

    meta: dict[str, Any]
    period: str | None


async def requested_indicators(
    conn: psycopg.AsyncConnection, collection: Collection, codes: list[str], period: str | None
) -> list[Requested]:
    """The indicators checked (they exist, and have the period asked for): cheap reads, done
    before the overlay so that a mistyped code costs the database nothing."""
    requested = []
    for code in codes:
        try:
            meta = await read.get_indicator(conn, code)
        except NotFound as exc:
            raise InvalidParameter(exc.message, parameter="indicators") from exc
        periods = _periods(meta, collection.vintage, collection.level)
        if periods and period is not None and period not in periods:
            raise InvalidParameter(
                f"indicator {code!r} has no period {period!r} for "
                f"{collection.id}; periods: {', '.join(periods)}",
                parameter="period",
                valid=periods,
            )
        requested.append(Requested(meta, (period or periods[-1]) if periods else None))
    return requested


async def check_area(
    conn: psycopg.AsyncConnection, collection: Collection, area: BaseGeometry, limits: AreaLimits
) -> float:
    """The area in km², refused (naming `geometry`) past the overlay cost or the size limit."""
    await _check_cost(conn, collection, area, limits)
    area_km2 = await sql.area_km2(conn, shapely.to_wkb(area))
    if area_km2 > limits.max_area_km2:
        raise PayloadTooLarge(
            f"the area is {area_km2:,.0f} km²; the limit is {limits.max_area_km2:,.0f} km²",
            parameter="geometry",
        )
    return area_km2


async def area_statistics(
    conn: psycopg.AsyncConnection,
    collection: Collection,
    area: BaseGeometry,
    requested: list[Requested],
    method: str,
    limits: AreaLimits,
    raster: Path,
    work: Executor | None = None,
    disclosure: str = "suppression",
) -> dict[str, Any]:
    """Each indicator (checked by `requested_indicators`) estimated for a drawn lon/lat area,
    with the units it touches and how much of the area lies within units."""
    area_km2 = await check_area(conn, collection, area, limits)
    shares = await unit_shares(conn, collection, area, method, raster, work)
    results = []
    for wanted in requested:
        if wanted.period is None:
            results.append(
                {
                    "indicator": wanted.meta["code"],
                    "value": None,
                    "status": "not_available",
                    "note": f"no values for {collection.id}",
                }
            )
            continue
        results.append(
            await estimate(conn, wanted.meta, wanted.period, collection, shares, disclosure)
        )
    covered = sum(s["inside_km2"] for s in shares) / area_km2 if area_km2 else 0.0
    return {
        "collection": collection.id,
        "method": method,
        "area_km2": round(area_km2, 3),
        # values describe only the part of the area that lies within units
        "covered_share": round(min(covered, 1.0), 6),
        "results": results,
        "units": shares,
    }

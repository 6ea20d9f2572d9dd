"""The coverage report of a commune's EAs: gaps, overlaps, EAs leaving it, workload."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from geo_service.ea import sql
from geo_service.ea.rules import EaRules


async def coverage_report(
    conn: psycopg.AsyncConnection, commune: Any, census_round: str, rules: EaRules
) -> dict[str, Any]:
    """What stands between this commune's EAs and a gap-free, balanced coverage."""
    params = {
        "vintage": commune.vintage,
        "commune": commune.code,
        "round": census_round,
        "min_m2": rules.tolerance_m**2,
        "hh_min": rules.households_min,
        "hh_max": rules.households_max,
    }
    area, count, gaps, overlaps, leaving, workload = await sql.coverage(conn, params)
    gaps, overlaps = _json(gaps), _json(overlaps)
    gap_area = sum(g["area_m2"] for g in gaps)
    return {
        "commune": commune.code,
        "vintage": commune.vintage,
        "round": census_round,
        "eas": count,
        "commune_area_m2": round(area, 1),
        "gaps": gaps,
        "gap_share": round(gap_area / area, 6) if area else 0.0,
        "overlaps": overlaps,
        "outside_commune": _json(leaving),
        "outside_workload_band": _json(workload),
        "complete": not gaps and not overlaps and not _json(leaving) and count > 0,
    }


def _json(value: Any) -> list[dict[str, Any]]:
    return json.loads(value) if isinstance(value, str) else list(value or [])

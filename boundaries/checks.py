"""Check boundary features before anything is written: codes, names, geometries."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import MultiPolygon
from shapely.geometry.base import BaseGeometry

from boundaries.readers import FEATURE_INDEX, SOURCE_FILE
from geo_core.errors import LoaderError
from geo_core.text import as_code

# Official GSO code formats (Decision 124/2004 and 19/2025).
CODE_WIDTHS = {"province": 2, "district": 3, "commune": 5}
CODE_PATTERNS = {level: rf"\d{{{width}}}" for level, width in CODE_WIDTHS.items()}


@dataclass(frozen=True)
class Problem:
    """One finding about one feature."""

    source: str
    index: int | None  # None: about the whole file
    code: str | None
    message: str

    def __str__(self) -> str:
        if self.index is None:
            return f"{self.source}: {self.message}"
        code = f" code {self.code}" if self.code is not None else ""
        return f"{self.source}: feature {self.index}{code}: {self.message}"


@dataclass
class CheckReport:
    """Everything found: errors block the load, repairs and warnings are reported."""

    errors: list[Problem] = field(default_factory=list)
    repaired: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class FieldMap:
    """Which source fields hold the code, name, parent code and unit type."""

    code: str
    name: str
    parent: str | None = None
    unit_type: str | None = None

    def required(self) -> list[tuple[str, str]]:
        """(option, field) pairs that must exist in the source."""
        pairs = [("--code-field", self.code), ("--name-field", self.name)]
        if self.parent:
            pairs.append(("--parent-field", self.parent))
        if self.unit_type:
            pairs.append(("--type-field", self.unit_type))
        return pairs


def missing_fields(frame: gpd.GeoDataFrame, fields: FieldMap) -> list[str]:
    """Messages for every named field that the source does not have."""
    available = [c for c in frame.columns if c not in ("geometry", FEATURE_INDEX, SOURCE_FILE)]
    if not available:
        return ["the input has no attribute fields (a shapefile needs its .dbf beside the .shp)"]
    return [
        f"{option} {name!r} is not a field of the input; fields are: {', '.join(available)}"
        for option, name in fields.required()
        if name not in frame.columns
    ]


def _as_text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    # composed form (NFC), as GSO publishes names: "ộ" one character, not "o" + two marks
    text = unicodedata.normalize("NFC", str(value).strip())
    return text or None


def _polygonal_part(geom: BaseGeometry) -> MultiPolygon:
    """Keep only the polygonal parts (make_valid can return collections with lines)."""
    polygons = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    flat = [p for g in polygons for p in shapely.get_parts(g)]
    return MultiPolygon(flat)


def _repair(geom: BaseGeometry) -> tuple[MultiPolygon, str | None]:
    """Return a valid MultiPolygon and, if it had to be repaired, why."""
    if geom.is_valid:
        return _polygonal_part(geom), None
    reason = shapely.is_valid_reason(geom)
    try:
        # "structure" unions overlapping parts, so no area is lost.
        fixed = shapely.make_valid(geom, method="structure", keep_collapsed=False)
    except shapely.errors.GEOSException:
        fixed = shapely.make_valid(geom, method="linework")
    return _polygonal_part(fixed), reason


def check_features(
    frame: gpd.GeoDataFrame, fields: FieldMap, code_pattern: str
) -> tuple[gpd.GeoDataFrame, CheckReport]:
    """Normalise codes, names and geometries; collect every problem at once."""
    report = CheckReport()
    try:
        pattern = re.compile(code_pattern)
    except re.error as exc:
        raise LoaderError(
            f"--code-pattern {code_pattern!r} is not a regular expression: {exc}",
            parameter="--code-pattern",
        ) from exc
    rows: list[dict[str, object]] = []
    for row in frame.to_dict("records"):
        where = (str(row[SOURCE_FILE]), int(row[FEATURE_INDEX]))
        code = as_code(row[fields.code])
        problems = _row_problems(row, fields, code, pattern)
        geom, repair_reason, geom_problem = _check_geometry(row["geometry"])
        if geom_problem:
            problems.append(geom_problem)
        report.errors.extend(Problem(*where, code, p) for p in problems)
        if repair_reason:
            report.repaired.append(Problem(*where, code, f"repaired: {repair_reason}"))
        rows.append(
            {
                "code": code,
                "name": _as_text(row[fields.name]),
                "parent_code": as_code(row[fields.parent]) if fields.parent else None,
                "unit_type": _as_text(row[fields.unit_type]) if fields.unit_type else None,
                "geometry": geom,
                SOURCE_FILE: where[0],
                FEATURE_INDEX: where[1],
            }
        )
    out = gpd.GeoDataFrame(pd.DataFrame(rows), geometry="geometry", crs=frame.crs)
    report.errors.extend(_duplicate_codes(out))
    return out, report


def _row_problems(
    row: dict[str, Any], fields: FieldMap, code: str | None, pattern: re.Pattern[str]
) -> list[str]:
    problems = []
    if code is None:
        problems.append(f"no code in field {fields.code!r}")
    elif not pattern.fullmatch(code):
        problems.append(
            f"code {code!r} does not match the level's format {pattern.pattern!r}"
            " (see --code-pattern)"
        )
    if _as_text(row[fields.name]) is None:
        problems.append(f"no name in field {fields.name!r}")
    if fields.parent and as_code(row[fields.parent]) is None:
        problems.append(f"no parent code in field {fields.parent!r}")
    return problems


def _check_geometry(
    geom: BaseGeometry | None,
) -> tuple[MultiPolygon | None, str | None, str | None]:
    """(valid geometry, repair reason, blocking problem)."""
    if geom is None or geom.is_empty:
        return None, None, "empty geometry"
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        return None, None, f"geometry is a {geom.geom_type}, not a polygon"
    coords = shapely.get_coordinates(geom)
    if not np.isfinite(coords).all():
        return None, None, "geometry has non-finite coordinates"
    fixed, reason = _repair(geom)
    if fixed.is_empty:
        return None, None, f"geometry is invalid ({reason}) and nothing polygonal is left"
    return fixed, reason, None


def _duplicate_codes(frame: gpd.GeoDataFrame) -> list[Problem]:
    coded = frame[frame["code"].notna()]
    dupes = coded[coded.duplicated("code", keep=False)]
    problems = []
    for code, group in dupes.groupby("code", sort=True):
        places = ", ".join(
            f"{s}#{i}" for s, i in zip(group[SOURCE_FILE], group[FEATURE_INDEX], strict=True)
        )
        first = group.iloc[0]
        problems.append(
            Problem(
                str(first[SOURCE_FILE]),
                int(first[FEATURE_INDEX]),
                str(code),
                f"duplicate code {code!r} (features {places})",
            )
        )
    return problems


def outside_parent_shares(children: gpd.GeoSeries, parents: gpd.GeoSeries) -> np.ndarray:
    """Share of each child's area that lies outside its parent (aligned arrays)."""
    child = np.asarray(children.values, dtype=object)
    parent = np.asarray(parents.values, dtype=object)
    shapely.prepare(parent)
    # most children lie well inside their parent: a prepared test spares their difference
    straddling = ~shapely.contains_properly(parent, child)
    outside = np.zeros(len(child))
    outside[straddling] = shapely.area(shapely.difference(child[straddling], parent[straddling]))
    area = shapely.area(child)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(area > 0, outside / area, 0.0)

"""Coarser units merged from a clean coverage of finer ones (the 2009 provinces and districts
from the communes), and their population summed with what is missing named."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import box

from boundaries.dissolve import dissolve_coverage
from geo_core.errors import LoaderError
from geo_service.demo import HISTORY_LEVELS, dissolved_units, summed_population

# a 3 × 2 grid of unit squares: communes a1 a2 a3 (district 10101) over b1 b2 (10103) and c1
# (10105, a third district of the same province); a gap inside a1 that no commune fills, and a
# hole in a2 that a commune of 10105 fills (an enclave)
GAP = box(0.4, 1.4, 0.6, 1.6)
ENCLAVE = box(1.4, 1.4, 1.6, 1.6)
GRID = {
    "1010101": box(0, 1, 1, 2).difference(GAP),
    "1010102": box(1, 1, 2, 2).difference(ENCLAVE),
    "1010103": box(2, 1, 3, 2),
    "1010301": box(0, 0, 1, 1),
    "1010302": box(1, 0, 2, 1),
    "1010501": box(2, 0, 3, 1),
    "1010502": ENCLAVE,
}


def _communes() -> gpd.GeoDataFrame:
    codes = list(GRID)
    return gpd.GeoDataFrame(
        {
            "code": codes,
            "district_code": [c[:5] for c in codes],
            "district_name": ["Quận Ba Đình"] * 3
            + ["Quận Tây Hồ", "", "Huyện Sóc Sơn"] * 1
            + ["Huyện Sóc Sơn"],
            "province_code": [c[:3] for c in codes],
            "province_name": ["Hà Nội"] * 7,
            "population": [100.0, 0.0, 50.5, 20.0, 30.0, 0.0, 5.0],
        },
        geometry=list(GRID.values()),
        crs="EPSG:4326",
    )


def test_units_merge_into_their_group_gaps_filled_enclaves_kept() -> None:
    communes = _communes()
    codes, merged = dissolve_coverage(communes.geometry.values, communes["district_code"])
    assert codes == ["10101", "10103", "10105"]
    # the gap a1 left is filled (it lies within the district's outline), the enclave is not
    assert shapely.equals(merged[0], box(0, 1, 3, 2).difference(ENCLAVE))
    assert shapely.equals(merged[1], box(0, 0, 2, 1))
    assert shapely.equals(merged[2], shapely.union(GRID["1010501"], ENCLAVE))
    assert shapely.coverage_is_valid(merged)
    # no inner edge left, and the vertices kept (the neighbours' edges still match them)
    assert merged[1].geom_type == "Polygon" and shapely.get_num_coordinates(merged[1]) == 7
    (province,), (whole,) = dissolve_coverage(communes.geometry.values, communes["province_code"])
    assert province == "101" and shapely.equals(whole, box(0, 0, 3, 2))


def test_overlapping_units_are_refused_naming_what() -> None:
    geoms = np.array([box(0, 0, 1, 1), box(0.5, 0, 1.5, 1)], dtype=object)
    with pytest.raises(LoaderError, match="the districts of 2009 are not a clean coverage"):
        dissolve_coverage(geoms, ["1", "1"], "the districts of 2009")
    with pytest.raises(LoaderError, match="2 geometries but 1 keys"):
        dissolve_coverage(geoms, ["1"])


def test_dissolved_units_are_named_typed_and_parented() -> None:
    communes = _communes()
    coverage = {c: shapely.to_wkb(g) for c, g in GRID.items()}
    province, district = HISTORY_LEVELS
    provinces = dissolved_units(communes, coverage, province)
    assert provinces[["code", "name", "type"]].values.tolist() == [
        ["101", "Hà Nội", "Thành phố Trung ương"]
    ]
    districts = dissolved_units(communes, coverage, district)
    # (the commune without a district name does not name its district)
    assert districts[["code", "name", "type", "parent"]].values.tolist() == [
        ["10101", "Quận Ba Đình", "Quận", "101"],
        ["10103", "Quận Tây Hồ", "Quận", "101"],
        ["10105", "Huyện Sóc Sơn", "Huyện", "101"],
    ]
    with pytest.raises(LoaderError, match="1 communes of 2009 are not loaded"):
        dissolved_units(communes, {c: w for c, w in coverage.items() if c != "1010302"}, district)


def test_sums_leave_out_missing_communes_and_say_which_units_have_them() -> None:
    values, derivation = summed_population(_communes(), HISTORY_LEVELS[1])
    assert values.values.tolist() == [["10101", "150.5"], ["10103", "50"], ["10105", "5"]]
    assert derivation["parts"] == 7 and derivation["parts_not_available"] == 2
    assert derivation["units_with_parts_not_available"] == {"10101": 1, "10105": 1}
    values, derivation = summed_population(_communes(), HISTORY_LEVELS[0])
    assert values.values.tolist() == [["101", "205.5"]]
    assert derivation["units_with_parts_not_available"] == {"101": 2}

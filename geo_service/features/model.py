"""What a features or tiles request is about: a collection, and the checked query of it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from geo_core.crs import WGS84_LONLAT, OutputCrs
from geo_service.features.filter import Filter

LEVEL_TITLES = {
    "province": ("Provinces", "Tỉnh"),
    "district": ("Districts", "Huyện"),
    "commune": ("Communes", "Xã"),
}
COLLECTION_ID = re.compile(r"^(?P<level>[a-z]+)-(?P<vintage>[A-Za-z0-9_.-]{1,32})$")
# The attributes every unit has, in output order (their SQL: features.sql).
UNIT_PROPERTIES = ("code", "name", "parent_code", "unit_type", "area_km2")
# The change of an indicator since a compared period: absolute, percent of the earlier
# value, and the worse of the two statuses (as /maps/values gives it).
CHANGE_SUFFIXES = ("_change", "_change_percent", "_change_status")


@dataclass(frozen=True)
class Collection:
    """A published set of units of one level and vintage, id `{level}-{vintage}`."""

    id: str
    level: str
    vintage: str
    count: int
    extent: tuple[float, float, float, float]
    valid_from: str
    valid_to: str | None
    description: str
    # indicator → the periods it has values for on these units
    periods: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)

    @property
    def title(self) -> str:
        """Human title, e.g. "Communes 2025"."""
        english = LEVEL_TITLES.get(self.level, (self.level.title(), ""))[0]
        return f"{english} {self.vintage}"


@dataclass(frozen=True)
class IndicatorJoin:
    """An indicator value joined as the properties `{code}` and `{code}_status` (only for
    the filter when not `shown`)."""

    code: str
    period: str
    shown: bool = True
    # an earlier period: the change since it is joined too (`{code}_change`, …)
    compare: str | None = None

    def names(self) -> list[str]:
        """The properties this join adds."""
        names = [self.code, f"{self.code}_status"]
        if self.compare is not None:
            names += [f"{self.code}{suffix}" for suffix in CHANGE_SUFFIXES]
        return names


@dataclass
class ItemQuery:
    """A validated request for items (or tiles) of one collection."""

    collection: Collection
    limit: int | None = 100  # None: no limit
    offset: int = 0
    bbox: tuple[float, float, float, float] | None = None
    bbox_crs: OutputCrs = WGS84_LONLAT
    crs: OutputCrs = WGS84_LONLAT
    # SRIDs PostGIS does not list in spatial_ref_sys are transformed by their EPSG name
    registered_srids: frozenset[int] = frozenset({4326, 3857})
    properties: list[str] | None = None
    sortby: list[tuple[str, bool]] = field(default_factory=list)  # (property, descending)
    parent: str | None = None
    search: list[str] = field(default_factory=list)  # accent-folded terms, any may match
    indicators: list[IndicatorJoin] = field(default_factory=list)
    band: int | None = None
    precision: int | None = None
    code: str | None = None
    in_force: bool = True  # False: `datetime` is outside the vintage's validity, no items
    filter: Filter | None = None  # (Part 3) a checked CQL2 filter
    filter_crs: OutputCrs = WGS84_LONLAT  # of the filter's geometries
    # database time each statement of the query may take (None: the connection's own)
    statement_timeout_ms: int | None = None

    def property_names(self) -> list[str]:
        """Every property this query can return, in output order."""
        names = list(UNIT_PROPERTIES)
        for ind in self.indicators:
            if ind.shown:
                names += ind.names()
        return names

    def selected(self) -> list[str]:
        """The properties to return (all unless `properties=` chose some)."""
        return self.properties if self.properties is not None else self.property_names()

    def is_number(self, name: str) -> bool:
        """Whether a property holds numbers (the area and indicator values)."""
        return name == "area_km2" or any(
            name in (ind.code, f"{ind.code}_change", f"{ind.code}_change_percent")
            for ind in self.indicators
        )

    def queryables(self) -> dict[str, str]:
        """What a filter may use, and the kind of each: the unit's attributes, its geometry,
        its vintage's validity and every indicator with values on the collection."""
        kinds = dict.fromkeys(UNIT_PROPERTIES, "string") | {"area_km2": "number"}
        kinds |= {"geometry": "geometry", "valid_from": "instant", "valid_to": "instant"}
        for code in sorted(self.collection.periods):
            if code not in kinds:  # (a unit's own attribute wins over a namesake indicator)
                kinds |= {code: "number", f"{code}_status": "string"}
        return kinds

    def tile_properties(self) -> list[str]:
        """What tiles carry unless `properties=` chose: code, name and the indicators."""
        if self.properties is not None:
            return self.properties
        names = ["code", "name"]
        for ind in self.indicators:
            if ind.shown:
                names += ind.names()
        return names

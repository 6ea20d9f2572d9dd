"""The JSON documents the API answers with, as typed models (and so in the OpenAPI schema).

Routes return them with `response_model_exclude_unset=True`, so a key the service leaves out
(a link without a title, a result without a note) stays out of the JSON as well.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from geo_core.text import CODE, CRS

Number = int | float


class Document(BaseModel):
    """Base of the documents: field names as in the JSON."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class Link(Document):
    """A web link (RFC 8288) as OGC APIs write it."""

    href: str
    rel: str
    type: str | None = None
    title: str | None = None
    templated: bool | None = None


# ---- OGC API common, features and tiles ----


class LandingPage(Document):
    """`/`: what the service is and where its parts are."""

    title: str
    description: str
    version: str
    links: list[Link]


class Conformance(Document):
    """`/conformance`: the OGC conformance classes implemented."""

    conforms_to: list[str] = Field(alias="conformsTo")


class SpatialExtent(Document):
    """Bounding boxes and their CRS."""

    bbox: list[list[float]]
    crs: str


class TemporalExtent(Document):
    """Validity intervals (an open end is null)."""

    interval: list[list[str | None]]


class Extent(Document):
    """Where and when a collection's items are."""

    spatial: SpatialExtent
    temporal: TemporalExtent | None = None


class CollectionIndicator(Document):
    """An indicator the items (and tiles) of a collection can carry, and its periods."""

    code: str
    name_vi: str
    name_en: str
    unit: str
    kind: str
    periods: list[str]


class CollectionDocument(Document):
    """`/collections/{id}`: one collection's metadata (the EAs' collection too)."""

    id: str
    title: str
    item_type: str = Field(alias="itemType")
    description: str
    extent: Extent | None = Field(
        default=None, description="left out while the collection is empty"
    )
    crs: list[str]
    storage_crs: str = Field(alias="storageCrs")
    number_of_items: int = Field(alias="numberOfItems")
    indicators: list[CollectionIndicator] | None = Field(
        default=None, description="indicators its items and tiles can carry (indicator=, period=)"
    )
    links: list[Link]


class Collections(Document):
    """`/collections`: every collection."""

    collections: list[CollectionDocument]
    links: list[Link]


class QueryableSchema(Document):
    """One queryable property (a JSON Schema of its values)."""

    title: str
    description: str | None = None
    type: str | list[str] | None = None
    format: str | None = None
    enum: list[str] | None = None
    x_ogc_role: str | None = Field(default=None, alias="x-ogc-role")


class LegacyQueryable(Document):
    """A queryable as the 2021 drafts of Part 3 listed them (read by GDAL's OAPIF driver)."""

    id: str
    type: str
    title: str


class Queryables(Document):
    """`/collections/{id}/queryables`: the properties a filter may use (JSON Schema)."""

    schema_: str = Field(alias="$schema")
    id_: str = Field(alias="$id")
    type: str
    title: str
    properties: dict[str, QueryableSchema]
    additional_properties: bool = Field(alias="additionalProperties")
    queryables: list[LegacyQueryable] = Field(
        description="the same properties as a list, for clients of the draft standard "
        "(GDAL's OAPIF driver filters on the server only with it)"
    )


class Tileset(Document):
    """One tileset in a list of tilesets."""

    title: str
    data_type: str = Field(alias="dataType")
    crs: str
    tile_matrix_set_uri: str = Field(alias="tileMatrixSetURI")
    links: list[Link]


class Tilesets(Document):
    """`/collections/{id}/tiles`: the tilesets of a collection."""

    tilesets: list[Tileset]
    links: list[Link]


class TileMatrixSetRef(Document):
    """A tiling scheme in the list of them."""

    id: str
    title: str
    uri: str
    links: list[Link]


class TileMatrixSets(Document):
    """`/tileMatrixSets`: the tiling schemes."""

    tile_matrix_sets: list[TileMatrixSetRef] = Field(alias="tileMatrixSets")


class TileMatrix(Document):
    """One zoom level of a tiling scheme."""

    id: str
    scale_denominator: float = Field(alias="scaleDenominator")
    cell_size: float = Field(alias="cellSize")
    corner_of_origin: str = Field(alias="cornerOfOrigin")
    point_of_origin: list[float] = Field(alias="pointOfOrigin")
    tile_width: int = Field(alias="tileWidth")
    tile_height: int = Field(alias="tileHeight")
    matrix_width: int = Field(alias="matrixWidth")
    matrix_height: int = Field(alias="matrixHeight")
    # the same in Tile Matrix Set 1.0 (17-083r2) names: GDAL 3.6 (Debian 12, QGIS 3.22) reads
    # only those
    identifier: str
    top_left_corner: list[float] = Field(alias="topLeftCorner")


class TmsBoundingBox(Document):
    """A Tile Matrix Set 1.0 bounding box (read by GDAL 3.6 and older)."""

    type: str = "BoundingBoxType"
    crs: str
    lower_corner: list[float] = Field(alias="lowerCorner")
    upper_corner: list[float] = Field(alias="upperCorner")


class TileMatrixSet(Document):
    """`/tileMatrixSets/{id}`: OGC Two Dimensional Tile Matrix Set 2.0, with the 1.0 members
    older clients need (identifier, supportedCRS, boundingBox)."""

    id: str
    title: str
    uri: str
    crs: str
    ordered_axes: list[str] = Field(alias="orderedAxes")
    well_known_scale_set: str = Field(alias="wellKnownScaleSet")
    tile_matrices: list[TileMatrix] = Field(alias="tileMatrices")
    identifier: str
    supported_crs: str = Field(alias="supportedCRS")
    bounding_box: TmsBoundingBox = Field(alias="boundingBox")


class BoundingBox(Document):
    """Two corners and their CRS."""

    lower_left: list[float] = Field(alias="lowerLeft")
    upper_right: list[float] = Field(alias="upperRight")
    crs: str


class PropertySchema(Document):
    """One property a tile's features carry (from the zoom `x-minTileMatrix`, if given)."""

    description: str
    type: str
    min_tile_matrix: str | None = Field(default=None, alias="x-minTileMatrix")


class PropertiesSchema(Document):
    """The properties of a layer's features."""

    type: str
    description: str
    properties: dict[str, PropertySchema]


class TileLayer(Document):
    """A layer of the vector tiles."""

    id: str
    data_type: str = Field(alias="dataType")
    geometry_type: str = Field(alias="geometryType")
    min_tile_matrix: str = Field(alias="minTileMatrix")
    max_tile_matrix: str = Field(alias="maxTileMatrix")
    properties_schema: PropertiesSchema = Field(alias="propertiesSchema")


class TileMatrixLimits(Document):
    """The tiles a tileset has at one zoom (OGC 2D Tile Matrix Set: TileMatrixLimits)."""

    tile_matrix: str = Field(alias="tileMatrix")
    min_tile_row: int = Field(alias="minTileRow")
    max_tile_row: int = Field(alias="maxTileRow")
    min_tile_col: int = Field(alias="minTileCol")
    max_tile_col: int = Field(alias="maxTileCol")


class TilesetMetadata(Document):
    """`/collections/{id}/tiles/{tms}`: a tileset's layers, fields and zooms."""

    title: str
    data_type: str = Field(alias="dataType")
    tile_matrix_set_uri: str = Field(alias="tileMatrixSetURI")
    tile_matrix_set_limits: list[TileMatrixLimits] | None = Field(
        default=None, alias="tileMatrixSetLimits"
    )
    crs: str
    bounding_box: BoundingBox | None = Field(default=None, alias="boundingBox")
    layers: list[TileLayer]
    links: list[Link]


class VectorLayer(Document):
    """A TileJSON vector layer and its fields."""

    id: str
    fields: dict[str, str]
    minzoom: int
    maxzoom: int


class TileJson(Document):
    """TileJSON 3.0 for MapLibre/Leaflet clients."""

    tilejson: str
    name: str
    scheme: str
    tiles: list[str]
    minzoom: int
    maxzoom: int
    bounds: list[float]
    center: list[Number]
    vector_layers: list[VectorLayer]


# ---- indicators ----


class IndicatorEntry(Document):
    """One indicator in the catalogue list."""

    code: str
    name_vi: str
    name_en: str
    kind: str
    unit: str
    decimals: int
    source: str
    licence: str
    links: list[Link]


class IndicatorList(Document):
    """`/indicators`: the catalogue."""

    indicators: list[IndicatorEntry]
    number_returned: int = Field(alias="numberReturned")


class Series(Document):
    """An indicator's values on one (vintage, level), and how derived periods were made."""

    vintage: str
    level: str
    derivation: dict[str, Any] | None
    periods: list[str]


class IndicatorDocument(Document):
    """`/indicators/{code}`: an indicator's metadata, disclosure rule and series."""

    code: str
    name_vi: str
    name_en: str
    unit: str
    description: str
    source: str
    licence: str
    kind: str
    decimals: int
    numerator: str | None
    denominator: str | None
    multiplier: float
    suppress_below: float | None
    disclosure_basis: str | None
    period_aggregation: str | None = None
    denominator_period: str | None = None
    protection_lower: float | None = None
    protection_upper: float | None = None
    protection_absolute: float | None = None
    relation_tolerance: float = 0.0
    cell_key_noise: int | None = None
    breakdowns: list[list[str]] = Field(
        default_factory=list, description="each breakdown's parts: this = their sum"
    )
    unit_vi: str = Field("", description="the unit in Vietnamese")
    description_vi: str = Field("", description="the definition in Vietnamese")
    source_vi: str = Field("", description="the source in Vietnamese")
    licence_vi: str = Field("", description="the licence in Vietnamese")
    series: list[Series]


class PublishedValue(Document):
    """One unit's published value (null when suppressed or not available)."""

    code: str
    name: str
    parent_code: str | None
    period: str
    value: float | None
    status: str
    moe: float | None
    parts_missing: int | None = Field(
        None,
        description="for a sum over smaller units: how many of them have no figure (the "
        "value sums those that have one); null when the figure is whole",
    )


class Rechecking(Document):
    """Values withheld while their disclosure protection is re-checked after a change."""

    indicators: list[str] = Field(description="the indicators withheld")
    retry_after: int = Field(description="seconds after which to ask again")
    message: str = Field(description="what happens and what to do, in the client's language")


class IndicatorValues(Document):
    """`/indicators/{code}/values`: one series' published values."""

    indicator: str
    vintage: str
    level: str
    period: str | None
    unit: str
    decimals: int
    number_returned: int = Field(alias="numberReturned")
    values: list[PublishedValue]
    rechecking: Rechecking | None = Field(
        None,
        description="set while the indicator's values are withheld to re-check their "
        "disclosure protection after a change: they are hidden (status suppressed), not "
        "suppressed for good; retry shortly",
    )


# ---- area statistics and maps ----


class AreaResult(Document):
    """One indicator estimated for a drawn area."""

    indicator: str
    period: str | None = None
    unit: str | None = None
    kind: str | None = None
    value: float | None
    status: str
    method: str | None = None
    note: str | None = None
    disclosure: str | None = Field(None, description="suppression or cell-key")


class AreaUnit(Document):
    """A unit a drawn area touches, and the share of it inside the area."""

    code: str
    name: str
    area_share: float
    population_share: float | None = None
    share: float
    inside_km2: float


class AreaStatistics(Document):
    """`POST /aggregate`: statistics of a drawn area."""

    collection: str
    method: str
    area_km2: float
    covered_share: float
    results: list[AreaResult]
    units: list[AreaUnit]


class ChoroplethClass(Document):
    """One class of a choropleth legend."""

    lower: float | None
    upper: float
    colour: str
    count: int


class Choropleth(Document):
    """`/maps/choropleth`: class breaks, colours and counts."""

    collection: str
    period: str
    indicator: dict[str, Any]
    method_name: dict[str, str]
    method: str
    k: int
    palette: str
    breaks: list[float]
    colours: list[str]
    note: str | None
    classes: list[ChoroplethClass]
    no_value: dict[str, int]
    warning: str | None
    advice: dict[str, str] | None = Field(
        None,
        description="standard-deviation classes of skewed values: why another method suits "
        "them better (`text`, in the client's language) and which (`method`)",
    )
    units: list[dict[str, Any]] | None = None
    mean: float | None = Field(None, description="standard deviation classes: the mean")
    sd: float | None = Field(None, description="standard deviation classes: the SD")
    compare: dict[str, Any] | None = Field(
        None, description="a change map: the earlier period, its vintage and the change kind"
    )
    scope: dict[str, Any] | None = Field(
        None, description="the units classified: all, within a province, or within a bbox"
    )
    unit: str | None = Field(None, description="the unit of the mapped numbers")
    rechecking: Rechecking | None = Field(
        None,
        description="set while the indicator's values are withheld to re-check their "
        "disclosure protection after a change: they are hidden, not suppressed; retry shortly",
    )
    incomplete: dict[str, Any] | None = Field(
        None,
        description="units in the scope whose figure is a sum with parts lacking a figure "
        "(e.g. a 2009 province summed from the communes that have one): how many units, how "
        "many parts, and the parts' vintage and level; null when every figure is whole",
    )


class SearchHit(Document):
    """A unit found by name."""

    code: str
    name: str
    level: str
    unit_type: str | None
    parent_code: str | None
    parent_name: str | None
    parent_level: str | None
    match: str = Field(description="exact, prefix, word or contains")
    alias: bool = Field(description="found through another name (HCM → Hồ Chí Minh)")
    bbox: tuple[float, float, float, float] | None = Field(
        description="the extent of the unit's main part (far islands left out)"
    )


class SearchHits(Document):
    """`/search`: units of every level, best first."""

    hits: list[SearchHit]


class SeriesPoint(Document):
    """One period's published value."""

    period: str
    value: Number | None
    status: str
    units: int | None = None


class ProfileUnit(Document):
    """A unit and its series."""

    code: str
    name: str
    level: str
    unit_type: str | None
    parent_code: str | None
    series: list[SeriesPoint]


class NationalSeries(Document):
    """The country's value per period, from the top level's units."""

    level: str
    method: str = Field(description="sum (counts), ratio (quotients) or mean (indexes)")
    units: int
    series: list[SeriesPoint]


class UnitProfile(Document):
    """`/maps/profile`: a unit's values over time beside its parent's and the country's."""

    collection: str
    indicator: str
    unit: ProfileUnit
    parent: ProfileUnit | None
    national: NationalSeries | None


# ---- enumeration areas and users ----


class HistoryEntry(Document):
    """One change of an EA: who, when, why, the states before and after."""

    id: int
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    user: str
    reason: str | None
    at: str


class EaHistory(Document):
    """`/collections/enumeration-areas/items/{id}/history`."""

    ea: int
    history: list[HistoryEntry]


class CoverageReport(Document):
    """`/communes/{code}/ea-coverage`: what stands between the EAs and a full coverage."""

    commune: str
    vintage: str
    round: str
    eas: int
    commune_area_m2: float
    gaps: list[dict[str, Any]]
    gap_share: float
    overlaps: list[dict[str, Any]]
    outside_commune: list[dict[str, Any]]
    outside_workload_band: list[dict[str, Any]]
    complete: bool


class GeneratedDrafts(Document):
    """`POST /communes/{code}/ea-generate`: what a generation did."""

    commune: str
    vintage: str
    round: str
    created: int
    replaced: int


class Me(Document):
    """`/users/me`: the token's user."""

    name: str
    role: str
    scope: list[str]


class SignedIn(Document):
    """`POST /users/sign-in`: a new token (shown once) and whose it is."""

    token: str
    expires_at: str
    user: Me


class TokenEntry(Document):
    """A live token of a user (never the token itself)."""

    id: int
    label: str
    created_at: str
    expires_at: str | None = None


class UserEntry(Document):
    """A user as the administrators see them."""

    name: str
    role: str
    scope: list[str]
    disabled: bool
    has_password: bool
    created_at: str
    tokens: list[TokenEntry]


class UserList(Document):
    """`GET /admin/users`."""

    users: list[UserEntry]


class Revoked(Document):
    """How many tokens a revocation ended."""

    revoked: int


# ---- census organisation ----


class StaffMember(Document):
    """An enumerator or supervisor of a census round."""

    id: int
    census_round: str
    code: str
    name: str
    role: str
    scope: str
    phone: str | None = None
    user_name: str | None = None


class StaffList(Document):
    """`GET /census/{round}/staff`."""

    staff: list[StaffMember]


class SupervisorAreaDoc(Document):
    """A supervisor area: its EAs, supervisor and the rule's findings."""

    id: int
    census_round: str
    commune_code: str
    code: str
    supervisor: StaffMember | None = None
    eas: list[str]
    households: float | None = None
    warnings: list[str] = []


class SupervisorAreas(Document):
    """`GET /communes/{code}/supervisor-areas`."""

    commune: str
    census_round: str
    band: list[int]
    areas: list[SupervisorAreaDoc]
    etag: str = Field(description="the areas' ETag (also the ETag header): If-Match of a batch")


class ProposedArea(Document):
    """One group of a supervisor-area proposal (not saved)."""

    number: int
    eas: list[str]
    count: int
    households: float
    supervisor: str | None = None
    notes: list[str] = []
    geometry: dict[str, Any]


class AreaProposal(Document):
    """`POST /communes/{code}/supervisor-areas/proposal`: groups to preview, nothing saved."""

    commune: str
    census_round: str
    band: list[int]
    redo: bool
    replaces: list[str]
    kept: list[str]
    groups: list[ProposedArea]
    notes: list[str] = []
    etag: str = Field(description="the areas' ETag the proposal was made on: its batch's If-Match")


class EnumeratorTotal(Document):
    """An enumerator's EAs and households as a proposal would leave them."""

    enumerator: str
    name: str
    eas: list[str]
    new: list[str]
    households: float


class AssignmentProposal(Document):
    """`POST /communes/{code}/assignments/proposal`: assignments to preview, nothing saved."""

    commune: str
    census_round: str
    assignments: list[dict[str, str]]
    enumerators: list[EnumeratorTotal]
    unassigned: list[str]
    notes: list[str] = []


class WorkloadRow(Document):
    """One enumerator's (or the unassigned EAs') workload in a commune."""

    enumerator: StaffMember | None = None
    eas: list[str]
    households: float
    listed_households: int | None = None
    area_km2: float
    outside_band: list[str]
    flag: str | None = None


class Workload(Document):
    """`GET /communes/{code}/workload`."""

    commune: str
    census_round: str
    band: list[float]
    eas: int
    households: float
    area_km2: float
    outside_band: list[dict[str, Any]]
    unassigned: list[str]
    without_supervisor_area: list[str]
    enumerators: list[WorkloadRow]


class ProgressRow(Document):
    """One commune's progress."""

    code: str
    name: str
    eas: int
    draft: int
    submitted: int
    approved: int
    rejected: int
    assigned: int
    in_supervisor_areas: int


class Progress(Document):
    """`GET /census/{round}/progress`: every commune of a scope."""

    census_round: str
    scope: list[str]
    provinces: list[dict[str, str]] = Field(
        description="the provinces (code, name) of the communes listed"
    )
    communes: int
    totals: dict[str, int]
    without_eas: int
    rows: list[ProgressRow]


class ReviewEntry(Document):
    """A submitted EA with its change against the previous version."""

    id: int
    code: str
    commune_code: str
    etag: str
    households: float | None = None
    submitted_by: str
    submitted_at: str
    previous: str | None = None
    geometry: dict[str, Any]
    added: dict[str, Any] | None = None
    removed: dict[str, Any] | None = None


class ReviewQueue(Document):
    """`GET /census/{round}/review`: counts by status per commune, the submitted EAs."""

    census_round: str
    counts: list[dict[str, Any]]
    submitted: list[ReviewEntry]


class ListingResult(Document):
    """`POST /census/{round}/listing`: what a listing upload saved."""

    saved: int
    message: str


class LineShare(Document):
    """How much of the EA boundaries in a commune follow loaded lines."""

    commune: str
    census_round: str
    boundary_km: float
    along_lines_km: float
    share: float | None = None


class ReplicaHealth(Document):
    """A read replica as its last check found it."""

    url: str = Field(description="host:port (never the user or password)")
    state: Literal[
        "streaming", "lagging", "unreachable", "not a standby", "invalid URL", "unchecked"
    ]
    lag_s: float | None = Field(None, description="upper bound of its lag behind the primary")


class Health(Document):
    """`/health`: whether the database answers (the versions and replicas: operators only)."""

    status: str
    database: str
    postgis: str | None = Field(None, description="to an operator only (admin, /metrics rule)")
    schema_version: int | None = Field(None, description="to an operator only")
    tile_cache: str | None = None
    primary: Literal["ok", "unavailable"] | None = Field(
        None, description="with replicas: whether the primary (all writes) answers"
    )
    replicas: list[ReplicaHealth] | None = Field(None, description="to an operator only")
    detail: str | None = None
    request_id: str | None = None


class NarrowestInterval(Document):
    """The hidden cell of a series an attacker can narrow down most."""

    code: str
    period: str
    value: float
    lower: float
    upper: float = Field(description="Infinity when nothing bounds it")
    width: float
    required_lower: float
    required_upper: float


class SeriesAuditDocument(Document):
    """One series' hidden cells against their protection ranges."""

    indicator: str
    vintage: str
    level: str
    cells: int
    hidden: int
    primary: int = Field(description="cells hidden by their own rule")
    narrowest: NarrowestInterval | None
    below: list[str] = Field(description="cells below their protection range, and why")


class DisclosureAudit(Document):
    """`/admin/disclosure/audit`: what an attacker can deduce about every hidden cell."""

    passed: bool
    series: list[SeriesAuditDocument]


# ---- base maps ----


class BaseMapEntry(Document):
    """A base map or overlay of the layer switcher."""

    id: str
    title: dict[str, str] = Field(description="in Vietnamese (vi) and English (en)")
    kind: str = Field(description="tiles (from a file), geojson, or xyz (another host)")
    overlay: bool
    attribution: str
    available: bool
    problem: str | None = Field(description="missing or unreadable, when not available")
    format: str | None
    minZoom: int | None
    maxZoom: int | None
    bounds: list[float] | None
    layers: list[str] = Field(description="vector tiles: their layer names")
    url: str | None


class BaseMapList(Document):
    """`/basemaps`: every configured layer."""

    basemaps: list[BaseMapEntry]


class CrosswalkQuality(Document):
    """`/crosswalks/{from}/{to}/{level}`: how a crosswalk was made, and per new unit the
    share of its area the old units cover and the share dropped as slivers."""

    from_vintage: str
    to_vintage: str
    level: str
    method: str
    weights: list[str]
    raster: str | None
    sliver_threshold: float | None
    built_at: str
    figures: dict[str, Any]
    codes: list[str]
    covered_share: list[float]
    sliver_share: list[float]


# ---- OGC API – Processes: background jobs (map books) ----


class ProcessInput(Document):
    """One input of a process: its title and JSON schema."""

    title: str
    description: str
    schema_: dict[str, Any] = Field(alias="schema")
    min_occurs: int = Field(alias="minOccurs")
    max_occurs: int = Field(alias="maxOccurs")


class ProcessOutput(Document):
    """One output of a process."""

    title: str
    schema_: dict[str, Any] = Field(alias="schema")


class ProcessSummary(Document):
    """A process in `/processes`."""

    id: str
    title: str
    description: str
    version: str
    job_control_options: list[str] = Field(alias="jobControlOptions")
    output_transmission: list[str] = Field(alias="outputTransmission")
    links: list[Link]


class ProcessDescription(ProcessSummary):
    """`/processes/{processId}`: a process with its inputs and outputs."""

    inputs: dict[str, ProcessInput]
    outputs: dict[str, ProcessOutput]


class ProcessList(Document):
    """`/processes`."""

    processes: list[ProcessSummary]
    links: list[Link]


class MapBookInputs(Document):
    """The inputs of `ea-map-book`."""

    commune: str = Field(pattern=r"^\d{5}$", description="the commune's code")
    round: str | None = Field(
        default=None, pattern=r"^\d{4}$", description="the census round (default: the latest)"
    )
    lang: Literal["vi", "en"] = Field(default="vi", description="the book's language")


class MapBookExecute(Document):
    """`POST /processes/ea-map-book/execution`: what to make."""

    inputs: MapBookInputs
    response: Literal["document", "raw"] | None = Field(
        default=None, description="accepted for OGC clients; the result is always the PDF"
    )


class AreaReportInputs(Document):
    """The inputs of `area-report`: a drawn area (as `POST /reports/area` takes it) or a
    unit (`unit` and `vintage`), and the file's format and language."""

    geometry: dict[str, Any] | None = Field(
        default=None, description="GeoJSON Polygon/MultiPolygon (or Feature); or unit"
    )
    collection: str | None = Field(default=None, pattern=CODE, description="commune-2025")
    indicators: list[Annotated[str, Field(pattern=CODE)]] | None = Field(
        default=None, min_length=1, max_length=50
    )
    method: Literal["area", "population"] | None = None
    crs: str | None = Field(default=None, pattern=CRS, description="the geometry's CRS")
    unit: str | None = Field(default=None, pattern=CODE, max_length=20)
    vintage: str | None = Field(default=None, pattern=CODE, max_length=20)
    format: Literal["pdf", "xlsx"] = "pdf"
    lang: Literal["vi", "en"] = "vi"


class AreaReportExecute(Document):
    """`POST /processes/area-report/execution`: what to make."""

    inputs: AreaReportInputs
    response: Literal["document", "raw"] | None = None


class EaExportInputs(Document):
    """The inputs of `ea-export`: the EA list's filters (as
    `/collections/enumeration-areas/items` takes them) and the file's format."""

    commune: str | None = Field(default=None, pattern=r"^\d{5}$", description="a commune's code")
    status: Literal["draft", "submitted", "approved", "rejected"] | None = None
    round: str | None = Field(default=None, pattern=r"^\d{4}$", description="the census round")
    bbox: str | None = Field(
        default=None, max_length=200, description="minx,miny,maxx,maxy (longitude/latitude)"
    )
    filter: str | None = Field(
        default=None, max_length=10_000, description="a CQL2 filter over the EA queryables"
    )
    filter_lang: Literal["cql2-text", "cql2-json", "cql-text"] = Field(
        default="cql2-text", alias="filter-lang"
    )
    limit: int | None = Field(default=None, ge=1, description="at most this many EAs")
    offset: int = Field(default=0, ge=0, le=10_000_000)
    format: Literal["gpkg", "shp", "geojson", "csv"] = "gpkg"


class EaExportExecute(Document):
    """`POST /processes/ea-export/execution`: what to make."""

    inputs: EaExportInputs
    response: Literal["document", "raw"] | None = None


class JobStatus(Document):
    """A job as OGC API – Processes' statusInfo, with the pages of the book it draws."""

    job_id: str = Field(alias="jobID")
    process_id: str = Field(alias="processID")
    type: Literal["process"] = "process"
    status: Literal["accepted", "running", "successful", "failed", "dismissed"]
    message: str | None = None
    created: str
    started: str | None = None
    finished: str | None = None
    updated: str
    progress: int = Field(ge=0, le=100)
    pages_done: int = Field(alias="pagesDone")
    pages_total: int = Field(alias="pagesTotal")
    expires: str | None = Field(default=None, description="when a finished job is deleted")
    inputs: dict[str, str]
    joined: bool | None = Field(
        default=None, description="on submission: the same request was running (joined)"
    )
    links: list[Link]


class JobList(Document):
    """`/jobs`: the jobs the client asked for (or joined), newest first."""

    jobs: list[JobStatus]
    links: list[Link]

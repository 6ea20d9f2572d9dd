"""Draft census enumeration areas (EAs) for a commune, in the spirit of gridEZ.

A commune is cut into small grid cells, each cell gets its share of a gridded population
estimate, and the cells are grouped into contiguous, compact zones of about
`households_per_ea` households by recursive population-weighted bisection.

The grid is aligned with the population raster (a 1 km WorldPop pixel is split into k × k
cells, k chosen so that a cell is about `cell_size_m` wide, and doubled where a cell would hold
too many people, down to about 25 m). Every cell then lies inside exactly one pixel, so a cell's
population is the pixel's value times its area share, with no resampling, and the output needs
no reprojection: EA geometries are built in EPSG:4326 from the same coordinates as the commune.

Cells crossed by the commune boundary are cut along it in one noding pass (grid edges plus the
commune boundary, polygonized together), so neighbouring pieces share identical vertices and
the EAs form an exact coverage of the commune: no gaps, no overlaps, nothing outside.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import rasterio
import shapely
from rasterio.features import rasterize
from rasterio.transform import Affine
from rasterio.windows import Window
from scipy.ndimage import label
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Geoms = npt.NDArray[np.object_]

# Metres per degree of latitude, and of longitude at the equator (spherical approximation;
# only used to make cells roughly square and to choose cut directions).
_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON = 111_320.0
# Cells are refined until none holds more than this share of one EA's population, so that an
# EA is made of several cells and the bisection can balance it; but never below _MIN_CELL_M.
_MAX_CELL_SHARE = 0.25
_MIN_CELL_M = 25.0
# Cells are made coarser where an EA would hold more than this many (sparse land), but a
# pixel is always cut into at least _MIN_CELLS_PER_PIXEL² cells. Every stage of generation
# costs per cell: 64 and 2 × 2 (were 256 and 3 × 3) take a third off a national run's CPU;
# a rural EA is still ~64 cells (the bisection balances it as well: same EA counts, same
# household band), its edges a little coarser before they are simplified.
_MAX_CELLS_PER_EA = 64
_MIN_CELLS_PER_PIXEL = 2
# A cut whose halves are off by more than this (relative per-EA population, after making
# the halves contiguous) is retried across the other axis.
_CUT_TOLERANCE = 0.1
# A group's moments summed for all groups at once differ from its own sums in the last
# bits; where its cov xy or var x − var y is within this share of its spread, those bits
# decide its cut directions, so it is summed on its own.
_AXIS_SLACK = 1e-9
# Groups of at least this many units get their running sums one by one (a call each costs
# less than padding them into a table).
_ONE_BY_ONE = 128
# Faces smaller than this share of a cell are tested by area, not by an interior point
# (an interior point of a sliver may round onto the commune boundary).
_SLIVER_SHARE = 1e-6


@dataclass(frozen=True)
class DraftEA:
    """One draft enumeration area of a commune."""

    serial: int
    geometry: MultiPolygon
    population: float
    households: float


@dataclass(frozen=True)
class _Grid:
    """Raster-aligned cells over the commune's bounding box; row 0 is the northernmost."""

    xs: Floats  # column edges (longitude), ascending, ncols + 1
    ys: Floats  # row edges (latitude), descending, nrows + 1
    density: Floats  # persons per whole cell, nrows × ncols

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        return (len(self.ys) - 1, len(self.xs) - 1)

    @property
    def dx(self) -> float:
        """Cell width in degrees."""
        return float(self.xs[1] - self.xs[0])

    @property
    def dy(self) -> float:
        """Cell height in degrees (positive)."""
        return float(self.ys[0] - self.ys[1])

    def cell_m(self, latitude: float) -> float:
        """Side of a square of the same area as one cell, in metres."""
        width = self.dx * _M_PER_DEG_LON * math.cos(math.radians(latitude))
        return math.sqrt(width * self.dy * _M_PER_DEG_LAT)


@dataclass(frozen=True)
class _Units:
    """The pieces grouped into EAs: whole interior cells first, then boundary faces."""

    row: Ints
    col: Ints
    faces: Geoms  # geometry of each boundary face (the interior cells come first, without one)
    pop: Floats
    x: Floats  # centroid, metres east of the commune's centroid
    y: Floats  # centroid, metres north of the commune's centroid
    area: Floats  # square metres

    @property
    def count(self) -> int:
        """Number of units."""
        return len(self.pop)

    @property
    def n_interior(self) -> int:
        """Number of whole interior cells (the first units)."""
        return self.count - len(self.faces)


def generate_commune_eas(
    commune: BaseGeometry,
    raster: Path,
    households_per_ea: float = 120,
    household_size: float = 3.5,
    cell_size_m: float = 100,
) -> list[DraftEA]:
    """Draft EAs covering the commune (EPSG:4326) exactly, of about `households_per_ea` each."""
    return generate_on_grid(commune, raster, households_per_ea, household_size, cell_size_m)[0]


def generate_on_grid(
    commune: BaseGeometry,
    raster: Path,
    households_per_ea: float = 120,
    household_size: float = 3.5,
    cell_size_m: float = 100,
) -> tuple[list[DraftEA], float]:
    """The commune's draft EAs and the side of the grid cells they were made of (metres)."""
    if households_per_ea <= 0 or household_size <= 0 or cell_size_m <= 0:
        raise ValueError("households_per_ea, household_size and cell_size_m must be positive")
    area = _polygonal(commune)
    if area.is_empty:
        return [], cell_size_m
    target_pop = households_per_ea * household_size
    grid = _read_grid(area, Path(raster), target_pop, cell_size_m)
    cell_m = grid.cell_m(area.centroid.y)
    units = _units(area, grid)
    total = float(units.pop.sum())
    n = max(1, math.floor(total / target_pop + 0.5))
    if n == 1 or units.count <= 1:
        return [_draft(1, area, total, household_size)], cell_m
    groups = _partition(units, _adjacency(units, grid), n)
    geometries = _assemble(units, grid, groups)
    drafts = [
        DraftEA(serial, geometry, population, population / household_size)
        for serial, (geometry, population) in enumerate(
            zip(polygonal_all(geometries), _sums(units.pop, groups).tolist(), strict=True), 1
        )
    ]
    return drafts, cell_m


def generate_many(
    communes: list[tuple[str, BaseGeometry]],
    raster: Path,
    households_per_ea: float = 120,
    household_size: float = 3.5,
    cell_size_m: float = 100,
    workers: int = 2,
) -> dict[str, list[DraftEA]]:
    """Draft EAs of many communes, by code, on `workers` processes (1: in this process)."""
    jobs = [
        (code, geometry, Path(raster), households_per_ea, household_size, cell_size_m)
        for code, geometry in communes
    ]
    if workers <= 1 or len(jobs) <= 1:
        return dict(map(_job, jobs))
    # Big chunks would leave one worker idle at the end; communes vary a lot in cost.
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(_job, jobs, chunksize=4))


def _job(job: tuple[str, BaseGeometry, Path, float, float, float]) -> tuple[str, list[DraftEA]]:
    """One commune's EAs, keyed by its code (a picklable unit of work)."""
    code, geometry, raster, households_per_ea, household_size, cell_size_m = job
    return code, generate_commune_eas(
        geometry, raster, households_per_ea, household_size, cell_size_m
    )


def _draft(
    serial: int, geometry: BaseGeometry, population: float, household_size: float
) -> DraftEA:
    """A DraftEA with a MultiPolygon geometry."""
    return DraftEA(serial, _polygonal(geometry), population, population / household_size)


def _polygonal(geometry: BaseGeometry, valid: bool = False) -> MultiPolygon:
    """The valid polygonal part of a geometry, as a MultiPolygon (`valid`: the caller has
    checked its validity already, and it need not be checked again)."""
    if _is_clean_multipolygon(geometry, valid):
        return geometry  # type: ignore[return-value]  # (checked: a MultiPolygon)
    if isinstance(geometry, Polygon) and not geometry.is_empty and geometry.is_valid:
        return MultiPolygon([geometry])
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    parts = shapely.get_parts(geometry)
    while any(part.geom_type in ("MultiPolygon", "GeometryCollection") for part in parts):
        parts = shapely.get_parts(parts)
    return MultiPolygon([p for p in parts if isinstance(p, Polygon) and not p.is_empty])


def polygonal_all(geometries: list[BaseGeometry], valid: bool = False) -> list[MultiPolygon]:
    """_polygonal of each geometry, with the usual case (valid polygons and multipolygons
    with no empty part) in a few calls for all of them (one by one, the checks cost more
    than the EAs' assembly); `valid`: the caller has checked their validity already."""
    found = np.asarray(geometries + [None], dtype=object)[:-1]  # (a 1-d array of objects)
    kind = shapely.get_type_id(found)
    clean = ~shapely.is_empty(found) & (valid or shapely.is_valid(found))
    parts, owner = shapely.get_parts(found[kind == 6], return_index=True)
    empty_part = np.zeros(len(found), dtype=bool)
    empty_part[np.flatnonzero(kind == 6)[owner[shapely.is_empty(parts)]]] = True
    out = found.copy()
    single = clean & (kind == 3)
    out[single] = shapely.multipolygons(found[single][:, None])
    for i in np.flatnonzero(~(single | (clean & (kind == 6) & ~empty_part))).tolist():
        out[i] = _polygonal(found[i])
    return list(out)


def _sums(values: Floats, groups: list[Ints]) -> Floats:
    """The sum of the values of each group of indices."""
    sizes = np.array([len(group) for group in groups], dtype=np.int64)
    label = np.repeat(np.arange(len(groups)), sizes)
    return np.bincount(label, values[np.concatenate(groups)], minlength=len(groups)).astype(
        np.float64
    )


def _is_clean_multipolygon(geometry: BaseGeometry, valid: bool = False) -> bool:
    """Whether the geometry is already what _polygonal makes of it (the usual case: EAs are
    built as valid MultiPolygons, and taking them apart again cost more than making them)."""
    return (
        isinstance(geometry, MultiPolygon)
        and not geometry.is_empty
        and (valid or geometry.is_valid)
        and not shapely.is_empty(shapely.get_parts(geometry)).any()
    )


# --- population on a raster-aligned grid ---------------------------------------------------------


def _read_grid(commune: BaseGeometry, raster: Path, target_pop: float, cell_size_m: float) -> _Grid:
    """The commune's cells and their population, k × k cells per raster pixel."""
    people, transform = _population(raster)
    window = _pixel_window(commune, transform)
    col0, row0 = int(window.col_off), int(window.row_off)
    values = _window_of(people, row0, col0, int(window.height), int(window.width))
    pixel_m = _pixel_size_m(transform, commune.centroid.y)
    touched = _burn(commune, values.shape, transform @ Affine.translation(col0, row0), True)
    if values[touched].sum() < 1.5 * target_pop:
        k = 1  # one EA whatever the pixels' coverage: only the total is needed
    else:
        base = _sparse_cells(
            pixel_m, cell_size_m, int(touched.sum()), values[touched].sum(), target_pop
        )
        k = _subdivision(base, pixel_m, float(values[touched].max(initial=0.0)), target_pop)
    xs = transform.c + np.arange(col0 * k, (col0 + values.shape[1]) * k + 1) * (transform.a / k)
    ys = transform.f + np.arange(row0 * k, (row0 + values.shape[0]) * k + 1) * (transform.e / k)
    density = np.repeat(np.repeat(values, k, axis=0), k, axis=1) / (k * k)
    return _Grid(xs, ys, density)


@lru_cache(maxsize=4)
def _population_of(raster: Path, _mtime_ns: int, _size: int) -> tuple[Floats, Affine]:
    """The whole raster band in memory (persons per pixel, no data and negatives as 0)."""
    with rasterio.open(raster) as dataset:
        if dataset.crs is None or not dataset.crs.is_geographic:
            raise ValueError(f"{raster}: expected a raster in geographic coordinates (EPSG:4326)")
        values = dataset.read(1, masked=True)
        transform: Affine = dataset.transform
    people = np.nan_to_num(np.ma.filled(values.astype(np.float64), 0.0), nan=0.0)
    return np.clip(people, 0.0, None), transform


def _population(raster: Path) -> tuple[Floats, Affine]:
    """The raster's people and transform, read once per process (a national run reads it for
    thousands of communes and blocks; a window read cost more than the grid it feeds)."""
    stat = raster.stat()
    return _population_of(raster, stat.st_mtime_ns, stat.st_size)


def _window_of(people: Floats, row0: int, col0: int, height: int, width: int) -> Floats:
    """A window of the raster, 0 beyond its edges (as a boundless read)."""
    out = np.zeros((height, width), dtype=np.float64)
    rows, cols = people.shape
    top, left = max(row0, 0), max(col0, 0)
    bottom, right = min(row0 + height, rows), min(col0 + width, cols)
    if top < bottom and left < right:
        out[top - row0 : bottom - row0, left - col0 : right - col0] = people[top:bottom, left:right]
    return out


def _pixel_window(commune: BaseGeometry, transform: Affine) -> Window:
    """The raster pixels under the commune's bounding box (maybe beyond the raster)."""
    minx, miny, maxx, maxy = commune.bounds
    col0 = math.floor((minx - transform.c) / transform.a)
    col1 = max(col0 + 1, math.ceil((maxx - transform.c) / transform.a))
    row0 = math.floor((maxy - transform.f) / transform.e)
    row1 = max(row0 + 1, math.ceil((miny - transform.f) / transform.e))
    return Window(col0, row0, col1 - col0, row1 - row0)


def _pixel_size_m(transform: Affine, latitude: float) -> float:
    """Side of a square of the same area as one pixel, in metres."""
    width = abs(transform.a) * _M_PER_DEG_LON * math.cos(math.radians(latitude))
    return math.sqrt(width * abs(transform.e) * _M_PER_DEG_LAT)


def _sparse_cells(
    pixel_m: float, cell_size_m: float, pixels: int, population: float, target_pop: float
) -> int:
    """Cells per pixel side: about cell_size_m, but coarser where an EA would be made of more
    than _MAX_CELLS_PER_EA cells (sparsely peopled land: an EA of several km² needs no 100 m
    cells, and they made most of the work of a national run)."""
    k = max(1, round(pixel_m / cell_size_m))
    eas = max(1.0, population / target_pop)
    k_sparse = math.floor(math.sqrt(_MAX_CELLS_PER_EA * eas / max(pixels, 1)))
    return max(min(k, k_sparse), min(k, _MIN_CELLS_PER_PIXEL))


def _subdivision(k: int, pixel_m: float, max_pixel: float, target_pop: float) -> int:
    """Cells per pixel side: k, doubled while a cell could hold too many people."""
    k_max = max(k, math.floor(pixel_m / _MIN_CELL_M))
    while 2 * k <= k_max and max_pixel / (k * k) > _MAX_CELL_SHARE * target_pop:
        k *= 2
    return k


def _burn(
    geometry: BaseGeometry, shape: tuple[int, int], transform: Affine, all_touched: bool
) -> Bools:
    """Mask of the cells whose centre is in the geometry (or that it touches)."""
    if shape[0] == 0 or shape[1] == 0:
        return np.zeros(shape, dtype=bool)
    burnt = rasterize(
        [geometry],
        out_shape=shape,
        transform=transform,
        fill=0,
        default_value=1,
        all_touched=all_touched,
        dtype="uint8",
    )
    return np.asarray(burnt, dtype=bool)


# --- units: whole cells inside the commune, faces of the cells on its boundary -------------------


def _units(commune: BaseGeometry, grid: _Grid) -> _Units:
    """Interior cells (no geometry needed yet) and boundary faces, with population and centroid."""
    band = _touched(commune, grid, _boundary_band(commune, grid))
    interior = _inside_untouched(commune, grid, band)
    rows, cols = np.nonzero(interior)
    faces, frows, fcols = _boundary_faces(commune, grid, band)
    cell_area = grid.dx * grid.dy
    face_area = shapely.area(faces)
    row = np.concatenate([rows, frows]).astype(np.int64)
    col = np.concatenate([cols, fcols]).astype(np.int64)
    pop = grid.density[row, col] * np.concatenate([np.ones(len(rows)), face_area / cell_area])
    centroids = shapely.get_coordinates(shapely.centroid(faces))
    lon = np.concatenate([(grid.xs[cols] + grid.xs[cols + 1]) / 2, centroids[:, 0]])
    lat = np.concatenate([(grid.ys[rows] + grid.ys[rows + 1]) / 2, centroids[:, 1]])
    lon0, lat0 = commune.centroid.x, commune.centroid.y
    mx = _M_PER_DEG_LON * math.cos(math.radians(lat0))
    area = np.concatenate([np.full(len(rows), cell_area), face_area]) * mx * _M_PER_DEG_LAT
    return _Units(row, col, faces, pop, (lon - lon0) * mx, (lat - lat0) * _M_PER_DEG_LAT, area)


def _inside_untouched(commune: BaseGeometry, grid: _Grid, band: Bools) -> Bools:
    """The cells the boundary does not touch that lie inside the commune. Such cells make
    4-connected regions that the boundary never enters, each wholly inside or outside: one
    centre per region is tested (the same cells as burning every centre, at a fraction of
    the cost)."""
    regions, count = label(~band)
    if count == 0:
        return np.zeros_like(band)
    # Any one cell of each region: its first in row-major order.
    flat = regions.ravel()
    cells = np.flatnonzero(flat)
    firsts = cells[np.unique(flat[cells], return_index=True)[1]]
    rows, cols = np.divmod(firsts, grid.shape[1])
    x = (grid.xs[cols] + grid.xs[cols + 1]) / 2
    y = (grid.ys[rows] + grid.ys[rows + 1]) / 2
    shapely.prepare(commune)
    inside = np.concatenate([[False], shapely.contains_xy(commune, x, y)])
    return np.asarray(inside[regions], dtype=bool)


def _boundary_band(commune: BaseGeometry, grid: _Grid) -> Bools:
    """Cells within one cell of the commune boundary: a superset of the cells it touches."""
    # Boundary points at most half a cell apart: every touched cell is next to one's cell.
    spacing = min(grid.dx, grid.dy) / 2
    points = shapely.get_coordinates(shapely.segmentize(commune.boundary, spacing))
    nrows, ncols = grid.shape
    cols = np.clip(np.floor((points[:, 0] - grid.xs[0]) / grid.dx), 0, ncols - 1).astype(int)
    rows = np.clip(np.floor((grid.ys[0] - points[:, 1]) / grid.dy), 0, nrows - 1).astype(int)
    hit = np.zeros((nrows + 2, ncols + 2), dtype=bool)
    hit[rows + 1, cols + 1] = True
    band = np.zeros_like(hit)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            band[1 + dr : nrows + 1 + dr, 1 + dc : ncols + 1 + dc] |= hit[1:-1, 1:-1]
    return band[1:-1, 1:-1]


def _touched(commune: BaseGeometry, grid: _Grid, band: Bools) -> Bools:
    """The band's cells that the commune boundary touches (or comes within a hair of): only
    those need cutting into faces, the others are whole cells inside or outside. The band
    alone is about three cells wide, and noding all its edges was the costliest step."""
    rows, cols = np.nonzero(band)
    if len(rows) == 0:
        return band
    slack = 1e-6 * min(grid.dx, grid.dy)
    boxes = shapely.box(
        grid.xs[cols] - slack,
        grid.ys[rows + 1] - slack,
        grid.xs[cols + 1] + slack,
        grid.ys[rows] + slack,
    )
    edge = commune.boundary
    shapely.prepare(edge)
    hit = shapely.intersects(edge, boxes)
    touched = np.zeros_like(band)
    touched[rows[hit], cols[hit]] = True
    return touched


def _boundary_faces(commune: BaseGeometry, grid: _Grid, band: Bools) -> tuple[Geoms, Ints, Ints]:
    """The parts of the band's cells inside the commune, with each part's cell."""
    rows, cols = np.nonzero(band)
    if len(rows) == 0:
        return np.empty(0, dtype=object), np.empty(0, np.int64), np.empty(0, np.int64)
    # One noding of all grid edges with the boundary: pieces on either side of an edge get the
    # very same vertices, which per-cell clipping does not guarantee.
    lines = np.concatenate([_band_edges(grid, rows, cols), [commune.boundary]])
    noded = shapely.union_all(lines)
    # (the polygonizer takes the noded lines as they are: splitting them into Python objects
    # first cost half as much as polygonizing them)
    faces = shapely.get_parts(shapely.polygonize([noded]))
    frows, fcols, in_cell = _face_cells(faces, grid, band)
    faces, frows, fcols = faces[in_cell], frows[in_cell], fcols[in_cell]
    inside = _inside(commune, faces, grid.dx * grid.dy)
    return faces[inside], frows[inside], fcols[inside]


def _band_edges(grid: _Grid, rows: Ints, cols: Ints) -> Geoms:
    """Every cell edge of the band's cells, once."""
    ncols = grid.shape[1]
    horizontal = _unique_ints(np.concatenate([rows * ncols + cols, (rows + 1) * ncols + cols]))
    hr, hc = np.divmod(horizontal, ncols)
    vertical = _unique_ints(
        np.concatenate([rows * (ncols + 1) + cols, rows * (ncols + 1) + cols + 1])
    )
    vr, vc = np.divmod(vertical, ncols + 1)
    starts = np.concatenate(
        [np.column_stack([grid.xs[hc], grid.ys[hr]]), np.column_stack([grid.xs[vc], grid.ys[vr]])]
    )
    ends = np.concatenate(
        [
            np.column_stack([grid.xs[hc + 1], grid.ys[hr]]),
            np.column_stack([grid.xs[vc], grid.ys[vr + 1]]),
        ]
    )
    return np.asarray(shapely.linestrings(np.stack([starts, ends], axis=1)))


def _face_cells(faces: Geoms, grid: _Grid, band: Bools) -> tuple[Ints, Ints, Bools]:
    """Each face's cell, and whether the face lies within one band cell."""
    nrows, ncols = grid.shape
    bounds = shapely.bounds(faces)
    mid_x = (bounds[:, 0] + bounds[:, 2]) / 2
    mid_y = (bounds[:, 1] + bounds[:, 3]) / 2
    cols = np.clip(np.searchsorted(grid.xs, mid_x, side="right") - 1, 0, ncols - 1)
    rows = np.clip(np.searchsorted(-grid.ys, -mid_y, side="right") - 1, 0, nrows - 1)
    slack = 1e-9 * min(grid.dx, grid.dy)
    in_cell = (
        (bounds[:, 0] >= grid.xs[cols] - slack)
        & (bounds[:, 2] <= grid.xs[cols + 1] + slack)
        & (bounds[:, 1] >= grid.ys[rows + 1] - slack)
        & (bounds[:, 3] <= grid.ys[rows] + slack)
        & band[rows, cols]
    )
    return rows.astype(np.int64), cols.astype(np.int64), in_cell


def _inside(commune: BaseGeometry, faces: Geoms, cell_area: float) -> Bools:
    """Whether each face (of the noded arrangement) is part of the commune."""
    points = shapely.get_coordinates(shapely.point_on_surface(faces))
    shapely.prepare(commune)
    inside = np.asarray(shapely.contains_xy(commune, points[:, 0], points[:, 1]), dtype=bool)
    slivers = np.flatnonzero(shapely.area(faces) < _SLIVER_SHARE * cell_area)
    if len(slivers):
        overlap = shapely.area(shapely.intersection(faces[slivers], commune))
        inside[slivers] = overlap > 0.5 * shapely.area(faces[slivers])
    return inside


# --- which units share an edge -------------------------------------------------------------------


@dataclass(frozen=True)
class _Graph:
    """An undirected graph: node i's neighbours are indices[indptr[i]:indptr[i + 1]]."""

    indptr: Ints
    indices: Ints

    @classmethod
    def from_pairs(cls, a: Ints, b: Ints, size: int) -> _Graph:
        """The graph with edges a[i]–b[i] (in either direction; duplicates allowed)."""
        keys = _unique_ints(np.concatenate([a * size + b, b * size + a]))
        heads, tails = np.divmod(keys, size)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(heads, minlength=size))])
        return cls(indptr.astype(np.int64), tails.astype(np.int64))

    @property
    def size(self) -> int:
        """Number of nodes."""
        return len(self.indptr) - 1

    def edges_from(self, nodes: Ints) -> tuple[Ints, Ints]:
        """(position in nodes, neighbour) of every edge leaving the nodes."""
        starts = self.indptr[nodes]
        counts = self.indptr[nodes + 1] - starts
        return (
            np.repeat(np.arange(len(nodes)), counts),
            self.indices[np.repeat(starts, counts) + _ranges(counts)],
        )

    def subgraph(self, nodes: Ints) -> _Graph:
        """The graph induced by the nodes, renumbered 0..len(nodes)-1 in their order."""
        position = np.full(self.size, -1, dtype=np.int64)
        position[nodes] = np.arange(len(nodes))
        heads, tails = self.edges_from(nodes)
        tails = position[tails]
        keep = tails >= 0
        return self._sorted(heads[keep], tails[keep], len(nodes))

    def within(self, labels: Ints) -> _Graph:
        """The graph without the edges between nodes of different labels."""
        # Every edge, in order: the heads are each node repeated by its degree.
        heads = np.repeat(np.arange(self.size), np.diff(self.indptr))
        keep = labels[heads] == labels[self.indices]
        return self._sorted(heads[keep], self.indices[keep], self.size)

    def components(self) -> tuple[int, Ints]:
        """Number of connected components and each node's component."""
        matrix = csr_matrix(
            (
                np.ones(len(self.indices)),
                self.indices.astype(np.int32),
                self.indptr.astype(np.int32),
            ),
            shape=(self.size, self.size),
        )
        # The graph is symmetric, so its strong components are its components, and scipy finds
        # those several times faster than with directed=False.
        count, labels = connected_components(matrix, directed=True, connection="strong")
        return int(count), labels.astype(np.int64)

    @staticmethod
    def _sorted(heads: Ints, tails: Ints, size: int) -> _Graph:
        """A graph from edges already sorted by head."""
        indptr = np.concatenate([[0], np.cumsum(np.bincount(heads, minlength=size))])
        return _Graph(indptr.astype(np.int64), tails)


def _adjacency(units: _Units, grid: _Grid) -> _Graph:
    """Symmetric adjacency of units sharing an edge (a line, not just a point)."""
    nrows, ncols = grid.shape
    n_in = units.n_interior
    cell_unit = np.full((nrows, ncols), -1, dtype=np.int64)
    cell_unit[units.row[:n_in], units.col[:n_in]] = np.arange(n_in)
    pairs = [
        _grid_pairs(cell_unit[:, :-1], cell_unit[:, 1:]),
        _grid_pairs(cell_unit[:-1, :], cell_unit[1:, :]),
        _face_pairs(units, grid, cell_unit),
    ]
    a, b = np.concatenate(pairs, axis=1)
    return _Graph.from_pairs(a, b, units.count)


def _grid_pairs(left: Ints, right: Ints) -> Ints:
    """Pairs of interior cells that are neighbours (2 × m)."""
    both = (left >= 0) & (right >= 0)
    return np.stack([left[both], right[both]])


def _face_pairs(units: _Units, grid: _Grid, cell_unit: Ints) -> Ints:
    """Pairs of a face and a unit in a neighbouring cell that share an edge (2 × m). The faces
    come from one noded arrangement, and the boundary never touches an edge between a face's
    cell and an interior cell: units sharing an edge share the very same segment (matched as
    numbers, which cost a fraction of testing every pair's geometries)."""
    n_in = units.n_interior
    segments, owner = _segments(units.faces)
    ncols = grid.shape[1]
    rows, cols = np.divmod(_unique_ints(units.row[n_in:] * ncols + units.col[n_in:]), ncols)
    keys, owners = [segments], [owner + n_in]
    for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0)):
        nr, nc = rows + dr, cols + dc
        valid = (nr >= 0) & (nr < grid.shape[0]) & (nc >= 0) & (nc < ncols)
        neighbour = np.full(len(rows), -1, dtype=np.int64)
        neighbour[valid] = cell_unit[nr[valid], nc[valid]]
        keep = neighbour >= 0
        keys.append(_cell_sides(grid, rows[keep], cols[keep], (dr, dc)))
        owners.append(neighbour[keep])
    key, who = np.concatenate(keys), np.concatenate(owners)
    order = np.lexsort(key.T[::-1])
    key, who = key[order], who[order]
    shared = (key[1:] == key[:-1]).all(axis=1) & (who[1:] != who[:-1])
    return np.stack([who[:-1][shared], who[1:][shared]])


def _segments(geometries: Geoms) -> tuple[Floats, Ints]:
    """Every segment of the polygons' rings as (x0, y0, x1, y1), the lower point first (by x,
    then y), and the polygon it belongs to."""
    rings, owner = shapely.get_rings(geometries, return_index=True)
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    same = ring[1:] == ring[:-1]
    start, end = coords[:-1][same], coords[1:][same]
    swap = (start[:, 0] > end[:, 0]) | ((start[:, 0] == end[:, 0]) & (start[:, 1] > end[:, 1]))
    low = np.where(swap[:, None], end, start)
    high = np.where(swap[:, None], start, end)
    return np.column_stack([low, high]), owner[ring[:-1][same]].astype(np.int64)


def _cell_sides(grid: _Grid, rows: Ints, cols: Ints, side: tuple[int, int]) -> Floats:
    """One side of each cell as (x0, y0, x1, y1), the lower point first: towards the cell
    (row + dr, col + dc)."""
    west, east = grid.xs[cols], grid.xs[cols + 1]
    north, south = grid.ys[rows], grid.ys[rows + 1]
    if side == (0, 1):
        return np.column_stack([east, south, east, north])
    if side == (0, -1):
        return np.column_stack([west, south, west, north])
    if side == (1, 0):
        return np.column_stack([west, south, east, south])
    return np.column_stack([west, north, east, north])


def _unique_ints(values: Ints) -> Ints:
    """The distinct values, ascending (as np.unique, whose hashing cost many times a sort
    on the graphs' edge keys: about 4 % of a national run's CPU)."""
    ordered = np.sort(values)
    keep = np.empty(len(ordered), dtype=bool)
    keep[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def _ranges(counts: Ints) -> Ints:
    """0..c-1 for each c in counts, concatenated."""
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total) - starts


def _box_geoms(grid: _Grid, rows: Ints, cols: Ints) -> Geoms:
    """The cells as polygons."""
    return np.asarray(
        shapely.box(grid.xs[cols], grid.ys[rows + 1], grid.xs[cols + 1], grid.ys[rows])
    )


# --- partition -----------------------------------------------------------------------------------


def _partition(units: _Units, adjacency: _Graph, n: int) -> list[Ints]:
    """n groups of units (fewer if there are fewer units), in a spatially coherent order."""
    count, labels = adjacency.components()
    parts = _split_by_label(labels, count)
    pops = np.array([units.pop[part].sum() for part in parts])
    sizes = np.array([len(part) for part in parts])
    quotas = _allocate(pops if pops.sum() > 0 else sizes.astype(np.float64), n)
    seated = [(part, int(q)) for part, q in zip(parts, quotas, strict=True) if q > 0]
    orphans = [part for part, q in zip(parts, quotas, strict=True) if q == 0]
    return _adopt(_bisect(seated, units, adjacency), orphans, units)


def _split_by_label(labels: Ints, count: int) -> list[Ints]:
    """Unit ids of each label 0..count-1, ascending."""
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(count + 1))
    return [order[bounds[i] : bounds[i + 1]] for i in range(count)]


def _allocate(weights: Floats, n: int) -> Ints:
    """Largest-remainder apportionment of n seats to the weights."""
    quotas = n * weights / weights.sum()
    seats = np.floor(quotas).astype(np.int64)
    remainder = quotas - seats
    extra = n - int(seats.sum())
    # Stable sort: ties go to the earlier part.
    seats[np.argsort(-remainder, kind="stable")[:extra]] += 1
    return seats


def _adopt(groups: list[Ints], orphans: list[Ints], units: _Units) -> list[Ints]:
    """Groups with each unallotted island (no EA of its own) added to the nearest group."""
    if not orphans:
        return groups
    owner = np.concatenate([np.full(len(group), i) for i, group in enumerate(groups)])
    members = np.concatenate(groups)
    tree = cKDTree(np.column_stack([units.x[members], units.y[members]]))
    extra: list[list[Ints]] = [[] for _ in groups]
    for orphan in orphans:
        distance, nearest = tree.query(np.column_stack([units.x[orphan], units.y[orphan]]))
        extra[int(owner[nearest[int(np.argmin(distance))]])].append(orphan)
    return [np.concatenate([group, *more]) for group, more in zip(groups, extra, strict=True)]


def _bisect(groups: list[tuple[Ints, int]], units: _Units, adjacency: _Graph) -> list[Ints]:
    """Each (contiguous units, n) in n contiguous groups by recursive bisection, in depth-first
    order, one level of the recursion at a time: the sorting, the cumulative weights and the
    contiguity check of every cut of a level are one array operation each (cut one by one,
    their calls cost more than their arithmetic, about 0.35 ms per EA of a national run)."""
    nodes = [(idx, min(n, len(idx))) for idx, n in groups]
    while True:
        cutting = [node for node in nodes if node[1] > 1]
        if not cutting:
            return [idx for idx, _ in nodes]
        halves = iter(_cut_level(cutting, units, adjacency))
        nodes = [half for node in nodes for half in (next(halves) if node[1] > 1 else (node,))]


@dataclass(frozen=True)
class _Level:
    """Groups cut at the same time: their units one after the other (each group's ascending)
    and the edges between units of the same group, as positions in that sequence."""

    ids: Ints
    node: Ints  # the group of each position
    starts: Ints  # each group's first position, then the end
    n: Ints  # EAs each group is to make
    heads: Ints  # ascending
    tails: Ints

    @classmethod
    def of(cls, groups: list[tuple[Ints, int]], adjacency: _Graph) -> _Level:
        """The groups' units and the edges within each group."""
        sizes = np.array([len(idx) for idx, _ in groups], dtype=np.int64)
        ids = np.concatenate([idx for idx, _ in groups])
        node = np.repeat(np.arange(len(groups)), sizes)
        position = np.full(adjacency.size, -1, dtype=np.int64)
        position[ids] = np.arange(len(ids))
        heads, tails = adjacency.edges_from(ids)
        tails = position[tails]
        inside = tails >= 0
        heads, tails = heads[inside], tails[inside]
        same = node[heads] == node[tails]
        return cls(
            ids,
            node,
            np.concatenate([[0], np.cumsum(sizes)]),
            np.array([n for _, n in groups], dtype=np.int64),
            heads[same],
            tails[same],
        )

    @property
    def count(self) -> int:
        """Number of groups."""
        return len(self.n)

    def spans(self) -> list[tuple[int, int]]:
        """Each group's (first, end) positions."""
        bounds = self.starts.tolist()
        return list(zip(bounds[:-1], bounds[1:], strict=True))

    def only(self, keep: Bools) -> _Level:
        """The groups kept, renumbered in order."""
        members = keep[self.node]
        renumber = np.cumsum(members) - 1
        edges = members[self.heads]
        sizes = np.diff(self.starts)[keep]
        return _Level(
            self.ids[members],
            (np.cumsum(keep) - 1)[self.node[members]],
            np.concatenate([[0], np.cumsum(sizes)]),
            self.n[keep],
            renumber[self.heads[edges]],
            renumber[self.tails[edges]],
        )


def _cut_level(
    groups: list[tuple[Ints, int]], units: _Units, adjacency: _Graph
) -> list[tuple[tuple[Ints, int], tuple[Ints, int]]]:
    """Each group in two contiguous halves holding about ⌈n/2⌉ : ⌊n/2⌋ EAs' worth of people,
    with the EAs each half is to make. A cut goes across the group's long (principal) axis,
    else, if its halves are off by more than _CUT_TOLERANCE, the short one, then diagonals."""
    level = _Level.of(groups, adjacency)
    low = np.zeros(len(level.ids), dtype=bool)
    error = np.full(level.count, np.inf)
    axes = _axes(level, units)
    todo, where, trying = np.arange(level.count), np.arange(len(level.ids)), level
    for axis in axes:
        cut = _make_contiguous(trying, _quantile_cut(trying, axis[todo], units), units, adjacency)
        err = _cut_errors(trying, cut, units)
        better = err < error[todo]
        error[todo[better]] = err[better]
        take = better[trying.node]
        low[where[take]] = cut[take]
        again = err > _CUT_TOLERANCE
        if not again.any():
            break
        todo, where, trying = todo[again], where[again[trying.node]], trying.only(again)
    return _halves(level, low, units)


def _halves(
    level: _Level, low: Bools, units: _Units
) -> list[tuple[tuple[Ints, int], tuple[Ints, int]]]:
    """Each group's low and high units (ascending), with the EAs each is to make."""
    side = 2 * level.node + (~low)
    order = np.argsort(side, kind="stable")
    counts = np.bincount(side, minlength=2 * level.count)
    pieces = np.split(level.ids[order], np.cumsum(counts)[:-1])
    pop = np.bincount(side, units.pop[level.ids], minlength=2 * level.count).astype(np.float64)
    size_low, size_high = counts[0::2], counts[1::2]
    n_low = _seats_low(pop[0::2], pop[1::2], level.n, size_low, size_high)
    n_high = np.minimum(level.n - n_low, size_high)
    n_low = np.minimum(n_low, size_low)
    return [
        ((pieces[2 * g], a), (pieces[2 * g + 1], b))
        for g, (a, b) in enumerate(zip(n_low.tolist(), n_high.tolist(), strict=True))
    ]


def _seats_low(pop_low: Floats, pop_high: Floats, n: Ints, size_low: Ints, size_high: Ints) -> Ints:
    """EAs for each group's low side, in proportion to its population."""
    total = pop_low + pop_high
    peopled = total > 0
    share = np.where(
        peopled, pop_low / np.where(peopled, total, 1), size_low / (size_low + size_high)
    )
    seats = np.floor(n * share + 0.5).astype(np.int64)
    return np.minimum(np.minimum(np.maximum(np.maximum(seats, 1), n - size_high), n - 1), size_low)


def _axes(level: _Level, units: _Units) -> Floats:
    """Per group, directions to cut along (4 × groups × 2): the shape's long (principal) axis,
    the short one, the diagonals between them; each with its larger component positive, so
    that "low" means west or south."""
    major, minor = _principal_axes(*_moments_of(level, units))
    half = math.sqrt(2)
    diagonals = (_positive_all((major + minor) / half), _positive_all((major - minor) / half))
    return np.stack([major, minor, *diagonals])


def _positive_all(vectors: Floats) -> Floats:
    """Each row or its opposite, whichever has its larger component positive."""
    x, y = vectors[:, 0], vectors[:, 1]
    big = np.where(np.abs(x) >= np.abs(y), x, y)
    return np.where((big > 0)[:, None], vectors, -vectors)


def _moments_of(level: _Level, units: _Units) -> tuple[Floats, Floats, Floats]:
    """Each group's _moments, summed for all groups at once, except where the axes they give
    hang on the sums' last bits: a group close to axis-aligned (cov xy near 0) or to round
    (var x near var y) is summed on its own by _moments, as every group used to be, so its
    cut directions and the ties they break stay the same."""
    node, count = level.node, level.count
    x, y, area = units.x[level.ids], units.y[level.ids], units.area[level.ids]

    def sums(values: Floats) -> Floats:
        """Per group, the sum of its values."""
        return np.bincount(node, values, minlength=count).astype(np.float64, copy=False)

    total = sums(area)
    w = area / np.where(total > 0, total, 1.0)[node]
    dx, dy = x - sums(w * x)[node], y - sums(w * y)[node]
    a, b, c = sums(w * dx * dx), sums(w * dx * dy), sums(w * dy * dy)
    scale = np.abs(a) + np.abs(c)
    close = (np.abs(b) <= _AXIS_SLACK * scale) | (np.abs(a - c) <= _AXIS_SLACK * scale)
    for g in np.flatnonzero(close | ~(total > 0) | ~np.isfinite(scale)).tolist():
        idx = level.ids[level.starts[g] : level.starts[g + 1]]
        a[g], b[g], c[g] = _moments(units.x[idx], units.y[idx], units.area[idx])
    return a, b, c


def _moments(x: Floats, y: Floats, weight: Floats) -> tuple[float, float, float]:
    """The weighted covariance of the points: var x, cov xy, var y."""
    w = weight / weight.sum() if weight.sum() > 0 else np.full(len(x), 1 / len(x))
    dx, dy = x - w @ x, y - w @ y
    return float(w @ (dx * dx)), float(w @ (dx * dy)), float(w @ (dy * dy))


def _principal_axes(a: Floats, b: Floats, c: Floats) -> tuple[Floats, Floats]:
    """Unit eigenvectors of each symmetric 2 × 2 matrix [[a, b], [b, c]] (groups × 2): of the
    larger eigenvalue, then of the smaller, their larger component positive (in closed form,
    for all groups at once: LAPACK's call per group cost more than the cut's arithmetic)."""
    # (the angle from the C library's atan2, cos and sin: numpy's may differ in the last bit,
    # and those bits break ties between equally good cuts)
    twice, spread = (2.0 * b).tolist(), (a - c).tolist()
    angles = [0.5 * math.atan2(y, x) for y, x in zip(twice, spread, strict=True)]
    cos = np.array([math.cos(angle) for angle in angles], dtype=np.float64)
    sin = np.array([math.sin(angle) for angle in angles], dtype=np.float64)
    # Axis-aligned where cov xy is 0, in eigh's order: on a tie, north-south is the major axis.
    aligned, east_first = (b == 0.0)[:, None], (a > c)[:, None]
    east, north = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    major = np.where(
        aligned,
        np.where(east_first, east, north),
        _positive_all(np.column_stack([cos, sin]).reshape(-1, 2)),
    )
    minor = np.where(
        aligned,
        np.where(east_first, north, east),
        _positive_all(np.column_stack([-sin, cos]).reshape(-1, 2)),
    )
    return major, minor


def _quantile_cut(level: _Level, axis: Floats, units: _Units) -> Bools:
    """Per group, its units before the population-weighted quantile of ⌈n/2⌉ of n EAs along
    its axis (by area where the group is empty)."""
    pop = units.pop[level.ids]
    projection = units.x[level.ids] * axis[level.node, 0] + units.y[level.ids] * axis[level.node, 1]
    # By group, then along the axis; ties in ascending unit order (the positions' order):
    # a stable sort along the axis, then a stable one by group (a radix sort on small
    # integers), which is np.lexsort((projection, level.node)) in about 2/3 of its time.
    along = np.argsort(projection, kind="stable")
    group = level.node[along]
    order = along[
        np.argsort(group.astype(np.uint16) if level.count < 2**16 else group, kind="stable")
    ]
    peopled = np.bincount(level.node, pop > 0, minlength=level.count) > 0
    weights = np.where(peopled[level.node], pop, units.area[level.ids])[order]
    # Each group's cumulative weights from 0, summed within the group alone (as one group cut
    # on its own: the same sums to the last bit, so ties between equal cells break the same).
    sizes = np.diff(level.starts)
    prefix = _prefix_sums(weights, sizes)
    entry = np.repeat(np.arange(level.count), sizes + 1)  # the group of each prefix entry
    first = level.starts[:-1] + np.arange(level.count)  # where each group's prefix starts

    def below(values: Floats, inclusive: bool = False) -> Ints:
        """Per group, how many of its prefix entries are below the group's value."""
        under = prefix <= values[entry] if inclusive else prefix < values[entry]
        return np.bincount(entry, under, minlength=level.count).astype(np.int64)

    target = (level.n + 1) // 2 / level.n * prefix[first + sizes]
    j = below(target)
    # The cut position nearest the target, of j - 1 and j (the first on a tie), within 1..size-1.
    ok_before, ok_at = (j >= 2) & (j <= sizes), (j >= 1) & (j <= sizes - 1)
    off_before = np.abs(prefix[first + np.clip(j - 1, 0, sizes)] - target)
    off_at = np.abs(prefix[first + np.clip(j, 0, sizes)] - target)
    fallback = np.where(j < 1, 1, sizes - 1)
    best = np.where(
        ok_before & ok_at,
        np.where(off_at < off_before, j, j - 1),
        np.where(ok_before, j - 1, np.where(ok_at, j, fallback)),
    )
    # Among cut positions with the same population on each side (empty land), take the middle
    # one, so that the line falls halfway across the empty stretch.
    value = prefix[first + best]
    lowest, highest = below(value), below(value, inclusive=True) - 1
    middle = (np.maximum(lowest, 1) + np.minimum(highest, sizes - 1)) // 2
    m = np.clip(middle, 1, sizes - 1)
    low = np.empty(len(level.ids), dtype=bool)
    low[order] = np.arange(len(level.ids)) - level.starts[level.node] < m[level.node]
    return low


def _prefix_sums(weights: Floats, sizes: Ints) -> Floats:
    """Per group of consecutive weights, 0 then their running sums, groups one after the
    other. Each group's sums are those of np.cumsum over the group alone (a running sum adds
    in order, so rows of a table padded at their ends give the same bits): large groups one
    by one, the many small ones of the deep levels in one table per size class."""
    count = len(sizes)
    prefix = np.zeros(len(weights) + count)
    starts = (np.cumsum(sizes) - sizes).tolist()
    small = sizes < _ONE_BY_ONE
    for g in np.flatnonzero(~small).tolist():
        start, end = starts[g], starts[g] + int(sizes[g])
        prefix[start + g + 1 : end + g + 1] = np.cumsum(weights[start:end])
    if not small.any():
        return prefix
    begins = np.asarray(starts, dtype=np.int64)
    size_class = np.ceil(np.log2(np.maximum(sizes, 1))).astype(np.int64)
    for size in _unique_ints(size_class[small]).tolist():
        chosen = np.flatnonzero(small & (size_class == size))
        lengths = sizes[chosen]
        row = np.repeat(np.arange(len(chosen)), lengths)
        column = _ranges(lengths)
        table = np.zeros((len(chosen), int(lengths.max(initial=0))))
        table[row, column] = weights[np.repeat(begins[chosen], lengths) + column]
        # (after each group's leading 0: the group's start plus its number)
        where = np.repeat(begins[chosen] + chosen + 1, lengths) + column
        prefix[where] = np.cumsum(table, axis=1)[row, column]
    return prefix


def _make_contiguous(level: _Level, low: Bools, units: _Units, adjacency: _Graph) -> Bools:
    """The cuts with every stray piece of a side moved to the side it touches (most cuts have
    one piece a side, found for all groups at once; the others are mended one by one)."""
    same = low[level.heads] == low[level.tails]
    within = _Graph._sorted(level.heads[same], level.tails[same], len(level.ids))
    count, piece = within.components()
    group_of_piece = np.empty(count, dtype=np.int64)
    group_of_piece[piece] = level.node
    for g in np.flatnonzero(np.bincount(group_of_piece, minlength=level.count) > 2).tolist():
        start, end = int(level.starts[g]), int(level.starts[g + 1])
        idx = level.ids[start:end]
        low[start:end] = _mend(low[start:end], adjacency.subgraph(idx), units.pop[idx])
    return low


def _mend(low: Bools, sub: _Graph, pop: Floats) -> Bools:
    """One group's cut with every stray piece of a side moved to the side it touches."""
    side = np.where(low, 0, 1)
    count, labels = sub.within(side).components()
    if count <= 2:
        return low
    pieces = _split_by_label(labels, count)
    assigned = np.full(len(low), -1)
    for s in (0, 1):
        # A side keeps its most populous piece (ties: the biggest) and lets the others go.
        own = [i for i in range(count) if side[pieces[i][0]] == s]
        core = max(own, key=lambda i: (pop[pieces[i]].sum(), len(pieces[i])))
        assigned[pieces[core]] = s
    strays = [(piece, int(side[piece[0]])) for piece in pieces if assigned[piece[0]] < 0]
    while strays:
        pending: list[tuple[Ints, int]] = []
        for piece, s in strays:
            touching = assigned[sub.edges_from(piece)[1]]
            if (touching == s).any():
                assigned[piece] = s
            elif (touching == 1 - s).any():
                assigned[piece] = 1 - s
            else:
                pending.append((piece, s))
        if len(pending) == len(strays):
            for piece, s in pending:  # not reachable: the units were not contiguous to start with
                assigned[piece] = s
            break
        strays = pending
    return np.asarray(assigned == 0)


def _cut_errors(level: _Level, low: Bools, units: _Units) -> Floats:
    """Per group, the worst relative deviation of a side's persons per EA from the group's."""
    pop = units.pop[level.ids]
    return np.array(
        [
            _cut_error(pop[start:end], low[start:end], n)
            for (start, end), n in zip(level.spans(), level.n.tolist(), strict=True)
        ]
    )


def _cut_error(pop: Floats, low: Bools, n: int) -> float:
    """Worst relative deviation of a side's persons per EA from the whole's."""
    total = float(pop.sum())
    if total <= 0:
        return 0.0
    share = float(pop[low].sum()) / total
    seats = min(max(math.floor(n * share + 0.5), 1), n - 1)
    return max(abs(n * share / seats - 1), abs(n * (1 - share) / (n - seats) - 1))


# --- geometry ------------------------------------------------------------------------------------


def _assemble(units: _Units, grid: _Grid, groups: list[Ints]) -> list[BaseGeometry]:
    """Each group's geometry: the coverage union of its interior cells, as runs along rows,
    then its faces (each in the group's order). One call per size class of groups (one per
    group cost more than the union of a small group), each group a row padded with None,
    which the union skips."""
    n_in = units.n_interior
    sizes = np.array([len(group) for group in groups], dtype=np.int64)
    group_of = np.empty(units.count, dtype=np.int64)
    group_of[np.concatenate(groups)] = np.repeat(np.arange(len(groups)), sizes)
    runs, run_group = _cell_runs(grid, units.row[:n_in], units.col[:n_in], group_of[:n_in])
    pieces = np.concatenate([runs, units.faces]).astype(object)
    owner = np.concatenate([run_group, group_of[n_in:]])
    # By group: runs, then faces (each group's members in the order they were made).
    members = np.argsort(owner, kind="stable")
    row = owner[members]
    counts = np.bincount(owner, minlength=len(groups))
    column = np.arange(len(members)) - np.repeat(np.cumsum(counts) - counts, counts)
    # Rows of similar size together, so that little of each table is padding.
    size_class = np.ceil(np.log2(np.maximum(counts, 1))).astype(np.int64)
    geometries = np.empty(len(groups), dtype=object)
    for size in np.unique(size_class).tolist():
        rows = np.flatnonzero(size_class == size)
        rank = np.full(len(groups), -1, dtype=np.int64)
        rank[rows] = np.arange(len(rows))
        chosen = rank[row] >= 0
        table = np.full((len(rows), int(counts[rows].max())), None, dtype=object)
        table[rank[row[chosen]], column[chosen]] = pieces[members[chosen]]
        geometries[rows] = shapely.coverage_union_all(table, axis=1)
    return list(geometries)


def _cell_runs(grid: _Grid, rows: Ints, cols: Ints, group: Ints) -> tuple[Geoms, Ints]:
    """The cells as one polygon per run of cells side by side in a row and in the same group,
    with a vertex at every cell corner along it (so its sides still match the neighbouring
    cells and faces segment for segment, as a coverage union needs), and each run's group.
    About half the segments of the cells as boxes, and a fraction of the polygons."""
    if len(rows) == 0:
        return np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
    order = np.lexsort((cols, rows, group))
    r, c, g = rows[order], cols[order], group[order]
    start = np.ones(len(r), dtype=bool)
    start[1:] = (g[1:] != g[:-1]) | (r[1:] != r[:-1]) | (c[1:] != c[:-1] + 1)
    first = np.flatnonzero(start)
    length = np.diff(np.append(first, len(r)))
    # Each ring: the north side west to east, the south side east to west, closed.
    points = 2 * length + 3
    k = _ranges(points)
    m, c0, r0 = (np.repeat(v, points) for v in (length, c[first], r[first]))
    north, south = k <= m, (k > m) & (k <= 2 * m + 1)
    col = np.where(north, c0 + k, np.where(south, c0 + 2 * m + 1 - k, c0))
    row = np.where(south, r0 + 1, r0)
    coords = np.column_stack([grid.xs[col], grid.ys[row]])
    rings = shapely.linearrings(coords, indices=np.repeat(np.arange(len(first)), points))
    return np.asarray(shapely.polygons(rings)), g[first]

"""EAs along visible features: a commune is first cut into blocks along the loaded lines
(roads, rivers, railways) and its own edge, as census offices build small blocks before
grouping them (US Census blocks, GRID3/gridEZ); blocks with too many people are split along
the population grid (geo_service.ea.delineate), and blocks with too few are grouped with
their neighbours into contiguous EAs of the target size. An EA's boundary then runs along a
line wherever a line is near, and across the grid only inside a block that needs cutting.

Where no line crosses a commune the grid method alone is used, with the cell edges
between EAs simplified as a coverage (no staircases where a straight edge will do; the
commune's edge is kept exactly, so the EAs still cover it with no gaps or overlaps).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from shapely import STRtree
from shapely.geometry import MultiPolygon
from shapely.geometry.base import BaseGeometry

from geo_service.ea.delineate import DraftEA, _polygonal, generate_on_grid, polygonal_all

_M_PER_DEG = 111_320.0
# A group of blocks is an EA once it holds this share of the target population; smaller
# ones join a neighbour (so no EA of a handful of households is left behind a road).
_MIN_FILL = 0.6
# ...and a merge should not make an EA larger than this share of the target, if another
# neighbour avoids it.
_MAX_FILL = 1.5
# Blocks (faces between lines) narrower than this are slivers along a line: joined to a
# neighbour whatever their population.
_SLIVER_M = 15.0
# How far apart two pieces' edges may be and still count as shared (floating point only).
_TOUCH_DEG = 1e-7
# How far a vertex moves to join its neighbour's edge (about 0.1 mm: floating point only).
_SNAP_DEG = 1e-9

Geoms = npt.NDArray[np.object_]
Ints = npt.NDArray[np.int64]


@dataclass
class _Piece:
    geometry: MultiPolygon  # (an EA drafted in one block)
    population: float


def cut_into_blocks(commune: BaseGeometry, lines: list[BaseGeometry]) -> list[BaseGeometry]:
    """The faces the lines cut the commune into (all of it, exactly once)."""
    area = _polygonal(commune)
    linear = [
        part
        for line in lines
        for part in shapely.get_parts(shapely.intersection(line, area))
        if part.geom_type in ("LineString", "LinearRing") and not part.is_empty
    ]
    if not linear:
        return [area]
    noded = shapely.union_all([area.boundary, *linear])
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    if len(faces) == 0:
        return [area]
    points = shapely.point_on_surface(faces)
    shapely.prepare(area)
    inside = shapely.contains(area, points) & (shapely.area(faces) > 0)
    blocks = list(faces[inside])
    return blocks or [area]


def simplify_within(drafts: list[DraftEA], cell_size_m: float) -> list[DraftEA]:
    """The drafts with the grid's staircases between them simplified (the outer edge, i.e.
    the commune's or the block's, is kept as it is). `cell_size_m`: the nominal cell, or the
    coarser one of sparse land (never the finer cells of dense pixels: their steps are still
    cut at the nominal size)."""
    if len(drafts) < 2:
        return drafts
    tolerance = 0.6 * cell_size_m / _M_PER_DEG
    geometries = np.asarray([d.geometry for d in drafts], dtype=object)
    try:
        simplified = shapely.coverage_simplify(geometries, tolerance, simplify_boundary=False)
    except shapely.errors.GEOSException:
        return drafts
    if not all(shapely.is_valid(simplified)) or any(shapely.is_empty(simplified)):
        return drafts
    return [
        DraftEA(d.serial, g, d.population, d.households)
        for d, g in zip(drafts, polygonal_all(list(simplified), valid=True), strict=True)
    ]


def generate_along_lines(
    commune: BaseGeometry,
    lines: list[BaseGeometry],
    raster: Path,
    households_per_ea: float = 120,
    household_size: float = 3.5,
    cell_size_m: float = 100,
) -> list[DraftEA]:
    """Draft EAs covering the commune, with boundaries along the lines where they can."""
    area = _polygonal(commune)
    if area.is_empty:
        return []
    blocks = cut_into_blocks(area, lines) if lines else [area]
    if len(blocks) == 1:
        drafts, cell_m = generate_on_grid(
            area, raster, households_per_ea, household_size, cell_size_m
        )
        # One block is one noding of one grid, whose faces share their vertices exactly, and
        # coverage simplification keeps a valid coverage valid: nothing for as_coverage to
        # repair, and its check was ~5 % of a run's CPU.
        return simplify_within(drafts, max(cell_m, cell_size_m))
    pieces: list[_Piece] = []
    for block in blocks:
        drafts, cell_m = generate_on_grid(
            block, raster, households_per_ea, household_size, cell_size_m
        )
        pieces += [
            _Piece(d.geometry, d.population)
            for d in simplify_within(drafts, max(cell_m, cell_size_m))
        ]
    groups = _group(pieces, households_per_ea * household_size)
    drafts = []
    for serial, members in enumerate(_in_reading_order(pieces, groups), 1):
        population = float(sum(pieces[i].population for i in members))
        if len(members) == 1:  # (already a valid MultiPolygon: a union would only redo it)
            geometry = pieces[members[0]].geometry
        else:
            geometry = _polygonal(shapely.union_all([pieces[i].geometry for i in members]))
        drafts.append(DraftEA(serial, geometry, population, population / household_size))
    return as_coverage(drafts)


def as_coverage(drafts: list[DraftEA]) -> list[DraftEA]:
    """The drafts with every vertex of an EA's edge also on its neighbour's side of it.

    Blocks are cut on their own grids, so where two blocks meet the two sides of an edge may
    not match: one side has a vertex the other lacks, or both have the same point computed
    twice (a grid line crossing a line's edge, noded once in each block) and a last digit
    apart. Either way the same line, but not a valid coverage (`shapely.coverage_is_valid`),
    which editors, coverage simplification and topology checks rely on. Only a commune whose
    EAs are not a valid coverage is touched: points closer than _SNAP_DEG become one, then
    EAs get their neighbours' vertices inserted (a move far below any rule's tolerance)."""
    if len(drafts) < 2:
        return drafts
    geometries = np.asarray([d.geometry for d in drafts], dtype=object)
    for attempt in range(3):
        broken = np.flatnonzero(~shapely.is_empty(shapely.coverage_invalid_edges(geometries)))
        if len(broken) == 0:
            break
        if attempt == 0:
            geometries = _one_vertex_per_point(geometries)
        geometries = _with_neighbours_vertices(geometries, broken)
    # (the EAs left as they were are MultiPolygons made by _polygonal already)
    return [
        d if g is d.geometry else DraftEA(d.serial, _polygonal(g), d.population, d.households)
        for d, g in zip(drafts, geometries, strict=True)
    ]


def _one_vertex_per_point(geometries: Geoms) -> Geoms:
    """The geometries with vertices closer than _SNAP_DEG (of any of them) made one: the
    smallest of each cluster, so that both sides of an edge move to the same point."""
    coords, owner = shapely.get_coordinates(geometries, return_index=True)
    points, where = np.unique(coords, axis=0, return_inverse=True)
    where = where.reshape(-1)
    pairs = cKDTree(points).query_pairs(_SNAP_DEG, output_type="ndarray")
    if len(pairs) == 0:
        return geometries
    graph = csr_matrix(
        (np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(points), len(points))
    )
    _, cluster = connected_components(graph, directed=False)
    first = np.full(cluster.max() + 1, len(points))
    np.minimum.at(first, cluster, np.arange(len(points)))  # points are sorted: the smallest
    moved = coords.copy()
    moved[:] = points[first[cluster[where]]]
    changed = np.unique(owner[(moved != coords).any(axis=1)])
    theirs = moved[np.isin(owner, changed)]  # (in the order transform hands them over)
    fixed = geometries.copy()
    # (a ring's two near-duplicate vertices are one now: the repeat is dropped)
    fixed[changed] = shapely.remove_repeated_points(
        shapely.transform(geometries[changed], lambda _: theirs)
    )
    return fixed


def _with_neighbours_vertices(geometries: Geoms, which: Ints) -> Geoms:
    """The geometries, those listed snapped to the vertices of the ones they touch, one after
    the other (each to its neighbours as already snapped: snapped all at once, two EAs with
    the same point a last digit apart would swap their vertices and still not match)."""
    fixed = geometries.copy()
    tree = STRtree(geometries)
    for i in which.tolist():
        near = tree.query(geometries[i], predicate="intersects")
        near = near[near != i]
        if len(near):
            points = shapely.multipoints(shapely.get_coordinates(fixed[near]))
            fixed[i] = shapely.snap(fixed[i], points, _SNAP_DEG)
    return fixed


Job = tuple[str, BaseGeometry, list[BaseGeometry], Path, float, float, float]
# A commune's drafts, and (EA boundary length, length along a line) where lines cross it.
Result = tuple[str, list[DraftEA], tuple[float, float] | None]


def generate_many_along_lines(
    communes: list[tuple[str, BaseGeometry, list[BaseGeometry]]],
    raster: Path,
    households_per_ea: float = 120,
    household_size: float = 3.5,
    cell_size_m: float = 100,
    workers: int = 2,
) -> dict[str, list[DraftEA]]:
    """Draft EAs of many communes (code, geometry, lines), on `workers` processes."""
    found = iter_along_lines(
        communes, raster, households_per_ea, household_size, cell_size_m, workers
    )
    return {code: drafts for code, drafts, _ in found}


def iter_along_lines(
    communes: list[tuple[str, BaseGeometry, list[BaseGeometry]]],
    raster: Path,
    households_per_ea: float = 120,
    household_size: float = 3.5,
    cell_size_m: float = 100,
    workers: int = 2,
) -> Iterator[Result]:
    """Each commune's drafts (with their share along lines) as soon as they are made, in the
    order given, from one pool of `workers` processes for the whole run (the caller stores
    earlier communes while the workers go on)."""
    jobs = (
        (code, geometry, lines, Path(raster), households_per_ea, household_size, cell_size_m)
        for code, geometry, lines in communes
    )
    if workers <= 1 or len(communes) <= 1:
        yield from map(_job, jobs)
        return
    # One commune per task: communes vary a lot in cost, and chunks would leave a worker idle.
    pool = ProcessPoolExecutor(max_workers=workers)
    try:
        yield from pool.map(_job, jobs, chunksize=1)
    finally:
        # A caller that stops early (a failed write) does not wait for the rest of the run.
        pool.shutdown(wait=True, cancel_futures=True)


def _job(job: Job) -> Result:
    """One commune's EAs and their share along its lines (a picklable unit of work)."""
    code, geometry, lines, raster, households_per_ea, household_size, cell_size_m = job
    drafts = generate_along_lines(
        geometry, lines, raster, households_per_ea, household_size, cell_size_m
    )
    return code, drafts, boundary_share(drafts, geometry, lines) if lines else None


def boundary_share(
    drafts: list[DraftEA], commune: BaseGeometry, lines: list[BaseGeometry]
) -> tuple[float, float]:
    """(length of the EA boundaries inside the commune, length of it along a line), metres.

    The EAs cover the commune, so an inner edge is on two EAs' boundaries and the commune's
    edge on one: both lengths come from the EAs' own boundaries, with no union of them."""
    if len(drafts) < 2:
        return 0.0, 0.0
    scale = _M_PER_DEG * math.sqrt(max(math.cos(math.radians(commune.centroid.y)), 1e-6))
    edges = shapely.boundary(np.asarray([d.geometry for d in drafts], dtype=object))
    outline = shapely.boundary(commune)
    total = (float(shapely.length(edges).sum()) - float(shapely.length(outline))) / 2 * scale
    if not lines or total <= 0:
        return max(total, 0.0), 0.0
    near = shapely.buffer(shapely.union_all(lines), 5.0 / scale)
    shapely.prepare(near)
    touching = edges[shapely.intersects(near, edges)]
    twice = float(shapely.length(shapely.intersection(touching, near)).sum())
    once = float(shapely.length(shapely.intersection(outline, near)))
    return total, max(twice - once, 0.0) / 2 * scale


def _neighbours(pieces: list[_Piece]) -> list[dict[int, float]]:
    """For each piece, the pieces it shares an edge with and the length shared (degrees)."""
    geometries = np.asarray([p.geometry for p in pieces], dtype=object)
    tree = STRtree(geometries)
    left, right = tree.query(geometries, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    # Each piece's outline and slightly grown shape once, not once per pair it is in.
    outlines, grown = shapely.boundary(geometries), shapely.buffer(geometries, _TOUCH_DEG)
    shared = shapely.length(shapely.intersection(outlines[left], grown[right]))
    found: list[dict[int, float]] = [{} for _ in pieces]
    for a, b, length in zip(left.tolist(), right.tolist(), shared.tolist(), strict=True):
        if length > 10 * _TOUCH_DEG:
            found[a][b] = found[b][a] = length
    return found


def _group(pieces: list[_Piece], target: float) -> list[int]:
    """A group label per piece: under-filled groups join a neighbour, smallest first."""
    parent = list(range(len(pieces)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    population = [p.population for p in pieces]
    slivers = {i for i, p in enumerate(pieces) if _width_m(p.geometry) < _SLIVER_M}
    touching = _neighbours(pieces)
    heap = [(population[i] if i not in slivers else -1.0, i) for i in range(len(pieces))]
    heapq.heapify(heap)
    while heap:
        pop, i = heapq.heappop(heap)
        i_root = root(i)
        if i_root != i or (pop != population[i] and pop != -1.0):
            continue  # a stale entry: the group changed since
        if pop >= _MIN_FILL * target:
            break
        candidates = {root(j): length for j, length in touching[i].items() if root(j) != i}
        if not candidates:
            continue  # an island of too few people: it stays one EA
        best = min(
            candidates,
            key=lambda j: (
                population[j] + population[i] > _MAX_FILL * target,
                population[j],
                -candidates[j],
            ),
        )
        parent[i] = best
        population[best] += population[i]
        for j, length in touching[i].items():
            if root(j) != best:
                touching[best][j] = touching[best].get(j, 0.0) + length
        heapq.heappush(heap, (population[best], best))
    return [root(i) for i in range(len(pieces))]


def _width_m(geometry: BaseGeometry) -> float:
    """About how wide a shape is: twice its area over its perimeter, in metres."""
    perimeter = shapely.length(geometry)
    if perimeter <= 0:
        return 0.0
    latitude = geometry.centroid.y if not geometry.is_empty else 0.0
    scale = _M_PER_DEG * math.sqrt(max(math.cos(math.radians(latitude)), 1e-6))
    return float(2 * shapely.area(geometry) / perimeter * scale)


def _in_reading_order(pieces: list[_Piece], labels: list[int]) -> list[list[int]]:
    """The groups' members, groups numbered from north-west to south-east."""
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)

    def key(members: list[int]) -> tuple[float, float]:
        x0, y0, x1, y1 = shapely.total_bounds([pieces[i].geometry for i in members])
        return (-round((y0 + y1) / 2, 3), (x0 + x1) / 2)

    return sorted(groups.values(), key=key)

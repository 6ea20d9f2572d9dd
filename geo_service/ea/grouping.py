"""Proposals for organising a commune's EAs: supervisor areas (contiguous groups of EAs,
balanced by households, with a number of EAs inside a band) and the assignment of EAs to
enumerators. Pure computation on EA geometries and figures: deterministic (ties broken by
EA code), nothing read or written here; every group carries the reasons it breaks the band
where it has to (an island, a part too small to split)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo_service.messages import Said, said

_M_PER_DEG = 111_320.0
MIN_SHARED_EDGE_M = 1.0  # EAs touching at a corner (or along less) are not neighbours
_MAX_PASSES = 60  # improvement passes over every border EA (each must strictly improve)
_BAND_PENALTY = 25.0  # one EA outside the band outweighs any household imbalance


@dataclass(frozen=True)
class Unit:
    """An EA to be grouped: its code, households (raster estimate) and shape (lon/lat)."""

    code: str
    households: float
    geometry: BaseGeometry


@dataclass
class Group:
    """A proposed group: indices of its units (sorted by code) and why it breaks the band."""

    members: list[int]
    households: float
    notes: list[Said] = field(default_factory=list)


def adjacency(units: list[Unit], min_edge_m: float = MIN_SHARED_EDGE_M) -> list[set[int]]:
    """Neighbours of each unit: units sharing at least `min_edge_m` of boundary."""
    geoms = np.array([u.geometry for u in units], dtype=object)
    neighbours: list[set[int]] = [set() for _ in units]
    if len(units) < 2:
        return neighbours
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if not len(left):
        return neighbours
    boundaries = shapely.boundary(geoms)
    shared = shapely.length(shapely.intersection(boundaries[left], boundaries[right]))
    latitude = float(np.mean([u.geometry.centroid.y for u in units]))
    # (a shared edge in degrees, measured at its worst: along a meridian or a parallel)
    metres = shared * _M_PER_DEG * min(1.0, math.cos(math.radians(latitude)))
    for a, b, m in zip(left.tolist(), right.tolist(), metres.tolist(), strict=True):
        if m >= min_edge_m:
            neighbours[a].add(b)
            neighbours[b].add(a)
    return neighbours


def components(order: list[int], neighbours: list[set[int]]) -> list[list[int]]:
    """Connected parts of the units listed, each sorted as `order`, in order of first unit."""
    rank = {u: i for i, u in enumerate(order)}
    seen: set[int] = set()
    parts = []
    for start in order:
        if start in seen:
            continue
        part, queue = [], deque([start])
        seen.add(start)
        while queue:
            u = queue.popleft()
            part.append(u)
            for v in sorted(neighbours[u] & rank.keys(), key=rank.__getitem__):
                if v not in seen:
                    seen.add(v)
                    queue.append(v)
        parts.append(sorted(part, key=rank.__getitem__))
    return parts


def is_contiguous(members: Iterable[int], neighbours: list[set[int]]) -> bool:
    """Whether the units form one piece through shared edges."""
    inside = set(members)
    if len(inside) <= 1:
        return True
    start = next(iter(inside))
    seen, queue = {start}, deque([start])
    while queue:
        for v in neighbours[queue.popleft()] & inside:
            if v not in seen:
                seen.add(v)
                queue.append(v)
    return len(seen) == len(inside)


def group_count(n: int, low: int, high: int) -> int:
    """How many groups n EAs make: near the middle of the band, each within it if possible."""
    fewest = math.ceil(n / high)
    most = max(fewest, n // low)
    return min(max(round(n / ((low + high) / 2)), fewest), most, n)


def propose_groups(units: list[Unit], low: int, high: int) -> list[Group]:
    """Contiguous groups covering every unit exactly once, each of `low`–`high` units where
    the shape of the commune allows, balanced by households; groups in a stable order."""
    if not 1 <= low <= high:
        raise ValueError("the band needs 1 <= low <= high")
    order = sorted(range(len(units)), key=lambda i: units[i].code)
    neighbours = adjacency(units)
    groups: list[Group] = []
    for part in components(order, neighbours):
        groups.extend(_group_part(units, part, neighbours, low, high, len(part) < len(order)))
    groups.sort(key=lambda g: units[g.members[0]].code)
    return groups


def _group_part(
    units: list[Unit],
    part: list[int],
    neighbours: list[set[int]],
    low: int,
    high: int,
    cut_off: bool,
) -> list[Group]:
    """One connected part of the commune, grouped."""
    households = {i: max(units[i].households, 0.0) for i in part}
    k = group_count(len(part), low, high)
    if k == 1:
        group = Group(part, sum(households.values()))
        if len(part) < low:
            codes = ", ".join(units[i].code for i in part)
            key = "group_island" if cut_off else "group_small_commune"
            group.notes.append(said(key, codes=codes, count=len(part), band=f"{low}–{high}"))
        elif len(part) > high:  # (cannot happen: k grows with n)
            group.notes.append(said("group_band", count=len(part), band=f"{low}–{high}"))
        return [group]
    xy = _centroids_m(units, part)
    seeds = _seeds(part, neighbours, xy, k)
    labels = _grow(part, neighbours, xy, households, seeds, high)
    labels = _improve(part, neighbours, households, labels, k, low, high, units)
    out = []
    for g in range(k):
        members = sorted((i for i in part if labels[i] == g), key=lambda i: units[i].code)
        group = Group(members, sum(households[i] for i in members))
        if not low <= len(members) <= high:
            group.notes.append(
                said(
                    "group_band_part",
                    count=len(members),
                    band=f"{low}–{high}",
                    part=len(part),
                    groups=k,
                )
            )
        out.append(group)
    return out


def _centroids_m(units: list[Unit], part: list[int]) -> dict[int, tuple[float, float]]:
    """Centroids in metres (an equirectangular view of the part; fine within a commune)."""
    points = {i: units[i].geometry.representative_point() for i in part}
    latitude = math.radians(float(np.mean([p.y for p in points.values()])))
    return {i: (p.x * _M_PER_DEG * math.cos(latitude), p.y * _M_PER_DEG) for i, p in points.items()}


def _hops(start: int, part: set[int], neighbours: list[set[int]]) -> dict[int, int]:
    distance = {start: 0}
    queue = deque([start])
    while queue:
        u = queue.popleft()
        for v in neighbours[u] & part:
            if v not in distance:
                distance[v] = distance[u] + 1
                queue.append(v)
    return distance


def _seeds(
    part: list[int], neighbours: list[set[int]], xy: dict[int, tuple[float, float]], k: int
) -> list[int]:
    """k units spread over the part: the farthest from the first unit, then each next the
    farthest (in hops, then metres) from the seeds so far; ties to the earlier code."""
    inside = set(part)
    first = _hops(part[0], inside, neighbours)
    seeds = [max(part, key=lambda i: (first[i], -part.index(i)))]
    hops = {i: _hops(i, inside, neighbours) for i in [seeds[0]]}
    while len(seeds) < k:
        best, best_key = None, None
        for i in part:
            if i in seeds:
                continue
            near_hops = min(hops[s][i] for s in seeds)
            near_m = min(math.dist(xy[i], xy[s]) for s in seeds)
            key = (near_hops, near_m)
            if best_key is None or key > best_key:
                best, best_key = i, key
        assert best is not None
        seeds.append(best)
        hops[best] = _hops(best, inside, neighbours)
    return seeds


def _grow(
    part: list[int],
    neighbours: list[set[int]],
    xy: dict[int, tuple[float, float]],
    households: dict[int, float],
    seeds: list[int],
    high: int,
) -> dict[int, int]:
    """Grow the groups from their seeds, the lightest group (in households) first, each
    taking its free neighbour nearest its seed; a full group takes more only when no other
    group can reach what is left."""
    labels = {s: g for g, s in enumerate(seeds)}
    weight = [households[s] for s in seeds]
    size = [1] * len(seeds)
    rank = {u: i for i, u in enumerate(part)}
    while len(labels) < len(part):
        frontier: dict[int, list[int]] = {}
        for u, g in labels.items():
            for v in neighbours[u]:
                if v in rank and v not in labels:
                    frontier.setdefault(g, []).append(v)
        open_groups = [g for g in frontier if size[g] < high] or list(frontier)
        g = min(open_groups, key=lambda g: (weight[g], size[g], g))
        seed = xy[seeds[g]]
        v = min(set(frontier[g]), key=lambda v: (math.dist(xy[v], seed), rank[v]))
        labels[v] = g
        weight[g] += households[v]
        size[g] += 1
    return labels


def _cost(weights: list[float], sizes: list[int], mean: float, low: int, high: int) -> float:
    """Imbalance of households (relative to the mean) plus EAs outside the band."""
    spread = sum(((w - mean) / mean) ** 2 for w in weights) if mean > 0 else 0.0
    outside = sum(max(low - s, 0) + max(s - high, 0) for s in sizes)
    return spread + _BAND_PENALTY * outside


def _improve(
    part: list[int],
    neighbours: list[set[int]],
    households: dict[int, float],
    labels: dict[int, int],
    k: int,
    low: int,
    high: int,
    units: list[Unit],
) -> dict[int, int]:
    """Move border EAs to a neighbouring group while that lowers the cost and keeps both
    groups in one piece; in code order, so the result is the same every time."""
    weights = [0.0] * k
    sizes = [0] * k
    for u, g in labels.items():
        weights[g] += households[u]
        sizes[g] += 1
    mean = sum(weights) / k
    order = sorted(part, key=lambda i: units[i].code)
    for _ in range(_MAX_PASSES):
        moved = False
        for u in order:
            a = labels[u]
            if sizes[a] == 1:
                continue
            targets = sorted({labels[v] for v in neighbours[u] if v in labels} - {a})
            if not targets:
                continue
            here = _cost(weights, sizes, mean, low, high)
            best, best_cost = None, here - 1e-12
            for b in targets:
                weights[a] -= households[u]
                weights[b] += households[u]
                sizes[a] -= 1
                sizes[b] += 1
                cost = _cost(weights, sizes, mean, low, high)
                weights[a] += households[u]
                weights[b] -= households[u]
                sizes[a] += 1
                sizes[b] -= 1
                if cost < best_cost:
                    best, best_cost = b, cost
            if best is None:
                continue
            rest = [v for v, g in labels.items() if g == a and v != u]
            if not is_contiguous(rest, neighbours):
                continue
            labels[u] = best
            weights[a] -= households[u]
            weights[best] += households[u]
            sizes[a] -= 1
            sizes[best] += 1
            moved = True
        if not moved:
            break
    return labels


# ---- enumerators ----


@dataclass(frozen=True)
class Pick:
    """An EA to assign: its code, households, supervisor area (None: none) and neighbours."""

    code: str
    households: float
    area: str | None
    neighbours: frozenset[str] = frozenset()


@dataclass
class Assignment:
    """Proposed enumerators by EA code, and the EAs left without one (with why)."""

    enumerator_of: dict[str, str]
    unassigned: list[str]
    notes: list[Said] = field(default_factory=list)


def propose_assignments(
    eas: list[Pick],
    enumerators: list[str],
    current: dict[str, list[Pick]],
    capacity: float,
) -> Assignment:
    """Enumerators for the EAs given, area by area (heaviest EA first): one EA each while
    there are enough free enumerators; otherwise an enumerator already working in the area
    takes another EA if it keeps their households within `capacity` (the lightest load
    first, a neighbour of their EAs on a tie), else a free enumerator starts there. An
    enumerator never works in two supervisor areas; EAs nobody can take are named."""
    load = {e: sum(p.households for p in current.get(e, [])) for e in enumerators}
    area_of = {e: current[e][0].area for e in enumerators if current.get(e)}
    has = {e: {p.code for p in current.get(e, [])} for e in enumerators}
    free = [e for e in enumerators if not current.get(e)]
    todo = sorted(eas, key=lambda p: (p.area is None, p.area or "", -p.households, p.code))
    chosen: dict[str, str] = {}
    for left, pick in enumerate(todo):
        enumerator: str | None = None
        if len(free) < len(todo) - left:
            room = [
                e
                for e, area in area_of.items()
                if area == pick.area and load[e] + pick.households <= capacity
            ]
            enumerator = min(
                room, key=lambda e: (load[e], not (has[e] & pick.neighbours), e), default=None
            )
        if enumerator is None and free:
            enumerator = free.pop(0)
        if enumerator is None:
            continue
        chosen[pick.code] = enumerator
        load[enumerator] += pick.households
        has[enumerator].add(pick.code)
        area_of[enumerator] = pick.area
    left_over = sorted(p.code for p in todo if p.code not in chosen)
    notes = []
    if left_over:
        notes.append(
            said(
                "no_enumerator_left",
                count=len(left_over),
                codes=", ".join(left_over),
                capacity=f"{capacity:g}",
            )
        )
    return Assignment(chosen, left_over, notes)

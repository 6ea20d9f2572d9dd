"""Twenty editors at once on the EAs of a few communes, against a live service.

Each editor loops over create / update / split / merge / delete with ETags, on EAs that the
others are editing too: for CONCURRENCY_SECONDS when it is set, otherwise until every kind of
write has succeeded and two writes have collided (at least 20 s, at most 60 s). Afterwards,
checked independently of the service's own validator:

- no response was a 5xx (conflicts must be 409/412, rule breaks 422, vanished EAs 404);
- no lost update: in each EA's history every change starts from the state the previous one
  left, and the last state is the EA as it is now (or gone after a delete or merge);
- the history has exactly as many entries as the successful writes the clients saw;
- no two EAs of the round overlap beyond the tolerance, and every EA lies in its commune
  (shapely, in a metric CRS).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import numpy as np
import psycopg
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, box, mapping, shape
from shapely.geometry.base import BaseGeometry

from geo_service.users import add_user
from tests.conftest import PgCluster, serve

FIXED_SECONDS = os.environ.get("CONCURRENCY_SECONDS")
# (a fixed 60 s was a minute of both cores in CI; what the test proves needs the kinds of
# write and a collision, which come within seconds, and then some time for races to happen)
MIN_SECONDS, MAX_SECONDS = (float(FIXED_SECONDS),) * 2 if FIXED_SECONDS else (20.0, 60.0)
ACTIONS = {"create", "update", "split", "merge", "delete"}
EDITORS = 20
ROUND = "2029"
GRID = 4  # each commune is cut into GRID × GRID cells; EAs start on every other cell
ITEMS = "/collections/enumeration-areas/items"
TOLERANCE_M = 1.0  # GEO_SERVICE_EA_TOLERANCE_M's default


@dataclass
class Site:
    """A live service over its own database, the editors' tokens and the communes."""

    url: str
    database_url: str
    tokens: list[str]
    communes: dict[str, BaseGeometry]
    cells: dict[str, list[BaseGeometry]]


def _cells(commune: BaseGeometry) -> list[BaseGeometry]:
    x0, y0, x1, y1 = commune.bounds
    dx, dy = (x1 - x0) / GRID, (y1 - y0) / GRID
    cells = []
    for i in range(GRID):
        for j in range(GRID):
            cell = commune.intersection(
                box(x0 + i * dx, y0 + j * dy, x0 + (i + 1) * dx, y0 + (j + 1) * dy)
            )
            polygons = [
                p for p in shapely.get_parts(cell) if p.geom_type == "Polygon" and p.area > 1e-8
            ]
            if polygons:
                cells.append(max(polygons, key=lambda p: p.area))
    return cells


@pytest.fixture(scope="module")
def site(pg: PgCluster, demo_template: str) -> Iterator[Site]:
    database_url = pg.create_database(demo_template)
    with psycopg.connect(database_url, autocommit=True) as conn:
        tokens = [add_user(conn, f"editor{i}", "editor", ["01"]) for i in range(EDITORS)]
        rows = conn.execute(
            "SELECT c.code, ST_AsBinary(c.geom) FROM commune_coverage c JOIN admin_unit u"
            " ON u.vintage = c.vintage AND u.level = 'commune' AND u.code = c.code"
            " WHERE c.vintage = '2025' AND u.parent_code = '01' ORDER BY c.code LIMIT 3"
        ).fetchall()
    communes = {code: shapely.from_wkb(wkb) for code, wkb in rows}
    try:
        with serve(database_url) as url:
            site = Site(
                url,
                database_url,
                tokens,
                communes,
                {code: _cells(geom) for code, geom in communes.items()},
            )
            with httpx2.Client(
                base_url=url, timeout=120, headers={"Authorization": f"Bearer {tokens[0]}"}
            ) as client:
                for code, cells in site.cells.items():
                    for cell in cells[::2]:
                        response = client.post(ITEMS, json=_feature(code, cell))
                        assert response.status_code in (201, 422), response.text
            yield site
    finally:
        pg.drop_database(database_url)


def _feature(commune: str, geom: BaseGeometry, **props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": mapping(geom),
        "properties": {"census_round": ROUND, "commune_code": commune, **props},
    }


class Progress:
    """What the editors together have seen so far (shared by their threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.succeeded: set[str] = set()
        self.collided = False
        self.stop = threading.Event()

    def saw(self, action: str, status: int) -> None:
        """Remember one response."""
        with self.lock:
            if status < 300:
                self.succeeded.add(action)
            self.collided = self.collided or status in (409, 412)

    def enough(self) -> bool:
        """True once every kind of write has succeeded and two writes have collided."""
        with self.lock:
            return self.succeeded == ACTIONS and self.collided

    def run_editors(self, threads: list[threading.Thread]) -> None:
        """Start the editors' threads, stop them once enough was seen (within the bounds),
        and wait for them."""
        start = time.monotonic()
        for thread in threads:
            thread.start()
        while (elapsed := time.monotonic() - start) < MAX_SECONDS:
            if elapsed >= MIN_SECONDS and self.enough():
                break
            time.sleep(0.5)
        self.stop.set()
        for thread in threads:
            thread.join()


@dataclass
class Tally:
    """What one editor saw."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    history_rows: int = 0  # entries the successful writes must have added to the history
    errors: list[str] = field(default_factory=list)


class Editor:
    """One editor's loop of random writes."""

    def __init__(self, site: Site, token: str, seed: int, progress: Progress):
        self.site, self.progress = site, progress
        self.random = random.Random(seed)
        self.client = httpx2.Client(
            base_url=site.url, timeout=120, headers={"Authorization": f"Bearer {token}"}
        )
        self.tally = Tally()

    def _record(self, action: str, response: httpx2.Response, rows: int = 1) -> bool:
        self.tally.statuses[(action, response.status_code)] += 1
        self.progress.saw(action, response.status_code)
        if response.status_code >= 500 or response.status_code in (400, 401, 403, 428):
            self.tally.errors.append(f"{action} {response.status_code}: {response.text[:300]}")
        ok = response.status_code < 300
        if ok:
            self.tally.history_rows += rows
        return ok

    def _eas(self, commune: str) -> list[dict[str, Any]]:
        response = self.client.get(ITEMS, params={"commune": commune, "round": ROUND})
        features: list[dict[str, Any]] = response.json()["features"]
        return features

    def _pick(self, commune: str) -> tuple[dict[str, Any], str] | None:
        """A random EA of the commune as it is now, with its ETag (None if there is none)."""
        eas = self._eas(commune)
        return self._read(self.random.choice(eas)) if eas else None

    def _read(self, ea: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
        response = self.client.get(f"{ITEMS}/{ea['id']}")
        if response.status_code == 404:
            return None
        return response.json(), response.headers["ETag"]

    def run(self) -> None:
        try:
            while not self.progress.stop.is_set():
                commune = self.random.choice(sorted(self.site.communes))
                action = self.random.choice(
                    ["create", "create", "update", "update", "split", "merge", "delete"]
                )
                getattr(self, action)(commune)
        except Exception as exc:  # a transport error or a broken response fails the test
            self.tally.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self.client.close()

    def create(self, commune: str) -> None:
        cell = self.random.choice(self.site.cells[commune])
        response = self.client.post(ITEMS, json=_feature(commune, cell, reason="create"))
        self._record("create", response)

    def update(self, commune: str) -> None:
        if (read := self._pick(commune)) is None:
            return
        ea, etag = read
        geom = shape(ea["geometry"])
        shrunk = geom.buffer(-0.00002) if self.random.random() < 0.3 else geom
        if shrunk.is_empty or shrunk.area < geom.area * 0.5:
            shrunk = geom
        method = self.random.choice(["PUT", "PATCH"])
        response = self.client.request(
            method,
            f"{ITEMS}/{ea['id']}",
            headers={"If-Match": etag},
            json={
                "type": "Feature",
                "geometry": mapping(shrunk),
                "properties": {"reason": f"update by {method}"},
            },
        )
        self._record("update", response)

    def split(self, commune: str) -> None:
        if (read := self._pick(commune)) is None:
            return
        ea, etag = read
        geom = shape(ea["geometry"])
        x0, y0, x1, y1 = geom.bounds
        cx, cy = geom.centroid.x, geom.centroid.y
        line = (
            LineString([(x0 - 0.001, cy), (x1 + 0.001, cy)])
            if self.random.random() < 0.5
            else LineString([(cx, y0 - 0.001), (cx, y1 + 0.001)])
        )
        response = self.client.post(
            f"{ITEMS}/{ea['id']}/split",
            headers={"If-Match": etag},
            json={"line": mapping(line), "reason": "split"},
        )
        rows = len(response.json().get("features", [])) if response.status_code == 200 else 0
        self._record("split", response, rows)

    def merge(self, commune: str) -> None:
        eas = self._eas(commune)
        if len(eas) < 2:
            return
        first = self.random.choice(eas)
        geom = shape(first["geometry"])
        neighbours = [
            e
            for e in eas
            if e["id"] != first["id"] and geom.intersection(shape(e["geometry"])).length > 0
        ]
        if not neighbours:
            return
        pair = [first, self.random.choice(neighbours)]
        reads = [self._read(e) for e in pair]
        if any(r is None for r in reads):
            return
        etags = ", ".join(r[1] for r in reads if r is not None)
        response = self.client.post(
            "/collections/enumeration-areas/merge",
            headers={"If-Match": etags},
            json={"ids": [e["id"] for e in pair], "reason": "merge"},
        )
        self._record("merge", response, 2)

    def delete(self, commune: str) -> None:
        if (read := self._pick(commune)) is None:
            return
        ea, etag = read
        response = self.client.delete(
            f"{ITEMS}/{ea['id']}", headers={"If-Match": etag}, params={"reason": "delete"}
        )
        self._record("delete", response)


def _history(conn: psycopg.Connection) -> dict[int, list[tuple[str, Any, Any]]]:
    entries: dict[int, list[tuple[str, Any, Any]]] = {}
    for ea_id, action, before, after in conn.execute(
        "SELECT ea_id, action, before, after FROM ea_history ORDER BY id"
    ):
        entries.setdefault(ea_id, []).append((action, before, after))
    return entries


def test_twenty_editors_at_once(site: Site) -> None:
    with psycopg.connect(site.database_url) as conn:
        history_before = conn.execute("SELECT count(*) FROM ea_history").fetchone()
    assert history_before is not None
    progress = Progress()
    editors = [Editor(site, token, seed, progress) for seed, token in enumerate(site.tokens)]
    progress.run_editors([threading.Thread(target=editor.run) for editor in editors])

    statuses = sum((e.tally.statuses for e in editors), Counter())
    errors = [error for e in editors for error in e.tally.errors]
    assert not errors, errors[:10]
    assert not [s for s in statuses if s[1] >= 500], statuses
    successes = {action: n for (action, status), n in statuses.items() if status < 300}
    # the run must have exercised every kind of write, and some must have collided
    assert set(successes) == {"create", "update", "split", "merge", "delete"}, statuses
    assert any(status in (409, 412) for _, status in statuses), statuses

    with psycopg.connect(site.database_url) as conn:
        history = _history(conn)
        written = sum(len(v) for v in history.values()) - history_before[0]
        assert written == sum(e.tally.history_rows for e in editors), statuses
        current = {
            row[0]: row
            for row in conn.execute(
                "SELECT id, commune_code, version, ST_AsBinary(geom) FROM enumeration_area"
                " WHERE census_round = %s",
                (ROUND,),
            )
        }

    with httpx2.Client(base_url=site.url, timeout=120) as client:
        for ea_id, entries in history.items():
            first_action, first_before, _ = entries[0]
            assert first_action in ("create", "split"), (ea_id, first_action)
            if first_action == "create":
                assert first_before is None
            for (_, _, previous_after), (action, before, _) in zip(
                entries, entries[1:], strict=False
            ):
                # every change starts from the state the previous one left: nothing lost
                assert before == previous_after, (ea_id, action)
            last_action, _, last_after = entries[-1]
            if last_after is None:
                assert last_action in ("delete", "merge") and ea_id not in current
                continue
            response = client.get(f"{ITEMS}/{ea_id}")
            assert response.status_code == 200, (ea_id, entries[-1][0])
            assert response.json() == last_after, ea_id
            assert current[ea_id][2] == last_after["properties"]["version"]
    assert set(current) <= set(history)

    _check_coverage(site, current)


def _check_coverage(site: Site, current: dict[int, Any]) -> None:
    """No overlaps between EAs beyond the tolerance; every EA inside its commune."""
    utm = Transformer.from_crs("EPSG:4326", "EPSG:32648", always_xy=True)

    def metric(geom: BaseGeometry) -> BaseGeometry:
        return shapely.transform(
            geom, lambda xy: np.column_stack(utm.transform(xy[:, 0], xy[:, 1]))
        )

    communes = {code: metric(geom) for code, geom in site.communes.items()}
    eas = [
        (ea_id, code, _metric_shape(ea_id, wkb, metric)) for ea_id, code, _, wkb in current.values()
    ]
    assert eas
    tree = shapely.STRtree([geom for _, _, geom in eas])
    for i, (ea_id, code, geom) in enumerate(eas):
        outside = geom.difference(communes[code].buffer(TOLERANCE_M))
        assert outside.area < 1.0, f"EA {ea_id} leaves commune {code} by {outside.area:.1f} m²"
        for j in tree.query(geom):
            if j <= i:
                continue
            other_id, _, other = eas[j]
            overlap = geom.intersection(other).area
            allowed = TOLERANCE_M * max(geom.area, other.area) ** 0.5
            assert overlap <= allowed, f"EAs {ea_id} and {other_id} overlap by {overlap:.1f} m²"


def _metric_shape(
    ea_id: int, wkb: bytes, metric: Callable[[BaseGeometry], BaseGeometry]
) -> BaseGeometry:
    """The stored EA, which must be valid as stored (lon/lat), in the metric CRS."""
    stored = shapely.from_wkb(wkb)
    assert stored.is_valid and not stored.is_empty, (ea_id, shapely.is_valid_reason(stored))
    geom = metric(stored)
    if geom.is_valid:
        return geom
    # Reprojecting bends straight edges by millimetres over a kilometre, so a vertex that a
    # split or a snap left within a hair of an edge may cross it in UTM: a flaw of that
    # size, not of the edit, and repairing it must not change the area.
    repaired = shapely.make_valid(geom)
    assert abs(repaired.area - geom.area) < 0.01, (ea_id, shapely.is_valid_reason(geom))
    return repaired

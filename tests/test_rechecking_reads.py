"""Items pages, one item and the values table read their values and whether they are
withheld for re-protection by one statement: while another session withholds and releases
an indicator as fast as it can, every answer's flag matches its values (issue #23)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from tests.conftest import LiveWriter

PROTECTION_LOCK = "geo_service.suppression"  # (indicators.sql.PROTECTION_LOCK)
INDICATOR = "papi_sc51"
QUERY = f"indicator={INDICATOR}&period=2024"


def _json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=120) as response:
        return json.load(response)


def _toggling(database_url: str, stop: threading.Event, toggles: list[int]) -> Callable[[], None]:
    def toggle() -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            # (the service's own protection waits meanwhile)
            conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (PROTECTION_LOCK,))
            try:
                while not stop.is_set() or toggles[0] < 20:
                    conn.execute(
                        "INSERT INTO disclosure_pending (indicator) VALUES (%s)", (INDICATOR,)
                    )
                    conn.execute(
                        "DELETE FROM disclosure_pending WHERE indicator = %s", (INDICATOR,)
                    )
                    toggles[0] += 1
            finally:
                conn.execute("DELETE FROM disclosure_pending WHERE indicator = %s", (INDICATOR,))
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (PROTECTION_LOCK,))

    return toggle


@contextmanager
def _toggled_beside(database_url: str) -> Iterator[None]:
    """The protection flag toggled by a writer thread while the block runs (at least 20
    times: the writer did run alongside)."""
    stop, toggles = threading.Event(), [0]
    writer = threading.Thread(target=_toggling(database_url, stop, toggles))
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join()
    assert toggles[0] >= 20, toggles


def test_pages_items_and_tables_read_their_flag_with_their_values(
    live_writer: LiveWriter,
) -> None:
    base = live_writer.url
    page_url = f"{base}/collections/province-2019/items?{QUERY}&limit=100"
    item_url = f"{base}/collections/province-2019/items/01?{QUERY}"
    values_url = f"{base}/indicators/{INDICATOR}/values?vintage=2019&level=province&period=2024"
    seen = {"flagged": 0, "settled": 0}
    with _toggled_beside(live_writer.database_url):
        for _ in range(60):
            page = _json(page_url)
            shown = any(f["properties"][INDICATOR] is not None for f in page["features"])
            assert (page.get("rechecking") is not None) != shown, page.get("rechecking")
            seen["flagged" if page.get("rechecking") else "settled"] += 1
            item = _json(item_url)
            shown = item["properties"][INDICATOR] is not None
            assert (item.get("rechecking") is not None) != shown, item.get("rechecking")
            table = _json(values_url)
            shown = any(v["value"] is not None for v in table["values"])
            assert (table["rechecking"] is not None) != shown, table["rechecking"]


def _file(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def test_files_read_their_flag_with_their_values(live_writer: LiveWriter, tmp_path: Any) -> None:
    # (a CSV or GeoPackage checked the flag by a statement of its own before reading the
    # values: read in between, a file with every value hidden was sent as complete)
    import csv
    import io

    import pyogrio

    base = live_writer.url
    seen = {"refused": 0, "shown": 0}
    with _toggled_beside(live_writer.database_url):
        for i in range(30):
            # (a new limit each time: a GeoPackage is kept per selection, built anew here)
            query = f"{QUERY}&limit={100 + i}"
            for fmt in ("csv", "gpkg"):
                url = f"{base}/collections/province-2019/items?{query}&f={fmt}"
                status, body = _file(url)
                if status == 503:
                    refused = json.loads(body)
                    assert refused["parameter"] == "indicator", refused
                    seen["refused"] += 1
                    continue
                assert status == 200, (status, body[:300])
                if fmt == "csv":
                    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
                    values = [row[INDICATOR] for row in rows]
                    shown = any(v != "" for v in values)
                else:
                    path = tmp_path / f"{i}.gpkg"
                    path.write_bytes(body)
                    shown = bool(pyogrio.read_dataframe(path)[INDICATOR].notna().any())
                assert shown, f"a {fmt} file with every value hidden was sent as complete"
                seen["shown"] += 1
    assert seen["shown"] > 0, seen

"""What the eighth attack pass found (issue #22): text a drawing library would read as
markup prints as written on every page; answers chosen by language say so to caches; EA
tiles written while reads were public leave the tree nginx serves once reads are private."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader

from geo_core import grid
from geo_service.http.app import create_app
from geo_service.settings import ServiceSettings
from geo_service.users import add_user

ITEMS = "/collections/enumeration-areas/items"
COMMUNE = "00004"  # Phường Ba Đình, Hà Nội (province 01)
# TeX that matplotlib's mathtext refused (an unknown command, nesting past its recursion
# limit), and dollars that it set as italic maths, dropping the signs
BROKEN_TEX = "$\\foo$ x"
DEEP_TEX = "$" + "{" * 98 + "}" * 98 + "$"
MONEY = "Thu nhập $5 và $6"


def _text(content: bytes) -> str:
    return "\n".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(content)).pages)


@pytest.fixture
def editor(demo_db: str, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with psycopg.connect(demo_db, autocommit=True) as conn:
        auth = {"Authorization": f"Bearer {add_user(conn, 'ed', 'editor', ['01'])}"}
    with TestClient(create_app(ServiceSettings(home=tmp_path), db_url=demo_db)) as client:
        yield client, auth


def test_map_titles_with_dollar_signs_print_as_written(
    editor: tuple[TestClient, dict[str, str]],
) -> None:
    client, _ = editor
    asked = {"collection": "province-2025", "indicator": "density", "layout": "a4"}
    cases = ((BROKEN_TEX, "png"), (BROKEN_TEX, "pdf"), (DEEP_TEX, "pdf"), (MONEY, "pdf"))
    for title, fmt in cases:
        got = client.get("/maps/export", params={**asked, "title": title, "format": fmt})
        assert got.status_code == 200, (title, fmt, got.status_code, got.text[:300])
        if fmt == "pdf":
            assert title.replace(" ", "") in _text(got.content).replace(" ", ""), title


def test_a_staff_name_with_dollar_signs_leaves_field_maps_and_map_books_working(
    editor: tuple[TestClient, dict[str, str]],
) -> None:
    # an editor's staff name is printed on every field map of the EAs assigned to them
    client, auth = editor
    made = client.post(f"/communes/{COMMUNE}/ea-generate", params={"round": "2029"}, headers=auth)
    assert made.status_code == 201, made.text
    eas = client.get(ITEMS, params={"commune": COMMUNE, "limit": 3}).json()["features"]
    staff = {"code": "E1", "name": BROKEN_TEX, "role": "enumerator", "scope": COMMUNE}
    assert client.post("/census/2029/staff", json=staff, headers=auth).status_code == 201
    assignments = [{"ea": f["properties"]["code"], "enumerator": "E1"} for f in eas]
    put = client.put(
        f"/communes/{COMMUNE}/assignments", json={"assignments": assignments}, headers=auth
    )
    assert put.status_code == 200, put.text
    page = client.get(f"{ITEMS}/{eas[0]['id']}/field-map.pdf")
    assert page.status_code == 200, page.text[:300]
    assert BROKEN_TEX.replace(" ", "") in _text(page.content).replace(" ", "")


def test_answers_chosen_by_accept_language_say_so_to_caches(client: TestClient) -> None:
    # a browser or an office proxy keeping one of these would hand the first client's
    # language to the next (only error answers said Vary: Accept-Language)
    asked = {"collection": "province-2025", "indicator": "density"}
    for path, params in (("/maps/choropleth", asked), ("/maps/values", asked)):
        answers = {
            lang: client.get(path, params=params, headers={"Accept-Language": lang})
            for lang in ("vi", "en")
        }
        assert answers["vi"].text != answers["en"].text, path
        for got in answers.values():
            assert got.status_code == 200, got.text
            vary = [v.strip().lower() for v in got.headers.get("vary", "").split(",")]
            assert "accept-language" in vary, (path, vary)
    # one Vary header, however many layers added to it; HEAD as GET
    head = client.head("/maps/choropleth", params=asked, headers={"Accept-Encoding": "gzip"})
    assert head.status_code == 200 and "accept-language" in head.headers["vary"].lower()
    assert len(head.headers.get_list("vary")) == 1


def test_ea_tiles_written_while_reads_were_public_leave_the_tree_when_they_are_not(
    demo_db: str, tmp_path: Path
) -> None:
    # nginx serves the tree without asking the service: with a front whose config was made
    # while reads were public, EA tiles left there went to anyone after the switch
    tree = tmp_path / "tiles"
    with psycopg.connect(demo_db, autocommit=True) as conn:
        admin = {"Authorization": f"Bearer {add_user(conn, 'boss', 'admin', [])}"}
    z, (x, y) = 14, next(grid.tiles_in((105.830, 21.030, 105.832, 21.032), 14))
    cached = {"tile_cache": "directory", "tile_cache_path": tree}
    public = ServiceSettings(home=tmp_path, **cached)
    with TestClient(create_app(public, db_url=demo_db)) as client:
        made = client.post(f"/communes/{COMMUNE}/ea-generate", headers=admin)
        assert made.status_code == 201 and made.json()["created"] > 0, made.text
        for layer in ("enumeration-areas", "commune-2025"):
            got = client.get(f"/collections/{layer}/tiles/WebMercatorQuad/{z}/{x}/{y}")
            assert got.status_code == 200 and got.content, (layer, got.text)
    ea_tile = tree / "enumeration-areas" / "default" / str(z) / str(x) / f"{y}.mvt"
    unit_tile = tree / "commune-2025" / "default" / str(z) / str(x) / f"{y}.mvt"
    assert ea_tile.exists() and unit_tile.exists()
    private = ServiceSettings(home=tmp_path, public_reads=False, **cached)
    with TestClient(create_app(private, db_url=demo_db)) as client:
        assert not ea_tile.exists() and not list(tree.glob("enumeration-areas/**/*.mvt"))
        assert unit_tile.exists()  # (public tiles stay)
        tile = f"/collections/enumeration-areas/tiles/WebMercatorQuad/{z}/{x}/{y}"
        assert client.get(tile).status_code == 401

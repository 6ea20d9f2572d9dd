"""The home page for people (`/` in a browser): what the service is, in Vietnamese and
English, with links to the map, the EA editor and the API documentation."""

from __future__ import annotations

import html

_ENTRIES = (
    (
        "/map",
        ("Bản đồ thống kê", "Statistical map"),
        (
            "Bản đồ các chỉ tiêu theo tỉnh và xã: tìm địa danh, phân lớp, biểu đồ qua các kỳ, "
            "bản đồ thay đổi, xếp hạng, thống kê vùng vẽ.",
            "Indicators by province and commune: find a place, classify, chart over time, "
            "map changes, rank units, statistics of a drawn area.",
        ),
    ),
    (
        "/map/ea",
        ("Vẽ địa bàn điều tra", "Enumeration-area editor"),
        (
            "Cho cán bộ bản đồ: vẽ, chia, gộp và kiểm tra địa bàn điều tra của từng xã.",
            "For census cartographers: draw, split, merge and check the EAs of a commune.",
        ),
    ),
    (
        "/api.html",
        ("Tài liệu API", "API documentation"),
        (
            "Cho lập trình viên và phần mềm GIS (QGIS, GDAL): GeoJSON, ô bản đồ vector, "
            "bảng chỉ tiêu.",
            "For programmers and GIS software (QGIS, GDAL): GeoJSON, vector tiles, "
            "indicator tables.",
        ),
    ),
)

_STYLE = """
body { font-family: system-ui, "Segoe UI", Roboto, "Noto Sans", sans-serif; margin: 0;
  color: #1f2933; background: #f5f7fa; }
main { max-width: 880px; margin: 0 auto; padding: 32px 20px; }
h1 { font-size: 26px; margin: 0 0 4px; } .en { color: #52606d; }
p.lead { margin: 0 0 24px; }
ul { list-style: none; padding: 0; display: grid; gap: 14px;
  grid-template-columns: repeat(auto-fit, minmax(240px, 1fr)); }
li a { display: block; background: #fff; border: 1px solid #d5dbe1; border-radius: 10px;
  padding: 16px; text-decoration: none; color: inherit; height: 100%; box-sizing: border-box; }
li a:hover, li a:focus-visible { border-color: #0b5cad; box-shadow: 0 2px 8px rgba(0,0,0,.08); }
li strong { display: block; font-size: 18px; color: #0b5cad; }
li span { display: block; font-size: 14px; margin-top: 6px; }
footer { margin-top: 28px; font-size: 13px; color: #52606d; }
footer a { color: #0b5cad; }
"""


def home_page(root: str, version: str) -> str:
    """The page (static HTML, no script)."""
    items = "".join(
        f"<li><a href='{html.escape(root + path)}'><strong>{html.escape(vi)}</strong>"
        f"<strong class='en' lang='en'>{html.escape(en)}</strong>"
        f"<span>{html.escape(text_vi)}</span><span class='en' lang='en'>{html.escape(text_en)}"
        "</span></a></li>"
        for path, (vi, en), (text_vi, text_en) in _ENTRIES
    )
    return (
        "<!DOCTYPE html><html lang='vi'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<title>Bản đồ thống kê Việt Nam · Vietnam statistical maps</title>"
        f"<link rel='icon' href='data:,'><style>{_STYLE}</style></head><body><main>"
        "<h1>Bản đồ thống kê Việt Nam</h1>"
        "<p class='en' lang='en'>Vietnam statistical mapping service</p>"
        "<p class='lead'>Ranh giới hành chính theo từng thời kỳ, chỉ tiêu thống kê và bản đồ."
        " <span class='en' lang='en'>Administrative boundaries by vintage, statistical "
        "indicators and maps.</span></p>"
        f"<ul>{items}</ul>"
        f"<footer>API: <a href='{html.escape(root)}/?f=json'>/?f=json</a> · "
        f"<a href='{html.escape(root)}/collections'>/collections</a> · "
        f"<a href='{html.escape(root)}/indicators'>/indicators</a> · "
        f"<a href='{html.escape(root)}/health'>/health</a> · {html.escape(version)}</footer>"
        "</main></body></html>"
    )

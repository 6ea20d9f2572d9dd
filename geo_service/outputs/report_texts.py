"""The words of an area report, in Vietnamese and English (PDF and Excel say the same)."""

from __future__ import annotations

from typing import Any

from geo_service.outputs import cartography as carto

TEXTS: dict[str, tuple[str, str]] = {
    "title_area": ("Báo cáo khu vực đã vẽ", "Report on a drawn area"),
    "title_unit": ("Báo cáo đơn vị hành chính", "Report on an administrative unit"),
    "boundaries": ("Ranh giới", "Boundaries"),
    "area": ("Diện tích", "Area"),
    "covered": ("Phần diện tích nằm trong các đơn vị", "Share of the area within units"),
    "units_touched": ("Số đơn vị chạm tới", "Units touched"),
    "indicator": ("Chỉ tiêu", "Indicator"),
    "code": ("Mã", "Code"),
    "unit": ("Đơn vị tính", "Unit"),
    "period": ("Kỳ", "Period"),
    "value": ("Giá trị", "Value"),
    "status": ("Trạng thái", "Status"),
    "this_area": ("Khu vực", "This area"),
    "country": ("Cả nước", "Country"),
    "parent": ("Đơn vị cấp trên", "Parent unit"),
    "method": ("Cách tính", "Method"),
    "figures": ("Số liệu", "Figures"),
    "over_time": ("Theo thời gian", "Over time"),
    "sources_notes": ("Nguồn và ghi chú", "Sources and notes"),
    "sources": ("Nguồn và giấy phép", "Sources and licences"),
    "notes": ("Ghi chú phương pháp", "Methodological notes"),
    "source": ("Nguồn", "Source"),
    "licence": ("Giấy phép", "Licence"),
    "made": ("Lập ngày", "Made on"),
    "crs": ("Hệ tọa độ", "Coordinate system"),
    "page": ("Trang", "Page"),
    "charts": ("Biểu đồ theo thời gian", "Charts over time"),
    "legend_area": ("Khu vực báo cáo", "The report's area"),
    "legend_touched": ("Đơn vị chạm tới", "Units it touches"),
    "legend_other": ("Đơn vị lân cận", "Neighbouring units"),
    "counts_alone": (
        "Tổng của đơn vị cấp trên và cả nước có trong bảng số liệu.",
        "The parent's and the country's totals are in the table of figures.",
    ),
    "status_ok": ("", ""),
    "status_provisional": ("tạm tính", "provisional"),
    "status_suppressed": ("Bị ẩn (bảo mật thống kê)", "Suppressed (disclosure control)"),
    "status_not_available": ("Không có số liệu", "Not available"),
    "short_suppressed": ("Bị ẩn", "Suppressed"),
    "short_not_available": ("Không có", "n/a"),
    "key_suppressed": (
        "Bị ẩn (bảo mật thống kê): không công bố, và không suy ra được từ số liệu đã công bố.",
        "Suppressed (disclosure control): not published, and not derivable from what is.",
    ),
    "key_not_available": ("Không có: không có số liệu.", "n/a: not available."),
    "office": ("Cơ quan", "Office"),
    "report_area": ("Khu vực báo cáo", "Area of the report"),
    "drawn": ("vùng vẽ trên bản đồ", "an area drawn on the map"),
    "weights_area": ("theo tỷ lệ diện tích", "by area share"),
    "weights_population": (
        "theo tỷ lệ dân số (lưới dân số WorldPop)",
        "by population share (the WorldPop population grid)",
    ),
    "country_sum": ("tổng các đơn vị cấp cao nhất", "the sum of the top level's units"),
    "country_ratio": (
        "tính lại từ tử số và mẫu số của cả nước",
        "recomputed from the country's numerator and denominator",
    ),
    "country_mean": (
        "trung bình không trọng số của các đơn vị cấp cao nhất",
        "the unweighted mean of the top level's units",
    ),
}

NOTES_AREA = (
    (
        "Số liệu của khu vực được phân bổ từ các đơn vị {level} ({collection}) mà khu vực "
        "chạm tới, {weights}: chỉ tiêu dạng số đếm là tổng giá trị của đơn vị × tỷ lệ phần "
        "nằm trong khu vực; tỷ lệ, mật độ và tỷ số được tính lại từ tử số và mẫu số đã phân "
        "bổ (không lấy trung bình); chỉ số không phân bổ được. Đây là cùng cách tính với "
        "POST /aggregate.",
        "The area's figures are apportioned from the {level} units ({collection}) it "
        "touches, {weights}: a count is the sum of each unit's value × the share of it inside "
        "the area; rates, densities and ratios are recomputed from apportioned numerators and "
        "denominators (never averaged); indexes cannot be apportioned. This is the computation "
        "of POST /aggregate.",
    ),
    (
        "{covered} % diện tích khu vực nằm trong các đơn vị; số liệu chỉ mô tả phần đó.",
        "{covered} % of the area lies within units; the figures describe that part only.",
    ),
    (
        "Bảo mật thống kê: số liệu chỉ được tính từ giá trị đã công bố. Một kết quả chạm tới "
        "một đơn vị bị ẩn, hoặc nhỏ hơn ngưỡng công bố, cũng bị ẩn và không xuất hiện ở bất "
        "kỳ đâu trong báo cáo (bảng, biểu đồ hay tổng).",
        "Disclosure control: figures are computed from published values only. A result that "
        "touches a hidden unit, or falls below the publication threshold, is hidden too and "
        "appears nowhere in the report (table, chart or total).",
    ),
)
NOTES_UNIT = (
    (
        "Số liệu là giá trị đã công bố của đơn vị {name} ({code}), không phải ước tính.",
        "The figures are the published values of {name} ({code}), not estimates.",
    ),
    (
        "Bảo mật thống kê: giá trị bị ẩn không xuất hiện ở bất kỳ đâu trong báo cáo.",
        "Disclosure control: a hidden value appears nowhere in the report.",
    ),
)
NOTE_COUNTRY = (
    "Cả nước: {how}; bị ẩn nếu một đơn vị bị ẩn.",
    "Country: {how}; hidden when any unit is.",
)
LEVELS = {
    "province": ("tỉnh, thành phố", "province"),
    "district": ("huyện", "district"),
    "commune": ("xã, phường, đặc khu", "commune"),
}


def said(key: str, lang: str, **values: Any) -> str:
    """A text of the report in the language."""
    vi, en = TEXTS[key]
    text = vi if lang == "vi" else en
    return text.format(**values) if values else text


def pick(pair: tuple[str, str], lang: str, **values: Any) -> str:
    """One of a (Vietnamese, English) pair, filled in."""
    return (pair[0] if lang == "vi" else pair[1]).format(**values)


def level_name(level: str, lang: str) -> str:
    """A level's name in the language."""
    return pick(LEVELS.get(level, (level, level)), lang)


def meta_text(meta: dict[str, Any], key: str, lang: str) -> str:
    """A catalogue text in the language (the English one when there is no Vietnamese)."""
    if lang == "vi" and meta.get(f"{key}_vi"):
        return str(meta[f"{key}_vi"])
    return str(meta.get(key) or "—")


def indicator_name(meta: dict[str, Any], lang: str) -> str:
    """The indicator's name in the language."""
    return str(meta["name_vi"] if lang == "vi" else meta["name_en"])


def method_text(kind: str, meta: dict[str, Any], lang: str) -> str:
    """How a figure was obtained, in the language: a unit's published value, an apportioned
    sum, a quotient of apportioned sums, or why there is none."""
    if kind == "unit":
        return pick(("giá trị đã công bố", "published value"), lang)
    if meta["kind"] == "count":
        return pick(("tổng (giá trị đơn vị × tỷ lệ)", "sum of unit values × share"), lang)
    if meta.get("numerator") and meta.get("denominator"):
        return pick(
            ("{n} phân bổ / {d} phân bổ", "apportioned {n} / apportioned {d}"),
            lang,
            n=meta["numerator"],
            d=meta["denominator"],
        )
    return pick(("không phân bổ được cho một vùng vẽ", "cannot be apportioned to an area"), lang)


def value_text(value: float | None, status: str, decimals: int, lang: str) -> str:
    """A value as people of the language write it, or (in short: a table cell) what stands
    in for it."""
    if value is None:
        return said(f"short_{status}", lang) if f"short_{status}" in TEXTS else "—"
    text = carto.number(value, decimals, lang)
    if status == "provisional":
        text += f" ({said('status_provisional', lang)})"
    return text

"""Vietnamese and English labels of the viewer."""

from __future__ import annotations

LABELS: dict[str, dict[str, str]] = {
    "vi": {
        "title": "Bản đồ thống kê", "vintage": "Năm ranh giới", "level": "Cấp",
        "province": "Tỉnh", "commune": "Xã", "district": "Huyện", "indicator": "Chỉ tiêu",
        "period": "Kỳ", "method": "Phương pháp phân lớp", "k": "Số lớp", "palette": "Bảng màu",
        "breaks": "Ngắt thủ công (ví dụ 100,500,1000)", "search": "Tìm đơn vị",
        "search_button": "Tìm", "no_match": "Không tìm thấy",
        "status_suppressed": "Bảo mật (không công bố)", "status_not_available": "Không có số liệu",
        "status_provisional": "Sơ bộ",
        "raw_count": "Chỉ tiêu này là số tuyệt đối: nên dùng tỷ lệ hoặc mật độ.",
        "area_stats": "Thống kê vùng vẽ", "area": "Diện tích", "units": "Số đơn vị",
        "area_error": "Không tính được", "download": "Tải xuống",
    },
    "en": {
        "title": "Statistical map", "vintage": "Boundary year", "level": "Level",
        "province": "Province", "commune": "Commune", "district": "District",
        "indicator": "Indicator", "period": "Period", "method": "Classification",
        "k": "Classes", "palette": "Palette", "breaks": "Manual breaks (e.g. 100,500,1000)",
        "search": "Find a unit", "search_button": "Find", "no_match": "No match",
        "status_suppressed": "Suppressed (confidential)", "status_not_available": "Not available",
        "status_provisional": "Provisional",
        "raw_count": "This indicator is a raw count: consider a rate or density.",
        "area_stats": "Drawn area statistics", "area": "Area", "units": "Units",
        "area_error": "Could not compute", "download": "Download",
    },
}

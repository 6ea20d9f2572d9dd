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
        "covered": "Phần vùng vẽ nằm trong các đơn vị",
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
        "covered": "Share of the drawn area within units",
    },
}

EA_LABELS: dict[str, dict[str, str]] = {
    "vi": {
        "title": "Vẽ địa bàn điều tra", "token": "Mã truy cập (token)", "sign_in": "Đăng nhập",
        "sign_out": "Đăng xuất", "signed_in_as": "Người dùng", "not_signed_in":
        "Chưa đăng nhập: chỉ xem. Nhập mã truy cập để vẽ và sửa.",
        "commune": "Xã/phường", "round": "Kỳ điều tra", "find_commune": "Tìm xã/phường",
        "find": "Tìm", "no_match": "Không tìm thấy", "choose_commune":
        "Chọn một xã/phường để vẽ địa bàn.",
        "coverage": "Độ phủ", "eas": "Số địa bàn", "gaps": "Khoảng trống", "overlaps": "Chồng lấn",
        "outside": "Ra ngoài xã", "workload": "Ngoài khoảng khối lượng", "complete": "Phủ kín",
        "incomplete": "Chưa phủ kín",
        "selected": "Địa bàn đã chọn", "none_selected": "Bấm vào một địa bàn để chọn; Shift+bấm"
        " để chọn nhiều (gộp).",
        "status": "Trạng thái", "households": "Số hộ ước tính", "population": "Dân số ước tính",
        "version": "Phiên bản",
        "submit": "Gửi duyệt", "approve": "Duyệt", "reject": "Trả lại", "delete": "Xoá",
        "split": "Chia (vẽ đường cắt)", "merge": "Gộp các địa bàn đã chọn",
        "generate": "Tạo bản nháp tự động", "regenerate": "Tạo lại bản nháp",
        "submit_all": "Gửi duyệt tất cả bản nháp", "approve_all": "Duyệt tất cả",
        "history": "Lịch sử", "gap_to_ea": "Tạo địa bàn từ khoảng trống này",
        "saved": "Đã lưu", "not_saved": "Chưa lưu", "problems": "Vi phạm quy tắc",
        "warnings": "Cảnh báo", "draw_split": "Vẽ một đường cắt qua địa bàn đã chọn.",
        "reject_reason": "Lý do trả lại (để người vẽ biết cần sửa gì)",
        "confirm_delete": "Xoá địa bàn", "status_draft": "Nháp", "status_submitted": "Chờ duyệt",
        "status_approved": "Đã duyệt", "status_rejected": "Bị trả lại",
        "stale": "Địa bàn đã bị người khác sửa; đã tải lại, hãy thử lại.",
    },
    "en": {
        "title": "Enumeration area editor", "token": "Access token", "sign_in": "Sign in",
        "sign_out": "Sign out", "signed_in_as": "User", "not_signed_in":
        "Not signed in: view only. Enter a token to draw and edit.",
        "commune": "Commune", "round": "Census round", "find_commune": "Find a commune",
        "find": "Find", "no_match": "No match", "choose_commune":
        "Choose a commune to draw its enumeration areas.",
        "coverage": "Coverage", "eas": "EAs", "gaps": "Gaps", "overlaps": "Overlaps",
        "outside": "Leaving the commune", "workload": "Outside the workload band",
        "complete": "Gap-free", "incomplete": "Not yet complete",
        "selected": "Selected EA", "none_selected": "Click an EA to select it; Shift+click to"
        " select several (merge).",
        "status": "Status", "households": "Estimated households",
        "population": "Estimated population", "version": "Version",
        "submit": "Submit", "approve": "Approve", "reject": "Reject", "delete": "Delete",
        "split": "Split (draw a line)", "merge": "Merge the selected EAs",
        "generate": "Generate drafts", "regenerate": "Regenerate drafts",
        "submit_all": "Submit all drafts", "approve_all": "Approve all submitted",
        "history": "History", "gap_to_ea": "Make an EA of this gap",
        "saved": "Saved", "not_saved": "Not saved", "problems": "Rules broken",
        "warnings": "Warnings", "draw_split": "Draw a line across the selected EA.",
        "reject_reason": "Why is it rejected (so the editor knows what to change)?",
        "confirm_delete": "Delete EA", "status_draft": "Draft", "status_submitted": "Submitted",
        "status_approved": "Approved", "status_rejected": "Rejected",
        "stale": "Someone else changed this EA; reloaded, please try again.",
    },
}

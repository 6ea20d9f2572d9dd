"""Texts of the EA editor's bulk organisation (select by area, proposals of supervisor areas
and assignments), in Vietnamese and English; merged into the editor's labels."""

from __future__ import annotations

ORGANISE_LABELS: dict[str, dict[str, str]] = {
    "vi": {
        "bulk_title": "Chọn nhiều địa bàn cùng lúc",
        "select_rect": "Kéo khung chọn",
        "select_lasso": "Khoanh vùng chọn",
        "select_rect_on": "Kéo một khung trên bản đồ: các địa bàn khung chạm vào được thêm vào "
        "lựa chọn.",
        "select_lasso_on": "Vẽ một vòng trên bản đồ: các địa bàn có tâm nằm trong vòng được thêm "
        "vào lựa chọn.",
        "select_done": "Xong",
        "select_no_area": "Chọn các địa bàn chưa có nhóm giám sát",
        "select_no_enumerator": "Chọn các địa bàn chưa giao",
        "selection_summary": "Đã chọn {count} địa bàn · {households} hộ",
        "proposals": "Đề xuất tự động",
        "band_from": "Số địa bàn mỗi nhóm: từ",
        "band_to": "đến",
        "only_selection": "Chỉ các địa bàn đã chọn ({count})",
        "redo_areas": "Làm lại cả các nhóm giám sát đã có",
        "propose_areas": "Đề xuất nhóm giám sát",
        "propose_assignments": "Đề xuất phân công",
        "proposal_title": "Đề xuất: {count} nhóm, {eas} địa bàn (chưa lưu)",
        "proposal_replaces": "Khi lưu sẽ thay thế các nhóm: {codes}",
        "proposal_kept": "Giữ nguyên các nhóm: {codes}",
        "group": "Nhóm",
        "save_proposal": "Lưu {count} nhóm giám sát",
        "drop_proposal": "Bỏ đề xuất",
        "confirm_save_areas": "Lưu {count} nhóm giám sát mới ({eas} địa bàn)?",
        "confirm_replace_areas": "Lưu {count} nhóm giám sát mới ({eas} địa bàn) và xoá {replaced} "
        "nhóm hiện có ({codes})? Các nhóm cũ sẽ mất.",
        "areas_saved": "Đã lưu {count} nhóm giám sát",
        "assignment_title": "Đề xuất phân công: {count} địa bàn cho {people} điều tra viên "
        "(chưa lưu)",
        "new_eas": "Địa bàn mới",
        "total_households": "Tổng số hộ",
        "save_assignments": "Lưu phân công {count} địa bàn",
        "confirm_save_assignments": "Giao {count} địa bàn cho {people} điều tra viên?",
        "assignments_saved": "Đã lưu phân công {count} địa bàn",
        "still_unassigned": "Vẫn chưa giao {count} địa bàn (cần thêm điều tra viên)",
        "areas_stale": "Các nhóm giám sát đã được người khác thay đổi sau khi bạn xem trước; "
        "chưa lưu gì.",
        "fresh_preview": "Xem trước lại",
    },
    "en": {
        "bulk_title": "Select many EAs at once",
        "select_rect": "Drag a box",
        "select_lasso": "Draw a lasso",
        "select_rect_on": "Drag a box on the map: the EAs it touches are added to the selection.",
        "select_lasso_on": "Draw a loop on the map: the EAs whose centre lies inside it are added "
        "to the selection.",
        "select_done": "Done",
        "select_no_area": "Select EAs in no supervisor area",
        "select_no_enumerator": "Select unassigned EAs",
        "selection_summary": "{count} EAs selected · {households} households",
        "proposals": "Automatic proposals",
        "band_from": "EAs per area: from",
        "band_to": "to",
        "only_selection": "Only the selected EAs ({count})",
        "redo_areas": "Redo the existing supervisor areas too",
        "propose_areas": "Propose supervisor areas",
        "propose_assignments": "Propose assignments",
        "proposal_title": "Proposal: {count} areas, {eas} EAs (not saved)",
        "proposal_replaces": "Saving replaces the areas: {codes}",
        "proposal_kept": "Areas kept as they are: {codes}",
        "group": "Group",
        "save_proposal": "Save {count} supervisor areas",
        "drop_proposal": "Discard the proposal",
        "confirm_save_areas": "Save {count} new supervisor areas ({eas} EAs)?",
        "confirm_replace_areas": "Save {count} new supervisor areas ({eas} EAs) and delete "
        "{replaced} existing areas ({codes})? The old areas will be lost.",
        "areas_saved": "{count} supervisor areas saved",
        "assignment_title": "Proposed assignments: {count} EAs to {people} enumerators (not saved)",
        "new_eas": "New EAs",
        "total_households": "Total households",
        "save_assignments": "Save the assignment of {count} EAs",
        "confirm_save_assignments": "Assign {count} EAs to {people} enumerators?",
        "assignments_saved": "Assignment of {count} EAs saved",
        "still_unassigned": "Still unassigned: {count} EAs (more enumerators needed)",
        "areas_stale": "Someone else changed the supervisor areas since your preview; nothing "
        "was saved.",
        "fresh_preview": "Make a fresh preview",
    },
}

"""Messages of the census work (EAs, their organisation, users) in English and Vietnamese.

A message is raised and stored as its English text (a `Said`, a str that remembers its key
and values); the HTTP edge says it in the client's language (`Accept-Language`), the pages
in theirs. EAs are named by their code, never an internal id or an ETag, and a refusal says
what to do next.
"""

from __future__ import annotations

from typing import Any

LANGUAGES = ("en", "vi")

# key: (English, Vietnamese); values in {braces}
CATALOGUE: dict[str, tuple[str, str]] = {
    # versions and workflow
    "ea_changed": (
        "EA {code} was changed by someone else since you read it; reload it and make your "
        "change again",
        "Địa bàn {code} đã được người khác sửa sau khi bạn mở; hãy tải lại rồi sửa lại",
    ),
    "if_match_needed": (
        "send If-Match with the ETag you read",
        "thiếu phiên bản đã đọc (If-Match); hãy tải lại địa bàn",
    ),
    "no_ea": ("there is no EA {ea} (deleted?)", "không có địa bàn {ea} (đã bị xoá?)"),
    "cannot_transition": (
        "EA {code} is {status_en}: it cannot be {action_en}",
        "Địa bàn {code} đang ở trạng thái «{status_vi}»: không thể {action_vi}",
    ),
    "reject_needs_reason": (
        "a rejection needs a reason, so the editor knows what to change",
        "trả lại cần có lý do, để người vẽ biết cần sửa gì",
    ),
    "four_eyes": (
        "EA {code} was drawn or submitted by {user}: another supervisor approves or rejects it",
        "Địa bàn {code} do {user} vẽ hoặc gửi duyệt: một người duyệt khác phải duyệt hoặc trả lại",
    ),
    "role_needed": (
        "this needs the {role_en} role; {user} is a {has_en}",
        "việc này cần vai trò {role_vi}; {user} là {has_vi}",
    ),
    "out_of_scope": (
        "commune {commune} is outside {user}'s scope",
        "xã {commune} nằm ngoài phạm vi của {user}",
    ),
    "code_out_of_scope": (
        "{code} is outside {user}'s scope",
        "{code} nằm ngoài phạm vi của {user}",
    ),
    "approved_needs_supervisor": (
        "EA {code} is approved: only a supervisor may change it (it goes back to draft); "
        "nothing was saved: ask a supervisor to reject {code} first, or leave its edges as "
        "they are",
        "Địa bàn {code} đã được duyệt: chỉ người giám sát mới được sửa (địa bàn trở về nháp); "
        "chưa lưu gì: hãy nhờ người giám sát trả lại {code} trước, hoặc giữ nguyên các cạnh "
        "chung với địa bàn này",
    ),
    "rules_broken": (
        "{count} rule(s) broken{what}; nothing was saved",
        "vi phạm {count} quy tắc{what}; chưa lưu gì",
    ),
    "ea_tiles_min_zoom": (
        "there are no enumeration area tiles at zoom {z}: they start at zoom {minimum} "
        "(further out an EA is a speck); zoom in to {minimum} or more",
        "không có ô bản đồ địa bàn điều tra ở mức thu phóng {z}: lớp địa bàn bắt đầu từ mức "
        "{minimum} (xa hơn, mỗi địa bàn chỉ là một chấm); hãy phóng to tới mức {minimum} "
        "trở lên",
    ),
    "by_parts": (" by the parts", " ở các phần"),
    "overlaps_ea": ("overlaps EA {code}", "chồng lấn địa bàn {code}"),
    "outside_commune": ("outside its commune", "nằm ngoài xã"),
    "mostly_outside": (
        "only {inside} m² of its {area} m² lie in its commune",
        "chỉ {inside} m² trong {area} m² nằm trong xã",
    ),
    "area_too_small": (
        "area {area} m² is below the minimum {minimum} m²",
        "diện tích {area} m² nhỏ hơn mức tối thiểu {minimum} m²",
    ),
    "area_too_large": (
        "area {area} km² is above the maximum {maximum} km²",
        "diện tích {area} km² lớn hơn mức tối đa {maximum} km²",
    ),
    "workload": (
        "EA {code}: estimated {households} households, outside the band {band}",
        "Địa bàn {code}: ước tính {households} hộ, ngoài khoảng {band}",
    ),
    "repaired": ("repaired: {reason}", "đã sửa hình: {reason}"),
    "not_contiguous": (
        "EAs {codes} do not form one contiguous area: choose neighbours",
        "Các địa bàn {codes} không liền nhau: hãy chọn các địa bàn kề nhau",
    ),
    "mixed_communes": (
        "EAs of different communes or rounds cannot be grouped: {codes}",
        "Không thể gộp địa bàn của các xã hoặc kỳ điều tra khác nhau: {codes}",
    ),
    "line_does_not_cut": (
        "the line does not cut EA {code} into parts: draw it right across",
        "đường cắt không chia địa bàn {code} thành các phần: hãy vẽ cắt ngang qua",
    ),
    "drafts_only": (
        "commune {commune} has {count} EA(s) that are no longer drafts; only drafts can be "
        "replaced",
        "xã {commune} có {count} địa bàn không còn là bản nháp; chỉ thay được bản nháp",
    ),
    "has_eas": (
        "commune {commune} already has {count} EAs in round {round}; pass replace=true to "
        "replace its drafts",
        "xã {commune} đã có {count} địa bàn trong kỳ {round}; chọn tạo lại để thay các bản nháp",
    ),
    "restored": (
        "EA {code} restored to version {version}",
        "Đã khôi phục địa bàn {code} về phiên bản {version}",
    ),
    "no_such_version": (
        "EA {code} has no history entry {entry} with a shape to restore",
        "Địa bàn {code} không có mục lịch sử {entry} có hình để khôi phục",
    ),
    # several EAs changed together (a shared edge), gaps, coverage before approval
    "eas_changed": (
        "EA(s) {codes} were changed by someone else since you read them; nothing was saved: "
        "reload and make your change again",
        "Địa bàn {codes} đã được người khác sửa sau khi bạn mở; chưa lưu gì: hãy tải lại rồi "
        "sửa lại",
    ),
    "ea_problem": ("EA {code}: {problem}", "Địa bàn {code}: {problem}"),
    "leaves_gap": (
        "the change leaves {count} gap(s) of {area} m² in the commune that no EA covers "
        "(beside {codes}); nothing was saved: give the gap to a neighbouring EA or move the "
        "edge back",
        "thay đổi để lại {count} khoảng trống {area} m² không thuộc địa bàn nào (cạnh {codes}); "
        "chưa lưu gì: hãy giao khoảng trống cho một địa bàn kề bên hoặc kéo cạnh về chỗ cũ",
    ),
    "delete_leaves_gap": (
        "deleting EA {code} leaves {count} gap(s) of {area} m² in the commune that no EA covers "
        "(beside {codes}); nothing was deleted: give its area to a neighbouring EA "
        "(give_gap_to)",
        "xoá địa bàn {code} sẽ để lại {count} khoảng trống {area} m² không thuộc địa bàn nào "
        "(cạnh {codes}); chưa xoá gì: hãy giao phần diện tích này cho một địa bàn kề bên",
    ),
    "gap_not_beside": (
        "EA {code} does not border the gap of {area} m² (beside {codes}): give it to one of those",
        "Địa bàn {code} không giáp khoảng trống {area} m² (cạnh {codes}): hãy giao cho một "
        "trong các địa bàn đó",
    ),
    "gap_given": (
        "a gap of {area} m² was given to EA {code}",
        "đã giao khoảng trống {area} m² cho địa bàn {code}",
    ),
    "together_only": (
        "EA {code} is in the list twice or is not in round {round} of commune {commune}",
        "Địa bàn {code} có hai lần trong danh sách hoặc không thuộc kỳ {round} của xã {commune}",
    ),
    "uncovered_commune": (
        "commune {commune} is not fully covered: {area} m² ({share} %) lie in no EA; approving "
        "all of its EAs needs the supervisor to acknowledge that (uncovered_acknowledged)",
        "xã {commune} chưa phủ kín: {area} m² ({share} %) không thuộc địa bàn nào; muốn duyệt "
        "tất cả, người giám sát phải xác nhận đã biết điều này",
    ),
    "approved_uncovered": (
        "approved while commune {commune} was not fully covered ({area} m², {share} % in no "
        "EA), acknowledged by {user}",
        "duyệt khi xã {commune} chưa phủ kín ({area} m², {share} % không thuộc địa bàn nào), "
        "{user} đã xác nhận",
    ),
    "four_eyes_many": (
        "EA(s) {codes} were drawn or submitted by {user}: another supervisor approves them; "
        "nothing was approved",
        "Địa bàn {codes} do {user} vẽ hoặc gửi duyệt: một người duyệt khác phải duyệt; chưa "
        "duyệt địa bàn nào",
    ),
    "nothing_submitted": (
        "commune {commune} has no submitted EA in round {round}",
        "xã {commune} không có địa bàn nào chờ duyệt trong kỳ {round}",
    ),
    # organisation
    "unknown_staff": (
        "there is no {role_en} {staff} in round {round}",
        "không có {role_vi} {staff} trong kỳ {round}",
    ),
    "staff_out_of_scope": (
        "{name} ({staff}) works in {scope}, not in commune {commune}",
        "{name} ({staff}) làm việc ở {scope}, không phải xã {commune}",
    ),
    "area_not_contiguous": (
        "supervisor area {area}: its EAs {codes} are not contiguous; an area is one piece",
        "Địa bàn giám sát {area}: các địa bàn {codes} không liền nhau; phải liền một khối",
    ),
    "area_band": (
        "supervisor area {area} has {count} EAs, outside the band {band}",
        "Địa bàn giám sát {area} có {count} địa bàn, ngoài khoảng {band}",
    ),
    "area_mixes": (
        "supervisor area {area}: EAs {codes} are not in commune {commune}",
        "Địa bàn giám sát {area}: các địa bàn {codes} không thuộc xã {commune}",
    ),
    "area_taken": (
        "supervisor area {area}: EAs {codes} are already in another supervisor area",
        "Địa bàn giám sát {area}: các địa bàn {codes} đã thuộc một địa bàn giám sát khác",
    ),
    "unknown_eas": (
        "unknown EA code(s) in round {round}: {codes}",
        "mã địa bàn không có trong kỳ {round}: {codes}",
    ),
    "areas_changed": (
        "the supervisor areas of commune {commune} changed since your preview ({codes} made, "
        "changed or removed by someone else); nothing was saved: make a fresh preview",
        "Các địa bàn giám sát của xã {commune} đã thay đổi sau khi bạn xem trước ({codes} do "
        "người khác tạo, sửa hoặc xoá); chưa lưu gì: hãy xem trước lại",
    ),
    "areas_if_match_needed": (
        "send If-Match with the ETag of the supervisor areas you previewed",
        "thiếu phiên bản các địa bàn giám sát đã xem trước (If-Match); hãy xem trước lại",
    ),
    "area_if_match_needed": (
        "send If-Match with the ETag of the supervisor areas you read (GET …/supervisor-areas)",
        "thiếu phiên bản các địa bàn giám sát đã tải (If-Match); hãy tải lại trang rồi làm lại",
    ),
    "areas_changed_since_read": (
        "the supervisor areas of commune {commune} changed since you loaded them ({codes} made, "
        "changed or removed by someone else); nothing was saved: reload the areas and try again",
        "Các địa bàn giám sát của xã {commune} đã thay đổi sau khi bạn tải ({codes} do người "
        "khác tạo, sửa hoặc xoá); chưa lưu gì: hãy tải lại rồi làm lại",
    ),
    "area_changed": (
        "supervisor area {area} of commune {commune} was changed or removed by someone else "
        "since you loaded it; nothing was saved: reload the areas and try again",
        "Địa bàn giám sát {area} của xã {commune} đã bị người khác sửa hoặc xoá sau khi bạn "
        "tải; chưa lưu gì: hãy tải lại rồi làm lại",
    ),
    "unknown_area": ("there is no supervisor area {area}", "không có địa bàn giám sát {area}"),
    "staff_exists": (
        "staff code {staff} is already used in round {round}",
        "mã nhân sự {staff} đã dùng trong kỳ {round}",
    ),
    # proposals (automatic grouping and assignment)
    "group_island": (
        "EA(s) {codes} share no edge with the other EAs being grouped (an island or an "
        "enclave): a group of {count}, below the band {band}",
        "Các địa bàn {codes} không chung cạnh với các địa bàn khác đang được nhóm (đảo hoặc "
        "vùng bị bao quanh): một nhóm {count} địa bàn, dưới khoảng {band}",
    ),
    "group_small_commune": (
        "only {count} EAs ({codes}) to group: one group, below the band {band}",
        "chỉ có {count} địa bàn ({codes}) để nhóm: một nhóm, dưới khoảng {band}",
    ),
    "group_band": (
        "{count} EAs, outside the band {band}",
        "{count} địa bàn, ngoài khoảng {band}",
    ),
    "group_band_part": (
        "{count} EAs, outside the band {band}: the {part} connected EAs around it make "
        "{groups} groups that cannot all stay in the band and in one piece",
        "{count} địa bàn, ngoài khoảng {band}: {part} địa bàn liền nhau quanh nhóm này chia "
        "thành {groups} nhóm không thể cùng nằm trong khoảng mà vẫn liền một khối",
    ),
    "no_enumerator_left": (
        "{count} EA(s) left without an enumerator ({codes}): no free enumerator, and none "
        "in their supervisor area with room within {capacity} households; add enumerators "
        "working in this commune",
        "{count} địa bàn chưa có điều tra viên ({codes}): không còn điều tra viên rảnh, và "
        "không ai trong địa bàn giám sát của chúng còn nhận thêm được trong giới hạn {capacity} "
        "hộ; hãy thêm điều tra viên làm việc ở xã này",
    ),
    "nothing_to_group": (
        "no EA left to group: every EA asked for is in a supervisor area (ask to redo them)",
        "không còn địa bàn nào để nhóm: mọi địa bàn đã thuộc một địa bàn giám sát (chọn làm "
        "lại để nhóm lại)",
    ),
    "nothing_to_assign": (
        "no EA without an enumerator to assign",
        "không còn địa bàn nào chưa có điều tra viên",
    ),
    "no_enumerators": (
        "commune {commune} has no enumerators in round {round}: add them first",
        "xã {commune} chưa có điều tra viên trong kỳ {round}: hãy thêm trước",
    ),
    "bad_band": (
        "the band of EAs per supervisor area must be whole numbers 1 ≤ from ≤ to ≤ {most}",
        "khoảng số địa bàn mỗi địa bàn giám sát phải là số nguyên 1 ≤ từ ≤ đến ≤ {most}",
    ),
    "proposal_group": ("proposed group {number}", "nhóm đề xuất {number}"),
    "listing_row": ("row {row}: {problem}", "dòng {row}: {problem}"),
    "listing_refused": (
        "the listing has {count} bad row(s); nothing was saved",
        "tệp kê khai có {count} dòng sai; chưa lưu gì",
    ),
    "listing_saved": (
        "listing saved for {count} EA(s)",
        "đã lưu số liệu kê khai của {count} địa bàn",
    ),
    # users
    "bad_credentials": (
        "wrong name or password",
        "tên đăng nhập hoặc mật khẩu không đúng",
    ),
    "invalid_token": (
        "this token is not valid (expired, revoked or mistyped): sign in again",
        "mã truy cập không hợp lệ (hết hạn, bị thu hồi hoặc gõ sai): hãy đăng nhập lại",
    ),
    "needs_token": (
        "this needs you to sign in (Authorization: Bearer …)",
        "việc này cần đăng nhập",
    ),
    "token_failed_often": (
        "this token failed too often; wait a minute",
        "mã truy cập này đã sai quá nhiều lần; hãy chờ một phút",
    ),
    "too_many_failures": (
        "too many failed sign-ins; wait a minute and try again",
        "đăng nhập sai quá nhiều lần; hãy chờ một phút rồi thử lại",
    ),
    "weak_password": (
        "a password needs at least {minimum} characters",
        "mật khẩu cần ít nhất {minimum} ký tự",
    ),
    "user_exists": ("user {user} already exists", "người dùng {user} đã có"),
    "user_exists_any_case": (
        "a user whose name differs from {user} only in letter case already exists: user "
        "names must differ in more than case",
        "đã có người dùng có tên chỉ khác {user} ở chữ hoa, chữ thường: tên người dùng phải "
        "khác nhau không chỉ ở chữ hoa, chữ thường",
    ),
    "unknown_user": ("there is no user {user}", "không có người dùng {user}"),
    "unlinkable_user": (
        "user_name must name an active user, not an administrator, whose scope covers the "
        "staff member's place",
        "user_name phải là một người dùng đang hoạt động, không phải quản trị viên, có phạm vi "
        "bao gồm nơi làm việc của nhân viên",
    ),
    "admin_only": ("only an administrator may do this", "chỉ quản trị viên được làm việc này"),
    # background jobs (the messages every kind shares, then the map book's)
    "no_job": (
        "there is no job {job} (finished jobs are kept {hours} hours)",
        "không có yêu cầu {job} (kết quả chỉ được giữ {hours} giờ)",
    ),
    "job_not_ready": (
        "job {job} is {status_en}: its result is not ready yet",
        "yêu cầu {job} đang ở trạng thái «{status_vi}»: kết quả chưa có",
    ),
    "job_failed": ("job {job} failed: {why}", "yêu cầu {job} không thành công: {why}"),
    "job_not_yours": (
        "only who asked for job {job} (or an administrator) may cancel it",
        "chỉ người đã yêu cầu (hoặc quản trị viên) mới huỷ được yêu cầu {job}",
    ),
    "job_worker_lost": (
        "the instance drawing it stopped {attempts} times",
        "máy chủ vẽ tập bản đồ đã dừng {attempts} lần",
    ),
    "job_error": (
        "drawing failed; see the service log",
        "vẽ không thành công; xem nhật ký dịch vụ",
    ),
    "job_database": (
        "the database stopped the drawing half-way (a statement ran too long, or the database "
        "restarted); no map book was kept: ask again",
        "cơ sở dữ liệu đã dừng việc vẽ giữa chừng (một câu lệnh chạy quá lâu hoặc cơ sở dữ liệu "
        "khởi động lại); không giữ lại tập bản đồ nào: hãy yêu cầu lại",
    ),
    "job_cancelled": ("cancelled", "đã huỷ"),
    "report_worker_lost": (
        "the instance making the report stopped {attempts} times",
        "máy chủ lập báo cáo đã dừng {attempts} lần",
    ),
    "report_error": (
        "making the report failed; see the service log",
        "lập báo cáo không thành công; xem nhật ký dịch vụ",
    ),
    "report_database": (
        "the database stopped the report half-way (a statement ran too long, or the database "
        "restarted); no report was kept: ask again",
        "cơ sở dữ liệu đã dừng việc lập báo cáo giữa chừng (một câu lệnh chạy quá lâu hoặc cơ "
        "sở dữ liệu khởi động lại); không giữ lại báo cáo nào: hãy yêu cầu lại",
    ),
    "export_worker_lost": (
        "the instance writing the file stopped {attempts} times",
        "máy chủ ghi tệp đã dừng {attempts} lần",
    ),
    "export_error": (
        "writing the file failed; see the service log",
        "ghi tệp không thành công; xem nhật ký dịch vụ",
    ),
    "export_database": (
        "the database stopped writing the file half-way (a statement ran too long, or the "
        "database restarted); no file was kept: ask again",
        "cơ sở dữ liệu đã dừng việc ghi tệp giữa chừng (một câu lệnh chạy quá lâu hoặc cơ sở "
        "dữ liệu khởi động lại); không giữ lại tệp nào: hãy yêu cầu lại",
    ),
    # background jobs (area reports, large EA downloads)
    "file_client_limit": (
        "at most {limit} files (reports, map books, large downloads) being made at once for "
        "one client; wait for one to finish or cancel one",
        "mỗi người chỉ được yêu cầu tối đa {limit} tệp (báo cáo, tập bản đồ, tệp tải về lớn) "
        "cùng lúc; hãy chờ một tệp xong hoặc huỷ bớt",
    ),
    "file_queue_full": (
        "the service is making {limit} files (reports, map books, large downloads) already; "
        "retry in a few minutes",
        "dịch vụ đang tạo {limit} tệp (báo cáo, tập bản đồ, tệp tải về lớn); hãy thử lại sau "
        "vài phút",
    ),
    "job_private": (
        "job {job} is a report another client asked for: only who asked (or an "
        "administrator) may read it",
        "yêu cầu {job} là báo cáo của người khác: chỉ người đã yêu cầu (hoặc quản trị viên) "
        "mới xem được",
    ),
    "export_private": (
        "job {job} is a download another client asked for: only who asked (or an "
        "administrator) may read it",
        "yêu cầu {job} là tệp tải về của người khác: chỉ người đã yêu cầu (hoặc quản trị viên) "
        "mới xem được",
    ),
}

# Words that go into messages, in each language.
WORDS: dict[str, tuple[str, str]] = {
    "draft": ("a draft", "nháp"),
    "submitted": ("submitted", "chờ duyệt"),
    "approved": ("approved", "đã duyệt"),
    "rejected": ("rejected", "bị trả lại"),
    "submit": ("submitted", "gửi duyệt"),
    "approve": ("approved", "duyệt"),
    "reject": ("rejected", "trả lại"),
    "viewer": ("viewer", "người xem"),
    "editor": ("editor", "người vẽ"),
    "supervisor": ("supervisor", "người giám sát"),
    "admin": ("admin", "quản trị"),
    "enumerator": ("enumerator", "điều tra viên"),
    "accepted": ("waiting", "đang chờ"),
    "running": ("running", "đang tạo"),
    "successful": ("done", "đã xong"),
    "failed": ("failed", "không thành công"),
    "dismissed": ("cancelled", "đã huỷ"),
}


def word(value: str, lang: str) -> str:
    """A word of the catalogue in `lang` (itself when unknown)."""
    pair = WORDS.get(value)
    return value if pair is None else pair[LANGUAGES.index(lang)]


class Said(str):
    """A message in English that can say itself in another language."""

    key: str
    args: dict[str, Any]

    def __new__(cls, key: str, **args: Any) -> Said:
        """The message `key` with its values (English text)."""
        said = super().__new__(cls, _render(key, args, "en"))
        said.key, said.args = key, args
        return said

    def in_language(self, lang: str) -> str:
        """The message in `lang` (English when the language is unknown)."""
        return _render(self.key, self.args, lang if lang in LANGUAGES else "en")


def said(key: str, **args: Any) -> Said:
    """The catalogue's message `key` with these values."""
    return Said(key, **args)


def _render(key: str, args: dict[str, Any], lang: str) -> str:
    text = CATALOGUE[key][LANGUAGES.index(lang)]
    values = {k: (v.in_language(lang) if isinstance(v, Said) else v) for k, v in args.items()}
    # {name_en} / {name_vi}: a word of the catalogue in that language
    for name, value in args.items():
        if isinstance(value, str) and not isinstance(value, Said):
            values[f"{name}_en"], values[f"{name}_vi"] = word(value, "en"), word(value, "vi")
    return text.format(**values)


def localised(value: Any, lang: str) -> Any:
    """A JSON-like value with every `Said` in it said in `lang`."""
    if isinstance(value, Said):
        return value.in_language(lang)
    if isinstance(value, dict):
        return {k: localised(v, lang) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [localised(v, lang) for v in value]
    return value

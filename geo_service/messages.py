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
        "EA {code} is approved: only a supervisor may change it (it goes back to draft)",
        "Địa bàn {code} đã được duyệt: chỉ người duyệt mới được sửa (địa bàn trở về nháp)",
    ),
    "rules_broken": (
        "{count} rule(s) broken{what}; nothing was saved",
        "vi phạm {count} quy tắc{what}; chưa lưu gì",
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
    "unknown_area": ("there is no supervisor area {area}", "không có địa bàn giám sát {area}"),
    "staff_exists": (
        "staff code {staff} is already used in round {round}",
        "mã nhân sự {staff} đã dùng trong kỳ {round}",
    ),
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
    "too_many_failures": (
        "too many failed sign-ins; wait a minute and try again",
        "đăng nhập sai quá nhiều lần; hãy chờ một phút rồi thử lại",
    ),
    "weak_password": (
        "a password needs at least {minimum} characters",
        "mật khẩu cần ít nhất {minimum} ký tự",
    ),
    "user_exists": ("user {user} already exists", "người dùng {user} đã có"),
    "unknown_user": ("there is no user {user}", "không có người dùng {user}"),
    "unlinkable_user": (
        "user_name must name an active user, not an administrator, whose scope covers the "
        "staff member's place",
        "user_name phải là một người dùng đang hoạt động, không phải quản trị viên, có phạm vi "
        "bao gồm nơi làm việc của nhân viên",
    ),
    "admin_only": ("only an administrator may do this", "chỉ quản trị viên được làm việc này"),
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

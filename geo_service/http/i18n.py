"""Error messages in the client's language: English by default, Vietnamese when the request
prefers it (`Accept-Language: vi`), as the map pages send it.

Domain errors are raised with English messages; this table, read by the HTTP edge only,
gives each known message its Vietnamese form (by pattern, so the values in it carry over),
and any other message a Vietnamese one built from its status and parameter.
"""

from __future__ import annotations

import re
from typing import Any

from geo_service.messages import Said, localised
from indicators.read import RECHECKING

LANGUAGES = ("en", "vi")

# (pattern of the English message, its Vietnamese form with the pattern's groups)
_MESSAGES: list[tuple[str, str]] = [
    (r"unknown indicator '(?P<x>[^']*)'", "không có chỉ tiêu «{x}»"),
    # (the re-protection notice's own two texts: one wording for bodies and errors)
    (re.escape(RECHECKING["en"]).replace(re.escape("{codes}"), "(?P<codes>.*)"), RECHECKING["vi"]),
    (
        r"unknown (?P<what>\w+) '(?P<x>[^']*)'; valid values: (?P<valid>.*)",
        "{what_vi} «{x}» không có; các giá trị hợp lệ: {valid}",
    ),
    (
        r"(?P<what>\w+) is required; valid values: (?P<valid>.*)",
        "cần chọn {what_vi}; các giá trị hợp lệ: {valid}",
    ),
    (r"breaks must be comma-separated numbers", "các ngưỡng phải là số, cách nhau bởi dấu phẩy"),
    (r"breaks must be finite numbers", "các ngưỡng phải là số hữu hạn"),
    (r"manual classification needs breaks=", "phân lớp thủ công cần nhập các ngưỡng"),
    (r"k must be between 3 and 7", "số lớp phải từ 3 đến 7"),
    (
        r"unknown method '(?P<x>[^']*)'; methods: (?P<valid>.*)",
        "không có phương pháp «{x}»; các phương pháp: {valid}",
    ),
    (
        r"unknown palette '(?P<x>[^']*)'; palettes: (?P<valid>.*)",
        "không có bảng màu «{x}»; các bảng màu: {valid}",
    ),
    (r"q is empty", "chưa nhập từ khoá tìm kiếm"),
    (r"geometry is empty", "hình vẽ trống"),
    (r"geometry is invalid: (?P<why>.*)", "hình vẽ không hợp lệ ({why})"),
    (
        r"the area is (?P<area>[\d,.]+) km²; the limit is (?P<limit>[\d,.]+) km²",
        "vùng vẽ rộng {area} km², vượt giới hạn {limit} km²",
    ),
    (
        r"(?P<x>\w+) has no period '(?P<p>[^']*)' on (?P<level>\w+) (?P<v>\S+); "
        r"periods: (?P<valid>.*)",
        "chỉ tiêu {x} không có kỳ «{p}» ở cấp {level_vi} năm ranh giới {v}; các kỳ: {valid}",
    ),
    (
        r"indicator '(?P<x>[^']*)' has no period '(?P<p>[^']*)' for (?P<c>\S+); "
        r"periods: (?P<valid>.*)",
        "chỉ tiêu «{x}» không có kỳ «{p}» cho {c}; các kỳ: {valid}",
    ),
    (
        r"'(?P<x>[^']*)' has no values for (?P<c>\S+)",
        "chỉ tiêu «{x}» không có số liệu cho {c}",
    ),
    (r"'(?P<x>[^']*)' is not a unit of (?P<c>\S+)", "«{x}» không phải là đơn vị của {c}"),
    (
        r"unknown collection '(?P<x>[^']*)'.*",
        "không có lớp dữ liệu «{x}» (mã có dạng commune-2025)",
    ),
    (
        r"(?P<x>\w+) is an? (?P<kind>\w+): it cannot be carried between vintages",
        "chỉ tiêu {x} là chỉ số, không chuyển được sang ranh giới mới",
    ),
    (
        r"no crosswalk from (?P<level>\w+) (?P<a>\S+) to (?P<b>\S+).*",
        "không có bảng chuyển đổi cấp {level_vi} từ {a} sang {b}",
    ),
    (
        r"no recorded crosswalk (?P<a>\S+) → (?P<b>\S+) at (?P<level>\w+) level",
        "chưa có bảng chuyển đổi từ năm ranh giới {a} sang {b} ở cấp {level_vi}",
    ),
    (r"give within or bbox, not both", "chỉ chọn một phạm vi: trong tỉnh hoặc trong khung nhìn"),
    (
        r"'(?P<x>[^']*)' is not a unit above the (?P<level>\w+)s of (?P<v>\S+)",
        "«{x}» không phải là đơn vị cấp trên của cấp {level_vi} năm {v}",
    ),
    (r"unknown basemap '(?P<x>[^']*)'.*", "không có bản đồ nền «{x}»"),
    (r"no tile .*", "không có ô bản đồ này"),
    (r"invalid token", "mã truy cập không hợp lệ"),
    (r"(send a|this needs a) token.*", "cần mã truy cập (đăng nhập)"),
    (r"reads need a token here", "cần mã truy cập để xem"),
    (
        r"too many failed authentications; wait a minute",
        "đăng nhập sai quá nhiều lần; chờ một phút",
    ),
    (r"commune (?P<c>\S+) is outside (?P<u>.*)'s scope", "xã {c} nằm ngoài phạm vi của {u}"),
    (
        r"this needs the (?P<r>\w+) role; (?P<u>.*) is an? (?P<has>\w+)",
        "việc này cần vai trò {r_vi}; {u} là {has_vi}",
    ),
    (r"user (?P<u>.*) is a viewer and may not edit", "người dùng {u} chỉ được xem, không được sửa"),
    (r"send If-Match with the ETag you read", "thiếu If-Match (phiên bản đã đọc)"),
    (r"no enumeration area (?P<x>\S+)", "không có địa bàn {x}"),
    (r"the EAs do not form one contiguous area", "các địa bàn không liền nhau"),
    (r"the line does not cut the EA into parts", "đường cắt không chia địa bàn thành các phần"),
    (r"outside its commune", "nằm ngoài xã"),
    (r"overlaps EA (?P<x>\S+)", "chồng lấn địa bàn {x}"),
    (
        r"area (?P<a>[\d.,]+) m² is below the minimum (?P<m>[\d.,]+) m²",
        "diện tích {a} m² nhỏ hơn mức tối thiểu {m} m²",
    ),
    (
        r"area (?P<a>[\d.,]+) km² is above the maximum (?P<m>[\d.,]+) km²",
        "diện tích {a} km² lớn hơn mức tối đa {m} km²",
    ),
    (
        r"estimated (?P<h>[\d.,]+) households, outside the band (?P<b>\S+)",
        "ước tính {h} hộ, ngoài khoảng {b}",
    ),
    (r"the database is not available; retry shortly", "cơ sở dữ liệu tạm thời không truy cập được"),
    (
        r"no answer within (?P<s>[\d.]+) s: the service is busy or the database unreachable;"
        r" retry later",
        "không có trả lời trong {s} giây: dịch vụ đang bận hoặc không kết nối được cơ sở dữ"
        " liệu; hãy thử lại sau",
    ),
    (
        r"a concurrent change got in the way; nothing was saved, retry",
        "có thay đổi đồng thời; chưa lưu gì, hãy thử lại",
    ),
    (r"internal error; see the service log", "lỗi hệ thống; xem nhật ký của dịch vụ"),
    (r"no such path \(see /api for the paths\)", "không có đường dẫn này (xem /api)"),
    (r"unknown query parameter '(?P<x>[^']*)'.*", "tham số «{x}» không được dùng ở đây"),
]
_COMPILED = [(re.compile(f"^{pattern}$", re.DOTALL), vi) for pattern, vi in _MESSAGES]

# Words that appear inside messages (parameter names, levels, roles) in Vietnamese.
_WORDS = {
    "vintage": "năm ranh giới",
    "level": "cấp",
    "period": "kỳ",
    "indicator": "chỉ tiêu",
    "collection": "lớp dữ liệu",
    "province": "tỉnh",
    "district": "huyện",
    "commune": "xã",
    "viewer": "người xem",
    "editor": "người vẽ",
    "supervisor": "người duyệt",
    "admin": "quản trị",
}

# A message the table does not know: what kind of refusal it was, by status.
_BY_STATUS = {
    400: "yêu cầu không hợp lệ",
    401: "cần đăng nhập bằng mã truy cập",
    403: "không có quyền thực hiện việc này",
    404: "không tìm thấy",
    406: "không có định dạng phù hợp với yêu cầu",
    409: "xung đột với dữ liệu hiện có",
    412: "dữ liệu đã được người khác thay đổi; hãy tải lại",
    413: "yêu cầu quá lớn",
    422: "vi phạm quy tắc",
    428: "thiếu phiên bản (If-Match)",
    429: "quá nhiều yêu cầu; hãy chờ",
    503: "dịch vụ tạm thời không sẵn sàng; hãy thử lại",
}


def _vietnamese(message: str, status: int, parameter: str | None) -> str:
    for pattern, template in _COMPILED:
        match = pattern.match(message)
        if match:
            groups = match.groupdict()
            words = {f"{k}_vi": _WORDS.get(v, v) for k, v in groups.items()}
            return template.format(**groups, **words)
    generic = _BY_STATUS.get(status, "lỗi hệ thống")
    return f"{generic} (tham số «{parameter}»)" if parameter else generic


def translate(message: str, lang: str, status: int = 400, parameter: str | None = None) -> str:
    """The message in `lang` (English messages are the domain's own)."""
    if lang != "vi":
        return message
    return _vietnamese(message, status, parameter)


def _say(message: Any, lang: str, status: int, parameter: str | None) -> str:
    # (a message of the catalogue says itself; others are matched against the table above)
    if isinstance(message, Said):
        return message.in_language(lang)
    return translate(str(message), lang, status, parameter)


def localise(body: dict[str, Any], lang: str) -> dict[str, Any]:
    """An error body in `lang`: its detail and the problems, warnings and parameter errors
    listed in it (the English detail is kept as `detail_en`)."""
    if lang == "en":
        return body
    status, parameter = int(body.get("status", 400)), body.get("parameter")
    out = {**body, "detail": _say(body.get("detail", ""), lang, status, parameter)}
    out["detail_en"] = str(body.get("detail", ""))
    for key, field in (("problems", "problem"), ("warnings", "warning"), ("errors", "problem")):
        items = body.get(key)
        if isinstance(items, list):
            out[key] = [
                {**item, field: _say(item[field], lang, status, item.get("parameter"))}
                if isinstance(item, dict) and isinstance(item.get(field), str)
                else item
                for item in items
            ]
    # (catalogue messages elsewhere in the body, e.g. an EA's refusals, in `lang` too)
    localised_out: dict[str, Any] = localised(out, lang)
    return localised_out

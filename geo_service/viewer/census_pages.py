"""Two plain pages beside the EA editor: census progress across the communes of a scope
(`/map/ea/progress`) and user administration (`/map/users`). No map: a table each, filled
by static/census_pages.js from the API, in Vietnamese or English."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from geo_service.viewer.assets import static_root

PAGE_LABELS: dict[str, dict[str, str]] = {
    "vi": {
        "progress_title": "Tiến độ vẽ địa bàn điều tra",
        "users_title": "Quản lý người dùng",
        "round": "Kỳ điều tra",
        "scope": "Phạm vi (mã tỉnh hoặc xã, cách nhau bởi dấu phẩy)",
        "show": "Xem",
        "commune": "Xã/phường",
        "province": "Tỉnh/thành phố",
        "eas": "Địa bàn",
        "draft": "Nháp",
        "submitted": "Chờ duyệt",
        "approved": "Đã duyệt",
        "rejected": "Bị trả lại",
        "assigned": "Đã phân công",
        "in_areas": "Trong địa bàn giám sát",
        "without_eas": "Xã chưa có địa bàn",
        "communes": "Số xã",
        "total": "Tổng",
        "open_editor": "Mở",
        "loading": "Đang tải…",
        "name": "Tên đăng nhập",
        "password": "Mật khẩu",
        "sign_in": "Đăng nhập",
        "sign_out": "Đăng xuất",
        "signed_in_as": "Người dùng",
        "admins_only": "Trang này dành cho quản trị viên: hãy đăng nhập bằng tài khoản quản trị.",
        "role": "Vai trò",
        "disabled": "Khoá",
        "has_password": "Có mật khẩu",
        "tokens": "Mã truy cập đang dùng",
        "expires": "hết hạn",
        "never": "không hết hạn",
        "save": "Lưu",
        "reset_password": "Đặt lại mật khẩu",
        "revoke_all": "Thu hồi mọi mã",
        "revoke": "Thu hồi",
        "create_user": "Tạo người dùng",
        "create": "Tạo",
        "new_password": "Mật khẩu mới (ít nhất 8 ký tự)",
        "confirm_revoke_all": "Thu hồi {count} mã truy cập của {name}? Mọi thiết bị của người "
        "này phải đăng nhập lại.",
        "confirm_revoke": "Thu hồi mã «{label}» của {name}?",
        "confirm_disable": "Khoá người dùng {name}? Mọi mã truy cập của họ bị thu hồi.",
        "confirm_reset": "Đặt mật khẩu mới cho {name}? Mọi mã truy cập của họ bị thu hồi.",
        "cancel": "Huỷ",
        "ok": "Đồng ý",
        "done": "Đã lưu",
        "failed": "Không thực hiện được",
        "yes": "có",
        "no": "không",
        "role_viewer": "người xem",
        "role_editor": "người vẽ",
        "role_supervisor": "người giám sát",
        "role_admin": "quản trị",
        "editor_link": "Trình vẽ địa bàn",
    },
    "en": {
        "progress_title": "Enumeration area progress",
        "users_title": "User administration",
        "round": "Census round",
        "scope": "Scope (province or commune codes, comma-separated)",
        "show": "Show",
        "commune": "Commune",
        "province": "Province",
        "eas": "EAs",
        "draft": "Draft",
        "submitted": "Submitted",
        "approved": "Approved",
        "rejected": "Rejected",
        "assigned": "Assigned",
        "in_areas": "In supervisor areas",
        "without_eas": "Communes without EAs",
        "communes": "Communes",
        "total": "Total",
        "open_editor": "Open",
        "loading": "Loading…",
        "name": "User name",
        "password": "Password",
        "sign_in": "Sign in",
        "sign_out": "Sign out",
        "signed_in_as": "User",
        "admins_only": "This page is for administrators: sign in with an admin account.",
        "role": "Role",
        "disabled": "Disabled",
        "has_password": "Has a password",
        "tokens": "Live tokens",
        "expires": "expires",
        "never": "no expiry",
        "save": "Save",
        "reset_password": "Reset password",
        "revoke_all": "Revoke all tokens",
        "revoke": "Revoke",
        "create_user": "Create a user",
        "create": "Create",
        "new_password": "New password (at least 8 characters)",
        "confirm_revoke_all": "Revoke the {count} tokens of {name}? Each of their devices must "
        "sign in again.",
        "confirm_revoke": "Revoke the token «{label}» of {name}?",
        "confirm_disable": "Disable user {name}? All their tokens are revoked.",
        "confirm_reset": "Set a new password for {name}? All their tokens are revoked.",
        "cancel": "Cancel",
        "ok": "OK",
        "done": "Saved",
        "failed": "Not done",
        "yes": "yes",
        "no": "no",
        "role_viewer": "viewer",
        "role_editor": "editor",
        "role_supervisor": "supervisor",
        "role_admin": "admin",
        "editor_link": "EA editor",
    },
}
_ROUND = re.compile(r"^\d{4}$")
_SCOPE = re.compile(r"^(\d{2}|\d{5})(,(\d{2}|\d{5}))*$")


def _page(api: str, lang: str, title: str, config: dict[str, Any]) -> str:
    payload = json.dumps(config, ensure_ascii=False)
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    static = html.escape(static_root(api))
    return (
        f"<!DOCTYPE html><html lang='{lang}'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><link rel='icon' href='data:,'>"
        f"<link rel='stylesheet' href='{static}/census_pages.css'>"
        f"<script src='{static}/safe.js' defer></script>"
        f"<script src='{static}/census_pages.js' defer></script></head>"
        f"<body><main id='census-page'><h1>{html.escape(title)}</h1></main>"
        f"<script type='application/json' id='census-page-config'>{payload}</script>"
        "</body></html>"
    )


def _lang(params: dict[str, str]) -> str:
    lang = params.get("lang", "vi")
    return lang if lang in PAGE_LABELS else "vi"


def render_progress_page(params: dict[str, str], api: str) -> str:
    """The progress page of a round over a scope (default: the signed-in user's)."""
    lang = _lang(params)
    census_round = params.get("round", "2029")
    scope = params.get("scope", "")
    labels = PAGE_LABELS[lang]
    config = {
        "page": "progress",
        "api": api,
        "lang": lang,
        "labels": labels,
        "round": census_round if _ROUND.match(census_round) else "2029",
        "scope": scope if _SCOPE.match(scope) else "",
    }
    return _page(api, lang, labels["progress_title"], config)


def render_users_page(params: dict[str, str], api: str) -> str:
    """The user administration page (the API refuses anyone but administrators)."""
    lang = _lang(params)
    labels = PAGE_LABELS[lang]
    config = {"page": "users", "api": api, "lang": lang, "labels": labels}
    return _page(api, lang, labels["users_title"], config)

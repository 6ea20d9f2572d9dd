"""Users: sign in with a name and password, sign out, who am I; administration of users and
their tokens (admins only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request

from geo_core.errors import InvalidParameter, NotFound, Unauthorized
from geo_service.http.auth import (
    Admin,
    AdminReleased,
    MaybeUser,
    SignedIn,
    password_failures,
    signed_in_from,
)
from geo_service.http.deps import Conn, Pool, ServicesDep
from geo_service.http.documents import (
    Me,
    Revoked,
    TokenEntry,
    UserEntry,
    UserList,
)
from geo_service.http.documents import (
    SignedIn as SignedInDoc,
)
from geo_service.messages import said
from geo_service.users import (
    check_password,
    check_role_and_scope,
    create_user,
    hash_password_async,
    revoke_all,
    revoke_token,
    sign_in,
    update_user,
    user_row,
    users_with_tokens,
)

router = APIRouter(tags=["users"])
UserName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")]


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return str(value.astimezone(UTC).isoformat(timespec="seconds"))


def _text(body: dict[str, Any], name: str, limit: int = 200) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidParameter(f"{name} must be a text of 1–{limit} characters", parameter=name)
    return value


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidParameter("the body must be a JSON object", parameter="body")
    return body


@router.get("/users/me", summary="The user named by the bearer token")
async def me(user: MaybeUser) -> Me:
    """Name, role and scope of the token's user; 401 without a valid token."""
    if user is None:
        raise Unauthorized(said("needs_token"), parameter="Authorization")
    return Me(name=user.name, role=user.role, scope=list(user.scope))


@router.post("/users/sign-in", summary="Sign in with a name and password: a new token")
async def sign_in_route(
    request: Request,
    pool: Pool,
    services: ServicesDep,
    body: Annotated[Any, Body(description='{"name": …, "password": …, "label": "tablet"}')],
) -> SignedInDoc:
    """A token that expires after GEO_SERVICE_TOKEN_TTL_HOURS; a wrong name or password
    gets one message for both and counts, like a wrong token, per address and name."""
    body = _object(body)
    name, password = _text(body, "name", 64), _text(body, "password", 1024)
    label = body.get("label") if isinstance(body.get("label"), str) else "sign-in"
    keys = password_failures(request, services, name)
    ttl = timedelta(hours=services.settings.token_ttl_hours)
    attempts = services.failed_auth
    attempts.begin(keys)  # (a burst sent at once counts before its passwords are checked)
    try:
        made = await sign_in(pool, name, password, ttl, str(label)[:100])
    except BaseException:
        attempts.end(keys, failed=False)
        raise
    attempts.end(keys, failed=made is None)
    if made is None:
        raise Unauthorized(said("bad_credentials"), parameter="password")
    user, token, expires = made
    signed_in_from(request, services, user.name)
    return SignedInDoc(
        token=token,
        expires_at=_iso(expires) or "",
        user=Me(name=user.name, role=user.role, scope=list(user.scope)),
    )


@router.post("/users/sign-out", summary="Revoke the token this request carries")
async def sign_out(conn: Conn, user: SignedIn) -> Revoked:
    """The token stops working at once (other devices keep theirs)."""
    done = user.token_id is not None and await revoke_token(conn, user.token_id, user.name)
    return Revoked(revoked=int(done))


@router.get("/admin/users", summary="Users and their live tokens (admins)")
async def list_users(conn: Conn, admin: Admin) -> UserList:
    """Every user with role, scope, state and live tokens (never tokens or passwords)."""
    rows = await users_with_tokens(conn)
    return UserList(
        users=[
            UserEntry(
                name=r["name"],
                role=r["role"],
                scope=list(r["scope"]),
                disabled=r["disabled"],
                has_password=r["has_password"],
                created_at=_iso(r["created_at"]) or "",
                tokens=[
                    TokenEntry(
                        id=t["id"],
                        label=t["label"],
                        created_at=_iso(t["created_at"]) or "",
                        expires_at=_iso(t["expires_at"]),
                    )
                    for t in r["tokens"]
                ],
            )
            for r in rows
        ]
    )


@router.post("/admin/users", status_code=201, summary="Create a user (admins)")
async def add_user(
    pool: Pool,
    admin: AdminReleased,
    body: Annotated[Any, Body(description='{"name", "role", "scope": [codes], "password"}')],
) -> Me:
    """A user who signs in with the password given (at least 8 characters); the password
    is hashed holding no pooled connection."""
    body = _object(body)
    name = _text(body, "name", 64)
    role = body.get("role")
    scope = check_role_and_scope(role, body.get("scope", []))
    digest = await hash_password_async(check_password(body.get("password")))
    async with pool.connection() as conn:
        await create_user(conn, name, str(role), scope, digest)
    return Me(name=name, role=str(role), scope=scope)


@router.patch("/admin/users/{name}", summary="Change a user's role, scope, state or password")
async def change_user(
    name: UserName,
    pool: Pool,
    admin: AdminReleased,
    body: Annotated[Any, Body(description='{"role", "scope", "disabled", "password"}')],
) -> Me:
    """Only what the body names changes; a new password or disabling revokes the user's
    tokens. A new password is hashed holding no pooled connection."""
    body = _object(body)
    unknown = set(body) - {"role", "scope", "disabled", "password"}
    if unknown:
        raise InvalidParameter(f"unknown field(s): {', '.join(sorted(unknown))}", parameter="body")
    async with pool.connection() as conn:
        current = await user_row(conn, name)
    if current is None:
        raise NotFound(said("unknown_user", user=name), parameter="name")
    role = body.get("role", current["role"])
    scope = check_role_and_scope(role, body.get("scope", list(current["scope"])))
    disabled = body.get("disabled")
    if disabled is not None and not isinstance(disabled, bool):
        raise InvalidParameter("disabled must be true or false", parameter="disabled")
    if name == admin.name and (disabled or role != "admin"):
        raise InvalidParameter(
            "administrators cannot disable or demote themselves", parameter="name"
        )
    password = check_password(body["password"]) if "password" in body else None
    digest = await hash_password_async(password) if password else None
    async with pool.connection() as conn:
        await update_user(conn, name, role, scope, disabled, digest, admin.name)
    return Me(name=name, role=role, scope=scope)


@router.post("/admin/users/{name}/revoke", summary="Revoke every token of a user")
async def revoke_user_tokens(name: UserName, conn: Conn, admin: Admin) -> Revoked:
    """Every live token of the user stops working at once (a lost tablet)."""
    if await user_row(conn, name) is None:
        raise NotFound(said("unknown_user", user=name), parameter="name")
    return Revoked(revoked=await revoke_all(conn, name, admin.name))


@router.delete("/admin/tokens/{token_id}", summary="Revoke one token")
async def revoke_one(
    token_id: Annotated[int, Path(ge=1, le=2**63 - 1)], conn: Conn, admin: Admin
) -> Revoked:
    """One token stops working at once."""
    if not await revoke_token(conn, token_id, admin.name):
        raise NotFound(f"no live token {token_id}", parameter="token_id")
    return Revoked(revoked=1)

"""Users, roles, passwords and bearer tokens.

Passwords are kept only as argon2id hashes (argon2-cffi; the parameters travel in the hash,
so stronger ones can come later and old hashes are upgraded at the next sign-in). Tokens are
random, shown once, stored only as their SHA-256 and looked up by it (a lookup's timing can
tell of a hash, never of a token); each has an expiry (none for the command line's) and can be
revoked.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from geo_core.errors import Conflict, InvalidParameter, NotFound
from geo_service.messages import Said, said

ROLES = ("viewer", "editor", "supervisor", "admin")
_SCOPE_CODE = {2, 5}  # province or commune codes
MIN_PASSWORD = 8
_HASHER = PasswordHasher()  # argon2id with the library's (RFC 9106) parameters
_HASHING = ThreadPoolExecutor(2, thread_name_prefix="argon2")
# Verified when the name is unknown, so that a wrong name takes as long as a wrong password.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class User:
    """An authenticated user (and the token that authenticated them, if any)."""

    name: str
    role: str
    scope: tuple[str, ...]
    token_id: int | None = None

    def covers(self, commune_code: str, province_code: str | None) -> bool:
        """True when the commune is inside the user's scope."""
        if self.role == "admin":
            return True
        return commune_code in self.scope or (
            province_code is not None and province_code in self.scope
        )


def hash_token(token: str) -> str:
    """SHA-256 hex digest of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    """An argon2id hash of a password (with its salt and parameters)."""
    return _HASHER.hash(password)


def password_matches(encoded: str | None, password: str) -> bool:
    """Whether the password is the one hashed (a missing hash matches nothing)."""
    try:
        return _HASHER.verify(encoded or _DUMMY_HASH, password) and encoded is not None
    except (VerificationError, InvalidHashError):
        return False


def check_password(password: Any, parameter: str = "password") -> str:
    """A password long enough to keep (never echoed back in a message)."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise InvalidParameter(said("weak_password", minimum=MIN_PASSWORD), parameter=parameter)
    if len(password) > 1024 or "\x00" in password:
        raise InvalidParameter("a password must be plain text of at most 1024 characters")
    return password


def check_role_and_scope(role: Any, scope: Any, parameter: str = "scope") -> list[str]:
    """The scope as a list, once role and scope fit together."""
    if role not in ROLES:
        raise InvalidParameter(f"role must be one of {', '.join(ROLES)}", parameter="role")
    if not isinstance(scope, list) or not all(isinstance(c, str) for c in scope):
        raise InvalidParameter("scope must be a list of codes", parameter=parameter)
    bad = [code for code in scope if not (code.isdigit() and len(code) in _SCOPE_CODE)]
    if bad:
        raise InvalidParameter(
            f"scope codes must be 2-digit provinces or 5-digit communes: {', '.join(bad)}",
            parameter=parameter,
        )
    if role in ("editor", "supervisor") and not scope:
        raise InvalidParameter(f"an {role} needs a scope", parameter=parameter)
    if role == "admin" and scope:
        # (an admin administers users and reads and changes everything: a scope would
        # promise a limit that nothing enforces)
        raise InvalidParameter(
            "an admin works everywhere and takes no scope (send an empty scope); give a "
            "province or commune to an editor or supervisor instead",
            parameter=parameter,
        )
    return list(dict.fromkeys(scope))


def _name_taken(exc: psycopg.errors.UniqueViolation, name: str) -> Said:
    """What a refused new user name collided with: the name itself, or one differing from
    it only in letter case (unique whatever the case: migration 0026)."""
    if exc.diag.constraint_name == "app_user_name_any_case":
        return said("user_exists_any_case", user=name)
    return said("user_exists", user=name)


# ---- the command line (synchronous) ----


def add_user(
    conn: psycopg.Connection,
    name: str,
    role: str,
    scope: list[str],
    password: str | None = None,
) -> str:
    """Create a user with a token that does not expire; return the token (shown once)."""
    scope = check_role_and_scope(role, scope, "--scope")
    password_hash = hash_password(check_password(password, "--password")) if password else None
    token = secrets.token_urlsafe(32)
    try:
        with conn.transaction():
            conn.execute(
                "INSERT INTO app_user (name, role, scope, password_hash, password_changed_at)"
                " VALUES (%s, %s, %s, %s, CASE WHEN %s::text IS NULL THEN NULL ELSE now() END)",
                (name, role, scope, password_hash, password_hash),
            )
            conn.execute(
                "INSERT INTO app_token (user_name, token_hash, label) VALUES (%s, %s, %s)",
                (name, hash_token(token), "command line"),
            )
    except psycopg.errors.UniqueViolation as exc:
        raise InvalidParameter(_name_taken(exc, name), parameter="NAME") from exc
    except psycopg.errors.CheckViolation as exc:
        raise InvalidParameter(f"bad user name {name!r}", parameter="NAME") from exc
    return token


def set_password(conn: psycopg.Connection, name: str, password: str) -> None:
    """Set (or reset) a user's password from the command line."""
    digest = hash_password(check_password(password, "--password"))
    cur = conn.execute(
        "UPDATE app_user SET password_hash = %s, password_changed_at = now() WHERE name = %s",
        (digest, name),
    )
    if cur.rowcount == 0:
        raise InvalidParameter(said("unknown_user", user=name), parameter="NAME")


def revoke_tokens_of(conn: psycopg.Connection, name: str, by: str) -> int:
    """Revoke every live token of a user; how many there were."""
    cur = conn.execute(
        "UPDATE app_token SET revoked_at = now(), revoked_by = %s"
        " WHERE user_name = %s AND revoked_at IS NULL"
        " AND (expires_at IS NULL OR expires_at > now())",
        (by, name),
    )
    return cur.rowcount


def list_users(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    """(name, role, scope, disabled) of every user; never their tokens or passwords."""
    return conn.execute("SELECT name, role, scope, disabled FROM app_user ORDER BY name").fetchall()


# ---- the service (asynchronous) ----

_LIVE = "t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())"


async def user_of_token(conn: psycopg.AsyncConnection, token: str) -> User | None:
    """The active user whose live token this is, or None (looked up by the database function
    token_user: the service's role cannot read the stored hashes, migration 0016)."""
    cur = await conn.execute(
        "SELECT name, role, scope, token_id FROM token_user(%s)", (hash_token(token),)
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return User(row[0], row[1], tuple(row[2]), row[3])


async def _hashing(function: Callable[..., Any], *args: Any) -> Any:
    """Run argon2 on its own threads: a burst of sign-ins queues there, and holds neither
    the event loop nor the threads downloads and tiles read files with."""
    return await asyncio.get_running_loop().run_in_executor(_HASHING, function, *args)


async def hash_password_async(password: str) -> str:
    """`hash_password` on the hashing threads: call it holding no pooled connection (argon2
    takes tens of milliseconds by design; a burst would otherwise hold the pool)."""
    return str(await _hashing(hash_password, password))


async def sign_in(
    pool: AsyncConnectionPool, name: str, password: str, ttl: timedelta, label: str
) -> tuple[User, str, datetime] | None:
    """A new token for the name and password (None when they do not match an active user).
    No database connection is held while the password is checked (argon2 takes tens of
    milliseconds by design, and a burst of sign-ins would otherwise hold the whole pool)."""
    async with pool.connection() as conn:
        # (the web role cannot read stored hashes: one active user's, through a function)
        cur = await conn.execute(
            "SELECT name, role, scope, password_hash FROM user_password(%s)", (name,)
        )
        row = await cur.fetchone()
    encoded = row[3] if row else None
    if not await _hashing(password_matches, encoded, password) or row is None:
        return None
    rehashed = (
        await _hashing(hash_password, password)
        if _HASHER.check_needs_rehash(str(encoded))
        else None
    )
    async with pool.connection() as conn:
        return await _issue_token(conn, row, rehashed, ttl, label)


async def _issue_token(
    conn: psycopg.AsyncConnection,
    row: Any,
    rehashed: str | None,
    ttl: timedelta,
    label: str,
) -> tuple[User, str, datetime]:
    """A new token for a user whose password matched (and a stronger hash, if due)."""
    if rehashed:
        await conn.execute(
            "UPDATE app_user SET password_hash = %s WHERE name = %s", (rehashed, row[0])
        )
    token = secrets.token_urlsafe(32)
    cur = await conn.execute(
        "INSERT INTO app_token (user_name, token_hash, label, expires_at)"
        " VALUES (%s, %s, %s, now() + %s) RETURNING id, expires_at",
        (row[0], hash_token(token), label[:100], ttl),
    )
    made = await cur.fetchone()
    assert made is not None
    return User(row[0], row[1], tuple(row[2]), made[0]), token, made[1]


async def revoke_token(conn: psycopg.AsyncConnection, token_id: int, by: str) -> bool:
    """Revoke one token; False when it was not live."""
    cur = await conn.execute(
        "UPDATE app_token SET revoked_at = now(), revoked_by = %s"
        " WHERE id = %s AND revoked_at IS NULL",
        (by, token_id),
    )
    return cur.rowcount > 0


async def revoke_all(conn: psycopg.AsyncConnection, name: str, by: str) -> int:
    """Revoke every live token of a user; how many."""
    cur = await conn.execute(
        "UPDATE app_token SET revoked_at = now(), revoked_by = %s"
        " WHERE user_name = %s AND revoked_at IS NULL"
        " AND (expires_at IS NULL OR expires_at > now())",
        (by, name),
    )
    return cur.rowcount


async def users_with_tokens(conn: psycopg.AsyncConnection) -> list[dict[str, Any]]:
    """Every user with their live tokens (ids, labels, dates; never the tokens)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT u.name, u.role, u.scope, u.disabled, u.password_changed_at IS NOT NULL AS"
            " has_password, u.created_at, coalesce(json_agg(json_build_object('id', t.id,"
            " 'label', t.label, 'created_at', t.created_at, 'expires_at', t.expires_at)"
            " ORDER BY t.id) FILTER (WHERE t.id IS NOT NULL), '[]') AS tokens"
            f" FROM app_user u LEFT JOIN app_token t ON t.user_name = u.name AND {_LIVE}"
            " GROUP BY u.name ORDER BY u.name"
        )
        return await cur.fetchall()


async def create_user(
    conn: psycopg.AsyncConnection, name: str, role: str, scope: list[str], digest: str
) -> None:
    """A new user who signs in with the password `digest` is the hash of (hashed before
    a connection is taken: `hash_password_async`)."""
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO app_user (name, role, scope, password_hash, password_changed_at)"
                " VALUES (%s, %s, %s, %s, now())",
                (name, role, scope, digest),
            )
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict(_name_taken(exc, name), parameter="name") from exc
    except psycopg.errors.CheckViolation as exc:
        raise InvalidParameter(
            "a user name is 1–64 letters, digits or . _ @ -", parameter="name"
        ) from exc


async def update_user(
    conn: psycopg.AsyncConnection,
    name: str,
    role: str | None,
    scope: list[str] | None,
    disabled: bool | None,
    digest: str | None,
    by: str,
) -> None:
    """Change a user's role, scope, state or password (`digest`: the new one's hash); a new
    password or a disabled user revokes their tokens (a lost device or a leaver keeps no
    access)."""
    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE app_user SET role = coalesce(%s, role), scope = coalesce(%s, scope),"
            " disabled = coalesce(%s, disabled) WHERE name = %s",
            (role, scope, disabled, name),
        )
        if cur.rowcount == 0:
            raise NotFound(said("unknown_user", user=name), parameter="name")
        if digest:  # (written, never read: the web role cannot read stored hashes)
            await conn.execute(
                "UPDATE app_user SET password_hash = %s, password_changed_at = now()"
                " WHERE name = %s",
                (digest, name),
            )
        if digest or disabled:
            await revoke_all(conn, name, by)


async def user_row(conn: psycopg.AsyncConnection, name: str) -> dict[str, Any] | None:
    """A user's role, scope and state, or None."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT name, role, scope, disabled FROM app_user WHERE name = %s", (name,)
        )
        return await cur.fetchone()


class FailedAttempts:
    """Failed authentications in a sliding window, per key (a client address, a token's
    hash or a user name), in bounded memory: the least recently failing keys are forgotten
    first."""

    def __init__(self, limit: int = 20, window_s: float = 60.0, max_keys: int = 10_000):
        self.limit, self.window, self.max_keys = limit, window_s, max_keys
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._known: OrderedDict[str, None] = OrderedDict()  # keys that succeeded
        self._checking: dict[str, int] = {}  # attempts being checked now (they may fail)

    def blocked(self, key: str) -> bool:
        """True when the key failed `limit` times within the window, counting the attempts
        still being checked (so that a burst sent at once is cut at the limit too)."""
        return self.count(key) >= self.limit

    def count(self, key: str) -> int:
        """The key's failures within the window and its attempts being checked now."""
        checking = self._checking.get(key, 0)
        attempts = self._seen.get(key)
        if attempts is None:
            return checking
        while attempts and attempts[0] < time.monotonic() - self.window:
            attempts.popleft()
        if not attempts:
            del self._seen[key]
        return len(attempts) + checking

    def begin(self, keys: tuple[str, ...]) -> None:
        """An attempt under these keys is being checked."""
        for key in keys:
            self._checking[key] = self._checking.get(key, 0) + 1

    def end(self, keys: tuple[str, ...], failed: bool) -> None:
        """The attempt begun under these keys is decided (a failure is recorded)."""
        for key in keys:
            left = self._checking.get(key, 1) - 1
            if left > 0:
                self._checking[key] = left
            else:
                self._checking.pop(key, None)
            if failed:
                self.record(key)

    def record(self, key: str) -> None:
        """Remember one failure of the key."""
        attempts = self._seen.pop(key, None) or deque(maxlen=self.limit)
        attempts.append(time.monotonic())
        self._seen[key] = attempts  # (now the most recent)
        while len(self._seen) > self.max_keys:
            self._seen.popitem(last=False)

    def remember(self, key: str) -> None:
        """Remember a key that succeeded (a user and an address they authenticated from),
        the least recently seen forgotten first."""
        self._known.pop(key, None)
        self._known[key] = None
        while len(self._known) > self.max_keys:
            self._known.popitem(last=False)

    def known(self, key: str) -> bool:
        """Whether the key succeeded before."""
        return key in self._known

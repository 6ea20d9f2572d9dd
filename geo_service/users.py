"""Users, roles and bearer tokens (stored hashed; compared in constant time)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

import psycopg

from geo_core.errors import InvalidParameter

ROLES = ("viewer", "editor", "supervisor", "admin")
_SCOPE_CODE = {2, 5}  # province or commune codes


@dataclass(frozen=True)
class User:
    """An authenticated user."""

    name: str
    role: str
    scope: tuple[str, ...]

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


def add_user(conn: psycopg.Connection, name: str, role: str, scope: list[str]) -> str:
    """Create a user; return the token (shown once, stored only as a hash)."""
    if role not in ROLES:
        raise InvalidParameter(f"role must be one of {', '.join(ROLES)}", parameter="--role")
    bad = [code for code in scope if not (code.isdigit() and len(code) in _SCOPE_CODE)]
    if bad:
        raise InvalidParameter(
            f"scope codes must be 2-digit provinces or 5-digit communes: {', '.join(bad)}",
            parameter="--scope",
        )
    if role in ("editor", "supervisor") and not scope:
        raise InvalidParameter(f"an {role} needs a --scope", parameter="--scope")
    token = secrets.token_urlsafe(32)
    try:
        conn.execute(
            "INSERT INTO app_user (name, role, scope, token_hash) VALUES (%s, %s, %s, %s)",
            (name, role, scope, hash_token(token)),
        )
    except psycopg.errors.UniqueViolation as exc:
        raise InvalidParameter(f"user {name!r} already exists", parameter="NAME") from exc
    except psycopg.errors.CheckViolation as exc:
        raise InvalidParameter(f"bad user name {name!r}", parameter="NAME") from exc
    return token


def list_users(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    """(name, role, scope, disabled) of every user; never their tokens."""
    return conn.execute("SELECT name, role, scope, disabled FROM app_user ORDER BY name").fetchall()


async def user_of_token(conn: psycopg.AsyncConnection, token: str) -> User | None:
    """The active user whose token this is, or None."""
    digest = hash_token(token)
    cur = await conn.execute(
        "SELECT name, role, scope, token_hash FROM app_user WHERE token_hash = %s AND NOT disabled",
        (digest,),
    )
    row = await cur.fetchone()
    if row is None or not hmac.compare_digest(row[3], digest):
        return None
    return User(row[0], row[1], tuple(row[2]))


class FailedAttempts:
    """Failed authentications in a sliding window, per key (a client address or a token's
    hash), in bounded memory: the least recently failing keys are forgotten first."""

    def __init__(self, limit: int = 20, window_s: float = 60.0, max_keys: int = 10_000):
        self.limit, self.window, self.max_keys = limit, window_s, max_keys
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def blocked(self, key: str) -> bool:
        """True when the key failed `limit` times within the window."""
        attempts = self._seen.get(key)
        if attempts is None:
            return False
        while attempts and attempts[0] < time.monotonic() - self.window:
            attempts.popleft()
        if not attempts:
            del self._seen[key]
            return False
        return len(attempts) >= self.limit

    def record(self, key: str) -> None:
        """Remember one failure of the key."""
        attempts = self._seen.pop(key, None) or deque(maxlen=self.limit)
        attempts.append(time.monotonic())
        self._seen[key] = attempts  # (now the most recent)
        while len(self._seen) > self.max_keys:
            self._seen.popitem(last=False)

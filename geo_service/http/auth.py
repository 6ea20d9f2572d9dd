"""Who makes a request: the bearer token's user, and what a route asks of them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from geo_core.errors import Forbidden, TooManyAttempts, Unauthorized
from geo_service.http.deps import Conn, ServicesDep
from geo_service.users import User, user_of_token


async def optional_user(request: Request, conn: Conn, services: ServicesDep) -> User | None:
    """The user named by the bearer token, None without one; 401 for a bad token."""
    header = request.headers.get("authorization")
    if not header:
        return None
    client = request.client.host if request.client else "?"
    attempts = services.failed_auth
    if attempts.blocked(client):
        raise TooManyAttempts("too many failed authentications; wait a minute")
    scheme, _, token = header.partition(" ")
    user = (
        await user_of_token(conn, token.strip()) if scheme.lower() == "bearer" and token else None
    )
    if user is None:
        attempts.record(client)
        raise Unauthorized("invalid token", parameter="Authorization")
    return user


MaybeUser = Annotated[User | None, Depends(optional_user)]


async def writer(user: MaybeUser) -> User:
    """Any write needs a user with at least the editor role."""
    if user is None:
        raise Unauthorized("this needs a token: Authorization: Bearer …", parameter="Authorization")
    if user.role == "viewer":
        raise Forbidden(f"user {user.name} is a viewer and may not edit")
    return user


async def reader(user: MaybeUser, services: ServicesDep) -> User | None:
    """Reads need a token when GEO_SERVICE_PUBLIC_READS is false."""
    if user is None and not services.settings.public_reads:
        raise Unauthorized("reads need a token here", parameter="Authorization")
    return user


Writer = Annotated[User, Depends(writer)]
Reader = Annotated[User | None, Depends(reader)]

"""Who am I: the user behind a token (the EA editor shows it after sign-in)."""

from __future__ import annotations

from fastapi import APIRouter

from geo_core.errors import Unauthorized
from geo_service.http.auth import MaybeUser
from geo_service.http.documents import Me

router = APIRouter(tags=["users"])


@router.get("/users/me", summary="The user named by the bearer token")
async def me(user: MaybeUser) -> Me:
    """Name, role and scope of the token's user; 401 without a valid token."""
    if user is None:
        raise Unauthorized("send a token: Authorization: Bearer …", parameter="Authorization")
    return Me(name=user.name, role=user.role, scope=list(user.scope))

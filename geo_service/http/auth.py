"""Who makes a request: the bearer token's user, and what a route asks of them."""

from __future__ import annotations

from typing import Annotated

import psycopg
from fastapi import Depends, Request

from geo_core.errors import Forbidden, TooManyAttempts, Unauthorized
from geo_service.ea.access import ReadScope, read_scope
from geo_service.http.deps import Conn, ServicesDep, client_address
from geo_service.http.services import Services
from geo_service.messages import said
from geo_service.users import User, hash_token, user_of_token


async def optional_user(request: Request, conn: Conn, services: ServicesDep) -> User | None:
    """The user named by the bearer token, None without one; 401 for a bad token."""
    return await authenticate(request, conn, services)


async def authenticate(
    request: Request, conn: psycopg.AsyncConnection, services: Services
) -> User | None:
    """The token's user. Failures count per address and per token: a valid token is never
    refused because of others' failures, a token that keeps failing is (429)."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    attempts, address = services.failed_auth, f"address {client_address(request)}"
    of_token = f"token {hash_token(token)}"
    if attempts.blocked(of_token):
        raise TooManyAttempts(said("token_failed_often"), parameter="Authorization")
    user = await user_of_token(conn, token) if token else None
    if user is not None:
        attempts.remember(_known_key(user.name, client_address(request)))
        return user
    if attempts.blocked(address):
        raise TooManyAttempts(said("too_many_failures"), parameter="Authorization")
    attempts.record(address)
    attempts.record(of_token)
    raise Unauthorized(said("invalid_token"), parameter="Authorization")


def _known_key(name: str, address: str) -> str:
    return f"user {name.casefold()} at {address}"


# failures a new address may make at a name under attack (a user mistyping is not locked
# out at once; an attacker who moves to a fresh address gains only a few guesses)
UNDER_ATTACK_PAIR_LIMIT = 3


def password_failures(request: Request, services: Services, name: str) -> tuple[str, ...]:
    """The keys a password sign-in's failure counts under (the address, the user name and
    the two together), with the same limit as failed tokens. 429 when this address spent
    its attempts at this name; when the address spent its attempts at any names and the
    user has not authenticated from it before; or when the name is under attack (spent its
    attempts from anywhere) and this address has itself failed at it a few times. A correct
    password from an address that has not failed is accepted: an attacker guessing a
    user's password elsewhere does not lock the user out."""
    address = client_address(request)
    attempts, pair = services.failed_auth, f"user {name.casefold()} from {address}"
    keys = (f"address {address}", f"user {name.casefold()}", pair)
    known = attempts.known(_known_key(name, address))
    under_attack = attempts.blocked(keys[1]) and attempts.count(pair) >= UNDER_ATTACK_PAIR_LIMIT
    if attempts.blocked(pair) or ((attempts.blocked(keys[0]) or under_attack) and not known):
        raise TooManyAttempts(said("too_many_failures"), parameter="password")
    return keys


def signed_in_from(request: Request, services: Services, name: str) -> None:
    """Remember that the user authenticated from the request's address."""
    services.failed_auth.remember(_known_key(name, client_address(request)))


async def check_reader(request: Request, services: Services) -> ReadScope:
    """For routes without a connection of their own (tiles): with private reads, 401 unless
    the request carries a valid token; the EAs the reader may see."""
    if services.settings.public_reads:
        return read_scope(None, True)
    async with services.pool.connection() as conn:
        user = await authenticate(request, conn, services)
    if user is None:
        raise Unauthorized("reads need a token here", parameter="Authorization")
    return read_scope(user, False)


MaybeUser = Annotated[User | None, Depends(optional_user)]


async def writer(user: MaybeUser) -> User:
    """Any write needs a user with at least the editor role."""
    if user is None:
        raise Unauthorized(said("needs_token"), parameter="Authorization")
    if user.role == "viewer":
        raise Forbidden(f"user {user.name} is a viewer and may not edit")
    return user


async def reader(user: MaybeUser, services: ServicesDep) -> User | None:
    """Reads need a token when GEO_SERVICE_PUBLIC_READS is false."""
    if user is None and not services.settings.public_reads:
        raise Unauthorized("reads need a token here", parameter="Authorization")
    return user


async def administrator(user: MaybeUser) -> User:
    """User administration needs an admin."""
    if user is None:
        raise Unauthorized(said("needs_token"), parameter="Authorization")
    if user.role != "admin":
        raise Forbidden(said("admin_only"))
    return user


async def _authenticate_briefly(request: Request, services: Services) -> User | None:
    """The token's user, checked on a pooled connection that is given back at once."""
    if not request.headers.get("authorization"):
        return None
    async with services.pool.connection() as conn:
        return await authenticate(request, conn, services)


async def administrator_released(request: Request, services: ServicesDep) -> User:
    """An admin, authenticated holding no connection afterwards: for routes that work a
    while without the database (hashing a password)."""
    return await administrator(await _authenticate_briefly(request, services))


async def reader_released(request: Request, services: ServicesDep) -> User | None:
    """A reader (as `reader`), authenticated holding no connection afterwards: for routes
    that work a while without the database (drawing a PDF)."""
    return await reader(await _authenticate_briefly(request, services), services)


async def signed_in(user: MaybeUser) -> User:
    """Any signed-in user."""
    if user is None:
        raise Unauthorized(said("needs_token"), parameter="Authorization")
    return user


async def ea_reader(user: Reader, services: ServicesDep) -> ReadScope:
    """The EAs the reader may see (one policy for every EA read: geo_service/ea/access.py)."""
    return read_scope(user, services.settings.public_reads)


async def ea_reader_released(user: ReaderReleased, services: ServicesDep) -> ReadScope:
    """As `ea_reader`, authenticated holding no connection afterwards."""
    return read_scope(user, services.settings.public_reads)


Writer = Annotated[User, Depends(writer)]
Admin = Annotated[User, Depends(administrator)]
AdminReleased = Annotated[User, Depends(administrator_released)]
ReaderReleased = Annotated[User | None, Depends(reader_released)]
SignedIn = Annotated[User, Depends(signed_in)]
Reader = Annotated[User | None, Depends(reader)]
EaScope = Annotated[ReadScope, Depends(ea_reader)]
EaScopeReleased = Annotated[ReadScope, Depends(ea_reader_released)]

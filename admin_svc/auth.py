"""Who is calling: the bearer access token of a request, checked against its live session."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from admin_svc.deps import Deps
from admin_svc.errors import unauthenticated
from admin_svc.store import sessions
from admin_svc.store.users import UserRow
from admin_svc.tokens import TokenError

AUTHORIZATION_KEY = "authorization"


@dataclass(frozen=True, slots=True)
class Principal:
    """A signed-in caller, as the database knows it now (role changes apply at once)."""

    user: UserRow
    """The caller's account."""
    session_id: uuid.UUID
    """The session of the access token."""


def bearer_token(metadata: Iterable[Any] | None) -> str | None:
    """The token of an ``authorization: Bearer <token>`` metadata entry, if present."""
    for key, value in metadata or ():
        if key.lower() == AUTHORIZATION_KEY:
            text = value.decode() if isinstance(value, bytes) else str(value)
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            raise unauthenticated(
                "TOKEN_MALFORMED", "the authorization header must be 'Bearer <access token>'"
            )
    return None


async def authenticate(deps: Deps, metadata: Iterable[Any] | None) -> Principal | None:
    """The caller of a request, or None when it sent no token. Raises UNAUTHENTICATED for a
    malformed, forged, expired or revoked token, or a deleted account."""
    token = bearer_token(metadata)
    if token is None:
        return None
    try:
        claims = deps.signer.verify(token, deps.clock())
    except TokenError as error:
        if error.problem == "expired":
            raise unauthenticated(
                "TOKEN_EXPIRED", "the access token has expired; refresh it or sign in again"
            ) from None
        raise unauthenticated("TOKEN_INVALID", "the access token is not valid") from None
    async with deps.pool.acquire() as conn:
        user = await sessions.session_user(conn, claims.session_id, claims.user_id)
    if user is None:
        raise unauthenticated(
            "SESSION_REVOKED", "the session of this token has ended; sign in again"
        )
    return Principal(user, claims.session_id)


def require(principal: Principal | None) -> Principal:
    """The principal of a call that needs one."""
    if principal is None:
        raise unauthenticated(
            "TOKEN_MISSING", "sign in and send 'authorization: Bearer <access token>'"
        )
    return principal

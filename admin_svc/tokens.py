"""Access tokens: JWTs signed with HMAC-SHA256 (PyJWT), with a bounded lifetime.

Claims: ``sub`` (user id), ``sid`` (session id: revoking the session revokes the token),
``iat`` and ``exp`` (Unix seconds), ``typ`` = ``access``. Only ``alg: HS256`` is accepted;
PyJWT checks the signature before anything in the payload is trusted. Expiry is checked here,
against the caller's clock (``now``), so that every node and test decides it the same way.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

import jwt

_ALGORITHM = "HS256"
_CLAIMS = ["sub", "sid", "iat", "exp", "typ"]
#: Clock skew tolerated between admin_svc nodes, seconds.
LEEWAY_S = 5
#: Longest token accepted, characters (ours are about 250).
MAX_TOKEN_CHARS = 4096

TokenProblem = Literal["malformed", "bad_signature", "expired"]


class TokenError(Exception):
    """An access token cannot be accepted."""

    def __init__(self, problem: TokenProblem) -> None:
        super().__init__(problem)
        self.problem: TokenProblem = problem


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a valid access token says."""

    user_id: uuid.UUID
    """The signed-in user."""
    session_id: uuid.UUID
    """The session the token belongs to."""
    issued_at: int
    """Unix seconds."""
    expires_at: int
    """Unix seconds; the token is refused from then on."""


class TokenSigner:
    """Issues and verifies access tokens with one secret."""

    def __init__(self, secret: bytes, ttl_s: int) -> None:
        if len(secret) < 32:
            raise ValueError("token secret must be at least 32 bytes")
        self._secret = secret
        self.ttl_s = ttl_s
        """Lifetime of issued tokens, seconds."""

    def issue(self, user_id: uuid.UUID, session_id: uuid.UUID, now: float) -> tuple[str, int]:
        """Returns a token for the session and its expiry (Unix seconds)."""
        issued = int(now)
        expires = issued + self.ttl_s
        claims = {
            "sub": str(user_id),
            "sid": str(session_id),
            "iat": issued,
            "exp": expires,
            "typ": "access",
        }
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM), expires

    def verify(self, token: str, now: float) -> AccessClaims:
        """Checks signature, type and expiry; raises TokenError."""
        if len(token) > MAX_TOKEN_CHARS:
            raise TokenError("malformed")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                options={"require": _CLAIMS, "verify_exp": False, "verify_iat": False},
            )
        except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError) as exc:
            # A token signed with another key or algorithm (or none) is a forgery.
            raise TokenError("bad_signature") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenError("malformed") from exc
        try:
            result = AccessClaims(
                user_id=uuid.UUID(claims["sub"]),
                session_id=uuid.UUID(claims["sid"]),
                issued_at=int(claims["iat"]),
                expires_at=int(claims["exp"]),
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise TokenError("malformed") from exc
        if claims["typ"] != "access":
            raise TokenError("malformed")
        if now >= result.expires_at + LEEWAY_S:
            raise TokenError("expired")
        return result

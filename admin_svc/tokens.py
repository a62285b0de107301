"""Access tokens: compact JWS (JWT) signed with HMAC-SHA256, with a bounded lifetime.

Claims: ``sub`` (user id), ``sid`` (session id: revoking the session revokes the token),
``iat`` and ``exp`` (Unix seconds), ``typ`` = ``access``. Only ``alg: HS256`` is accepted; the
signature is checked in constant time before anything in the payload is trusted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from typing import Literal

_HEADER = {"alg": "HS256", "typ": "JWT"}
#: Clock skew tolerated between admin_svc nodes, seconds.
LEEWAY_S = 5

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


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Issues and verifies access tokens with one secret."""

    def __init__(self, secret: bytes, ttl_s: int) -> None:
        if len(secret) < 32:
            raise ValueError("token secret must be at least 32 bytes")
        self._secret = secret
        self.ttl_s = ttl_s
        """Lifetime of issued tokens, seconds."""
        self._header = _b64encode(json.dumps(_HEADER, separators=(",", ":")).encode())

    def _sign(self, signing_input: str) -> str:
        mac = hmac.new(self._secret, signing_input.encode(), hashlib.sha256)
        return _b64encode(mac.digest())

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
        payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{self._header}.{payload}"
        return f"{signing_input}.{self._sign(signing_input)}", expires

    def verify(self, token: str, now: float) -> AccessClaims:
        """Checks signature, type and expiry; raises TokenError."""
        parts = token.split(".")
        if len(parts) != 3 or len(token) > 4096:
            raise TokenError("malformed")
        header, payload, signature = parts
        if not hmac.compare_digest(self._sign(f"{header}.{payload}"), signature):
            raise TokenError("bad_signature")
        try:
            if json.loads(_b64decode(header)) != _HEADER:
                raise TokenError("malformed")
            claims = json.loads(_b64decode(payload))
            result = AccessClaims(
                user_id=uuid.UUID(claims["sub"]),
                session_id=uuid.UUID(claims["sid"]),
                issued_at=int(claims["iat"]),
                expires_at=int(claims["exp"]),
            )
            if claims.get("typ") != "access":
                raise TokenError("malformed")
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise TokenError("malformed") from exc
        if now >= result.expires_at + LEEWAY_S:
            raise TokenError("expired")
        return result

"""Secrets handed to clients: service API keys and refresh tokens.

API keys are 128 random bits written in UUID form (8-4-4-4-12 lower-case hex), which every
CompreFace client accepts; the database looks them up by ``sha256(uuid_send(key))`` (the
digest of the UUID's 16 raw bytes, a generated column with a unique index,
``facegrid.schema.api_key_digest``), so the B-tree search never compares the secret itself;
api_svc confirms the match in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid


def new_api_key() -> uuid.UUID:
    """A fresh API key: 128 bits from the OS's CSPRNG, as a UUID."""
    return uuid.UUID(bytes=secrets.token_bytes(16))


def new_refresh_secret() -> str:
    """The secret part of a refresh token: 256 random bits, base64url without padding."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def refresh_secret_digest(secret: str) -> bytes:
    """What the sessions table stores of a refresh token's secret: its SHA-256."""
    return hashlib.sha256(secret.encode()).digest()


def refresh_token(session_id: uuid.UUID, secret: str) -> str:
    """The refresh token handed to the client: ``<session uuid>.<secret>``."""
    return f"{session_id}.{secret}"


def split_refresh_token(token: str) -> tuple[uuid.UUID, str] | None:
    """The session id and secret of a refresh token, or None when malformed."""
    session_text, sep, secret = token.strip().partition(".")
    if not sep or not secret or len(secret) > 128:
        return None
    try:
        return uuid.UUID(session_text), secret
    except ValueError:
        return None


def digests_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of two digests."""
    return hmac.compare_digest(a, b)

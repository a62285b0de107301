"""The token-signing secret: FACEGRID_TOKEN_SECRET, or in development one generated once and
kept in the database so that every admin_svc node and restart shares it."""

from __future__ import annotations

import secrets

import asyncpg

_KEY = "token_secret"


async def token_secret(conn: asyncpg.Connection, configured: str | None) -> bytes:
    """The configured secret, else the stored one (created on first use)."""
    if configured is not None:
        return configured.encode()
    await conn.execute(
        "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        _KEY,
        secrets.token_hex(32),
    )
    value = await conn.fetchval("SELECT value FROM settings WHERE key = $1", _KEY)
    return str(value).encode()

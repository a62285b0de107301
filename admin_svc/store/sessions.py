"""Sign-in sessions: one row per sign-in, holding the digest of its current refresh secret."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

from admin_svc.store.users import UserRow, user_from


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A sign-in session."""

    id: uuid.UUID
    user_id: uuid.UUID
    refresh_hash: bytes
    expires_at: dt.datetime
    revoked_at: dt.datetime | None


def _session_from(record: asyncpg.Record) -> SessionRow:
    return SessionRow(
        id=record["id"],
        user_id=record["user_id"],
        refresh_hash=bytes(record["refresh_hash"]),
        expires_at=record["expires_at"],
        revoked_at=record["revoked_at"],
    )


async def create_session(
    conn: asyncpg.Connection, user_id: uuid.UUID, refresh_hash: bytes, ttl_s: int
) -> SessionRow:
    """Opens a session expiring ``ttl_s`` from now."""
    record = await conn.fetchrow(
        "INSERT INTO sessions (id, user_id, refresh_hash, expires_at)"
        " VALUES ($1, $2, $3, now() + make_interval(secs => $4))"
        " RETURNING id, user_id, refresh_hash, expires_at, revoked_at",
        uuid.uuid4(),
        user_id,
        refresh_hash,
        float(ttl_s),
    )
    return _session_from(record)


async def get_session_for_update(
    conn: asyncpg.Connection, session_id: uuid.UUID
) -> SessionRow | None:
    """A session, row-locked until the transaction ends."""
    record = await conn.fetchrow(
        "SELECT id, user_id, refresh_hash, expires_at, revoked_at FROM sessions"
        " WHERE id = $1 FOR UPDATE",
        session_id,
    )
    return None if record is None else _session_from(record)


def is_live(session: SessionRow, now: dt.datetime) -> bool:
    """True when the session is neither revoked nor expired."""
    return session.revoked_at is None and session.expires_at > now


async def replace_refresh_hash(
    conn: asyncpg.Connection, session_id: uuid.UUID, refresh_hash: bytes
) -> None:
    """Stores the digest of a new refresh secret (the previous one stops working)."""
    await conn.execute(
        "UPDATE sessions SET refresh_hash = $2, refreshed_at = now() WHERE id = $1",
        session_id,
        refresh_hash,
    )


async def revoke_session(conn: asyncpg.Connection, session_id: uuid.UUID) -> None:
    """Revokes one session (idempotent)."""
    await conn.execute(
        "UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", session_id
    )


async def revoke_other_sessions(
    conn: asyncpg.Connection, user_id: uuid.UUID, keep: uuid.UUID
) -> int:
    """Revokes every live session of a user except ``keep``; returns how many."""
    status = await conn.execute(
        "UPDATE sessions SET revoked_at = now()"
        " WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL",
        user_id,
        keep,
    )
    return int(status.split()[-1])


async def session_user(
    conn: asyncpg.Connection, session_id: uuid.UUID, user_id: uuid.UUID
) -> UserRow | None:
    """The user of a live (not revoked, not expired) session, if the session belongs to it."""
    record = await conn.fetchrow(
        "SELECT u.id, u.email, u.first_name, u.last_name, u.global_role, u.created_at"
        " FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > now()",
        session_id,
        user_id,
    )
    return None if record is None else user_from(record)

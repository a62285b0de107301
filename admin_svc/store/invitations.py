"""Invitations of e-mails without an account: pending memberships, bound at sign-up."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

from admin_svc.permissions import Role


@dataclass(frozen=True, slots=True)
class InvitationRow:
    """A pending membership of an application."""

    email: str
    role: Role
    invited_at: dt.datetime


def _invitation_from(record: asyncpg.Record) -> InvitationRow:
    return InvitationRow(record["email"], Role(record["role"]), record["created_at"])


async def add_invitation(
    conn: asyncpg.Connection, application_id: uuid.UUID, email: str, role: Role
) -> InvitationRow:
    """Invites ``email`` (lower-cased) with ``role``. Raises UniqueViolationError
    (app_invitations_pkey) when it is invited already."""
    record = await conn.fetchrow(
        "INSERT INTO app_invitations (application_id, email, role) VALUES ($1, $2, $3)"
        " RETURNING email, role, created_at",
        application_id,
        email,
        role.value,
    )
    return _invitation_from(record)


async def list_invitations(
    conn: asyncpg.Connection, application_id: uuid.UUID
) -> list[InvitationRow]:
    """The application's pending invitations, by email."""
    records = await conn.fetch(
        "SELECT email, role, created_at FROM app_invitations WHERE application_id = $1"
        " ORDER BY email",
        application_id,
    )
    return [_invitation_from(r) for r in records]


async def get_invitation(
    conn: asyncpg.Connection, application_id: uuid.UUID, email: str
) -> InvitationRow | None:
    """One pending invitation, row-locked until the transaction ends."""
    record = await conn.fetchrow(
        "SELECT email, role, created_at FROM app_invitations"
        " WHERE application_id = $1 AND email = $2 FOR UPDATE",
        application_id,
        email,
    )
    return None if record is None else _invitation_from(record)


async def remove_invitation(
    conn: asyncpg.Connection, application_id: uuid.UUID, email: str
) -> bool:
    """Cancels an invitation."""
    status = await conn.execute(
        "DELETE FROM app_invitations WHERE application_id = $1 AND email = $2",
        application_id,
        email,
    )
    return status == "DELETE 1"


async def bind_invitations(conn: asyncpg.Connection, user_id: uuid.UUID, email: str) -> int:
    """Turns every invitation of ``email`` into a membership of the new account ``user_id``
    (a membership it has already wins); returns how many. Needs a transaction."""
    status = await conn.execute(
        "WITH invited AS (DELETE FROM app_invitations WHERE email = $2"
        " RETURNING application_id, role)"
        " INSERT INTO app_members (application_id, user_id, role)"
        " SELECT application_id, $1, role FROM invited"
        " ON CONFLICT (application_id, user_id) DO NOTHING",
        user_id,
        email,
    )
    return int(status.split()[-1])

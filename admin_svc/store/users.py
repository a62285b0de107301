"""Users: accounts, global roles and password hashes."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

from admin_svc.permissions import Role
from admin_svc.store.invitations import bind_invitations

#: Transaction-level advisory lock serialising sign-ups (so exactly one first user is OWNER).
SIGN_UP_LOCK_KEY = int.from_bytes(b"FGSIGNUP", "big") & 0x7FFF_FFFF_FFFF_FFFF


@dataclass(frozen=True, slots=True)
class UserRow:
    """A user account (without its password hash)."""

    id: uuid.UUID
    email: str
    first_name: str
    last_name: str
    global_role: Role
    created_at: dt.datetime


def user_from(record: asyncpg.Record, prefix: str = "") -> UserRow:
    """Builds a UserRow from a record holding a user's columns (optionally prefixed)."""
    return UserRow(
        id=record[f"{prefix}id"],
        email=record[f"{prefix}email"],
        first_name=record[f"{prefix}first_name"],
        last_name=record[f"{prefix}last_name"],
        global_role=Role(record[f"{prefix}global_role"]),
        created_at=record[f"{prefix}created_at"],
    )


async def create_user(
    conn: asyncpg.Connection, email: str, password_hash: str, first_name: str, last_name: str
) -> UserRow | None:
    """Inserts an account: the first one is the global OWNER and adopts every application
    without an owner (the demo application); later ones are USERs. Pending invitations of the
    email become memberships. Needs a transaction. None when the email is taken (the same
    statement runs either way)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", SIGN_UP_LOCK_KEY)
    first = not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users)")
    role = Role.OWNER if first else Role.USER
    record = await conn.fetchrow(
        "INSERT INTO users AS u (id, email, first_name, last_name, global_role, password_hash)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT ON CONSTRAINT users_email_key DO NOTHING"
        " RETURNING u.id, u.email, u.first_name, u.last_name, u.global_role, u.created_at",
        uuid.uuid4(),
        email,
        first_name,
        last_name,
        role.value,
        password_hash,
    )
    if record is None:
        return None
    user = user_from(record)
    if first:
        await conn.execute(
            "INSERT INTO app_members (application_id, user_id, role)"
            " SELECT a.id, $1, 'OWNER' FROM applications a WHERE NOT EXISTS"
            " (SELECT 1 FROM app_members m WHERE m.application_id = a.id AND m.role = 'OWNER')",
            user.id,
        )
    await bind_invitations(conn, user.id, email)  # after adopting: ownership wins
    return user


async def get_user_for_update(conn: asyncpg.Connection, user_id: uuid.UUID) -> UserRow | None:
    """The account with ``user_id``, row-locked until the transaction ends."""
    record = await conn.fetchrow(
        "SELECT u.id, u.email, u.first_name, u.last_name, u.global_role, u.created_at"
        " FROM users u WHERE u.id = $1 FOR UPDATE",
        user_id,
    )
    return None if record is None else user_from(record)


async def get_user_by_email(conn: asyncpg.Connection, email: str) -> UserRow | None:
    """The account with ``email`` (already lower-cased), if any."""
    record = await conn.fetchrow(
        "SELECT u.id, u.email, u.first_name, u.last_name, u.global_role, u.created_at"
        " FROM users u WHERE u.email = $1",
        email,
    )
    return None if record is None else user_from(record)


async def get_password_hash(conn: asyncpg.Connection, user_id: uuid.UUID) -> str | None:
    """The stored password hash of an account."""
    value = await conn.fetchval("SELECT password_hash FROM users WHERE id = $1", user_id)
    return None if value is None else str(value)


async def list_users(conn: asyncpg.Connection) -> list[UserRow]:
    """Every account, by email."""
    records = await conn.fetch(
        "SELECT u.id, u.email, u.first_name, u.last_name, u.global_role, u.created_at"
        " FROM users u ORDER BY u.email"
    )
    return [user_from(r) for r in records]


async def update_names(
    conn: asyncpg.Connection, user_id: uuid.UUID, first_name: str | None, last_name: str | None
) -> UserRow | None:
    """Changes the given names (None keeps one); None when the account is gone."""
    record = await conn.fetchrow(
        "UPDATE users u SET first_name = COALESCE($2, u.first_name),"
        " last_name = COALESCE($3, u.last_name) WHERE u.id = $1"
        " RETURNING u.id, u.email, u.first_name, u.last_name, u.global_role, u.created_at",
        user_id,
        first_name,
        last_name,
    )
    return None if record is None else user_from(record)


async def set_global_role(conn: asyncpg.Connection, user_id: uuid.UUID, role: Role) -> UserRow:
    """Sets a user's global role (the caller checked the user exists)."""
    record = await conn.fetchrow(
        "UPDATE users u SET global_role = $2 WHERE u.id = $1"
        " RETURNING u.id, u.email, u.first_name, u.last_name, u.global_role, u.created_at",
        user_id,
        role.value,
    )
    return user_from(record)


async def transfer_global_ownership(
    conn: asyncpg.Connection, owner_id: uuid.UUID, new_owner_id: uuid.UUID
) -> UserRow:
    """Makes ``new_owner_id`` the global OWNER and the previous one an ADMINISTRATOR (in this
    order: at most one OWNER exists at any time). Needs a transaction."""
    await set_global_role(conn, owner_id, Role.ADMINISTRATOR)
    return await set_global_role(conn, new_owner_id, Role.OWNER)


async def set_password_hash(
    conn: asyncpg.Connection, user_id: uuid.UUID, password_hash: str
) -> None:
    """Stores a new password hash."""
    await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash)


async def delete_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> bool:
    """Deletes an account (not the OWNER's), its sessions and memberships; the applications it
    owned pass to the global OWNER. Needs a transaction. False when it did not exist."""
    owned = await conn.fetch(
        "DELETE FROM app_members WHERE user_id = $1 AND role = 'OWNER' RETURNING application_id",
        user_id,
    )
    owner_id = await conn.fetchval("SELECT id FROM users WHERE global_role = 'OWNER'")
    if owned and owner_id is not None:
        await conn.executemany(
            "INSERT INTO app_members (application_id, user_id, role) VALUES ($1, $2, 'OWNER')"
            " ON CONFLICT (application_id, user_id) DO UPDATE SET role = 'OWNER'",
            [(r["application_id"], owner_id) for r in owned],
        )
    status = await conn.execute("DELETE FROM users WHERE id = $1", user_id)
    return status == "DELETE 1"

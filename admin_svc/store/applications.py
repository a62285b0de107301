"""Applications and their members."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

from admin_svc.permissions import Role
from admin_svc.store.users import UserRow, user_from


@dataclass(frozen=True, slots=True)
class ApplicationRow:
    """An application and its owner (None while it has none)."""

    id: uuid.UUID
    name: str
    created_at: dt.datetime
    owner: UserRow | None


@dataclass(frozen=True, slots=True)
class MemberRow:
    """A user's membership of an application."""

    user: UserRow
    role: Role
    joined_at: dt.datetime


def _application_from(record: asyncpg.Record) -> ApplicationRow:
    owner = None if record["owner_id"] is None else user_from(record, "owner_")
    return ApplicationRow(record["id"], record["name"], record["created_at"], owner)


def _member_from(record: asyncpg.Record) -> MemberRow:
    return MemberRow(user_from(record), Role(record["role"]), record["joined_at"])


async def create_application(
    conn: asyncpg.Connection, name: str, owner_id: uuid.UUID
) -> ApplicationRow:
    """Inserts an application owned by ``owner_id``. Needs a transaction. Raises
    UniqueViolationError (applications_name_key) when the name is taken."""
    application_id = uuid.uuid4()
    await conn.execute("INSERT INTO applications (id, name) VALUES ($1, $2)", application_id, name)
    await conn.execute(
        "INSERT INTO app_members (application_id, user_id, role) VALUES ($1, $2, 'OWNER')",
        application_id,
        owner_id,
    )
    application = await get_application(conn, application_id)
    assert application is not None
    return application


async def create_ownerless_application(conn: asyncpg.Connection, name: str) -> uuid.UUID:
    """Inserts an application without members (the demo; the first user to sign up adopts it)."""
    application_id = uuid.uuid4()
    await conn.execute("INSERT INTO applications (id, name) VALUES ($1, $2)", application_id, name)
    return application_id


async def get_application(
    conn: asyncpg.Connection, application_id: uuid.UUID
) -> ApplicationRow | None:
    """One application with its owner."""
    record = await conn.fetchrow(
        "SELECT a.id, a.name, a.created_at, u.id AS owner_id, u.email AS owner_email,"
        " u.first_name AS owner_first_name, u.last_name AS owner_last_name,"
        " u.global_role AS owner_global_role, u.created_at AS owner_created_at"
        " FROM applications a"
        " LEFT JOIN app_members m ON m.application_id = a.id AND m.role = 'OWNER'"
        " LEFT JOIN users u ON u.id = m.user_id"
        " WHERE a.id = $1",
        application_id,
    )
    return None if record is None else _application_from(record)


async def list_applications(
    conn: asyncpg.Connection, member_id: uuid.UUID | None
) -> list[tuple[ApplicationRow, Role | None]]:
    """Applications by name with ``member_id``'s role in each; all of them when ``member_id``
    is None, else only those it belongs to."""
    records = await conn.fetch(
        "SELECT a.id, a.name, a.created_at, u.id AS owner_id, u.email AS owner_email,"
        " u.first_name AS owner_first_name, u.last_name AS owner_last_name,"
        " u.global_role AS owner_global_role, u.created_at AS owner_created_at,"
        " me.role AS my_role"
        " FROM applications a"
        " LEFT JOIN app_members m ON m.application_id = a.id AND m.role = 'OWNER'"
        " LEFT JOIN users u ON u.id = m.user_id"
        " LEFT JOIN app_members me ON me.application_id = a.id AND me.user_id = $1"
        " WHERE $2 OR me.user_id IS NOT NULL"
        " ORDER BY lower(a.name)",
        member_id,
        member_id is None,
    )
    return [
        (_application_from(r), None if r["my_role"] is None else Role(r["my_role"]))
        for r in records
    ]


async def rename_application(
    conn: asyncpg.Connection, application_id: uuid.UUID, name: str
) -> None:
    """Renames an application. Raises UniqueViolationError when the name is taken."""
    await conn.execute("UPDATE applications SET name = $2 WHERE id = $1", application_id, name)


async def delete_application(conn: asyncpg.Connection, application_id: uuid.UUID) -> bool:
    """Deletes an application with its members, services and all their data."""
    status = await conn.execute("DELETE FROM applications WHERE id = $1", application_id)
    return status == "DELETE 1"


async def member_role(
    conn: asyncpg.Connection, application_id: uuid.UUID, user_id: uuid.UUID
) -> Role | None:
    """A user's role in an application (None: not a member)."""
    value = await conn.fetchval(
        "SELECT role FROM app_members WHERE application_id = $1 AND user_id = $2",
        application_id,
        user_id,
    )
    return None if value is None else Role(value)


async def list_members(conn: asyncpg.Connection, application_id: uuid.UUID) -> list[MemberRow]:
    """Members, the owner first, then by email."""
    records = await conn.fetch(
        "SELECT u.id, u.email, u.first_name, u.last_name, u.global_role, u.created_at,"
        " m.role, m.created_at AS joined_at"
        " FROM app_members m JOIN users u ON u.id = m.user_id"
        " WHERE m.application_id = $1"
        " ORDER BY m.role <> 'OWNER', u.email",
        application_id,
    )
    return [_member_from(r) for r in records]


async def get_member(
    conn: asyncpg.Connection, application_id: uuid.UUID, user_id: uuid.UUID
) -> MemberRow | None:
    """One membership, row-locked until the transaction ends."""
    record = await conn.fetchrow(
        "SELECT u.id, u.email, u.first_name, u.last_name, u.global_role, u.created_at,"
        " m.role, m.created_at AS joined_at"
        " FROM app_members m JOIN users u ON u.id = m.user_id"
        " WHERE m.application_id = $1 AND m.user_id = $2 FOR UPDATE OF m",
        application_id,
        user_id,
    )
    return None if record is None else _member_from(record)


async def add_member(
    conn: asyncpg.Connection, application_id: uuid.UUID, user_id: uuid.UUID, role: Role
) -> MemberRow:
    """Adds a membership. Raises UniqueViolationError (app_members_pkey) for a member."""
    await conn.execute(
        "INSERT INTO app_members (application_id, user_id, role) VALUES ($1, $2, $3)",
        application_id,
        user_id,
        role.value,
    )
    return await _written_member(conn, application_id, user_id)


async def set_member_role(
    conn: asyncpg.Connection, application_id: uuid.UUID, user_id: uuid.UUID, role: Role
) -> MemberRow:
    """Changes a member's role (not to OWNER: see :func:`transfer_ownership`)."""
    await conn.execute(
        "UPDATE app_members SET role = $3 WHERE application_id = $1 AND user_id = $2",
        application_id,
        user_id,
        role.value,
    )
    return await _written_member(conn, application_id, user_id)


async def _written_member(
    conn: asyncpg.Connection, application_id: uuid.UUID, user_id: uuid.UUID
) -> MemberRow:
    """The membership a statement of this transaction has just written."""
    member = await get_member(conn, application_id, user_id)
    assert member is not None
    return member


async def transfer_ownership(
    conn: asyncpg.Connection, application_id: uuid.UUID, new_owner_id: uuid.UUID
) -> MemberRow:
    """Makes a member the OWNER; the previous owner (if any) becomes ADMINISTRATOR, first, so
    that at most one owner exists at any time. Needs a transaction."""
    await conn.execute(
        "UPDATE app_members SET role = 'ADMINISTRATOR'"
        " WHERE application_id = $1 AND role = 'OWNER'",
        application_id,
    )
    return await set_member_role(conn, application_id, new_owner_id, Role.OWNER)


async def remove_member(
    conn: asyncpg.Connection, application_id: uuid.UUID, user_id: uuid.UUID
) -> bool:
    """Removes a membership."""
    status = await conn.execute(
        "DELETE FROM app_members WHERE application_id = $1 AND user_id = $2",
        application_id,
        user_id,
    )
    return status == "DELETE 1"

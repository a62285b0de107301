"""Services (face collections): rows, API keys, counts, cloning, statistics."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

from admin_svc.keys import new_api_key


@dataclass(frozen=True, slots=True)
class ServiceRow:
    """A service with its collection counters."""

    id: uuid.UUID
    application_id: uuid.UUID
    name: str
    type: str
    """RECOGNITION, DETECTION or VERIFICATION."""
    api_key: uuid.UUID
    calculator: str | None
    created_at: dt.datetime
    subject_count: int
    example_count: int
    writes_blocked: bool


def _service_from(record: asyncpg.Record) -> ServiceRow:
    return ServiceRow(
        id=record["id"],
        application_id=record["application_id"],
        name=record["name"],
        type=record["type"],
        api_key=record["api_key"],
        calculator=record["calculator"],
        created_at=record["created_at"],
        subject_count=record["subject_count"],
        example_count=record["example_count"],
        writes_blocked=record["writes_blocked"],
    )


async def create_service(
    conn: asyncpg.Connection,
    application_id: uuid.UUID,
    name: str,
    service_type: str,
    calculator: str | None = None,
) -> ServiceRow:
    """Inserts a service with a fresh API key (the schema adds its counter row). Raises
    UniqueViolationError (services_name_key) when the name is taken in the application."""
    service_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO services (id, application_id, name, type, api_key, calculator)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        service_id,
        application_id,
        name,
        service_type,
        new_api_key(),
        calculator,
    )
    service = await get_service(conn, application_id, service_id)
    assert service is not None
    return service


async def get_service(
    conn: asyncpg.Connection, application_id: uuid.UUID, service_id: uuid.UUID
) -> ServiceRow | None:
    """One service of an application (None when absent or of another application)."""
    record = await conn.fetchrow(
        "SELECT s.id, s.application_id, s.name, s.type, s.api_key, s.calculator, s.created_at,"
        " c.subject_count, c.example_count, c.writes_blocked"
        " FROM services s JOIN collection_state c ON c.service_id = s.id"
        " WHERE s.id = $2 AND s.application_id = $1",
        application_id,
        service_id,
    )
    return None if record is None else _service_from(record)


async def list_services(conn: asyncpg.Connection, application_id: uuid.UUID) -> list[ServiceRow]:
    """An application's services by name."""
    records = await conn.fetch(
        "SELECT s.id, s.application_id, s.name, s.type, s.api_key, s.calculator, s.created_at,"
        " c.subject_count, c.example_count, c.writes_blocked"
        " FROM services s JOIN collection_state c ON c.service_id = s.id"
        " WHERE s.application_id = $1 ORDER BY lower(s.name)",
        application_id,
    )
    return [_service_from(r) for r in records]


async def rename_service(conn: asyncpg.Connection, service_id: uuid.UUID, name: str) -> None:
    """Renames a service. Raises UniqueViolationError when the name is taken."""
    await conn.execute("UPDATE services SET name = $2 WHERE id = $1", service_id, name)


async def rotate_api_key(conn: asyncpg.Connection, service_id: uuid.UUID) -> None:
    """Gives a service a fresh API key; the old one stops matching at commit."""
    await conn.execute("UPDATE services SET api_key = $2 WHERE id = $1", service_id, new_api_key())


async def delete_service(conn: asyncpg.Connection, service_id: uuid.UUID) -> bool:
    """Deletes a service; its counter row, subjects, examples, statistics and migrations go
    with it by cascade (one collection_delete notification)."""
    status = await conn.execute("DELETE FROM services WHERE id = $1", service_id)
    return status == "DELETE 1"


async def lock_collection_shared(conn: asyncpg.Connection, service_id: uuid.UUID) -> bool | None:
    """Share-locks a collection's counter row until the transaction ends, which holds off
    every writer of that collection (their triggers update the row), and returns whether a
    migration blocks writes (None: no such collection)."""
    value = await conn.fetchval(
        "SELECT writes_blocked FROM collection_state WHERE service_id = $1 FOR SHARE", service_id
    )
    return None if value is None else bool(value)


async def clone_service(conn: asyncpg.Connection, source: ServiceRow, name: str) -> ServiceRow:
    """Copies ``source`` into a new service named ``name`` of the same application and type,
    with a new API key: one INSERT ... SELECT for the subjects and one for the examples
    (embeddings, images, calculators; new image ids), all inside the database. Needs a
    transaction that already holds :func:`lock_collection_shared` on the source."""
    clone = await create_service(conn, source.application_id, name, source.type, source.calculator)
    await conn.execute(
        "INSERT INTO subjects (id, service_id, name, created_at)"
        " SELECT gen_random_uuid(), $2, name, created_at FROM subjects WHERE service_id = $1",
        source.id,
        clone.id,
    )
    await conn.execute(
        "INSERT INTO face_examples (id, service_id, subject_id, embedding, embedding_dim,"
        " calculator, calculator_version, image, image_content_type, created_at)"
        " SELECT gen_random_uuid(), $2, ns.id, e.embedding, e.embedding_dim, e.calculator,"
        " e.calculator_version, e.image, e.image_content_type, e.created_at"
        " FROM face_examples e"
        " JOIN subjects os ON os.id = e.subject_id"
        " JOIN subjects ns ON ns.service_id = $2 AND ns.name = os.name"
        " WHERE e.service_id = $1",
        source.id,
        clone.id,
    )
    copied = await get_service(conn, source.application_id, clone.id)
    assert copied is not None
    return copied


async def daily_request_counts(
    conn: asyncpg.Connection, service_id: uuid.UUID, start: dt.date, end: dt.date
) -> dict[dt.date, int]:
    """Counted requests per day in ``start..end`` (inclusive); days without any are absent."""
    records = await conn.fetch(
        "SELECT day, request_count FROM service_stats"
        " WHERE service_id = $1 AND day BETWEEN $2 AND $3",
        service_id,
        start,
        end,
    )
    return {r["day"]: int(r["request_count"]) for r in records}

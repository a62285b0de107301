"""Embedding migrations: the job's rows, its staged results and the final swap."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class MigrationRow:
    """An embedding migration and its progress."""

    id: uuid.UUID
    service_id: uuid.UUID
    target_calculator: str
    target_version: str
    status: str
    """RUNNING, SUCCEEDED or FAILED."""
    total_count: int
    migrated_count: int
    skipped_count: int
    failed_count: int
    error_message: str
    created_at: dt.datetime
    finished_at: dt.datetime | None


def _migration_from(record: asyncpg.Record) -> MigrationRow:
    return MigrationRow(**{key: record[key] for key in MigrationRow.__slots__})


@dataclass(frozen=True, slots=True)
class PendingExample:
    """A face example still to be re-computed."""

    id: uuid.UUID
    image: bytes


async def begin(
    conn: asyncpg.Connection,
    service_id: uuid.UUID,
    calculator: str,
    version: str,
    worker: str,
) -> MigrationRow | None:
    """Blocks writes to the collection and records a RUNNING migration; None when writes are
    already blocked (another migration runs). Needs a transaction. Examples made with exactly
    the target calculator and version are not counted; those without an image are counted as
    skipped at once."""
    blocked = await conn.fetchval(
        "UPDATE collection_state SET writes_blocked = true"
        " WHERE service_id = $1 AND NOT writes_blocked RETURNING service_id",
        service_id,
    )
    if blocked is None:
        return None
    counts = await conn.fetchrow(
        "SELECT count(*) AS total, count(*) FILTER (WHERE image IS NULL) AS skipped"
        " FROM face_examples WHERE service_id = $1"
        " AND (calculator, calculator_version) IS DISTINCT FROM ($2, $3)",
        service_id,
        calculator,
        version,
    )
    record = await conn.fetchrow(
        "INSERT INTO embedding_migrations (id, service_id, target_calculator, target_version,"
        " status, total_count, skipped_count, worker)"
        " VALUES ($1, $2, $3, $4, 'RUNNING', $5, $6, $7)"
        " RETURNING id, service_id, target_calculator, target_version, status, total_count,"
        " migrated_count, skipped_count, failed_count, error_message, created_at, finished_at",
        uuid.uuid4(),
        service_id,
        calculator,
        version,
        counts["total"],
        counts["skipped"],
        worker,
    )
    await conn.execute("SELECT fg_collection_touch($1)", service_id)
    return _migration_from(record)


async def get(
    conn: asyncpg.Connection, service_id: uuid.UUID, migration_id: uuid.UUID
) -> MigrationRow | None:
    """One migration of a service."""
    record = await conn.fetchrow(
        "SELECT id, service_id, target_calculator, target_version, status, total_count,"
        " migrated_count, skipped_count, failed_count, error_message, created_at, finished_at"
        " FROM embedding_migrations WHERE id = $2 AND service_id = $1",
        service_id,
        migration_id,
    )
    return None if record is None else _migration_from(record)


async def latest(conn: asyncpg.Connection, service_id: uuid.UUID) -> MigrationRow | None:
    """A service's most recent migration."""
    record = await conn.fetchrow(
        "SELECT id, service_id, target_calculator, target_version, status, total_count,"
        " migrated_count, skipped_count, failed_count, error_message, created_at, finished_at"
        " FROM embedding_migrations WHERE service_id = $1 ORDER BY created_at DESC LIMIT 1",
        service_id,
    )
    return None if record is None else _migration_from(record)


async def next_batch(
    conn: asyncpg.Connection, migration: MigrationRow, after: uuid.UUID, limit: int
) -> list[PendingExample]:
    """The next examples (by id, after ``after``) with an image, not on the target calculator
    and not yet staged by this migration."""
    records = await conn.fetch(
        "SELECT f.id, f.image FROM face_examples f"
        " WHERE f.service_id = $1 AND f.id > $2 AND f.image IS NOT NULL"
        " AND (f.calculator, f.calculator_version) IS DISTINCT FROM ($3, $4)"
        " AND NOT EXISTS (SELECT 1 FROM embedding_migration_items i"
        "                 WHERE i.migration_id = $5 AND i.example_id = f.id)"
        " ORDER BY f.id LIMIT $6",
        migration.service_id,
        after,
        migration.target_calculator,
        migration.target_version,
        migration.id,
        limit,
    )
    return [PendingExample(r["id"], bytes(r["image"])) for r in records]


async def heartbeat(conn: asyncpg.Connection, migration_id: uuid.UUID, worker: str) -> bool:
    """Renews the worker's lease; False when the migration is no longer this worker's (taken
    over, ended, or deleted with its service)."""
    status = await conn.execute(
        "UPDATE embedding_migrations SET heartbeat_at = now()"
        " WHERE id = $1 AND worker = $2 AND status = 'RUNNING'",
        migration_id,
        worker,
    )
    return status == "UPDATE 1"


async def stage(
    conn: asyncpg.Connection,
    migration_id: uuid.UUID,
    worker: str,
    items: list[tuple[uuid.UUID, bytes | None, int | None]],
) -> bool:
    """Records a batch's results (example id, float32 embedding or None when rejected,
    dimension) and the progress counters, renewing the lease. Needs a transaction. False (and
    nothing written) when the migration is no longer this worker's."""
    owned = await conn.fetchval(
        "SELECT 1 FROM embedding_migrations WHERE id = $1 AND worker = $2 AND status = 'RUNNING'"
        " FOR UPDATE",
        migration_id,
        worker,
    )
    if owned is None:
        return False
    inserted = await conn.fetch(
        "INSERT INTO embedding_migration_items (migration_id, example_id, embedding, embedding_dim)"
        " SELECT $1, x.example_id, x.embedding, x.embedding_dim"
        " FROM unnest($2::uuid[], $3::bytea[], $4::smallint[])"
        "      AS x(example_id, embedding, embedding_dim)"
        " ON CONFLICT DO NOTHING RETURNING embedding IS NOT NULL AS ok",
        migration_id,
        [item[0] for item in items],
        [item[1] for item in items],
        [item[2] for item in items],
    )
    migrated = sum(1 for r in inserted if r["ok"])
    await conn.execute(
        "UPDATE embedding_migrations SET migrated_count = migrated_count + $2,"
        " failed_count = failed_count + $3, heartbeat_at = now() WHERE id = $1",
        migration_id,
        migrated,
        len(inserted) - migrated,
    )
    return True


async def finish_success(
    conn: asyncpg.Connection, migration: MigrationRow, worker: str
) -> MigrationRow | None:
    """Swaps every staged embedding into face_examples in one statement (one notification),
    switches the service to the target calculator, unblocks writes and marks the migration
    SUCCEEDED. Needs a transaction. None when the migration is no longer this worker's."""
    owned = await conn.fetchval(
        "SELECT 1 FROM embedding_migrations WHERE id = $1 AND worker = $2 AND status = 'RUNNING'"
        " FOR UPDATE",
        migration.id,
        worker,
    )
    if owned is None:
        return None
    await conn.execute(
        "SELECT set_config('facegrid.migration_writer', $1, true)", str(migration.service_id)
    )
    await conn.execute(
        "UPDATE face_examples f SET embedding = i.embedding, embedding_dim = i.embedding_dim,"
        " calculator = $2, calculator_version = $3"
        " FROM embedding_migration_items i"
        " WHERE i.migration_id = $1 AND i.example_id = f.id AND i.embedding IS NOT NULL",
        migration.id,
        migration.target_calculator,
        migration.target_version,
    )
    await conn.execute(
        "UPDATE services SET calculator = $2 WHERE id = $1",
        migration.service_id,
        migration.target_calculator,
    )
    return await _end(conn, migration, "SUCCEEDED", "")


async def finish_failure(
    conn: asyncpg.Connection, migration: MigrationRow, message: str
) -> MigrationRow | None:
    """Marks a RUNNING migration FAILED, drops its staged results and unblocks writes; the
    examples keep their previous embeddings. Needs a transaction."""
    running = await conn.fetchval(
        "SELECT 1 FROM embedding_migrations WHERE id = $1 AND status = 'RUNNING' FOR UPDATE",
        migration.id,
    )
    if running is None:
        return None
    ended = await _end(conn, migration, "FAILED", message)
    await conn.execute("SELECT fg_collection_touch($1)", migration.service_id)
    return ended


async def _end(
    conn: asyncpg.Connection, migration: MigrationRow, status: str, message: str
) -> MigrationRow:
    await conn.execute(
        "UPDATE collection_state SET writes_blocked = false WHERE service_id = $1",
        migration.service_id,
    )
    await conn.execute(
        "DELETE FROM embedding_migration_items WHERE migration_id = $1", migration.id
    )
    record = await conn.fetchrow(
        "UPDATE embedding_migrations SET status = $2, error_message = $3, finished_at = now()"
        " WHERE id = $1"
        " RETURNING id, service_id, target_calculator, target_version, status, total_count,"
        " migrated_count, skipped_count, failed_count, error_message, created_at, finished_at",
        migration.id,
        status,
        message,
    )
    return _migration_from(record)


async def claim_stale(conn: asyncpg.Connection, worker: str, lease_s: float) -> list[MigrationRow]:
    """Takes over RUNNING migrations whose worker has not renewed its lease for ``lease_s``."""
    records = await conn.fetch(
        "UPDATE embedding_migrations SET worker = $1, heartbeat_at = now()"
        " WHERE status = 'RUNNING' AND heartbeat_at < now() - make_interval(secs => $2)"
        " RETURNING id, service_id, target_calculator, target_version, status, total_count,"
        " migrated_count, skipped_count, failed_count, error_message, created_at, finished_at",
        worker,
        lease_s,
    )
    return [_migration_from(r) for r in records]

"""Versioned, forward-only schema migrations, applied by admin_svc at start.

Migrations are the files ``migrations/NNNN_name.sql`` (versions 1, 2, ... without holes). Each
runs in its own transaction together with the row recording it in ``schema_migrations``, so a
failing file leaves nothing behind. A session-level advisory lock serialises runners: two
admin_svc nodes starting at once apply each migration exactly once. A database that records a
version this build does not know (a newer build migrated it), or whose recorded checksum differs
from the file (the file was edited after it was applied), is refused.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog

log = structlog.get_logger()

#: Directory holding the migration files of this build.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Advisory lock key shared by every migration runner ("FGMIGRAT" as ASCII).
ADVISORY_LOCK_KEY = int.from_bytes(b"FGMIGRAT", "big") & 0x7FFF_FFFF_FFFF_FFFF

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_HISTORY = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The migration files or the database's migration history are not usable."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: int
    """Version number, from the file name's four-digit prefix."""
    name: str
    """Name, from the rest of the file name."""
    sql: str
    """SQL text, run as one simple-protocol query (several statements allowed)."""

    @property
    def checksum(self) -> str:
        """SHA-256 of the SQL text, hex."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Reads and orders the migration files; versions must run 1..N without holes."""
    migrations: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"bad migration file name {path.name!r} (want NNNN_name.sql)")
        migrations.append(Migration(int(match[1]), match[2], path.read_text()))
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise MigrationError(f"migration versions must be 1..N; found {migration.version}")
    return migrations


async def applied_versions(conn: asyncpg.Connection) -> dict[int, str]:
    """The versions recorded in the database and their checksums (empty on a fresh database)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, checksum FROM schema_migrations ORDER BY version")
    return {row["version"]: row["checksum"] for row in rows}


async def apply_migrations(
    conn: asyncpg.Connection, migrations: list[Migration] | None = None
) -> list[int]:
    """Applies the migrations the database lacks, in order; returns the versions applied now."""
    known = load_migrations() if migrations is None else migrations
    await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
    try:
        await conn.execute(_CREATE_HISTORY)
        applied = await applied_versions(conn)
        by_version = {m.version: m for m in known}
        unknown = sorted(set(applied) - set(by_version))
        if unknown:
            raise MigrationError(
                f"the database has migrations {unknown} that this build does not know; "
                "run a newer admin_svc"
            )
        for version, checksum in applied.items():
            if by_version[version].checksum != checksum:
                raise MigrationError(
                    f"migration {version} was changed after it was applied (checksum differs); "
                    "migrations are forward-only: add a new file instead"
                )
        done: list[int] = []
        for migration in known:
            if migration.version in applied:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            log.info("schema_migration_applied", version=migration.version, name=migration.name)
            done.append(migration.version)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)


async def migrate(database_url: str) -> list[int]:
    """Connects once and applies the missing migrations (the start-up path)."""
    conn = await asyncpg.connect(database_url)
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()

"""PostgreSQL fixtures (a pytest plugin, loaded by tests/conftest.py): one embedded PostgreSQL
per session, a fresh migrated database per test (copied from a template), or an empty one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from admin_svc.migrate import apply_migrations
from launcher.postgres import EmbeddedPostgres, start_embedded_postgres

TEMPLATE_DB = "fg_admin_template"


def database_url(server_dsn: str, name: str) -> str:
    """The server's DSN pointed at database ``name``."""
    return server_dsn.replace("/postgres?", f"/{name}?", 1)


@pytest.fixture(scope="session")
def pg_server(short_tmp: Path) -> Iterator[EmbeddedPostgres]:
    """An embedded PostgreSQL for the whole session (unix socket in a short path)."""
    server = start_embedded_postgres(short_tmp / "admin-pg")
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def template_db(pg_server: EmbeddedPostgres) -> str:
    """A database with the schema applied, copied for each test."""
    conn = await asyncpg.connect(pg_server.dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
        await conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    finally:
        await conn.close()
    conn = await asyncpg.connect(database_url(pg_server.dsn, TEMPLATE_DB))
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    return TEMPLATE_DB


async def _create_database(pg_server: EmbeddedPostgres, template: str) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(pg_server.dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await conn.close()
    return name


async def _drop_database(pg_server: EmbeddedPostgres, name: str) -> None:
    conn = await asyncpg.connect(pg_server.dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def db_url(pg_server: EmbeddedPostgres, template_db: str) -> AsyncIterator[str]:
    """A fresh migrated database for one test."""
    name = await _create_database(pg_server, template_db)
    yield database_url(pg_server.dsn, name)
    await _drop_database(pg_server, name)


@pytest.fixture
async def empty_db_url(pg_server: EmbeddedPostgres) -> AsyncIterator[str]:
    """A fresh database without the schema."""
    name = await _create_database(pg_server, "template0")
    yield database_url(pg_server.dsn, name)
    await _drop_database(pg_server, name)


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A small pool on the test's database."""
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=6)
    yield pool
    await pool.close()

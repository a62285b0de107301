"""admin_svc fixtures: one embedded PostgreSQL per session, a fresh database per test (copied
from a migrated template), and an in-process admin_svc on a free port with a fake embed_svc."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import grpc
import pytest

from admin_svc.config import load_config
from admin_svc.migrate import apply_migrations
from admin_svc.server import create_server
from facegrid.admin.v1 import admin_service_pb2_grpc
from launcher.postgres import EmbeddedPostgres, start_embedded_postgres
from tests.admin_svc.helpers import Admin, FakeEmbed, admin_env

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


@pytest.fixture
async def admin(db_url: str) -> AsyncIterator[Admin]:
    """admin_svc in this process (real gRPC server on a free port) with a fake embed_svc."""
    embed = FakeEmbed()
    server = await create_server(load_config(admin_env(db_url)), embed=embed)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.running.port}")
    yield Admin(server, admin_service_pb2_grpc.AdminServiceStub(channel), channel, embed, db_url)
    await channel.close()
    await server.stop(0)

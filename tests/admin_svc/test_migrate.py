"""Schema migrations: from empty, re-applied, concurrently, and the refusals."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from admin_svc.migrate import (
    Migration,
    MigrationError,
    applied_versions,
    apply_migrations,
    load_migrations,
)

EXPECTED_TABLES = {
    "schema_migrations",
    "settings",
    "users",
    "sessions",
    "applications",
    "app_members",
    "services",
    "collection_state",
    "subjects",
    "face_examples",
    "service_stats",
    "embedding_migrations",
    "embedding_migration_items",
    "sign_in_attempts",
    "app_invitations",
}


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


@pytest.mark.integration
async def test_from_empty_applies_every_migration_and_records_it(empty_db_url: str) -> None:
    conn = await asyncpg.connect(empty_db_url)
    try:
        assert await _tables(conn) == set()
        applied = await apply_migrations(conn)
        files = load_migrations()
        assert applied == [m.version for m in files]
        assert await _tables(conn) == EXPECTED_TABLES
        history = await applied_versions(conn)
        assert history == {m.version: m.checksum for m in files}
    finally:
        await conn.close()


@pytest.mark.integration
async def test_reapplying_changes_nothing(empty_db_url: str) -> None:
    conn = await asyncpg.connect(empty_db_url)
    try:
        await apply_migrations(conn)
        before = await conn.fetch("SELECT version, applied_at FROM schema_migrations")
        assert await apply_migrations(conn) == []
        after = await conn.fetch("SELECT version, applied_at FROM schema_migrations")
        assert before == after
    finally:
        await conn.close()


@pytest.mark.integration
async def test_two_nodes_at_once_apply_each_migration_once(empty_db_url: str) -> None:
    first, second = await asyncpg.connect(empty_db_url), await asyncpg.connect(empty_db_url)
    try:
        results = await asyncio.gather(apply_migrations(first), apply_migrations(second))
        versions = [m.version for m in load_migrations()]
        assert sorted(results, key=len) == [[], versions]
        count = await first.fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(versions)
    finally:
        await first.close()
        await second.close()


@pytest.mark.integration
async def test_a_failing_migration_leaves_nothing_behind(empty_db_url: str) -> None:
    good = Migration(1, "good", "CREATE TABLE good_table (id int)")
    bad = Migration(2, "bad", "CREATE TABLE half_done (id int); SELECT no_such_function();")
    conn = await asyncpg.connect(empty_db_url)
    try:
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await apply_migrations(conn, [good, bad])
        assert await applied_versions(conn) == {1: good.checksum}
        assert "half_done" not in await _tables(conn)
        assert "good_table" in await _tables(conn)
        # The advisory lock was released: a fixed migration 2 applies.
        fixed = Migration(2, "bad", "CREATE TABLE half_done (id int)")
        assert await apply_migrations(conn, [good, fixed]) == [2]
    finally:
        await conn.close()


@pytest.mark.integration
async def test_an_edited_migration_is_refused(empty_db_url: str) -> None:
    conn = await asyncpg.connect(empty_db_url)
    try:
        await apply_migrations(conn, [Migration(1, "one", "CREATE TABLE t1 (id int)")])
        edited = Migration(1, "one", "CREATE TABLE t1 (id bigint)")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await apply_migrations(conn, [edited])
    finally:
        await conn.close()


@pytest.mark.integration
async def test_a_database_newer_than_the_build_is_refused(empty_db_url: str) -> None:
    conn = await asyncpg.connect(empty_db_url)
    try:
        one = Migration(1, "one", "CREATE TABLE t1 (id int)")
        two = Migration(2, "two", "CREATE TABLE t2 (id int)")
        await apply_migrations(conn, [one, two])
        with pytest.raises(MigrationError, match=r"does not know"):
            await apply_migrations(conn, [one])
    finally:
        await conn.close()


def test_migration_files_are_numbered_without_holes(tmp_path: Path) -> None:
    assert load_migrations()[0].version == 1
    (tmp_path / "0001_a.sql").write_text("SELECT 1")
    (tmp_path / "0003_c.sql").write_text("SELECT 1")
    with pytest.raises(MigrationError, match=r"1\.\.N"):
        load_migrations(tmp_path)
    (tmp_path / "0003_c.sql").unlink()
    (tmp_path / "2_bad-name.sql").write_text("SELECT 1")
    with pytest.raises(MigrationError, match="bad migration file name"):
        load_migrations(tmp_path)

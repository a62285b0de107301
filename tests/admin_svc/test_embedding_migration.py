"""Embedding migrations with a fake embed_svc: progress, writes refused while running (405, code
32), the atomic swap, skipped and rejected examples, failures, takeover of a dead worker's job."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any

import asyncpg
import grpc
import numpy as np
import pytest
from structlog.testing import capture_logs

from admin_svc.embed_client import EmbedError
from admin_svc.embedding_migration import EmbeddingMigrator, embedding_bytes, pick_calculator
from admin_svc.store import embedding_migrations as migration_store
from admin_svc.store import services as service_store
from facegrid.admin.v1 import admin_service_pb2 as pb
from facegrid.common.v1 import common_pb2
from facegrid.errors import error_info
from tests.admin_svc.helpers import (
    Admin,
    FakeEmbed,
    Listener,
    add_example,
    add_subject,
    make_service,
    rpc_error,
)

Auth = tuple[tuple[str, str], ...]


async def _examples(conn: asyncpg.Connection, service_id: uuid.UUID) -> dict[uuid.UUID, Any]:
    rows = await conn.fetch(
        "SELECT id, calculator, calculator_version, embedding_dim, embedding FROM face_examples"
        " WHERE service_id = $1",
        service_id,
    )
    return {r["id"]: r for r in rows}


async def _seed(
    conn: asyncpg.Connection, service_id: uuid.UUID
) -> tuple[list[uuid.UUID], uuid.UUID]:
    """Three examples with images and one without, all made by calc-a (128-d)."""
    subject = await add_subject(conn, service_id, "ivy")
    with_images = [
        await add_example(conn, service_id, subject, seed=i, image=f"img-{i}".encode())
        for i in range(3)
    ]
    without = await add_example(conn, service_id, subject, seed=99, image=None)
    return with_images, without


@pytest.mark.integration
async def test_a_migration_blocks_writes_then_swaps_every_embedding_at_once(admin: Admin) -> None:
    _, auth = await admin.user("owner@example.com")
    app = await admin.create_app(auth)
    service = await admin.create_service(auth, app.application_id)
    sid = uuid.UUID(service.service_id)
    conn = await asyncpg.connect(admin.db_url)
    migrated_ids, without_image = await _seed(conn, sid)
    listener = await Listener.listen(admin.db_url)
    try:
        before = await _examples(conn, sid)
        admin.embed.gate = asyncio.Event()
        ids = {"application_id": app.application_id, "service_id": service.service_id}
        started = await admin.stub.StartEmbeddingMigration(
            pb.StartEmbeddingMigrationRequest(calculator="calc-b", **ids), metadata=auth
        )
        migration = started.migration
        assert migration.status == pb.MIGRATION_STATUS_RUNNING
        assert (migration.total_count, migration.skipped_count) == (4, 1)
        await asyncio.wait_for(admin.embed.entered.wait(), 10)

        # While it runs: progress is visible, writes are refused (database and API).
        got = await admin.stub.GetService(pb.GetServiceRequest(**ids), metadata=auth)
        assert got.service.writes_blocked
        assert got.service.latest_migration.migration_id == migration.migration_id
        with pytest.raises(asyncpg.PostgresError) as info:
            await add_subject(conn, sid, "blocked")
        assert info.value.sqlstate == "FG032"
        for call in (
            admin.stub.StartEmbeddingMigration(
                pb.StartEmbeddingMigrationRequest(calculator="calc-b", **ids), metadata=auth
            ),
            admin.stub.CloneService(pb.CloneServiceRequest(name="copy", **ids), metadata=auth),
        ):
            error = await rpc_error(call)
            assert dict(error.trailing_metadata() or ()).get("x-http-status") == "405"
            detail = error_info(error)
            assert detail is not None and detail.metadata["compreface_code"] == "32"
        assert await _examples(conn, sid) == before

        admin.embed.gate.set()
        await admin.server.migrator.wait_idle()
        done = await admin.stub.GetEmbeddingMigration(
            pb.GetEmbeddingMigrationRequest(migration_id=migration.migration_id, **ids),
            metadata=auth,
        )
        m = done.migration
        assert m.status == pb.MIGRATION_STATUS_SUCCEEDED
        assert (m.total_count, m.migrated_count, m.skipped_count, m.failed_count) == (4, 3, 1, 0)
        assert m.target_calculator == "calc-b" and m.HasField("end_time")
        after = await _examples(conn, sid)
        for example_id in migrated_ids:
            row = after[example_id]
            assert (row["calculator"], row["calculator_version"], row["embedding_dim"]) == (
                "calc-b",
                "2",
                256,
            )
            vector = np.frombuffer(row["embedding"], dtype="<f4")
            assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
        assert after[without_image] == before[without_image]
        got = await admin.stub.GetService(pb.GetServiceRequest(**ids), metadata=auth)
        assert (got.service.calculator, got.service.writes_blocked) == ("calc-b", False)
        assert await conn.fetchval("SELECT count(*) FROM embedding_migration_items") == 0
        await add_subject(conn, sid, "allowed again")
        assert admin.embed.calls == [(3, "calc-b")]
        # One notification for the whole swap, between the block and the switch.
        ops = [(e["op"], e["count"]) for e in await listener.take_for(sid, 4)]
        assert ops == [
            ("collection_update", 1),
            ("example_update", 3),
            ("collection_update", 1),
            ("subject_insert", 1),
        ]
    finally:
        await conn.close()
        await listener.close()


@pytest.mark.integration
async def test_rejected_images_count_as_failed_and_keep_their_embedding(admin: Admin) -> None:
    _, auth = await admin.user("owner@example.com")
    app = await admin.create_app(auth)
    service = await admin.create_service(auth, app.application_id)
    sid = uuid.UUID(service.service_id)
    conn = await asyncpg.connect(admin.db_url)
    try:
        migrated_ids, _ = await _seed(conn, sid)
        before = await _examples(conn, sid)
        admin.embed.reject = {b"img-1"}
        ids = {"application_id": app.application_id, "service_id": service.service_id}
        started = await admin.stub.StartEmbeddingMigration(
            pb.StartEmbeddingMigrationRequest(calculator="calc-b", **ids), metadata=auth
        )
        await admin.server.migrator.wait_idle()
        done = await admin.stub.GetEmbeddingMigration(
            pb.GetEmbeddingMigrationRequest(migration_id=started.migration.migration_id, **ids),
            metadata=auth,
        )
        m = done.migration
        assert (m.status, m.migrated_count, m.failed_count, m.skipped_count) == (
            pb.MIGRATION_STATUS_SUCCEEDED,
            2,
            1,
            1,
        )
        after = await _examples(conn, sid)
        assert after[migrated_ids[1]] == before[migrated_ids[1]]
        assert after[migrated_ids[0]]["calculator"] == "calc-b"
        # The batch was retried one image at a time to find the bad one.
        assert admin.embed.calls == [(3, "calc-b"), (1, "calc-b"), (1, "calc-b"), (1, "calc-b")]
    finally:
        await conn.close()


@pytest.mark.integration
async def test_start_refusals(admin: Admin) -> None:
    _, auth = await admin.user("owner@example.com")
    app = await admin.create_app(auth)
    recognition = await admin.create_service(auth, app.application_id, "rec")
    detection = await admin.create_service(
        auth, app.application_id, "det", common_pb2.SERVICE_TYPE_DETECTION
    )

    def start(service: pb.Service, calculator: str) -> Any:
        return admin.stub.StartEmbeddingMigration(
            pb.StartEmbeddingMigrationRequest(
                application_id=app.application_id,
                service_id=service.service_id,
                calculator=calculator,
            ),
            metadata=auth,
        )

    unknown = await rpc_error(start(recognition, "no-such-model"))
    assert unknown.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "calc-a" in (unknown.details() or "")
    wrong_type = await rpc_error(start(detection, ""))
    assert wrong_type.code() == grpc.StatusCode.FAILED_PRECONDITION
    admin.embed.unavailable = True
    down = await rpc_error(start(recognition, ""))
    assert down.code() == grpc.StatusCode.UNAVAILABLE
    got = await admin.stub.GetService(
        pb.GetServiceRequest(application_id=app.application_id, service_id=recognition.service_id),
        metadata=auth,
    )
    assert not got.service.writes_blocked and not got.service.HasField("latest_migration")
    missing = await rpc_error(
        admin.stub.GetEmbeddingMigration(
            pb.GetEmbeddingMigrationRequest(
                application_id=app.application_id,
                service_id=recognition.service_id,
                migration_id=str(uuid.uuid4()),
            ),
            metadata=auth,
        )
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND


async def _service_row(conn: asyncpg.Connection, service_id: uuid.UUID) -> service_store.ServiceRow:
    app_id = await conn.fetchval("SELECT application_id FROM services WHERE id = $1", service_id)
    row = await service_store.get_service(conn, app_id, service_id)
    assert row is not None
    return row


@pytest.mark.integration
async def test_embed_svc_going_away_fails_the_migration_and_changes_nothing(
    pool: asyncpg.Pool,
) -> None:
    embed = FakeEmbed(gate=asyncio.Event())
    migrator = EmbeddingMigrator(pool, embed, retries=2, retry_wait_s=(0.0, 0.0), worker="w1")
    async with pool.acquire() as conn:
        sid = await make_service(conn)
        await _seed(conn, sid)
        before = await _examples(conn, sid)
        migration = await migrator.start(await _service_row(conn, sid), "calc-b")
    await asyncio.wait_for(embed.entered.wait(), 10)
    embed.unavailable = True
    assert embed.gate is not None
    embed.gate.set()
    await migrator.wait_idle()
    async with pool.acquire() as conn:
        ended = await migration_store.get(conn, sid, migration.id)
        assert ended is not None and ended.status == "FAILED"
        assert "unavailable" in ended.error_message
        assert await _examples(conn, sid) == before
        service = await _service_row(conn, sid)
        assert (service.writes_blocked, service.calculator) == (False, None)
        assert await conn.fetchval("SELECT count(*) FROM embedding_migration_items") == 0
    assert len(embed.calls) == 3  # the first try and two retries


@pytest.mark.integration
async def test_a_failed_migration_records_no_text_of_embed_svc(pool: asyncpg.Pool) -> None:
    embed = FakeEmbed(failure=EmbedError("failed", "embed_svc failed (INTERNAL): /srv/secret.py"))
    migrator = EmbeddingMigrator(pool, embed, worker="w1")
    async with pool.acquire() as conn:
        sid = await make_service(conn)
        await _seed(conn, sid)
        migration = await migrator.start(await _service_row(conn, sid), "calc-b")
    await migrator.wait_idle()
    async with pool.acquire() as conn:
        ended = await migration_store.get(conn, sid, migration.id)
    assert ended is not None and ended.status == "FAILED"
    assert ended.error_message == "embed_svc failed to compute embeddings"


class _BrokenPool:
    """A pool whose connections are gone: every acquire raises asyncpg's InterfaceError."""

    def __init__(self, calls_wanted: int) -> None:
        self.calls = 0
        self.enough = asyncio.Event()
        self._wanted = calls_wanted

    def acquire(self) -> Any:
        self.calls += 1
        if self.calls >= self._wanted:
            self.enough.set()
        raise asyncpg.InterfaceError("cannot perform operation: connection is closed")


async def test_the_supervisor_outlives_an_interface_error() -> None:
    broken = _BrokenPool(calls_wanted=3)
    migrator = EmbeddingMigrator(broken, FakeEmbed(), worker="w1")
    supervisor = asyncio.create_task(migrator.supervise(interval_s=0))
    enough = asyncio.create_task(broken.enough.wait())
    await asyncio.wait({supervisor, enough}, return_when=asyncio.FIRST_COMPLETED)
    try:
        assert not supervisor.done(), f"the supervisor ended: {supervisor.exception()!r}"
        assert broken.calls >= 3
    finally:
        supervisor.cancel()
        enough.cancel()
        await asyncio.gather(supervisor, enough, return_exceptions=True)


@pytest.mark.integration
async def test_a_running_migration_logs_its_progress_batch_by_batch(pool: asyncpg.Pool) -> None:
    seconds = itertools.count()  # every clock reading is a second later: one event per batch
    embed = FakeEmbed(reject={b"img-1"})
    migrator = EmbeddingMigrator(
        pool, embed, batch_size=1, progress_s=1.0, clock=lambda: float(next(seconds)), worker="w1"
    )
    async with pool.acquire() as conn:
        sid = await make_service(conn)
        await _seed(conn, sid)
        with capture_logs() as events:
            migration = await migrator.start(await _service_row(conn, sid), "calc-b")
            await migrator.wait_idle()
    progress = [e for e in events if e["event"] == "embedding_migration_progress"]
    # One example without an image is skipped from the start; then one example per batch.
    assert [(e["done"], e["total"], e["eta_s"]) for e in progress] == [
        (2, 4, 2),
        (3, 4, 1),
        (4, 4, 0),
    ]
    assert (progress[-1]["migrated"], progress[-1]["skipped"], progress[-1]["failed"]) == (2, 1, 1)
    assert {e["migration_id"] for e in progress} == {str(migration.id)}
    assert {e["rate_per_s"] for e in progress} == {1.0}


@pytest.mark.integration
async def test_a_dead_workers_migration_is_taken_over_and_finished_once(
    pool: asyncpg.Pool,
) -> None:
    stuck = FakeEmbed(gate=asyncio.Event())
    first = EmbeddingMigrator(pool, stuck, batch_size=2, worker="first")
    second = EmbeddingMigrator(pool, FakeEmbed(), batch_size=2, lease_s=30, worker="second")
    async with pool.acquire() as conn:
        sid = await make_service(conn)
        migrated_ids, _ = await _seed(conn, sid)
        migration = await first.start(await _service_row(conn, sid), "calc-b")
    await asyncio.wait_for(stuck.entered.wait(), 10)
    async with pool.acquire() as conn:
        assert await second.resume_stale() == []  # the lease is still fresh
        await conn.execute(
            "UPDATE embedding_migrations SET heartbeat_at = now() - interval '1 hour'"
        )
    assert await second.resume_stale() == [migration.id]
    await second.wait_idle()
    assert stuck.gate is not None
    stuck.gate.set()  # the first worker wakes up: it no longer owns the job
    await first.wait_idle()
    async with pool.acquire() as conn:
        ended = await migration_store.get(conn, sid, migration.id)
        assert ended is not None
        assert (ended.status, ended.migrated_count, ended.skipped_count) == ("SUCCEEDED", 3, 1)
        worker = await conn.fetchval(
            "SELECT worker FROM embedding_migrations WHERE id = $1", migration.id
        )
        assert worker == "second"
        rows = await _examples(conn, sid)
        assert {rows[i]["calculator"] for i in migrated_ids} == {"calc-b"}


@pytest.mark.integration
async def test_deleting_the_service_mid_migration_stops_the_job(pool: asyncpg.Pool) -> None:
    embed = FakeEmbed(gate=asyncio.Event())
    migrator = EmbeddingMigrator(pool, embed, worker="w1")
    async with pool.acquire() as conn:
        sid = await make_service(conn)
        await _seed(conn, sid)
        migration = await migrator.start(await _service_row(conn, sid), "calc-b")
    await asyncio.wait_for(embed.entered.wait(), 10)
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM services WHERE id = $1", sid)
    task = next(iter(migrator._tasks.values()))
    assert embed.gate is not None
    embed.gate.set()
    assert await task is None
    async with pool.acquire() as conn:
        assert await migration_store.get(conn, sid, migration.id) is None


def test_embeddings_are_stored_normalised_little_endian_float32() -> None:
    stored = embedding_bytes([3.0, 4.0])
    assert stored is not None
    data, dim = stored
    assert dim == 2 and np.allclose(np.frombuffer(data, dtype="<f4"), [0.6, 0.8])
    assert embedding_bytes([0.0, 0.0]) is None
    assert embedding_bytes([]) is None
    assert embedding_bytes([float("nan"), 1.0]) is None


def test_pick_calculator_by_name_or_default() -> None:
    calculators = FakeEmbed().calculators
    assert pick_calculator(calculators, "").name == "calc-a"
    assert pick_calculator(calculators, "calc-b").version == "2"

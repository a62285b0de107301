"""Indexes over a real PostgreSQL: the binary COPY snapshot, big statements reaching a second
in-process node as split notifications applied in place (no rebuild), the node status RPC, a
tiny memory budget over three collections, and a node restarted on its index file catching up
with the changes made while it was down."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import asyncpg
import grpc
import numpy as np
import pytest

from api_svc.config import load_config
from api_svc.index_file import IndexFiles
from api_svc.index_source import PgIndexSource
from api_svc.server import create_server
from facegrid.recognition.v1 import node_service_pb2 as node_pb
from facegrid.recognition.v1 import node_service_pb2_grpc
from tests.admin_svc.helpers import add_example, add_subject, make_service
from tests.api_svc.fakes import DLIB, FakeEmbed
from tests.api_svc.test_index_sync import Cluster, cluster, subjects_on
from tests.helpers.wait import wait_until_async

pytestmark = pytest.mark.integration

__all__ = ["cluster"]


def vector(seed: int, dim: int = 3) -> bytes:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=dim)
    return (v / np.linalg.norm(v)).astype("<f4").tobytes()


async def bulk_insert(
    pool: asyncpg.Pool, service_id: uuid.UUID, count: int, dim: int = 3
) -> list[uuid.UUID]:
    """``count`` examples of one new subject in ONE statement, as bulk enrolment writes them."""
    async with pool.acquire() as conn, conn.transaction():
        subject = await conn.fetchval(
            "INSERT INTO subjects (service_id, name) VALUES ($1, 'Crowd') RETURNING id", service_id
        )
        ids = [uuid.uuid4() for _ in range(count)]
        await conn.execute(
            "INSERT INTO face_examples (id, service_id, subject_id, embedding, embedding_dim,"
            " calculator, calculator_version)"
            " SELECT i, $2, $3, e, $6, $5, '0.3.0' FROM unnest($1::uuid[], $4::bytea[]) AS t(i, e)",
            ids,
            service_id,
            subject,
            [vector(i, dim) for i in range(count)],
            DLIB,
            dim,
        )
    return ids


async def test_a_big_statement_reaches_the_other_node_in_parts_and_applies_in_place(
    cluster: Cluster,
) -> None:
    assert await subjects_on(cluster.b, cluster) == []  # B loads the collection
    registry = cluster.b.server.indexes
    ids = await bulk_insert(cluster.pool, cluster.service_id, 2000)  # 14 parts of one seq

    async def b_has_them() -> bool:
        index = registry.loaded().get(cluster.service_id)
        return index is not None and len(index) == 2000

    await wait_until_async(b_has_them, 60, "node B to apply the 2000-row statement")
    assert registry.loaded()[cluster.service_id].image_ids() == set(ids)
    assert registry.rebuilds == 1  # applied from the parts, never reloaded
    assert cluster.b.server.sync.parts_incomplete == 0
    # One DELETE of 1500 rows: 10 parts, applied in place too.
    await cluster.pool.execute("DELETE FROM face_examples WHERE id = ANY($1::uuid[])", ids[:1500])

    async def b_dropped_them() -> bool:
        return len(registry.loaded()[cluster.service_id]) == 500

    await wait_until_async(b_dropped_them, 60, "node B to apply the 1500-row delete")
    assert registry.loaded()[cluster.service_id].image_ids() == set(ids[1500:])
    assert registry.rebuilds == 1


async def test_the_status_rpc_reports_each_loaded_collection(cluster: Cluster) -> None:
    await bulk_insert(cluster.pool, cluster.service_id, 30)
    await subjects_on(cluster.b, cluster)  # loads the collection
    status = cluster.b.server.status
    async with grpc.aio.insecure_channel(f"127.0.0.1:{status.port}") as channel:
        stub = node_service_pb2_grpc.NodeServiceStub(channel)
        reply = await stub.GetNodeStatus(node_pb.GetNodeStatusRequest())
    assert reply.memory_budget_bytes == 4096 * 1024 * 1024
    [collection] = reply.collections
    seq = await cluster.pool.fetchval(
        "SELECT seq FROM collection_state WHERE service_id = $1", cluster.service_id
    )
    assert (collection.service_id, collection.faces, collection.seq) == (
        str(cluster.service_id),
        30,
        seq,
    )
    assert collection.kind == node_pb.INDEX_KIND_EXACT and collection.detail == "flat"
    assert (collection.calculator, collection.dim, collection.device) == (DLIB, 3, "cpu")
    assert collection.bytes >= 30 * 3 * 4 and reply.memory_bytes == collection.bytes
    assert reply.node == f"{socket.gethostname()}:0"  # FACEGRID_API_NODE_NAME unset, port 0


async def test_a_snapshot_streams_subjects_and_the_calculators_examples(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        service_id = await make_service(conn)
        ann = await add_subject(conn, service_id, "Zoë Ångström")
        bob = await add_subject(conn, service_id, "Bob")
        wanted = {
            await add_example(conn, service_id, ann, seed=1, dim=4),
            await add_example(conn, service_id, bob, seed=2, dim=4),
        }
        await add_example(conn, service_id, bob, seed=3, dim=8, calculator="calc-b")
        seq = await conn.fetchval(
            "SELECT seq FROM collection_state WHERE service_id = $1", service_id
        )
    source = PgIndexSource(pool, 5, 60)
    snapshot = await source.snapshot(service_id, "calc-a")
    assert (snapshot.seq, snapshot.calculator, snapshot.dim) == (seq, "calc-a", 4)
    assert snapshot.faces is not None
    by_id = dict(
        zip(
            (uuid.UUID(bytes=r.tobytes()) for r in snapshot.faces.image_ids),
            snapshot.faces.vectors,
            strict=True,
        )
    )
    assert set(by_id) == wanted
    names = {
        uuid.UUID(bytes=snapshot.faces.subjects.ids[i].tobytes()): snapshot.faces.subjects.name(i)
        for i in range(len(snapshot.faces.subjects))
    }
    assert names == {ann: "Zoë Ångström", bob: "Bob"}
    other = await source.snapshot(service_id, "calc-b")  # the default decides when NULL
    assert (other.calculator, other.dim, len(other.faces or ())) == ("calc-b", 8, 1)
    empty = await source.snapshot(uuid.uuid4(), "calc-a")
    assert (empty.seq, empty.faces) == (-1, None)
    assert await source.collections() == [service_id]


async def test_a_tiny_budget_over_three_collections_evicts_and_reloads(
    db_url: str, pool: asyncpg.Pool
) -> None:
    services = []
    async with pool.acquire() as conn:
        for i in range(3):
            service_id = await make_service(conn, name=f"c{i}")
            await bulk_insert(pool, service_id, 1000, dim=128)  # about 0.57 MiB in memory
            services.append(service_id)
    env = {
        "FACEGRID_DATABASE_URL": db_url,
        "FACEGRID_API_PORT": "0",
        "FACEGRID_INDEX_MEMORY_BUDGET_MB": "1",  # one of them at a time
    }
    server = await create_server(load_config(env), embed=FakeEmbed())
    try:
        registry = server.indexes
        first = await registry.get(services[0])
        assert len(first) == 1000 and first.nbytes > 512 * 1024
        await registry.get(services[1])
        await registry.get(services[2])
        assert set(registry.loaded()) == {services[2]}
        assert registry.evictions == 2 and registry.memory_bytes() <= 1024 * 1024
        # Changed while evicted: the reload reads it whole.
        await pool.execute(
            "DELETE FROM face_examples WHERE id IN"
            " (SELECT id FROM face_examples WHERE service_id = $1 LIMIT 10)",
            services[0],
        )
        reloaded = await registry.get(services[0])
        rows = await pool.fetch("SELECT id FROM face_examples WHERE service_id = $1", services[0])
        assert reloaded is not first and len(reloaded) == 990
        assert reloaded.image_ids() == {r["id"] for r in rows}
        assert set(registry.loaded()) == {services[0]} and registry.evictions == 3
    finally:
        await server.stop(0)


async def test_a_restarted_node_reads_its_index_file_and_catches_up_from_the_database(
    db_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    async with pool.acquire() as conn:
        service_id = await make_service(conn)
    crowd = await bulk_insert(pool, service_id, 1000, dim=128)
    env = {
        "FACEGRID_DATABASE_URL": db_url,
        "FACEGRID_API_PORT": "0",
        "FACEGRID_INDEX_EXACT_MAX": "500",
        "FACEGRID_INDEX_CACHE_DIR": str(tmp_path),
    }
    files = IndexFiles(tmp_path)
    server = await create_server(load_config(env), embed=FakeEmbed())
    try:
        await server.indexes.get(service_id)  # exact at once, trained aside, then written

        async def written() -> bool:
            return files.path(service_id).exists() and not server.indexes.rebuilding()

        await wait_until_async(written, 60, "the index file")
    finally:
        await server.stop(0)
    # While the node is down: new rows and subjects, deletes, a merge, a rename.
    async with pool.acquire() as conn:
        late = await add_subject(conn, service_id, "Late")
        added = {
            await add_example(conn, service_id, late, seed=i, calculator=DLIB) for i in range(5)
        }
        await conn.execute("DELETE FROM face_examples WHERE id = ANY($1::uuid[])", crowd[:10])
        await conn.execute(
            "UPDATE face_examples SET subject_id = $1 WHERE id = ANY($2::uuid[])",
            late,
            crowd[10:13],
        )
        await conn.execute(
            "UPDATE subjects SET name = 'Crowd 2' WHERE service_id = $1 AND name = 'Crowd'",
            service_id,
        )
    server = await create_server(load_config(env), embed=FakeEmbed())
    try:
        index = await server.indexes.get(service_id)
        assert index.kind == "ivf"  # from the file: a snapshot would serve exact first
        rows = await pool.fetch("SELECT id FROM face_examples WHERE service_id = $1", service_id)
        assert index.image_ids() == {r["id"] for r in rows} and added <= index.image_ids()
        assert [index.subject_of(i) for i in crowd[10:14]] == ["Late"] * 3 + ["Crowd 2"]
        # The rows held are the database's, version for version.
        snapshot = await PgIndexSource(pool, 5, 60).snapshot(service_id, DLIB)
        assert snapshot.faces is not None
        fetch, gone = index.stale(snapshot.faces.image_ids, snapshot.faces.row_versions())
        assert (len(fetch), len(gone)) == (0, 0)
        seq = await pool.fetchval(
            "SELECT seq FROM collection_state WHERE service_id = $1", service_id
        )
        assert server.indexes.seq(service_id) == seq
    finally:
        await server.stop(0)

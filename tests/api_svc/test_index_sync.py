"""Two api_svc nodes in process over one real PostgreSQL (the migrated schema) and a fake
embed_svc: a face enrolled or deleted through node A is found or gone through node B once its
notification arrives (a small change carrying its rows in the payload); a gap in seq and a
dropped LISTEN connection rebuild the index from the database."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import pytest
import structlog.testing

from api_svc.config import load_config
from api_svc.index_source import PgIndexSource
from api_svc.index_sync import IndexSync
from api_svc.notifications import parse
from api_svc.server import ApiServer, create_server
from facegrid.recognition.v1 import recognition_service_pb2 as pb
from facegrid.recognition.v1 import recognition_service_pb2_grpc as pb_grpc
from facegrid.schema import CHANGES_CHANNEL
from tests.api_svc.fakes import FakeEmbed, face
from tests.api_svc.helpers import demo_keys, image
from tests.helpers.wait import wait_until_async

ASTRONAUT = b"\x89PNG\r\n\x1a\n astronaut"
MIRROR = b"\x89PNG\r\n\x1a\n mirror"
OTHER = b"\xff\xd8\xff other person"


@dataclass
class Node:
    server: ApiServer
    stub: pb_grpc.RecognitionServiceStub


@dataclass
class Cluster:
    a: Node
    b: Node
    service_id: uuid.UUID
    metadata: tuple[tuple[str, str]]
    pool: asyncpg.Pool


@pytest.fixture
async def cluster(db_url: str, pool: asyncpg.Pool) -> AsyncIterator[Cluster]:
    keys = await demo_keys(pool)
    embed = FakeEmbed(
        faces={
            ASTRONAUT: [face(10, 50, [1.0, 0.0, 0.0])],
            MIRROR: [face(10, 50, [0.99, 0.05, 0.0])],
            OTHER: [face(10, 50, [0.0, 0.0, 1.0])],
        }
    )
    env = {
        "FACEGRID_DATABASE_URL": db_url,
        "FACEGRID_API_PORT": "0",
        "FACEGRID_API_DB_POOL_MAX": "3",
        # Cached key lookups outlive every test: only the NOTIFY of a key change can drop them.
        "FACEGRID_API_KEY_CACHE_S": "3600",
    }
    nodes = []
    channels = []
    for _ in range(2):
        server = await create_server(load_config(env), embed=embed)
        await asyncio.wait_for(server.sync.wait_listening(), 10)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.running.port}")
        channels.append(channel)
        nodes.append(Node(server, pb_grpc.RecognitionServiceStub(channel)))
    service_id, key = keys["RECOGNITION"]
    yield Cluster(nodes[0], nodes[1], service_id, (("x-api-key", str(key)),), pool)
    for channel in channels:
        await channel.close()
    for node in nodes:
        await node.server.stop(0)


async def subjects_on(node: Node, cluster: Cluster, data: bytes = MIRROR) -> list[str]:
    reply = await node.stub.RecognizeFaces(
        pb.RecognizeFacesRequest(image=image(data), prediction_count=5),
        metadata=cluster.metadata,
    )
    return [s.subject for s in reply.result[0].subjects]


async def database_ids(cluster: Cluster) -> set[uuid.UUID]:
    rows = await cluster.pool.fetch(
        "SELECT id FROM face_examples WHERE service_id = $1", cluster.service_id
    )
    return {r["id"] for r in rows}


async def enrol(node: Node, cluster: Cluster, subject: str, data: bytes = ASTRONAUT) -> str:
    reply = await node.stub.AddFace(
        pb.AddFaceRequest(image=image(data), subject=subject), metadata=cluster.metadata
    )
    return reply.image_id


async def insert_silently(cluster: Cluster, subject: str) -> uuid.UUID:
    """Writes an example with the triggers off: no notification, no seq bump."""
    async with cluster.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        subject_id = await conn.fetchval(
            "INSERT INTO subjects (service_id, name) VALUES ($1, $2) RETURNING id",
            cluster.service_id,
            subject,
        )
        return await conn.fetchval(
            "INSERT INTO face_examples (service_id, subject_id, embedding, embedding_dim,"
            " calculator, calculator_version) VALUES ($1, $2, $3, 3, 'dlib-resnet-v1', '0.3.0')"
            " RETURNING id",
            cluster.service_id,
            subject_id,
            bytes.fromhex("0000803f0000000000000000"),
        )


@pytest.mark.integration
async def test_a_face_enrolled_on_one_node_is_recognised_on_the_other(cluster: Cluster) -> None:
    assert await subjects_on(cluster.b, cluster) == []  # B loads the empty collection first
    image_id = await enrol(cluster.a, cluster, "Eileen")

    async def b_knows() -> bool:
        return await subjects_on(cluster.b, cluster) == ["Eileen"]

    await wait_until_async(b_knows, 10, "node B to see the enrolment")
    reply = await cluster.b.stub.RecognizeFaces(
        pb.RecognizeFacesRequest(image=image(MIRROR)), metadata=cluster.metadata
    )
    [found] = reply.result
    assert found.subjects[0].similarity > 0.5
    await cluster.a.stub.DeleteFace(
        pb.DeleteFaceRequest(image_id=image_id), metadata=cluster.metadata
    )

    async def b_forgot() -> bool:
        return await subjects_on(cluster.b, cluster) == []

    await wait_until_async(b_forgot, 10, "node B to see the deletion")
    assert cluster.b.server.indexes.rebuilds == 1  # applied in place, never rebuilt


@pytest.mark.integration
async def test_a_gap_in_seq_rebuilds_the_collection(cluster: Cluster) -> None:
    await enrol(cluster.a, cluster, "Eileen")
    registry = cluster.b.server.indexes

    async def b_loaded() -> bool:
        return await subjects_on(cluster.b, cluster) == ["Eileen"]

    await wait_until_async(b_loaded, 10, "node B to load the collection")
    hidden = await insert_silently(cluster, "Hidden")
    seq = registry.seq(cluster.service_id)
    assert seq is not None
    payload = {
        "v": 1,
        "collection": str(cluster.service_id),
        "seq": seq + 2,
        "op": "subject_insert",
        "count": 1,
        "ids": [str(uuid.uuid4())],
    }
    await cluster.pool.execute("SELECT pg_notify('facegrid_changes', $1)", json.dumps(payload))

    async def rebuilt() -> bool:
        index = registry.loaded().get(cluster.service_id)
        return index is not None and hidden in index.image_ids()

    await wait_until_async(rebuilt, 10, "the gap to trigger a rebuild")
    assert registry.loaded()[cluster.service_id].image_ids() == await database_ids(cluster)
    assert registry.rebuilds == 2


@pytest.mark.integration
async def test_a_dropped_listener_reconnects_and_rebuilds(cluster: Cluster) -> None:
    await enrol(cluster.a, cluster, "Eileen")
    sync, registry = cluster.b.server.sync, cluster.b.server.indexes

    async def b_loaded() -> bool:
        return await subjects_on(cluster.b, cluster) == ["Eileen"]

    await wait_until_async(b_loaded, 10, "node B to load the collection")
    hidden = await insert_silently(cluster, "Hidden")
    pid = sync.listener_pid
    assert pid is not None
    assert await cluster.pool.fetchval("SELECT pg_terminate_backend($1)", pid)

    async def rebuilt() -> bool:
        index = registry.loaded().get(cluster.service_id)
        return sync.connects >= 2 and index is not None and hidden in index.image_ids()

    await wait_until_async(rebuilt, 10, "the listener to reconnect and rebuild")
    assert sync.listener_pid not in (None, pid)
    assert registry.loaded()[cluster.service_id].image_ids() == await database_ids(cluster)
    # Changes after the reconnect arrive again.
    await enrol(cluster.a, cluster, "Later", OTHER)

    async def later_seen() -> bool:
        return (await subjects_on(cluster.b, cluster, OTHER))[:1] == ["Later"]

    await wait_until_async(later_seen, 10, "a notification on the new connection")


@pytest.mark.integration
async def test_a_rotated_key_stops_working_on_every_node(cluster: Cluster) -> None:
    assert await subjects_on(cluster.b, cluster) == []  # B caches the key
    new_key = uuid.uuid4()
    await cluster.pool.execute(
        "UPDATE services SET api_key = $2 WHERE id = $1", cluster.service_id, new_key
    )

    async def old_key_refused() -> bool:
        try:
            await subjects_on(cluster.b, cluster)
        except grpc.aio.AioRpcError as error:
            return error.code() == grpc.StatusCode.UNAUTHENTICATED
        return False

    await wait_until_async(old_key_refused, 10, "node B to drop the rotated key")
    cluster.metadata = (("x-api-key", str(new_key)),)
    assert await subjects_on(cluster.b, cluster) == []


class _DroppingConnection:
    """An asyncpg connection that is lost as soon as it is used."""

    def add_termination_listener(self, _callback: object) -> None:
        pass

    async def add_listener(self, _channel: str, _callback: object) -> None:
        raise ConnectionResetError("terminated at once")

    def terminate(self) -> None:
        pass


class _IdleRegistry:
    def rebuild_all(self, _reason: str) -> None:
        pass

    async def close(self, persist_s: float = 0.0) -> None:
        pass


async def _listen_to_dropping_server(
    monkeypatch: pytest.MonkeyPatch, connects: int, stable_s: float
) -> list[MutableMapping[str, Any]]:
    """Runs IndexSync against a server whose connections drop at once, until ``connects``
    connections were opened; returns the log events meanwhile."""
    opened: list[str] = []
    enough = asyncio.Event()

    async def connect(url: str, timeout: float) -> _DroppingConnection:
        opened.append(url)
        if len(opened) >= connects:
            enough.set()
            await asyncio.Event().wait()  # the last one never answers
        return _DroppingConnection()

    monkeypatch.setattr(asyncpg, "connect", connect)
    sync = IndexSync(
        "postgresql://fake",
        _IdleRegistry(),  # type: ignore[arg-type]
        backoff_s=(0.004, 0.064),
        stable_s=stable_s,
    )
    with structlog.testing.capture_logs() as events:
        await sync.start(timeout_s=0)
        await enough.wait()
        await sync.stop()
    return events


async def test_a_connection_that_drops_at_once_is_retried_ever_more_slowly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = await _listen_to_dropping_server(monkeypatch, connects=9, stable_s=3600)
    delays = [e["retry_s"] for e in events if e["event"] == "index_listener_retry"]
    assert len(delays) == 8
    # Doubling from 4 ms to the 64 ms cap, each delay in the upper half of its step: never
    # back to the shortest one after a reconnect.
    steps = [0.004, 0.008, 0.016, 0.032, 0.064, 0.064, 0.064, 0.064]
    for delay, step in zip(delays, steps, strict=True):
        assert step / 2 - 0.0005 <= delay <= step + 0.0005, (delays, steps)


async def test_a_connection_that_stayed_up_starts_the_backoff_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = await _listen_to_dropping_server(monkeypatch, connects=4, stable_s=0)
    names = [e["event"] for e in events]
    assert "index_listener_retry" not in names
    assert names.count("index_listener_lost") == 3


@pytest.mark.integration
async def test_a_small_enrolment_carries_the_rows_node_b_would_fetch(
    cluster: Cluster, db_url: str
) -> None:
    payloads: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(db_url)
    try:
        await listener.add_listener(CHANGES_CHANNEL, lambda *args: payloads.put_nowait(args[3]))
        image_id = uuid.UUID(await enrol(cluster.a, cluster, "Eileen"))
        note = parse(await asyncio.wait_for(payloads.get(), 10))  # the subject's insert
        while note.op != "example_insert":
            note = parse(await asyncio.wait_for(payloads.get(), 10))
    finally:
        await listener.close()
    assert note.ids == (image_id,) and note.rows is not None
    [carried] = note.rows
    source = PgIndexSource(cluster.pool, 10, 10)
    assert [carried.example] == await source.examples(
        cluster.service_id, [image_id], carried.calculator
    )

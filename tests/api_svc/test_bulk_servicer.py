"""BulkAddFaces in process over gRPC: real PostgreSQL (the migrated schema), the demo
RECOGNITION key, a fake embed_svc. Mixed good and bad items, what is stored, authentication,
a collection blocked by a migration, and one notification per batch."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import grpc
import numpy as np
import pytest

from api_svc.face_store import NewExample, NewFace, PgFaceStore
from facegrid.recognition.v1 import recognition_service_pb2 as pb
from facegrid.recognition.v1 import recognition_service_pb2_grpc as pb_grpc
from tests.api_svc.fakes import DLIB
from tests.api_svc.helpers import EMPTY, GROUP, OTHER, PNG, Store

pytestmark = pytest.mark.integration


def image_item(key: str, subject: str, data: bytes) -> pb.BulkAddFacesRequest:
    return pb.BulkAddFacesRequest(client_key=key, subject=subject, file=data)


def embedding_item(
    key: str, subject: str, values: list[float], calculator: str = DLIB
) -> pb.BulkAddFacesRequest:
    return pb.BulkAddFacesRequest(
        client_key=key,
        subject=subject,
        embedding=pb.PrecomputedEmbedding(values=values, calculator=calculator),
    )


async def bulk_call(
    stub: pb_grpc.RecognitionServiceStub,
    items: list[pb.BulkAddFacesRequest],
    metadata: tuple[tuple[str, str], ...],
) -> list[pb.BulkAddFacesResponse]:
    """Sends ``items`` once the server accepted the stream (its initial metadata), reading the
    results meanwhile; the results in item order."""
    call = stub.BulkAddFaces(metadata=metadata)
    await call.initial_metadata()
    if call.done():  # refused: reading raises the call's status
        return [r async for r in call]

    async def write() -> None:
        for item in items:
            await call.write(item)
        await call.done_writing()

    writer = asyncio.create_task(write())
    results = [r async for r in call]
    await writer
    return sorted(results, key=lambda r: r.index)


async def bulk(api: Store, items: list[pb.BulkAddFacesRequest]) -> list[pb.BulkAddFacesResponse]:
    return await bulk_call(api.stub, items, api.metadata)


async def refusal(api: Store, metadata: tuple[tuple[str, str], ...]) -> grpc.aio.AioRpcError:
    item = embedding_item("a", "Ann", [1.0, 0.0, 0.0])
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await bulk_call(api.stub, [item], metadata)
    return raised.value


async def stored_rows(api: Store) -> list[asyncpg.Record]:
    return await api.pool.fetch(
        "SELECT e.id, s.name, e.embedding, e.calculator, e.calculator_version, e.image,"
        " e.image_content_type FROM face_examples e JOIN subjects s ON s.id = e.subject_id"
        " WHERE e.service_id = $1",
        api.service_id,
    )


async def test_every_item_gets_its_result_and_only_good_items_are_stored(api: Store) -> None:
    items = [
        image_item("ann/1.png", "Ann", PNG),
        image_item("ann/blank.png", "Ann", EMPTY),
        image_item("group.jpg", "Ann", GROUP),
        image_item("bob/1.jpg", "Bob", OTHER),
        image_item("junk", "Bob", b"not an image"),
        embedding_item("imported", "Cy", [3.0, 4.0, 0.0]),
        embedding_item("short", "Cy", [1.0, 2.0]),
        embedding_item("foreign", "Cy", [1.0, 2.0, 3.0], calculator="facenet"),
        embedding_item("bad name", "a/b", [1.0, 0.0, 0.0]),
        pb.BulkAddFacesRequest(client_key="empty", subject="Dee"),
    ]
    results = await bulk(api, items)
    assert [r.index for r in results] == list(range(len(items)))
    assert [r.client_key for r in results] == [i.client_key for i in items]
    outcome = {r.client_key: r.WhichOneof("result") for r in results}
    assert [k for k, v in outcome.items() if v == "image_id"] == [
        "ann/1.png",
        "bob/1.jpg",
        "imported",
    ]
    errors = {r.client_key: (r.error.reason, r.error.code, r.error.http_status) for r in results}
    assert errors["ann/blank.png"] == ("NO_FACE_DETECTED", 28, 400)
    assert errors["group.jpg"] == ("TOO_MANY_FACES", 31, 400)
    assert errors["short"] == ("WRONG_EMBEDDING_SIZE", 26, 400)
    assert errors["foreign"] == ("UNKNOWN_CALCULATOR", 26, 400)
    assert errors["bad name"] == ("INVALID_SUBJECT_NAME", 26, 400)
    assert errors["empty"] == ("MISSING_FILE", 26, 400)
    assert all(r.error.message for r in results if r.HasField("error"))

    rows = {str(row["id"]): row for row in await stored_rows(api)}
    ids = {r.client_key: r.image_id for r in results if r.HasField("image_id")}
    assert set(rows) == set(ids.values())
    ann, bob, cy = rows[ids["ann/1.png"]], rows[ids["bob/1.jpg"]], rows[ids["imported"]]
    assert (ann["name"], ann["image"], ann["image_content_type"]) == ("Ann", PNG, "image/png")
    assert (bob["name"], bob["image_content_type"]) == ("Bob", "image/jpeg")
    assert (cy["name"], cy["image"], cy["calculator"], cy["calculator_version"]) == (
        "Cy",
        None,
        DLIB,
        "0.3.0",
    )
    assert np.allclose(np.frombuffer(cy["embedding"], "<f4"), [0.6, 0.8, 0.0])
    subjects = await api.stub.ListSubjects(pb.ListSubjectsRequest(), metadata=api.metadata)
    assert list(subjects.subjects) == ["Ann", "Bob", "Cy"]


async def test_a_stream_without_a_key_or_with_a_blocked_collection_is_refused(
    api: Store,
) -> None:
    assert (await refusal(api, ())).code() is grpc.StatusCode.UNAUTHENTICATED
    await api.pool.execute(
        "UPDATE collection_state SET writes_blocked = true WHERE service_id = $1", api.service_id
    )
    blocked = await refusal(api, api.metadata)
    assert blocked.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "migrated" in (blocked.details() or "")
    assert await stored_rows(api) == []


async def test_one_batch_is_one_transaction_and_one_notification(api: Store, db_url: str) -> None:
    notes: list[dict[str, Any]] = []
    arrived = asyncio.Event()
    listener = await asyncpg.connect(db_url)

    def on_note(*args: object) -> None:
        notes.append(json.loads(str(args[3])))
        arrived.set()

    await listener.add_listener("facegrid_changes", on_note)
    try:
        store = PgFaceStore(api.pool, 5)
        faces = [
            NewFace(
                uuid.uuid4(),
                f"person-{i % 3}",
                NewExample(np.eye(3, dtype="<f4")[i % 3].tobytes(), 3, DLIB, "0.3.0", None, None),
            )
            for i in range(7)
        ]
        await store.add_examples(api.service_id, faces)
        await asyncio.wait_for(arrived.wait(), 5)
        while len(notes) < 2:  # both are sent at commit, in order
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), 5)
    finally:
        await listener.close()
    assert [(n["op"], n["count"]) for n in notes] == [("subject_insert", 3), ("example_insert", 7)]
    assert sorted(notes[1]["ids"]) == sorted(str(f.image_id) for f in faces)
    assert len(await stored_rows(api)) == 7

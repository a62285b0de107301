"""The streaming bulk enrolment (sync and asyncio) and the asyncio client against the mesh."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from facegrid_client import (
    NODE_HEADER,
    AsyncFacegrid,
    BulkItem,
    EmbeddingItem,
    Facegrid,
    FacegridError,
    FaceItem,
    floats,
    pb,
)

from .conftest import Collection, Mesh, until

pytestmark = pytest.mark.integration

BLANK = np.full((240, 320, 3), 255, dtype=np.uint8)


def new_key(mesh: Mesh, collection: Collection, token: str, name: str) -> str:
    with Facegrid(mesh.target, token=token) as fg:
        return fg.admin.create_service(collection.application_id, name).api_key


def embedding_of(mesh: Mesh, collection: Collection, photo: Path) -> list[float]:
    with Facegrid(mesh.target, api_key=collection.keys["DETECTION"]) as fg:
        [face] = fg.detect(photo, face_plugins="calculator").result
    return floats(face.embedding)


def test_bulk_enrolment_stores_good_items_and_reports_bad_ones(
    mesh: Mesh, collection: Collection, admin_token: str, people
):
    first, second = list(people)[:2]
    vector = embedding_of(mesh, collection, people[second][0])
    items: list[BulkItem] = [
        FaceItem(first, people[first][0]),
        FaceItem(first, people[first][1].read_bytes(), client_key="bytes"),
        FaceItem("blank", BLANK, client_key="blank"),
        EmbeddingItem(second, vector, "dlib-resnet-v1", client_key="vector"),
        EmbeddingItem("short", vector[:5], "dlib-resnet-v1", client_key="short"),
        pb.recognition.BulkAddFacesRequest(client_key="junk", subject="junk", file=b"not an image"),
    ]
    key = new_key(mesh, collection, admin_token, "bulk")
    with Facegrid(mesh.target, api_key=key) as fg:
        results = list(fg.add_faces(items, timeout=120))
        assert sorted(r.index for r in results) == list(range(len(items)))
        by_key = {r.client_key: r for r in results}
        assert set(by_key) == {str(people[first][0]), "bytes", "blank", "vector", "short", "junk"}
        errors = {
            k: (r.error.reason, r.error.code) for k, r in by_key.items() if r.HasField("error")
        }
        assert errors == {
            "blank": ("NO_FACE_DETECTED", 28),
            "short": ("WRONG_EMBEDDING_SIZE", 26),
            "junk": ("UNSUPPORTED_IMAGE_FORMAT", 21),
        }
        assert by_key["vector"].HasField("image_id") and by_key["vector"].subject == second
        assert fg.list_faces().total_elements == 3
        best = until(
            lambda: fg.recognize(people[second][1]).result[0].subjects,
            lambda s: bool(s) and s[0].subject == second,
        )
        assert best[0].similarity > 0.5


def test_a_refused_stream_raises_before_sending(mesh: Mesh, people):
    unknown = "00000000-0000-4000-8000-000000000000"
    sent = []

    def items():
        for photo in people[next(iter(people))]:
            sent.append(photo)
            yield FaceItem("x", photo)

    with Facegrid(mesh.target, api_key=unknown) as fg, pytest.raises(FacegridError) as raised:
        list(fg.add_faces(items()))
    assert raised.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert (raised.value.reason, raised.value.compreface_code) == ("UNKNOWN_API_KEY", 10)
    assert sent == []


def test_an_unreadable_item_ends_the_stream_after_the_results_before_it(
    mesh: Mesh, collection: Collection, admin_token: str, people, tmp_path: Path
):
    person = list(people)[1]
    key = new_key(mesh, collection, admin_token, "unreadable")
    items = [FaceItem(person, people[person][0]), FaceItem(person, tmp_path / "missing.jpg")]
    results = []
    with Facegrid(mesh.target, api_key=key) as fg:
        with pytest.raises(FileNotFoundError):
            for result in fg.add_faces(items):
                results.append(result)
        assert [r.HasField("image_id") for r in results] == [True]
        assert fg.list_faces().total_elements == 1


def test_async_client_calls_and_bulk_stream(
    mesh: Mesh, collection: Collection, admin_token: str, people
):
    first, second = list(people)[:2]
    key = new_key(mesh, collection, admin_token, "async")

    async def items() -> AsyncIterator[FaceItem]:
        for photo in people[first][:2]:
            yield FaceItem(first, photo)
        yield FaceItem("blank", BLANK, client_key="blank")

    async def scenario() -> None:
        async with AsyncFacegrid(mesh.target, api_key=key) as fg:
            results = [r async for r in fg.add_faces(items())]
            errors = [r.error.reason for r in results if r.HasField("error")]
            assert errors == ["NO_FACE_DETECTED"] and len(results) == 3
            stored = await fg.add_face(second, people[second][0])
            assert sorted(await fg.list_subjects()) == sorted([first, second])
            face = (await fg.recognize(people[first][2])).result[0]
            assert face.box.probability > 0.5
            assert (await fg.face_image(stored.image_id)).data == people[second][0].read_bytes()
            with pytest.raises(FacegridError) as raised:
                await fg.delete_face("00000000-0000-4000-8000-000000000000")
            assert raised.value.code == grpc.StatusCode.NOT_FOUND
            assert (raised.value.reason, raised.value.compreface_code) == ("FACE_NOT_FOUND", 44)
            assert raised.value.node is not None

            admin = fg.with_options(token=admin_token).admin
            service = await admin.get_service(collection.application_id, collection.recognition_id)
            assert service.name == "recognition"
            unknown = fg.with_options(api_key="00000000-0000-4000-8000-000000000000")
            with pytest.raises(FacegridError) as refused:
                [r async for r in unknown.add_faces([FaceItem(first, people[first][0])])]
            assert refused.value.reason == "UNKNOWN_API_KEY"
            assert await fg.delete_subjects() == 2

    asyncio.run(scenario())


def test_the_node_that_answered_is_in_errors(mesh: Mesh, collection: Collection):
    with Facegrid(mesh.target, api_key=collection.keys["RECOGNITION"]) as fg:
        with pytest.raises(FacegridError) as raised:
            fg.delete_face("not-a-uuid")
        call = fg.recognition_stub.ListSubjects.with_call(
            pb.recognition.ListSubjectsRequest(), metadata=fg.metadata
        )
    node = dict(call[1].initial_metadata())[NODE_HEADER]
    assert raised.value.node == node and node.startswith("api_svc-")

"""The stored-face RPCs in process over gRPC: real PostgreSQL (the migrated schema), the demo
RECOGNITION key, a fake embed_svc. Subjects, enrolment, listing, deletion, images, verification
against a stored example, and writes refused while a migration blocks the collection."""

from __future__ import annotations

import uuid

import asyncpg
import grpc
import numpy as np
import pytest
from google.protobuf import struct_pb2

from api_svc.embed_client import embed_unavailable
from api_svc.face_store import PgFaceStore
from facegrid.errors import ServiceError
from facegrid.recognition.v1 import recognition_service_pb2 as pb
from tests.api_svc.fakes import DLIB
from tests.api_svc.helpers import EMPTY, GROUP, PNG, Store, add, as_json, failure, image

pytestmark = pytest.mark.integration


async def rows(api: Store, query: str) -> list[asyncpg.Record]:
    async with api.pool.acquire() as conn:
        return await conn.fetch(query)


async def subjects(api: Store) -> list[str]:
    return list(
        (await api.stub.ListSubjects(pb.ListSubjectsRequest(), metadata=api.metadata)).subjects
    )


async def test_create_list_and_refuse_a_duplicate_subject(api: Store) -> None:
    call = api.stub.CreateSubject(pb.CreateSubjectRequest(subject="Ann"), metadata=api.metadata)
    assert (await call).subject == "Ann"
    assert ("x-http-status", "201") in tuple(await call.initial_metadata())
    _, info = await failure(
        api.stub.CreateSubject(pb.CreateSubjectRequest(subject="Ann"), metadata=api.metadata)
    )
    assert (info["reason"], info["compreface_code"], info["http_status"]) == (
        "SUBJECT_ALREADY_EXISTS",
        "43",
        "400",
    )
    assert await subjects(api) == ["Ann"]


@pytest.mark.parametrize("name", ["", "a" * 51, "a;b", "a/b", "a\\b"])
async def test_bad_subject_names_are_code_26(api: Store, name: str) -> None:
    _, info = await failure(
        api.stub.CreateSubject(pb.CreateSubjectRequest(subject=name), metadata=api.metadata)
    )
    assert (info["reason"], info["compreface_code"]) == ("INVALID_SUBJECT_NAME", "26")
    assert await subjects(api) == []


async def test_add_face_stores_a_normalised_float32_embedding_and_the_image(api: Store) -> None:
    call = api.stub.AddFace(
        pb.AddFaceRequest(image=image(PNG), subject="Ann", det_prob_threshold=0.6),
        metadata=api.metadata,
    )
    reply = await call
    assert ("x-http-status", "201") in tuple(await call.initial_metadata())
    [row] = await rows(api, "SELECT * FROM face_examples")
    assert str(row["id"]) == reply.image_id
    assert np.frombuffer(row["embedding"], dtype="<f4").tolist() == [1.0, 0.0, 0.0]
    assert (row["embedding_dim"], row["calculator"], row["calculator_version"]) == (
        3,
        DLIB,
        "0.3.0",
    )
    assert (row["image"], row["image_content_type"]) == (PNG, "image/png")
    assert await subjects(api) == ["Ann"]
    [(_, options)] = api.embed.calls
    assert (options.limit, round(options.det_prob_threshold, 3)) == (2, 0.6)
    image_reply = await api.stub.GetFaceImage(
        pb.GetFaceImageRequest(image_id=reply.image_id), metadata=api.metadata
    )
    assert (image_reply.content_type, image_reply.data) == ("image/png", PNG)


@pytest.mark.parametrize(("data", "code"), [(EMPTY, "28"), (GROUP, "31")])
async def test_add_face_needs_exactly_one_face(api: Store, data: bytes, code: str) -> None:
    _, info = await failure(
        api.stub.AddFace(pb.AddFaceRequest(image=image(data), subject="Ann"), metadata=api.metadata)
    )
    assert info["compreface_code"] == code
    assert await rows(api, "SELECT id FROM subjects") == []


async def test_an_embed_svc_failure_stores_nothing(api: Store) -> None:
    api.embed.error = embed_unavailable()
    code, info = await failure(
        api.stub.AddFace(pb.AddFaceRequest(image=image(PNG), subject="Ann"), metadata=api.metadata)
    )
    assert (code, info["compreface_code"]) == (grpc.StatusCode.UNAVAILABLE, "41")
    assert await rows(api, "SELECT id FROM subjects UNION ALL SELECT id FROM face_examples") == []


async def test_a_detection_key_is_refused(api: Store) -> None:
    code, info = await failure(
        api.stub.ListSubjects(pb.ListSubjectsRequest(), metadata=api.detection_key)
    )
    assert (code, info["compreface_code"]) == (grpc.StatusCode.PERMISSION_DENIED, "10")


async def test_list_faces_pages_oldest_first_and_filters_by_subject(api: Store) -> None:
    ids = [await add(api, "Ann"), await add(api, "Ann"), await add(api, "Bob")]
    first = as_json(
        await api.stub.ListFaces(pb.ListFacesRequest(page=0, size=2), metadata=api.metadata)
    )
    assert first["faces"] == [
        {"image_id": ids[0], "subject": "Ann"},
        {"image_id": ids[1], "subject": "Ann"},
    ]
    assert (first["page_number"], first["page_size"], first["total_pages"]) == (0, 2, 2)
    assert first["total_elements"] == 3
    second = await api.stub.ListFaces(pb.ListFacesRequest(page=1, size=2), metadata=api.metadata)
    assert [f.image_id for f in second.faces] == [ids[2]]
    bob = await api.stub.ListFaces(pb.ListFacesRequest(subject="Bob"), metadata=api.metadata)
    assert (bob.page_size, bob.total_elements, [f.subject for f in bob.faces]) == (20, 1, ["Bob"])
    _, info = await failure(api.stub.ListFaces(pb.ListFacesRequest(size=0), metadata=api.metadata))
    assert info["compreface_code"] == "26"


async def test_rename_and_merge_subjects(api: Store) -> None:
    ann = await add(api, "Ann")
    bob = await add(api, "Bob")
    reply = await api.stub.RenameSubject(
        pb.RenameSubjectRequest(current_subject="Ann", subject="Anna"), metadata=api.metadata
    )
    assert reply.updated
    assert await subjects(api) == ["Anna", "Bob"]
    await api.stub.RenameSubject(
        pb.RenameSubjectRequest(current_subject="Anna", subject="Bob"), metadata=api.metadata
    )
    assert await subjects(api) == ["Bob"]
    faces = await api.stub.ListFaces(pb.ListFacesRequest(), metadata=api.metadata)
    assert sorted((f.image_id, f.subject) for f in faces.faces) == sorted(
        [(ann, "Bob"), (bob, "Bob")]
    )
    _, info = await failure(
        api.stub.RenameSubject(
            pb.RenameSubjectRequest(current_subject="Nobody", subject="X"), metadata=api.metadata
        )
    )
    assert (info["compreface_code"], info["http_status"]) == ("42", "404")


async def test_delete_one_by_ids_by_subject_and_all(api: Store) -> None:
    a1, a2, a3, b1, c1 = [await add(api, s) for s in ("Ann", "Ann", "Ann", "Bob", "Cy")]
    one = await api.stub.DeleteFace(pb.DeleteFaceRequest(image_id=a1), metadata=api.metadata)
    assert (one.image_id, one.subject) == (a1, "Ann")
    for unknown in (a1, "not-a-uuid"):
        _, info = await failure(
            api.stub.DeleteFace(pb.DeleteFaceRequest(image_id=unknown), metadata=api.metadata)
        )
        assert (info["compreface_code"], info["http_status"]) == ("44", "404")
    by_ids = await api.stub.DeleteFacesByIds(
        pb.DeleteFacesByIdsRequest(image_ids=[a2, str(uuid.uuid4()), "junk"]),
        metadata=api.metadata,
    )
    assert isinstance(by_ids, struct_pb2.ListValue)
    assert [dict(v.struct_value) for v in by_ids.values] == [{"image_id": a2, "subject": "Ann"}]
    by_subject = await api.stub.DeleteFaces(
        pb.DeleteFacesRequest(subject="Ann"), metadata=api.metadata
    )
    assert by_subject.deleted == 1
    _, info = await failure(
        api.stub.DeleteFaces(pb.DeleteFacesRequest(subject="Nobody"), metadata=api.metadata)
    )
    assert info["compreface_code"] == "42"
    assert (await api.stub.DeleteFaces(pb.DeleteFacesRequest(), metadata=api.metadata)).deleted == 2
    assert await rows(api, "SELECT id FROM face_examples") == []
    assert await subjects(api) == ["Ann", "Bob", "Cy"]  # deleting faces keeps subjects
    assert {b1, c1, a3}.isdisjoint(
        str(r["id"]) for r in await rows(api, "SELECT id FROM face_examples")
    )


async def test_delete_subject_and_subjects(api: Store) -> None:
    await add(api, "Ann")
    await add(api, "Bob")
    await api.stub.CreateSubject(pb.CreateSubjectRequest(subject="Cy"), metadata=api.metadata)
    reply = await api.stub.DeleteSubject(
        pb.DeleteSubjectRequest(subject="Ann"), metadata=api.metadata
    )
    assert reply.subject == "Ann"
    assert len(await rows(api, "SELECT id FROM face_examples")) == 1
    _, info = await failure(
        api.stub.DeleteSubject(pb.DeleteSubjectRequest(subject="Ann"), metadata=api.metadata)
    )
    assert (info["compreface_code"], info["http_status"]) == ("42", "404")
    all_gone = await api.stub.DeleteSubjects(pb.DeleteSubjectsRequest(), metadata=api.metadata)
    assert all_gone.deleted == 2
    assert await rows(api, "SELECT id FROM subjects UNION ALL SELECT id FROM face_examples") == []


async def test_unknown_face_image_is_code_44(api: Store) -> None:
    _, info = await failure(
        api.stub.GetFaceImage(
            pb.GetFaceImageRequest(image_id=str(uuid.uuid4())), metadata=api.metadata
        )
    )
    assert (info["reason"], info["compreface_code"]) == ("FACE_NOT_FOUND", "44")


async def test_verify_an_image_against_a_stored_face(api: Store) -> None:
    image_id = await add(api, "Ann")
    reply = as_json(
        await api.stub.VerifyAgainstFace(
            pb.VerifyAgainstFaceRequest(image_id=image_id, image=image(GROUP), status=True),
            metadata=api.metadata,
        )
    )
    first, second = reply["result"]
    assert (first["subject"], second["subject"]) == ("Ann", "Ann")
    assert first["similarity"] > second["similarity"]
    assert first["box"]["x_min"] == 300  # the face closest to [1, 0, 0]
    assert len(first["landmarks"]) == 5 and "embedding" not in first
    assert reply["plugins_versions"]["calculator"] == f"{DLIB} (0.3.0)"
    _, info = await failure(
        api.stub.VerifyAgainstFace(
            pb.VerifyAgainstFaceRequest(image_id=image_id, image=image(EMPTY)),
            metadata=api.metadata,
        )
    )
    assert info["compreface_code"] == "28"


async def test_verify_embeddings_against_a_stored_face(api: Store) -> None:
    image_id = await add(api, "Ann")
    request = pb.VerifyEmbeddingsAgainstFaceRequest(image_id=image_id)
    for vector in ([0.0, 1.0, 0.0], [3.0, 0.0, 0.0]):
        request.embeddings.add().extend(vector)
    reply = await api.stub.VerifyEmbeddingsAgainstFace(request, metadata=api.metadata)
    assert [list(r.embedding) for r in reply.result] == [[3.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    assert reply.result[0].similarity == 0.99995 > reply.result[1].similarity  # d = 0
    _, info = await failure(
        api.stub.VerifyEmbeddingsAgainstFace(
            pb.VerifyEmbeddingsAgainstFaceRequest(image_id=image_id), metadata=api.metadata
        )
    )
    assert info["compreface_code"] == "37"
    short = pb.VerifyEmbeddingsAgainstFaceRequest(image_id=image_id)
    short.embeddings.add().extend([1.0, 0.0])
    _, info = await failure(api.stub.VerifyEmbeddingsAgainstFace(short, metadata=api.metadata))
    assert (info["reason"], info["compreface_code"]) == ("WRONG_EMBEDDING_SIZE", "26")


async def test_an_example_of_another_calculator_is_a_clear_error(api: Store) -> None:
    image_id = await add(api, "Ann")
    await rows(api, "UPDATE face_examples SET calculator = 'facenet'")
    request = pb.VerifyEmbeddingsAgainstFaceRequest(image_id=image_id)
    request.embeddings.add().extend([1.0, 0.0, 0.0])
    code, info = await failure(api.stub.VerifyEmbeddingsAgainstFace(request, metadata=api.metadata))
    assert (code, info["reason"]) == (grpc.StatusCode.FAILED_PRECONDITION, "CALCULATOR_MISMATCH")
    assert info["stored_calculator"] == "facenet"
    _, info = await failure(
        api.stub.VerifyAgainstFace(
            pb.VerifyAgainstFaceRequest(image_id=image_id, image=image(PNG)), metadata=api.metadata
        )
    )
    assert info["reason"] == "CALCULATOR_MISMATCH"


async def test_writes_are_refused_while_a_migration_blocks_the_collection(api: Store) -> None:
    image_id = await add(api, "Ann")
    await rows(api, "UPDATE collection_state SET writes_blocked = true")
    api.embed.calls.clear()
    writes = [
        api.stub.AddFace(pb.AddFaceRequest(image=image(PNG), subject="Bob"), metadata=api.metadata),
        api.stub.CreateSubject(pb.CreateSubjectRequest(subject="Bob"), metadata=api.metadata),
        api.stub.RenameSubject(
            pb.RenameSubjectRequest(current_subject="Ann", subject="Bob"), metadata=api.metadata
        ),
        api.stub.DeleteSubject(pb.DeleteSubjectRequest(subject="Ann"), metadata=api.metadata),
        api.stub.DeleteSubjects(pb.DeleteSubjectsRequest(), metadata=api.metadata),
        api.stub.DeleteFace(pb.DeleteFaceRequest(image_id=image_id), metadata=api.metadata),
        api.stub.DeleteFaces(pb.DeleteFacesRequest(), metadata=api.metadata),
        api.stub.DeleteFacesByIds(
            pb.DeleteFacesByIdsRequest(image_ids=[image_id]), metadata=api.metadata
        ),
    ]
    for call in writes:
        code, info = await failure(call)
        assert (code, info["compreface_code"], info["http_status"]) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "32",
            "405",
        )
    assert api.embed.calls == []  # refused before embed_svc was asked
    assert await subjects(api) == ["Ann"]
    assert [str(r["id"]) for r in await rows(api, "SELECT id FROM face_examples")] == [image_id]


async def test_an_unreachable_database_is_unavailable_not_internal(db_url: str) -> None:
    closed = await asyncpg.create_pool(db_url, min_size=1, max_size=1)
    await closed.close()
    with pytest.raises(ServiceError) as raised:
        await PgFaceStore(closed, timeout_s=1).list_subjects(uuid.uuid4())
    assert (raised.value.code, raised.value.reason) == (
        grpc.StatusCode.UNAVAILABLE,
        "DATABASE_UNAVAILABLE",
    )

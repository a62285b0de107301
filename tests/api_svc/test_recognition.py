"""RecognizeFaces and RecognizeEmbeddings over gRPC in process: real PostgreSQL, the demo
RECOGNITION key, a fake embed_svc. Ranking, prediction_count, the Facegrid extensions and
CompreFace's codes."""

from __future__ import annotations

import grpc
import pytest

from facegrid.embedding.v1 import embedding_service_pb2 as embed_pb
from facegrid.recognition.v1 import recognition_service_pb2 as pb
from tests.api_svc.helpers import EMPTY, GROUP, OTHER, PNG, Store, add, as_json, failure, image
from tests.api_svc.test_face_store import rows

pytestmark = pytest.mark.integration


async def recognize(api: Store, data: bytes = GROUP, **fields: object) -> dict:
    request = pb.RecognizeFacesRequest(image=image(data), **fields)  # type: ignore[arg-type]
    return as_json(await api.stub.RecognizeFaces(request, metadata=api.metadata))


async def test_an_empty_collection_answers_faces_without_subjects(api: Store) -> None:
    reply = await recognize(api)
    assert [f["subjects"] for f in reply["result"]] == [[], []]
    assert set(reply["result"][0]) == {"box", "landmarks", "subjects", "detector_score"}


async def test_each_face_gets_its_most_similar_examples_best_first(api: Store) -> None:
    await add(api, "astronaut", PNG)  # [1, 0, 0]
    await add(api, "other", OTHER)  # [0, 0, 1]
    await add(api, "astronaut", PNG)
    reply = await recognize(api, prediction_count=2)
    first, second = reply["result"]
    # Face 2 ([0.9, 0.1, 0]) is the astronaut twice (a subject repeats, as in CompreFace).
    assert [s["subject"] for s in second["subjects"]] == ["astronaut", "astronaut"]
    assert second["subjects"][0]["similarity"] > 0.5
    # Face 1 ([0, 1, 0]) is far from everyone: two entries, similarity descending.
    sims = [s["similarity"] for s in first["subjects"]]
    assert len(sims) == 2 and sims == sorted(sims, reverse=True) and sims[0] < 0.5
    one = await recognize(api)
    assert [len(f["subjects"]) for f in one["result"]] == [1, 1]


async def test_rank_by_subject_and_similarity_threshold(api: Store) -> None:
    for subject, data in (("astronaut", PNG), ("astronaut", PNG), ("other", OTHER)):
        await add(api, subject, data)
    reply = await recognize(api, prediction_count=2, rank_by_subject=True)
    assert [s["subject"] for s in reply["result"][1]["subjects"]] == ["astronaut", "other"]
    kept = await recognize(api, prediction_count=3, similarity_threshold=0.5)
    assert [len(f["subjects"]) for f in kept["result"]] == [0, 2]


async def test_options_reach_embed_svc(api: Store) -> None:
    await recognize(api, limit=1, detect_faces=False, det_prob_threshold=0.4, status=True)
    [(_, options)] = api.embed.calls
    assert options.whole_image_is_face and options.limit == 1
    assert options.det_prob_threshold == 0.4
    assert embed_pb.FACE_PLUGIN_CALCULATOR in options.plugins
    await recognize(api)
    assert not api.embed.calls[-1][1].whole_image_is_face


async def test_compreface_codes(api: Store) -> None:
    code, info = await failure(
        api.stub.RecognizeFaces(
            pb.RecognizeFacesRequest(image=image(GROUP), prediction_count=0),
            metadata=api.metadata,
        )
    )
    assert (code, info["compreface_code"]) == (grpc.StatusCode.INVALID_ARGUMENT, "12")
    code, info = await failure(
        api.stub.RecognizeFaces(pb.RecognizeFacesRequest(image=image(EMPTY)), metadata=api.metadata)
    )
    assert (code, info["compreface_code"]) == (grpc.StatusCode.INVALID_ARGUMENT, "28")
    code, info = await failure(
        api.stub.RecognizeFaces(
            pb.RecognizeFacesRequest(image=image(GROUP), similarity_threshold=2),
            metadata=api.metadata,
        )
    )
    assert info["compreface_code"] == "26"


async def embeddings(api: Store, *vectors: list[float], count: int | None = None) -> dict:
    request = pb.RecognizeEmbeddingsRequest(prediction_count=count)
    for vector in vectors:
        request.embeddings.add().extend(vector)
    return as_json(await api.stub.RecognizeEmbeddings(request, metadata=api.metadata))


async def test_recognize_embeddings_in_an_empty_collection(api: Store) -> None:
    assert await embeddings(api, [1.0, 0.0, 0.0]) == {
        "result": [{"embedding": [1.0, 0.0, 0.0], "similarities": []}]
    }


async def test_recognize_embeddings(api: Store) -> None:
    await add(api, "astronaut", PNG)
    await add(api, "other", OTHER)
    reply = await embeddings(api, [0.0, 0.0, 5.0], [1.0, 0.1, 0.0], count=2)
    first, second = reply["result"]
    assert first["embedding"] == [0.0, 0.0, 5.0]
    assert [s["subject"] for s in first["similarities"]] == ["other", "astronaut"]
    assert first["similarities"][0]["similarity"] > 0.99
    assert [s["subject"] for s in second["similarities"]] == ["astronaut", "other"]


async def test_recognize_embeddings_errors(api: Store) -> None:
    request = pb.RecognizeEmbeddingsRequest()
    request.embeddings.add().extend([1.0, 2.0])
    code, info = await failure(api.stub.RecognizeEmbeddings(request, metadata=api.metadata))
    assert (code, info["compreface_code"]) == (grpc.StatusCode.INVALID_ARGUMENT, "26")
    assert info["field"] == "embeddings[0]"
    code, info = await failure(
        api.stub.RecognizeEmbeddings(pb.RecognizeEmbeddingsRequest(), metadata=api.metadata)
    )
    assert info["compreface_code"] == "37"
    request = pb.RecognizeEmbeddingsRequest(prediction_count=0)
    request.embeddings.add().extend([1.0, 0.0, 0.0])
    code, info = await failure(api.stub.RecognizeEmbeddings(request, metadata=api.metadata))
    assert info["compreface_code"] == "12"


async def test_a_query_of_another_calculator_than_the_collection_is_calculator_mismatch(
    api: Store,
) -> None:
    await add(api, "astronaut", PNG)
    # The collection's examples are facenet's now; embed_svc still answers with dlib's.
    await rows(api, "UPDATE face_examples SET calculator = 'facenet'")
    await rows(api, "UPDATE services SET calculator = 'facenet'")
    code, info = await failure(
        api.stub.RecognizeFaces(pb.RecognizeFacesRequest(image=image(GROUP)), metadata=api.metadata)
    )
    assert (code, info["reason"], info["compreface_code"]) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "CALCULATOR_MISMATCH",
        "26",
    )
    assert (info["stored_calculator"], info["calculator"]) == ("facenet", "dlib-resnet-v1")

"""RecognitionService in process, called over gRPC with fakes for PostgreSQL and embed_svc:
authentication before work, CompreFace's shapes and codes, request statistics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import struct_pb2

from api_svc.auth import Authenticator, ServiceType
from api_svc.embed_client import embed_unavailable
from api_svc.servicer import RecognitionServicer
from api_svc.similarity import round5, similarities
from api_svc.stats import RequestStats
from facegrid.embedding.v1 import embedding_service_pb2 as embed_pb
from facegrid.recognition.v1 import recognition_service_pb2 as pb
from facegrid.recognition.v1 import recognition_service_pb2_grpc as pb_grpc
from facegrid.similarity import Calibration
from tests.api_svc.fakes import FakeCounter, FakeEmbed, FakeKeyStore, face
from tests.api_svc.helpers import (
    EMPTY,
    GROUP,
    ONE,
    as_json,
    build_servicer,
    failure,
    image,
    no_database,
    serving,
    two_images,
)


@dataclass
class Api:
    stub: pb_grpc.RecognitionServiceStub
    embed: FakeEmbed
    counter: FakeCounter
    stats: RequestStats
    keys: dict[ServiceType, str]


@pytest.fixture
async def api(free_port: Callable[[], int]) -> AsyncIterator[Api]:
    """The servicer with fakes for keys, counts and embed_svc; no database (overrides the
    conftest's database-backed ``api``)."""
    store = FakeKeyStore()
    keys = {t: str(store.add(t)) for t in ServiceType}
    embed = FakeEmbed(
        faces={
            ONE: [face(10, 50, [1.0, 0.0, 0.0])],
            GROUP: [
                face(100, 80, [0.0, 1.0, 0.0]),
                face(300, 60, [0.9, 0.1, 0.0]),
                face(500, 40, [0.5, 0.5, 0.5]),
            ],
        }
    )
    counter = FakeCounter()
    stats = RequestStats(counter)
    servicer = build_servicer(Authenticator(store, 5), stats, embed, no_database())
    async with serving(servicer, free_port()) as stub:
        yield Api(stub, embed, counter, stats, keys)


def key(api: Api, service_type: ServiceType) -> tuple[tuple[str, str]]:
    return (("x-api-key", api.keys[service_type]),)


async def counted(api: Api) -> list:
    """The services counted once the counts in flight have run."""
    await api.stats.drain()
    return api.counter.counted


async def test_detect_answers_compreface_fields_and_counts_the_request(api: Api) -> None:
    reply = await api.stub.DetectFaces(
        pb.DetectFacesRequest(image=image(ONE)), metadata=key(api, ServiceType.DETECTION)
    )
    [found] = as_json(reply)["result"]
    assert found["box"] == {
        "probability": 0.98765,
        "x_min": 10,
        "y_min": 10,
        "x_max": 60,
        "y_max": 60,
    }
    assert found["landmarks"] == [[25, 30], [45, 30], [35, 40], [28, 50], [43, 50]]
    assert found["detector_score"] == 0.91235  # the raw score beside the calibrated one
    assert set(found) == {"box", "landmarks", "detector_score"}
    assert "plugins_versions" not in as_json(reply)
    [(_, options)] = api.embed.calls
    assert list(options.plugins) == [embed_pb.FACE_PLUGIN_LANDMARKS]
    assert len(await counted(api)) == 1


async def test_detect_with_plugins_status_and_limit(api: Api) -> None:
    request = pb.DetectFacesRequest(
        image=image(GROUP),
        limit=2,
        det_prob_threshold=0.7,
        face_plugins="age, calculator",
        status=True,
    )
    reply = as_json(await api.stub.DetectFaces(request, metadata=key(api, ServiceType.DETECTION)))
    assert len(reply["result"]) == 2
    first = reply["result"][0]
    assert first["age"] == {"probability": 0.9, "high": 32, "low": 25}
    assert first["embedding"] == [0.0, 1.0, 0.0]
    assert first["execution_time"] == {"detector": 10.0, "calculator": 6.0}
    assert reply["plugins_versions"] == {
        "detector": "blazeface (1)",
        "calculator": "dlib-resnet-v1 (0.3.0)",
    }
    [(_, options)] = api.embed.calls
    assert options.det_prob_threshold == 0.7 and options.limit == 2
    assert set(options.plugins) == {
        embed_pb.FACE_PLUGIN_LANDMARKS,
        embed_pb.FACE_PLUGIN_AGE,
        embed_pb.FACE_PLUGIN_CALCULATOR,
    }


async def test_no_face_is_code_28_and_is_not_counted(api: Api) -> None:
    code, info = await failure(
        api.stub.DetectFaces(
            pb.DetectFacesRequest(image=image(EMPTY)), metadata=key(api, ServiceType.DETECTION)
        )
    )
    assert (code, info["compreface_code"]) == (grpc.StatusCode.INVALID_ARGUMENT, "28")
    assert await counted(api) == []


@pytest.mark.parametrize(
    ("plugins", "reason"),
    [
        ("mask", "PLUGIN_UNAVAILABLE"),
        ("age,landmarks2d106", "PLUGIN_UNAVAILABLE"),
        ("smile", "UNKNOWN_PLUGIN"),
    ],
)
async def test_plugins_without_a_model_are_refused_before_embed_svc(
    api: Api, plugins: str, reason: str
) -> None:
    _, info = await failure(
        api.stub.DetectFaces(
            pb.DetectFacesRequest(image=image(ONE), face_plugins=plugins),
            metadata=key(api, ServiceType.DETECTION),
        )
    )
    assert (info["reason"], info["compreface_code"]) == (reason, "26")
    assert api.embed.calls == []


async def test_a_negative_limit_is_code_26(api: Api) -> None:
    _, info = await failure(
        api.stub.DetectFaces(
            pb.DetectFacesRequest(image=image(ONE), limit=-1),
            metadata=key(api, ServiceType.DETECTION),
        )
    )
    assert (info["reason"], info["compreface_code"]) == ("INVALID_LIMIT", "26")


async def test_embed_svc_down_is_code_41_http_500(api: Api) -> None:
    api.embed.error = embed_unavailable()
    code, info = await failure(
        api.stub.DetectFaces(
            pb.DetectFacesRequest(image=image(ONE)), metadata=key(api, ServiceType.DETECTION)
        )
    )
    assert code == grpc.StatusCode.UNAVAILABLE
    assert (info["compreface_code"], info["http_status"]) == ("41", "500")


async def test_authentication_comes_first_and_checks_the_type(api: Api) -> None:
    request = pb.DetectFacesRequest(image=image(ONE))
    code, info = await failure(api.stub.DetectFaces(request))
    assert (code, info["compreface_code"]) == (grpc.StatusCode.UNAUTHENTICATED, "20")
    code, info = await failure(
        api.stub.DetectFaces(request, metadata=key(api, ServiceType.VERIFICATION))
    )
    assert (code, info["compreface_code"]) == (grpc.StatusCode.PERMISSION_DENIED, "10")
    code, info = await failure(
        api.stub.VerifyEmbeddings(
            pb.VerifyEmbeddingsRequest(), metadata=key(api, ServiceType.DETECTION)
        )
    )
    assert info["required_type"] == "VERIFICATION"
    assert api.embed.calls == []


async def test_a_counting_failure_does_not_fail_the_request(api: Api) -> None:
    api.counter.broken = True
    reply = await api.stub.DetectFaces(
        pb.DetectFacesRequest(image=image(ONE)), metadata=key(api, ServiceType.DETECTION)
    )
    assert len(reply.result) == 1


async def test_recognition_rpcs_authenticate_first(api: Api) -> None:
    for call in (
        api.stub.RecognizeFaces(pb.RecognizeFacesRequest(image=image(ONE))),
        api.stub.RecognizeEmbeddings(pb.RecognizeEmbeddingsRequest()),
        api.stub.RecognizeEmbeddings(
            pb.RecognizeEmbeddingsRequest(), metadata=key(api, ServiceType.DETECTION)
        ),
    ):
        code, info = await failure(call)
        assert code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
        assert info["compreface_code"] in ("20", "10")
    assert api.embed.calls == []


async def test_verify_images_ranks_target_faces_by_similarity(api: Api) -> None:
    request = pb.VerifyImagesRequest(images=two_images(ONE, GROUP), status=True)
    reply = as_json(
        await api.stub.VerifyImages(request, metadata=key(api, ServiceType.VERIFICATION))
    )
    [result] = reply["result"]
    assert result["source_image_face"]["box"]["x_min"] == 10
    assert "embedding" not in result["source_image_face"]
    matches = result["face_matches"]
    expected = similarities(
        [1, 0, 0], [[0.9, 0.1, 0.0], [0.5, 0.5, 0.5], [0.0, 1.0, 0.0]], Calibration(0.5, 10.0)
    )
    assert [m["similarity"] for m in matches] == expected
    assert [m["box"]["x_min"] for m in matches] == [300, 500, 100]
    assert result["plugins_versions"]["calculator"] == "dlib-resnet-v1 (0.3.0)"
    [(names, options)] = api.embed.calls
    assert names == ["source_image", "target_image"] and options.limit == 0
    assert await counted(api)


async def test_verify_images_limit_keeps_the_largest_target_faces(api: Api) -> None:
    request = pb.VerifyImagesRequest(
        images=two_images(ONE, GROUP), limit=1, face_plugins="calculator"
    )
    reply = as_json(
        await api.stub.VerifyImages(request, metadata=key(api, ServiceType.VERIFICATION))
    )
    [match] = reply["result"][0]["face_matches"]
    assert match["box"]["x_min"] == 100
    assert match["embedding"] == [0.0, 1.0, 0.0]
    assert reply["result"][0]["source_image_face"]["embedding"] == [1.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("source", "target", "code", "field"),
    [
        (EMPTY, ONE, "28", "source_image"),
        (GROUP, ONE, "31", "source_image"),
        (ONE, EMPTY, "28", "target_image"),
    ],
)
async def test_verify_images_needs_one_source_face_and_a_target_face(
    api: Api, source: bytes, target: bytes, code: str, field: str
) -> None:
    _, info = await failure(
        api.stub.VerifyImages(
            pb.VerifyImagesRequest(images=two_images(source, target)),
            metadata=key(api, ServiceType.VERIFICATION),
        )
    )
    assert (info["compreface_code"], info["field"]) == (code, field)


def targets(*rows: list[float]) -> list[struct_pb2.ListValue]:
    out = []
    for row in rows:
        value = struct_pb2.ListValue()
        value.extend(row)
        out.append(value)
    return out


async def test_verify_embeddings_ranks_targets(api: Api) -> None:
    request = pb.VerifyEmbeddingsRequest(source=[1, 0, 0], targets=targets([0, 1, 0], [2, 0.1, 0]))
    reply = await api.stub.VerifyEmbeddings(request, metadata=key(api, ServiceType.VERIFICATION))
    assert [list(r.embedding) for r in reply.result] == [[2, 0.1, 0], [0, 1, 0]]
    assert reply.result[0].similarity == round5(reply.result[0].similarity) > 0.99
    assert reply.result[1].similarity < 0.01


@pytest.mark.parametrize(
    ("source", "rows", "code", "reason"),
    [
        ([], [[1, 0, 0]], "37", "WRONG_EMBEDDING_COUNT"),
        ([1, 0, 0], [], "37", "WRONG_EMBEDDING_COUNT"),
        ([1, 0], [[1, 0, 0]], "26", "WRONG_EMBEDDING_SIZE"),
        ([1, 0, 0], [[1, 0, 0], [1, 0, 0, 0]], "26", "WRONG_EMBEDDING_SIZE"),
        ([0, 0, 0], [[1, 0, 0]], "26", "INVALID_EMBEDDING"),
        ([1, 0, 0], [[1, float("nan"), 0]], "26", "INVALID_EMBEDDING"),
    ],
)
async def test_verify_embeddings_refuses_bad_vectors(
    api: Api, source: list[float], rows: list[list[float]], code: str, reason: str
) -> None:
    request = pb.VerifyEmbeddingsRequest(source=source, targets=targets(*rows))
    _, info = await failure(
        api.stub.VerifyEmbeddings(request, metadata=key(api, ServiceType.VERIFICATION))
    )
    assert (info["compreface_code"], info["reason"]) == (code, reason)


def test_every_rpc_of_the_contract_is_implemented_by_the_servicer() -> None:
    service = pb.DESCRIPTOR.services_by_name["RecognitionService"]
    missing = [m.name for m in service.methods if m.name not in vars(RecognitionServicer)]
    assert missing == []

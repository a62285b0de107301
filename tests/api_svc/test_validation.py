"""Every text field of RecognitionService is checked before any work: a hostile subject name
(control characters, NUL included, only whitespace, too long, CompreFace's forbidden ``;/\\``)
or an undecodable message is a 400-type answer (code 26) with no database or embed_svc call; page
sizes are capped. The servicer runs over a pool that fails when used: a check that let a bad
value through would reach it and answer INTERNAL instead."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from api_svc.auth import Authenticator, ServiceType
from api_svc.faces import MAX_PAGE_SIZE
from api_svc.stats import RequestStats
from facegrid.errors import error_info
from facegrid.recognition.v1 import recognition_service_pb2 as pb
from facegrid.recognition.v1 import recognition_service_pb2_grpc as pb_grpc
from tests.api_svc.fakes import FakeCounter, FakeEmbed, FakeKeyStore, face
from tests.api_svc.helpers import build_servicer, no_database, serving

ONE = b"one face"

HOSTILE_NAMES = [
    "a\x00b",
    "\x00",
    "   ",
    "\t\n",
    "a\x1fb",
    "a\x7fb",
    "a\x85b",  # C1 control (NEL)
    "x" * 51,
    "a;b",
    "a/b",
    "a\\b",
]


class Api:
    def __init__(
        self, stub: pb_grpc.RecognitionServiceStub, embed: FakeEmbed, key: str, port: int
    ) -> None:
        self.stub = stub
        self.embed = embed
        self.metadata = (("x-api-key", key),)
        self.port = port


@pytest.fixture
async def api(free_port: Callable[[], int]) -> AsyncIterator[Api]:
    keys = FakeKeyStore()
    key = keys.add(ServiceType.RECOGNITION)
    embed = FakeEmbed(faces={ONE: [face(10, 50, [1.0, 0.0, 0.0])]})
    servicer = build_servicer(
        Authenticator(keys, 5), RequestStats(FakeCounter()), embed, no_database()
    )
    port = free_port()
    async with serving(servicer, port) as stub:
        yield Api(stub, embed, str(key), port)


def _calls(name: str) -> dict[str, Callable[[pb_grpc.RecognitionServiceStub], Any]]:
    image = {"content_type": "image/png", "data": ONE}
    return {
        "AddFace": lambda s: s.AddFace(pb.AddFaceRequest(image=image, subject=name)),
        "CreateSubject": lambda s: s.CreateSubject(pb.CreateSubjectRequest(subject=name)),
        "RenameSubject.subject": lambda s: s.RenameSubject(
            pb.RenameSubjectRequest(current_subject="Ann", subject=name)
        ),
        "RenameSubject.current_subject": lambda s: s.RenameSubject(
            pb.RenameSubjectRequest(current_subject=name, subject="Ann")
        ),
        "DeleteSubject": lambda s: s.DeleteSubject(pb.DeleteSubjectRequest(subject=name)),
        "ListFaces": lambda s: s.ListFaces(pb.ListFacesRequest(subject=name)),
        "DeleteFaces": lambda s: s.DeleteFaces(pb.DeleteFacesRequest(subject=name)),
    }


async def _refused(call: Any, metadata: Any) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(metadata)
    info = error_info(raised.value)
    assert info is not None, raised.value.details()
    return raised.value.code(), info.metadata["compreface_code"], info.reason


@pytest.mark.parametrize("rpc", list(_calls("")))
@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=repr)
async def test_a_hostile_subject_name_is_refused_before_any_work(
    api: Api, rpc: str, name: str
) -> None:
    call = _calls(name)[rpc]
    code, compreface, reason = await _refused(
        lambda metadata: _with_metadata(call, api.stub, metadata), api.metadata
    )
    assert (code, compreface, reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "26",
        "INVALID_SUBJECT_NAME",
    )
    assert api.embed.calls == []  # AddFace did not detect first


def _with_metadata(call: Callable[[Any], Any], stub: Any, metadata: Any) -> Any:
    """Calls ``call`` on a stub whose methods carry ``metadata``."""

    class WithKey:
        def __getattr__(self, method: str) -> Any:
            return lambda request: getattr(stub, method)(request, metadata=metadata)

    return call(WithKey())


async def test_a_page_size_over_the_cap_is_refused(api: Api) -> None:
    code, compreface, reason = await _refused(
        lambda metadata: api.stub.ListFaces(
            pb.ListFacesRequest(size=MAX_PAGE_SIZE + 1), metadata=metadata
        ),
        api.metadata,
    )
    assert (code, compreface, reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "26",
        "INVALID_PAGE_SIZE",
    )


async def test_a_message_that_is_not_utf8_is_a_client_error_not_a_500(api: Api) -> None:
    """A REST path parameter ``%FF`` reaches the service as a string field holding 0xFF."""
    raw = b"\x0a\x01\xff"  # field 1 (subject), 1 byte: not UTF-8
    async with grpc.aio.insecure_channel(f"127.0.0.1:{api.port}") as channel:
        call = channel.unary_unary(
            "/facegrid.recognition.v1.RecognitionService/CreateSubject",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(raw, metadata=api.metadata)
    info = error_info(raised.value)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info is not None and info.reason == "UNDECODABLE_REQUEST"
    assert info.metadata["compreface_code"] == "26"
    assert "DecodeError" not in (raised.value.details() or "")

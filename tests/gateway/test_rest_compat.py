"""The REST compatibility layer, end to end through a real Envoy to a fake upstream servicer.

The fake stands in for api_svc so that each edge mechanism is checked on its own: HttpBody for
multipart, path/query/body binding, top-level JSON arrays, ListValue nesting, proto3 JSON
printing, success status from metadata (201) and CompreFace-shaped errors and status codes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from facegrid.common.v1 import common_pb2
from facegrid.errors import ServiceError, abort, invalid_argument, set_http_status
from facegrid.node_header import NODE_HEADER
from facegrid.recognition.v1 import recognition_service_pb2 as pb
from facegrid.recognition.v1 import recognition_service_pb2_grpc as pb_grpc
from facegrid.server import start_server, stop_server
from gateway.render import GatewayPorts
from tests.helpers.rest_client import Reply, call

NODE = "api_svc-3"

pytestmark = pytest.mark.integration


class FakeRecognition(pb_grpc.RecognitionServiceServicer):
    """Answers from what it received, so the test sees what crossed the edge."""

    async def AddFace(self, request: pb.AddFaceRequest, context: Any) -> pb.AddFaceResponse:
        await set_http_status(context, 201)
        return pb.AddFaceResponse(
            image_id=request.image.content_type.split(";")[0],
            subject=f"{request.subject}:{len(request.image.data)}:"
            f"{request.HasField('det_prob_threshold')}",
        )

    async def ListFaces(self, request: pb.ListFacesRequest, context: Any) -> pb.ListFacesResponse:
        return pb.ListFacesResponse(page_number=request.page, page_size=request.size)

    async def DeleteFacesByIds(
        self, request: pb.DeleteFacesByIdsRequest, context: Any
    ) -> struct_pb2.ListValue:
        out = struct_pb2.ListValue()
        for image_id in request.image_ids:
            out.add_struct().update({"image_id": image_id, "subject": "s"})
        return out

    async def RenameSubject(
        self, request: pb.RenameSubjectRequest, context: Any
    ) -> pb.RenameSubjectResponse:
        return pb.RenameSubjectResponse(
            updated=request.current_subject == "old name" and request.subject == "new"
        )

    async def ListSubjects(
        self, request: pb.ListSubjectsRequest, context: Any
    ) -> pb.ListSubjectsResponse:
        metadata = dict(context.invocation_metadata())
        return pb.ListSubjectsResponse(
            subjects=[metadata.get("x-api-key", ""), metadata.get("x-request-id", "")]
        )

    async def DetectFaces(self, request: pb.DetectFacesRequest, context: Any) -> Any:
        face = pb.DetectedFace(box=common_pb2.Box(probability=0.99, x_min=1, y_max=9))
        for x, y in ((1.5, 2.0), (3.0, 4.0)):
            face.landmarks.add_list().extend([x, y])
        return pb.DetectFacesResponse(result=[face])

    async def RecognizeFaces(self, request: Any, context: Any) -> Any:
        await abort(context, invalid_argument("NO_FACE_DETECTED", 'No face "found"', 28))

    async def DeleteSubjects(self, request: Any, context: Any) -> Any:
        await abort(
            context,
            ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "WRITES_BLOCKED",
                "migrating",
                32,
                http_status=405,
            ),
        )


#: The request body limit of the edge under test (not the default, to see it rendered).
MAX_REQUEST_BYTES = 1024 * 1024


@pytest.fixture
async def edge(
    free_port: Callable[[], int], start_envoy: Callable[[GatewayPorts], str]
) -> AsyncIterator[str]:
    running = await start_server(
        host="127.0.0.1",
        port=free_port(),
        register=lambda server: pb_grpc.add_RecognitionServiceServicer_to_server(
            FakeRecognition(), server
        ),
        service_names=["facegrid.recognition.v1.RecognitionService"],
        node_name=NODE,
    )
    await running.set_serving(True)
    ports = GatewayPorts(
        listen_port=free_port(),
        admin_port=free_port(),
        api_port=running.port,
        embed_port=free_port(),
        admin_svc_port=free_port(),
        services=("facegrid.recognition.v1.RecognitionService",),
        max_request_bytes=MAX_REQUEST_BYTES,
    )
    base = await asyncio.to_thread(start_envoy, ports)
    yield base
    await stop_server(running, 0)


async def rest(method: str, url: str, **kwargs: Any) -> Reply:
    return await asyncio.to_thread(call, method, url, **kwargs)


async def test_multipart_reaches_http_body_with_query_params_and_201(edge: str) -> None:
    reply = await rest(
        "POST",
        f"{edge}/api/v1/recognition/faces",
        files={"file": ("a.jpg", b"\xff\xd8jpegbytes", "image/jpeg")},
        query={"subject": "Ann Lee", "det_prob_threshold": "0.8"},
    )
    assert reply.status == 201
    assert reply.headers[NODE_HEADER] == NODE
    body = reply.json()
    assert body["image_id"] == "multipart/form-data"
    subject, size, has_threshold = body["subject"].split(":")
    assert subject == "Ann Lee" and int(size) > 11 and has_threshold == "True"
    assert "x-http-status" not in reply.headers


async def test_proto3_json_prints_zero_counts_as_numbers(edge: str) -> None:
    reply = await rest("GET", f"{edge}/api/v1/recognition/faces", query={"page": "2"})
    assert reply.status == 200
    assert reply.json() == {
        "faces": [],
        "page_number": 2,
        "page_size": 0,
        "total_pages": 0,
        "total_elements": 0,
    }


async def test_top_level_json_arrays_in_and_out(edge: str) -> None:
    reply = await rest("POST", f"{edge}/api/v1/recognition/faces/delete", json=["a", "b"])
    assert reply.status == 200
    assert reply.json() == [{"image_id": "a", "subject": "s"}, {"image_id": "b", "subject": "s"}]


async def test_path_variable_is_decoded_and_body_binds_the_new_name(edge: str) -> None:
    reply = await rest(
        "PUT", f"{edge}/api/v1/recognition/subjects/old%20name", json={"subject": "new"}
    )
    assert reply.json() == {"updated": True}


async def test_headers_arrive_as_metadata_with_a_request_id(edge: str) -> None:
    reply = await rest("GET", f"{edge}/api/v1/recognition/subjects", headers={"x-api-key": "k-123"})
    api_key, request_id = reply.json()["subjects"]
    assert api_key == "k-123"
    assert len(request_id) >= 16


async def test_optional_arrays_are_absent_and_landmarks_nest(edge: str) -> None:
    reply = await rest(
        "POST",
        f"{edge}/api/v1/detection/detect",
        raw=b"img",
        headers={"content-type": "image/jpeg"},
    )
    (face,) = reply.json()["result"]
    assert face["landmarks"] == [[1.5, 2.0], [3.0, 4.0]]
    assert face["box"] == {"probability": 0.99, "x_min": 1, "y_min": 0, "x_max": 0, "y_max": 9}
    assert "embedding" not in face and "execution_time" not in face and "age" not in face


async def test_service_error_becomes_compreface_body(edge: str) -> None:
    reply = await rest("POST", f"{edge}/api/v1/recognition/recognize", raw=b"x")
    assert reply.status == 400
    assert reply.json() == {"message": 'No face "found"', "code": 28}
    assert reply.headers[NODE_HEADER] == NODE


async def test_http_status_override_for_blocked_writes(edge: str) -> None:
    reply = await rest("DELETE", f"{edge}/api/v1/recognition/subjects")
    assert reply.status == 405
    assert reply.json() == {"message": "migrating", "code": 32}


async def test_envoy_own_errors_are_compreface_shaped(edge: str) -> None:
    unknown = await rest("GET", f"{edge}/api/v1/no/such/path")
    assert unknown.status == 404
    assert unknown.json()["code"] == 0 and "/api/v1/no/such/path" in unknown.json()["message"]
    malformed = await rest(
        "POST",
        f"{edge}/api/v1/recognition/subjects",
        raw=b'{"subject": oops',
        headers={"content-type": "application/json"},
    )
    assert malformed.status == 400
    assert malformed.json()["code"] == 26


async def test_a_body_over_the_configured_limit_names_that_limit(edge: str) -> None:
    reply = await rest(
        "POST", f"{edge}/api/v1/recognition/recognize", raw=b"x" * (MAX_REQUEST_BYTES + 1)
    )
    assert reply.status == 413
    assert reply.json() == {
        "message": "Request body too large: the limit is 1 MB per request on this path",
        "code": 26,
    }


async def test_an_error_without_a_body_passes_the_filter(edge: str, short_tmp: Path) -> None:
    reply = await rest("HEAD", f"{edge}/api/v1/recognition/recognize")
    assert reply.status >= 400 and reply.body == b""
    port = edge.rsplit(":", 1)[1]
    log = (short_tmp / f"envoy-{port}.log").read_text()
    assert "lua" not in log.lower(), log[-2000:]


async def test_grpc_clients_get_grpc_answers_from_rpcs_that_set_an_http_status(edge: str) -> None:
    """The 201 meant for REST must not become the HTTP/2 status of a gRPC response."""
    target = edge.removeprefix("http://")
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.RecognitionServiceStub(channel)
        reply = await stub.AddFace(
            pb.AddFaceRequest(subject="Ann", image={"content_type": "image/jpeg", "data": b"x"})
        )
        assert (reply.image_id, reply.subject) == ("image/jpeg", "Ann:1:False")
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.DeleteSubjects(pb.DeleteSubjectsRequest())
        assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION

"""The mesh as a new user meets it: every process healthy, every CompreFace path routed."""

from __future__ import annotations

import json

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facegrid.embedding.v1 import embedding_service_pb2, embedding_service_pb2_grpc
from facegrid.errors import error_info
from facegrid.recognition.v1 import recognition_service_pb2, recognition_service_pb2_grpc
from launcher.readiness import http_ok
from tests.helpers.rest_client import call
from tests.launcher.helpers import MeshHandle

pytestmark = pytest.mark.integration

IMAGE = {"file": ("face.jpg", b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg")}
TWO_IMAGES = {
    "source_image": ("a.jpg", b"\xff\xd8a", "image/jpeg"),
    "target_image": ("b.jpg", b"\xff\xd8b", "image/jpeg"),
}
IMAGE_ID = "9f2b1c4e-8a3d-4f6b-9c1e-2d3f4a5b6c7d"

# (method, path, request kwargs, RPC expected to be reached): the 18 CompreFace REST paths.
COMPREFACE_PATHS = [
    ("POST", "/api/v1/recognition/faces", {"files": IMAGE, "query": {"subject": "a"}}, "AddFace"),
    ("GET", "/api/v1/recognition/faces", {"query": {"page": "0", "size": "5"}}, "ListFaces"),
    ("DELETE", "/api/v1/recognition/faces", {"query": {"subject": "a"}}, "DeleteFaces"),
    ("DELETE", f"/api/v1/recognition/faces/{IMAGE_ID}", {}, "DeleteFace"),
    ("POST", "/api/v1/recognition/faces/delete", {"json": [IMAGE_ID]}, "DeleteFacesByIds"),
    ("GET", f"/api/v1/recognition/faces/{IMAGE_ID}/img", {}, "GetFaceImage"),
    (
        "POST",
        "/api/v1/recognition/recognize",
        {"files": IMAGE, "query": {"limit": "1"}},
        "RecognizeFaces",
    ),
    ("POST", f"/api/v1/recognition/faces/{IMAGE_ID}/verify", {"files": IMAGE}, "VerifyAgainstFace"),
    (
        "POST",
        "/api/v1/recognition/embeddings/recognize",
        {"json": {"embeddings": [[0.1, 0.2]]}},
        "RecognizeEmbeddings",
    ),
    (
        "POST",
        f"/api/v1/recognition/embeddings/faces/{IMAGE_ID}/verify",
        {"json": {"embeddings": [[0.1, 0.2]]}},
        "VerifyEmbeddingsAgainstFace",
    ),
    ("POST", "/api/v1/recognition/subjects", {"json": {"subject": "a"}}, "CreateSubject"),
    ("GET", "/api/v1/recognition/subjects", {}, "ListSubjects"),
    ("PUT", "/api/v1/recognition/subjects/a", {"json": {"subject": "b"}}, "RenameSubject"),
    ("DELETE", "/api/v1/recognition/subjects/a", {}, "DeleteSubject"),
    ("DELETE", "/api/v1/recognition/subjects", {}, "DeleteSubjects"),
    ("POST", "/api/v1/detection/detect", {"files": IMAGE}, "DetectFaces"),
    ("POST", "/api/v1/verification/verify", {"files": TWO_IMAGES}, "VerifyImages"),
    (
        "POST",
        "/api/v1/verification/embeddings/verify",
        {"json": {"source": [0.1, 0.2], "targets": [[0.1, 0.2]]}},
        "VerifyEmbeddings",
    ),
]


# Facegrid's own paths beyond CompreFace's.
EXTENSION_PATHS = [
    (
        "POST",
        "/api/v1/recognition/faces/bulk",
        {"json": [{"subject": "a", "file": "AAAA"}]},
        "BulkAddFaces",
    ),
]

#: Every RPC is served (test_mesh_api_svc.py, test_mesh_face_store.py,
#: test_mesh_recognition.py, test_mesh_bulk.py): none answers 501 any more.
IMPLEMENTED_PATHS = COMPREFACE_PATHS + EXTENSION_PATHS


def test_the_contract_has_exactly_these_paths() -> None:
    service = recognition_service_pb2.DESCRIPTOR.services_by_name["RecognitionService"]
    assert sorted(m.name for m in service.methods) == sorted(p[3] for p in IMPLEMENTED_PATHS)


@pytest.mark.parametrize("service", ["api", "embed", "admin"])
def test_every_service_reports_serving(mesh: MeshHandle, service: str) -> None:
    with grpc.insecure_channel(getattr(mesh, service)) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_triton_and_envoy_are_ready(mesh: MeshHandle) -> None:
    assert http_ok(f"{mesh.triton_http}/v2/health/ready")
    assert http_ok(f"{mesh.rest}/healthz")
    assert http_ok(f"{mesh.rest}/ready")


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "rpc"),
    IMPLEMENTED_PATHS,
    ids=[p[3] for p in IMPLEMENTED_PATHS],
)
def test_implemented_compreface_path_authenticates_first(
    mesh: MeshHandle, method: str, path: str, kwargs: dict, rpc: str
) -> None:
    reply = call(method, mesh.rest + path, headers={"x-api-key": IMAGE_ID}, **kwargs)
    assert reply.status == 404, reply.body
    assert reply.json()["code"] == 10


def test_unknown_path_is_a_clean_404(mesh: MeshHandle) -> None:
    reply = call("GET", f"{mesh.rest}/api/v1/recognition/nothing/here")
    assert reply.status == 404
    assert reply.json()["code"] == 0
    assert "/api/v1/recognition/nothing/here" in reply.json()["message"]


def test_malformed_json_is_a_clean_400(mesh: MeshHandle) -> None:
    reply = call(
        "POST",
        f"{mesh.rest}/api/v1/recognition/subjects",
        raw=b'{"subject": ',
        headers={"content-type": "application/json"},
    )
    assert reply.status == 400
    assert reply.json()["code"] == 26


def test_grpc_clients_reach_recognition_through_envoy(mesh: MeshHandle) -> None:
    with grpc.insecure_channel(mesh.envoy_grpc) as channel:
        stub = recognition_service_pb2_grpc.RecognitionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.RecognizeEmbeddings(
                recognition_service_pb2.RecognizeEmbeddingsRequest(),
                metadata=(("x-api-key", IMAGE_ID),),
                timeout=10,
            )
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    info = error_info(raised.value)
    assert info is not None and info.metadata["compreface_code"] == "10"


def test_embed_service_is_internal(mesh: MeshHandle) -> None:
    request = embedding_service_pb2.GetStatusRequest()
    with grpc.insecure_channel(mesh.embed) as channel:
        direct = embedding_service_pb2_grpc.EmbeddingServiceStub(channel).GetStatus(
            request, timeout=10
        )
    assert direct.backend == "triton"
    with grpc.insecure_channel(mesh.envoy_grpc) as channel:
        stub = embedding_service_pb2_grpc.EmbeddingServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetStatus(request, timeout=10)
    assert raised.value.code() in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND)


def test_every_process_logs_structured_lines(mesh: MeshHandle) -> None:
    for name in ("api_svc-0", "embed_svc-0", "admin_svc"):
        lines = (mesh.data_dir / "logs" / f"{name}.log").read_text().splitlines()
        events = [json.loads(line) for line in lines if line.startswith("{")]
        assert events, f"{name} logged no JSON events"
        assert all(e.get("service") == name.split("-")[0] for e in events)

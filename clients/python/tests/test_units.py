"""The client without a mesh: images, targets, the retry config, bulk items, and calls to an
in-process gRPC server standing in for Facegrid (retries, deadlines, TLS, error details)."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest
from facegrid_client import (
    AsyncFacegrid,
    EmbeddingItem,
    Facegrid,
    FacegridError,
    FaceItem,
    Retry,
    pb,
)
from facegrid_client._calls import idempotent_methods
from facegrid_client.bulk import bulk_request
from facegrid_client.channel import parse_target, service_config
from facegrid_client.images import content_type, read_image
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from PIL import Image

RECOGNITION = "facegrid.recognition.v1.RecognitionService"


def png(mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (8, 6), "red" if mode == "RGB" else 128).save(buffer, format="PNG")
    return buffer.getvalue()


def test_content_types_are_told_from_the_first_bytes():
    assert content_type(png()) == "image/png"
    assert content_type(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert content_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert content_type(b"GIF89a...") == "image/gif"
    assert content_type(b"something else") == "application/octet-stream"


def test_images_from_a_path_bytes_or_an_array(tmp_path: Path):
    data = png()
    path = tmp_path / "red.png"
    path.write_bytes(data)
    assert read_image(path) == (data, "image/png")
    assert read_image(str(path)) == (data, "image/png")
    assert read_image(bytearray(data)) == (data, "image/png")
    array = np.zeros((6, 8, 3), dtype=np.uint8)
    array[..., 0] = 255
    encoded, media_type = read_image(array)
    assert media_type == "image/png"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encoded))), array)
    grey, _ = read_image(np.full((6, 8, 1), 7, dtype=np.uint8))
    assert Image.open(io.BytesIO(grey)).mode == "L"


def test_bad_images_are_refused_before_any_call(tmp_path: Path):
    with pytest.raises(TypeError, match="uint8"):
        read_image(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        read_image(np.zeros((4, 4, 2), dtype=np.uint8))
    with pytest.raises(TypeError, match="file path, bytes or a numpy array"):
        read_image(12)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        read_image(b"")
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "missing.jpg")


@pytest.mark.parametrize(
    ("target", "address", "tls"),
    [
        ("127.0.0.1:8000", "127.0.0.1:8000", False),
        ("https://faces.example.com", "faces.example.com:443", True),
        ("grpcs://faces.example.com:8443/", "faces.example.com:8443", True),
        ("http://localhost:8000", "localhost:8000", False),
        ("http://[::1]", "[::1]:80", False),
        (
            "dns:///api-svc.faces.svc.cluster.local:50051",
            "dns:///api-svc.faces.svc.cluster.local:50051",
            False,
        ),
    ],
)
def test_targets(target: str, address: str, tls: bool):
    parsed = parse_target(target)
    assert (parsed.address, parsed.tls) == (address, tls)


def test_a_target_and_tls_that_disagree_are_refused():
    with pytest.raises(ValueError, match="plaintext"):
        parse_target("http://localhost:8000", tls=True)
    assert parse_target("localhost:8443", tls=True).tls


def test_only_calls_that_change_nothing_are_retried():
    config = json.loads(service_config(Retry(attempts=3), idempotent_methods(), "round_robin"))
    [method_config] = config["methodConfig"]
    names = {n["method"] for n in method_config["name"] if n["service"] == RECOGNITION}
    assert {"DetectFaces", "RecognizeFaces", "VerifyImages", "ListFaces", "ListSubjects"} <= names
    assert not names & {"AddFace", "BulkAddFaces", "DeleteFace", "DeleteSubjects", "RenameSubject"}
    admin = {n["method"] for n in method_config["name"] if n["service"] != RECOGNITION}
    assert "ListServices" in admin and not admin & {"SignIn", "CreateService", "RotateApiKey"}
    assert method_config["retryPolicy"]["maxAttempts"] == 3
    assert method_config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    assert "methodConfig" not in json.loads(service_config(None, idempotent_methods()))
    with pytest.raises(ValueError):
        Retry(attempts=9)


def test_bulk_items_become_stream_messages(tmp_path: Path):
    path = tmp_path / "ann.png"
    path.write_bytes(png())
    face = bulk_request(FaceItem("Ann", path, det_prob_threshold=0.7))
    assert (face.subject, face.client_key, face.content_type) == ("Ann", str(path), "image/png")
    assert face.file == png() and face.det_prob_threshold == pytest.approx(0.7)
    vector = bulk_request(EmbeddingItem("Bo", np.ones(3), "dlib-resnet-v1", client_key="b"))
    assert vector.WhichOneof("face") == "embedding"
    assert list(vector.embedding.values) == [1.0, 1.0, 1.0]
    raw = pb.recognition.BulkAddFacesRequest(subject="C", file=b"x")
    assert bulk_request(raw) is raw
    with pytest.raises(TypeError):
        bulk_request("Ann")  # type: ignore[arg-type]


@dataclass
class Fake(pb.recognition_grpc.RecognitionServiceServicer):
    """Answers ListSubjects after ``failures`` UNAVAILABLE answers; AddFace always fails with
    UNAVAILABLE; DetectFaces waits for ``release``; DeleteFace refuses with an ErrorInfo."""

    failures: int = 0
    calls: dict[str, int] = field(default_factory=dict)
    metadata: list[dict[str, str | bytes]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def _count(self, name: str, context: grpc.ServicerContext) -> int:
        self.calls[name] = self.calls.get(name, 0) + 1
        self.metadata.append(dict(context.invocation_metadata()))
        return self.calls[name]

    def ListSubjects(self, request, context):
        if self._count("ListSubjects", context) <= self.failures:
            context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
        return pb.recognition.ListSubjectsResponse(subjects=["Ann"])

    def AddFace(self, request, context):
        self._count("AddFace", context)
        context.abort(grpc.StatusCode.UNAVAILABLE, "try again")

    def DetectFaces(self, request, context):
        self._count("DetectFaces", context)
        self.release.wait(30)
        return pb.recognition.DetectFacesResponse()

    def DeleteFace(self, request, context):
        self._count("DeleteFace", context)
        info = error_details_pb2.ErrorInfo(
            reason="FACE_NOT_FOUND",
            domain="facegrid.dev",
            metadata={"compreface_code": "44", "http_status": "404", "image_id": "x"},
        )
        detail = any_pb2.Any()
        detail.Pack(info)
        status = status_pb2.Status(
            code=code_pb2.NOT_FOUND, message="Face x is not found", details=[detail]
        )
        context.abort_with_status(rpc_status.to_status(status))


@pytest.fixture
def fake() -> Iterator[tuple[Fake, grpc.Server, int]]:
    servicer = Fake()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb.recognition_grpc.add_RecognitionServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, server, port
    servicer.release.set()
    server.stop(None)


FAST = Retry(attempts=3, initial_backoff_s=0.01, max_backoff_s=0.02)


def test_idempotent_calls_are_retried_and_writes_are_not(fake):
    servicer, _, port = fake
    servicer.failures = 2
    with Facegrid(f"127.0.0.1:{port}", api_key="k", retry=FAST) as fg:
        assert fg.list_subjects() == ["Ann"]
        assert servicer.calls["ListSubjects"] == 3
        with pytest.raises(FacegridError) as error:
            fg.add_face("Ann", png())
    assert error.value.code == grpc.StatusCode.UNAVAILABLE
    assert servicer.calls["AddFace"] == 1


def test_retries_can_be_turned_off(fake):
    servicer, _, port = fake
    servicer.failures = 1
    with Facegrid(f"127.0.0.1:{port}", retry=None) as fg, pytest.raises(FacegridError):
        fg.list_subjects()
    assert servicer.calls["ListSubjects"] == 1


def test_the_deadline_is_the_clients_or_a_derived_clients(fake):
    servicer, _, port = fake
    with Facegrid(f"127.0.0.1:{port}", timeout=0.2) as fg:
        with pytest.raises(FacegridError) as error:
            fg.detect(png())
        assert error.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        servicer.release.set()
        assert list(fg.with_options(timeout=None).detect(png()).result) == []


def test_credentials_are_sent_and_derived_clients_share_the_channel(fake):
    servicer, _, port = fake
    with Facegrid(f"127.0.0.1:{port}", api_key="key-1") as fg:
        fg.list_subjects()
        fg.with_options(api_key=None, token="tok").list_subjects()
    first, second = servicer.metadata
    assert first["x-api-key"] == "key-1" and "authorization" not in first
    assert second["authorization"] == "Bearer tok" and "x-api-key" not in second


def test_error_details_become_the_exceptions_fields(fake):
    _, _, port = fake
    with Facegrid(f"127.0.0.1:{port}") as fg, pytest.raises(FacegridError) as error:
        fg.delete_face("x")
    assert error.value.code == grpc.StatusCode.NOT_FOUND
    assert (error.value.reason, error.value.compreface_code, error.value.http_status) == (
        "FACE_NOT_FOUND",
        44,
        404,
    )
    assert error.value.metadata["image_id"] == "x"
    assert str(error.value) == "FACE_NOT_FOUND: Face x is not found (CompreFace code 44)"


def test_the_async_client_retries_and_raises_the_same_way(fake):
    servicer, _, port = fake
    servicer.failures = 1

    async def scenario() -> None:
        async with AsyncFacegrid(f"127.0.0.1:{port}", retry=FAST) as fg:
            assert await fg.list_subjects() == ["Ann"]
            with pytest.raises(FacegridError) as error:
                await fg.delete_face("x")
            assert error.value.compreface_code == 44

    asyncio.run(scenario())
    assert servicer.calls["ListSubjects"] == 2


def test_tls_channels_check_the_servers_certificate(tmp_path: Path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = Fake()
    pb.recognition_grpc.add_RecognitionServiceServicer_to_server(servicer, server)
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    port = server.add_secure_port("localhost:0", credentials)
    server.start()
    try:
        trusted = Facegrid(f"localhost:{port}", root_certificates=cert.read_bytes())
        with trusted as fg:
            assert fg.list_subjects() == ["Ann"]
        untrusted = Facegrid(f"https://localhost:{port}", retry=None, timeout=5)
        with untrusted, pytest.raises(FacegridError) as error:
            untrusted.list_subjects()
        assert error.value.code == grpc.StatusCode.UNAVAILABLE
        plaintext = Facegrid(f"localhost:{port}", retry=None, timeout=5)
        with plaintext, pytest.raises(FacegridError):
            plaintext.list_subjects()
    finally:
        server.stop(None)
    assert servicer.calls["ListSubjects"] == 1

"""A real mesh of 2 api_svc and 2 embed_svc nodes started by the launcher: the nodes share one
collection (enrol, rename and delete through one node's own port show on the other), Envoy
balances over both api_svc nodes, and a SIGKILLed api_svc or embed_svc node costs no request
while the launcher restarts it."""

from __future__ import annotations

import io
import os
import re
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from google.api import httpbody_pb2
from PIL import Image, ImageOps

from facegrid.node_header import NODE_HEADER
from facegrid.recognition.v1 import recognition_service_pb2 as pb
from facegrid.recognition.v1 import recognition_service_pb2_grpc as pb_grpc
from launcher.readiness import http_ok
from tests.helpers.photos import astronaut_png
from tests.helpers.rest_client import Reply, call
from tests.helpers.wait import wait_for_value
from tests.launcher.helpers import MeshHandle, running_mesh

pytestmark = pytest.mark.integration

T = TypeVar("T")
RECOGNIZE = "/api/v1/recognition/recognize"


def eventually(probe: Callable[[], T | None], what: str, timeout_s: float = 60.0) -> T:
    """Polls ``probe`` until it returns something other than None (bounded by ``timeout_s``)."""
    return wait_for_value(probe, timeout_s, what, interval_s=0.1)


@pytest.fixture(scope="module")
def mesh2(short_tmp: Path) -> Iterator[MeshHandle]:
    with running_mesh(short_tmp / "scale", api_nodes=2, embed_nodes=2) as handle:
        yield handle


@pytest.fixture(scope="module")
def key(mesh2: MeshHandle) -> str:
    """The demo RECOGNITION key admin_svc announced at first start."""
    text = (mesh2.data_dir / "logs" / "admin_svc.log").read_text()
    found = re.search(r"^\s+RECOGNITION\s+\S+\s+(\S+)$", text, re.M)
    assert found is not None, text[-2000:]
    return found.group(1)


@pytest.fixture(scope="module")
def faces() -> dict[str, bytes]:
    """The astronaut to enrol and her mirror image to recognise."""
    astronaut = astronaut_png()
    mirrored = io.BytesIO()
    ImageOps.mirror(Image.open(io.BytesIO(astronaut))).save(mirrored, format="PNG")
    return {"enrol": astronaut, "probe": mirrored.getvalue()}


@pytest.fixture(scope="module")
def nodes(mesh2: MeshHandle) -> Iterator[list[pb_grpc.RecognitionServiceStub]]:
    """A stub on each api_svc node's own port."""
    channels = [grpc.insecure_channel(address) for address in mesh2.api_nodes]
    yield [pb_grpc.RecognitionServiceStub(channel) for channel in channels]
    for channel in channels:
        channel.close()


def _image(data: bytes) -> httpbody_pb2.HttpBody:
    return httpbody_pb2.HttpBody(content_type="image/png", data=data)


def _recognised(stub: pb_grpc.RecognitionServiceStub, key: str, probe: bytes) -> list[str]:
    """The subjects the node finds for the face in ``probe`` (best first)."""
    reply = stub.RecognizeFaces(
        pb.RecognizeFacesRequest(image=_image(probe), prediction_count=3),
        metadata=(("x-api-key", key),),
        timeout=60,
    )
    (face,) = reply.result
    return [s.subject for s in face.subjects]


def _finds(
    stub: pb_grpc.RecognitionServiceStub, key: str, probe: bytes, name: str, present: bool = True
) -> Callable[[], bool | None]:
    """A probe for :func:`eventually`: whether the node finds (or no longer finds) ``name``."""
    return lambda: True if (name in _recognised(stub, key, probe)) == present else None


def test_each_node_names_itself(
    mesh2: MeshHandle, nodes: list[pb_grpc.RecognitionServiceStub], key: str
) -> None:
    for i, stub in enumerate(nodes):
        _, call_ = stub.ListSubjects.with_call(
            pb.ListSubjectsRequest(), metadata=(("x-api-key", key),), timeout=10
        )
        assert dict(call_.initial_metadata())[NODE_HEADER] == f"api_svc-{i}"


def test_enrol_rename_and_delete_through_one_node_show_on_both(
    nodes: list[pb_grpc.RecognitionServiceStub], key: str, faces: dict[str, bytes]
) -> None:
    first, second = nodes
    metadata = (("x-api-key", key),)
    subject = f"Eileen {uuid.uuid4().hex[:8]}"
    added = first.AddFace(
        pb.AddFaceRequest(image=_image(faces["enrol"]), subject=subject),
        metadata=metadata,
        timeout=60,
    )

    def found(stub: pb_grpc.RecognitionServiceStub, name: str) -> Callable[[], bool | None]:
        return _finds(stub, key, faces["probe"], name)

    def gone(stub: pb_grpc.RecognitionServiceStub, name: str) -> Callable[[], bool | None]:
        return _finds(stub, key, faces["probe"], name, present=False)

    for stub in (second, first):
        eventually(found(stub, subject), "enrolled face found on each node")

    renamed = f"{subject} Collins"
    reply = second.RenameSubject(
        pb.RenameSubjectRequest(current_subject=subject, subject=renamed),
        metadata=metadata,
        timeout=30,
    )
    assert reply.updated
    for stub in (first, second):
        eventually(found(stub, renamed), "the new name on each node")
        assert subject not in _recognised(stub, key, faces["probe"])

    first.DeleteFace(pb.DeleteFaceRequest(image_id=added.image_id), metadata=metadata, timeout=30)

    for stub in (second, first):
        eventually(gone(stub, renamed), "deleted face gone from each node")


def _recognise_through_envoy(mesh: MeshHandle, key: str, probe: bytes) -> Reply:
    return call(
        "POST",
        mesh.rest + RECOGNIZE,
        headers={"x-api-key": key},
        files={"file": ("probe.png", probe, "image/png")},
    )


def test_envoy_balances_over_both_api_nodes(
    mesh2: MeshHandle, key: str, faces: dict[str, bytes]
) -> None:
    seen: set[str] = set()
    for _ in range(40):  # round robin: two calls normally suffice
        reply = _recognise_through_envoy(mesh2, key, faces["probe"])
        assert reply.status == 200, reply.body
        seen.add(reply.headers[NODE_HEADER])
        if len(seen) == 2:
            break
    assert seen == {"api_svc-0", "api_svc-1"}


def _events(mesh: MeshHandle, process: str, event: str) -> list[dict[str, object]]:
    return [
        e for e in mesh.launcher_events() if e.get("process") == process and e.get("event") == event
    ]


def test_a_killed_api_node_costs_no_request_and_comes_back(
    mesh2: MeshHandle, key: str, faces: dict[str, bytes]
) -> None:
    restarts_before = len(_events(mesh2, "api_svc-1", "process_restarted"))
    os.kill(mesh2.pid("api_svc-1"), signal.SIGKILL)
    served: list[str] = []

    def back() -> bool | None:
        reply = _recognise_through_envoy(mesh2, key, faces["probe"])
        assert reply.status == 200, (reply.status, reply.body)  # every request succeeds
        served.append(reply.headers[NODE_HEADER])
        return True if served[-1] == "api_svc-1" else None

    eventually(back, "api_svc-1 restarted and serving again", timeout_s=120)
    assert "api_svc-0" in served, "the survivor served while api_svc-1 was down"
    assert len(_events(mesh2, "api_svc-1", "process_restarted")) == restarts_before + 1
    (exited, *_) = _events(mesh2, "api_svc-1", "process_exited")[::-1]
    assert exited["code"] == -signal.SIGKILL


def _analyses_since_start(log: Path) -> int:
    """AnalyzeImages calls a node served since its latest start (its log is appended to)."""
    lines = log.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if '"grpc_server_started"' in line]
    since = lines[starts[-1] :] if starts else []
    return sum('"rpc_finished"' in line and "AnalyzeImages" in line for line in since)


def test_a_killed_embed_node_costs_no_request_and_comes_back(
    mesh2: MeshHandle, key: str, faces: dict[str, bytes]
) -> None:
    log = mesh2.data_dir / "logs" / "embed_svc-1.log"
    restarts_before = len(_events(mesh2, "embed_svc-1", "process_restarted"))
    os.kill(mesh2.pid("embed_svc-1"), signal.SIGKILL)
    requests = 0

    def restarted_node_serves() -> bool | None:
        nonlocal requests
        reply = _recognise_through_envoy(mesh2, key, faces["probe"])
        assert reply.status == 200, (reply.status, reply.body)  # every request succeeds
        requests += 1
        restarted = len(_events(mesh2, "embed_svc-1", "process_restarted")) > restarts_before
        return True if restarted and _analyses_since_start(log) > 0 else None

    eventually(restarted_node_serves, "embed_svc-1 restarted and serving again", timeout_s=120)
    assert requests > 1, "requests went on through embed_svc-0 while embed_svc-1 was down"


def test_a_killed_postgres_is_restarted_and_both_nodes_serve_writes_again(
    mesh2: MeshHandle,
    nodes: list[pb_grpc.RecognitionServiceStub],
    key: str,
    faces: dict[str, bytes],
) -> None:
    restarts_before = len(_events(mesh2, "postgres", "process_restarted"))
    ready_before = len(_events(mesh2, "postgres", "process_ready"))
    os.kill(mesh2.pid("postgres"), signal.SIGKILL)
    eventually(
        lambda: True if len(_events(mesh2, "postgres", "process_ready")) > ready_before else None,
        "PostgreSQL restarted and ready",
    )
    assert len(_events(mesh2, "postgres", "process_restarted")) == restarts_before + 1
    eventually(lambda: True if http_ok(f"{mesh2.rest}/ready") else None, "/ready again")
    subject = f"after the outage {uuid.uuid4().hex[:8]}"

    def enrolled() -> Reply | None:
        reply = call(
            "POST",
            mesh2.rest + "/api/v1/recognition/faces",
            headers={"x-api-key": key},
            files={"file": ("a.png", faces["enrol"], "image/png")},
            query={"subject": subject},
        )
        return reply if reply.status == 201 else None

    eventually(enrolled, "an enrolment through Envoy succeeds")
    for stub in nodes:  # each node's LISTEN connection came back and follows changes again
        eventually(_finds(stub, key, faces["probe"], subject), "the new face found on each node")

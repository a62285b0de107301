"""A real mesh of 2 api_svc and 2 embed_svc nodes started by the launcher: the nodes share one
collection (enrol, rename and delete through one node's own port show on the other), Envoy
balances over both api_svc nodes, and each process SIGKILLed in turn under a bounded request loop
(an api_svc node, an embed_svc node, PostgreSQL, Triton, admin_svc, Envoy) is restarted while
the others serve: readiness tells the truth meanwhile, every refusal is CompreFace-shaped, and
every acknowledged write is stored."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import grpc
import pytest
from google.api import httpbody_pb2
from PIL import Image, ImageOps
from prometheus_client.parser import text_string_to_metric_families

from facegrid.config import METRICS_PORT_OFFSET
from facegrid.node_header import NODE_HEADER
from facegrid.recognition.v1 import recognition_service_pb2 as pb
from facegrid.recognition.v1 import recognition_service_pb2_grpc as pb_grpc
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


#: Restart delays long enough that an outage is seen by readiness (health checks every second,
#: two failures to mark a host down): half to all of it, doubled after each further exit.
RESTART_ENV = {"FACEGRID_RESTART_BACKOFF_S": "8", "FACEGRID_RESTART_STABLE_S": "5"}


@pytest.fixture(scope="module")
def mesh2(short_tmp: Path) -> Iterator[MeshHandle]:
    with running_mesh(
        short_tmp / "scale", api_nodes=2, embed_nodes=2, extra_env=RESTART_ENV
    ) as handle:
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


@dataclass
class Trace:
    """What clients saw while a process of the mesh was down, one round of requests after
    another: ``/ready``, a recognition (a read), a new subject (a write), an admin call."""

    ready: list[int] = field(default_factory=list)
    reads: list[Reply] = field(default_factory=list)
    writes: dict[str, Reply] = field(default_factory=dict)
    admin: list[Reply] = field(default_factory=list)

    def acknowledged(self) -> list[str]:
        """The subjects whose creation was answered 201."""
        return [name for name, reply in self.writes.items() if reply.status == 201]

    def refusals(self) -> list[Reply]:
        """Every answer that was an error (not a refused connection)."""
        every = [*self.reads, *self.writes.values(), *self.admin]
        return [r for r in every if r.status >= 400 and not (r.status == 401 and r in self.admin)]


def _answer(method: str, url: str, **kwargs: Any) -> Reply:
    """The reply, or status 0 when nothing answered (Envoy itself is down)."""
    try:
        return call(method, url, timeout_s=30, **kwargs)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return Reply(0, {}, b"")


def _through_fault(mesh: MeshHandle, key: str, probe: bytes, process: str) -> Trace:
    """SIGKILLs ``process`` and sends rounds of requests until the launcher has it back ready
    and the mesh answers again (bounded); returns what the clients saw."""
    ready_before = len(_events(mesh, process, "process_ready"))
    restarts_before = len(_events(mesh, process, "process_restarted"))
    os.kill(mesh.pid(process), signal.SIGKILL)
    trace = Trace()
    deadline = time.monotonic() + 180
    while True:
        ready = _answer("GET", f"{mesh.rest}/ready").status
        read = _answer(
            "POST",
            mesh.rest + RECOGNIZE,
            headers={"x-api-key": key},
            files={"file": ("probe.png", probe, "image/png")},
        )
        subject = f"ack {uuid.uuid4().hex[:12]}"
        trace.writes[subject] = _answer(
            "POST",
            mesh.rest + "/api/v1/recognition/subjects",
            headers={"x-api-key": key},
            json={"subject": subject},
        )
        trace.admin.append(_answer("GET", mesh.rest + "/api/v1/admin/users/me"))
        trace.ready.append(ready)
        trace.reads.append(read)
        back = len(_events(mesh, process, "process_ready")) > ready_before
        if back and ready == 200 and read.status == 200 and trace.admin[-1].status == 401:
            break
        assert time.monotonic() < deadline, f"{process} not back: {trace.ready[-5:]}"
    assert len(_events(mesh, process, "process_restarted")) == restarts_before + 1
    (exited, *_) = _events(mesh, process, "process_exited")[::-1]
    assert exited["code"] == -signal.SIGKILL
    for reply in trace.refusals():  # every refusal in CompreFace's shape
        body = reply.json()
        assert set(body) == {"message", "code"}, body
    return trace


def _stored(mesh: MeshHandle, names: list[str]) -> set[str]:
    async def query() -> set[str]:
        conn = await asyncpg.connect(f"postgresql://postgres:@/postgres?host={mesh.data_dir}/pg")
        try:
            rows = await conn.fetch("SELECT name FROM subjects WHERE name = ANY($1)", names)
        finally:
            await conn.close()
        return {r["name"] for r in rows}

    return asyncio.run(query())


def _statuses(replies: list[Reply]) -> set[int]:
    return {r.status for r in replies}


def test_a_killed_api_node_costs_no_request_and_comes_back(
    mesh2: MeshHandle, key: str, faces: dict[str, bytes]
) -> None:
    served: list[str] = []
    trace = _through_fault(mesh2, key, faces["probe"], "api_svc-1")
    served = [r.headers[NODE_HEADER] for r in trace.reads]
    assert _statuses(trace.reads) == {200}  # every request succeeds
    assert {r.status for r in trace.writes.values()} == {201}  # writes never reached the dead one
    assert set(trace.ready) == {200}  # one dead node of two does not take the edge out
    assert "api_svc-0" in served, "the survivor served while api_svc-1 was down"
    assert _stored(mesh2, trace.acknowledged()) == set(trace.acknowledged())


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
    trace = _through_fault(mesh2, key, faces["probe"], "embed_svc-1")
    assert _statuses(trace.reads) == {200}
    assert set(trace.ready) == {200}
    assert len(trace.reads) > 1, "requests went on through embed_svc-0 while embed_svc-1 was down"
    requests = 0

    def restarted_node_serves() -> bool | None:
        nonlocal requests
        reply = _recognise_through_envoy(mesh2, key, faces["probe"])
        assert reply.status == 200, (reply.status, reply.body)
        requests += 1
        return True if _analyses_since_start(log) > 0 else None

    eventually(restarted_node_serves, "embed_svc-1 serving again", timeout_s=120)


def _stats_pending(mesh: MeshHandle) -> float:
    """Request counts the api_svc nodes hold and have not written yet."""
    total = 0.0
    for address in mesh.api_nodes:
        host, port = address.rsplit(":", 1)
        url = f"http://{host}:{int(port) + METRICS_PORT_OFFSET}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            text = reply.read().decode()
        for family in text_string_to_metric_families(text):
            if family.name == "facegrid_stats_pending_requests":
                total += sum(sample.value for sample in family.samples)
    return total


def _requests_today(mesh: MeshHandle) -> int:
    async def query() -> int:
        conn = await asyncpg.connect(f"postgresql://postgres:@/postgres?host={mesh.data_dir}/pg")
        try:
            value = await conn.fetchval(
                "SELECT coalesce(sum(request_count), 0) FROM service_stats s"
                " JOIN services v ON v.id = s.service_id WHERE v.name = 'demo-recognition'"
                " AND s.day = (now() AT TIME ZONE 'UTC')::date"
            )
        finally:
            await conn.close()
        return int(value)

    return asyncio.run(query())


def test_a_killed_postgres_degrades_reads_refuses_writes_clearly_and_comes_back(
    mesh2: MeshHandle,
    nodes: list[pb_grpc.RecognitionServiceStub],
    key: str,
    faces: dict[str, bytes],
) -> None:
    _recognised(nodes[0], key, faces["probe"])  # both nodes have seen the key recently
    _recognised(nodes[1], key, faces["probe"])
    eventually(lambda: True if _stats_pending(mesh2) == 0 else None, "earlier counts written")
    counted_before = _requests_today(mesh2)
    trace = _through_fault(mesh2, key, faces["probe"], "postgres")
    # recognition kept answering from memory (stale API keys, in-memory indexes)
    assert _statuses(trace.reads) == {200}, [r.body for r in trace.reads if r.status != 200]
    # writes were refused with a clear 503 while the database was down, then stored again
    refused = [r for r in trace.writes.values() if r.status != 201]
    assert refused, "the outage was seen"
    assert _statuses(refused) == {503}, [r.body for r in refused if r.status != 503]
    assert all("database" in r.json()["message"] for r in refused)
    assert 503 in trace.ready and trace.ready[-1] == 200  # readiness told the truth
    assert _stored(mesh2, trace.acknowledged()) == set(trace.acknowledged())
    # the requests answered during the outage were counted once the database was back
    answered = sum(r.status == 200 for r in trace.reads) + len(trace.acknowledged())
    eventually(lambda: True if _stats_pending(mesh2) == 0 else None, "counts written")
    assert _requests_today(mesh2) == counted_before + answered
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


def test_a_killed_triton_stops_analysis_only_and_comes_back(
    mesh2: MeshHandle, key: str, faces: dict[str, bytes]
) -> None:
    trace = _through_fault(mesh2, key, faces["probe"], "triton")
    failed = [r for r in trace.reads if r.status != 200]
    assert failed, "the outage was seen"
    assert _statuses(failed) <= {500, 503}
    assert {r.status for r in trace.writes.values()} == {201}  # no model needed: stored
    assert 503 in trace.ready and trace.ready[-1] == 200
    assert _stored(mesh2, trace.acknowledged()) == set(trace.acknowledged())


def test_a_killed_admin_svc_leaves_recognition_serving_and_comes_back(
    mesh2: MeshHandle, key: str, faces: dict[str, bytes]
) -> None:
    trace = _through_fault(mesh2, key, faces["probe"], "admin_svc")
    assert _statuses(trace.reads) == {200}
    assert {r.status for r in trace.writes.values()} == {201}
    down = [r for r in trace.admin if r.status != 401]
    assert down and _statuses(down) == {503}
    assert 503 in trace.ready and trace.ready[-1] == 200
    assert _stored(mesh2, trace.acknowledged()) == set(trace.acknowledged())


def test_a_killed_envoy_is_restarted_and_nothing_acknowledged_is_lost(
    mesh2: MeshHandle, key: str, faces: dict[str, bytes]
) -> None:
    trace = _through_fault(mesh2, key, faces["probe"], "envoy")
    assert _statuses(trace.reads) <= {0, 200}  # refused connections, never a wrong answer
    assert trace.ready[-1] == 200
    assert _stored(mesh2, trace.acknowledged()) == set(trace.acknowledged())

"""Envoy over several api_svc nodes, through a real Envoy to in-process fake nodes: balancing on
health ``""``, the node header, retries of what is safe to retry, a CompreFace-shaped 503 when no
node can take a call, and ``/ready`` counting ready nodes (one per service is enough)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from facegrid.errors import set_http_status
from facegrid.node_header import NODE_HEADER
from facegrid.recognition.v1 import recognition_service_pb2 as pb
from facegrid.recognition.v1 import recognition_service_pb2_grpc as pb_grpc
from facegrid.server import RunningServer, start_server, stop_server
from gateway.render import GatewayPorts, node_ports
from tests.helpers.ports import free_base_port
from tests.helpers.rest_client import Reply, call
from tests.helpers.wait import wait_until_async

pytestmark = pytest.mark.integration

RECOGNITION = "facegrid.recognition.v1.RecognitionService"


class FakeNode(pb_grpc.RecognitionServiceServicer):
    """One api_svc node: counts the calls it got; ``unavailable`` makes it answer a bare
    (trailers-only) UNAVAILABLE, as a node that cannot serve does before sending anything."""

    def __init__(self) -> None:
        self.calls = 0
        self.unavailable = False

    async def _maybe_fail(self, context: Any) -> None:
        self.calls += 1
        if self.unavailable:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "not now")

    async def ListSubjects(self, request: Any, context: Any) -> pb.ListSubjectsResponse:
        await self._maybe_fail(context)
        return pb.ListSubjectsResponse(subjects=["s"])

    async def AddFace(self, request: Any, context: Any) -> pb.AddFaceResponse:
        await self._maybe_fail(context)
        await set_http_status(context, 201)
        return pb.AddFaceResponse(image_id="i", subject=request.subject)


@dataclass
class Mesh:
    """Fake nodes behind a real Envoy."""

    rest: str
    nodes: list[FakeNode]
    servers: list[RunningServer]
    others: list[RunningServer] = field(default_factory=list)
    """admin_svc and embed_svc stand-ins (health only)."""


async def _serve(port: int, servicer: FakeNode | None, node_name: str | None) -> RunningServer:
    def register(server: grpc.aio.Server) -> None:
        if servicer is not None:
            pb_grpc.add_RecognitionServiceServicer_to_server(servicer, server)

    running = await start_server(
        host="127.0.0.1",
        port=port,
        register=register,
        service_names=[RECOGNITION],
        node_name=node_name,
    )
    await running.set_serving(True)
    await running.set_ready(True)
    return running


async def _start(
    free_port: Callable[[], int],
    start_envoy: Callable[[GatewayPorts], str],
    node_names: list[str | None],
) -> Mesh:
    ports = GatewayPorts(
        listen_port=free_port(),
        admin_port=free_port(),
        api_port=free_base_port(len(node_names)),
        embed_port=free_port(),
        admin_svc_port=free_port(),
        services=(RECOGNITION,),
        api_nodes=len(node_names),
    )
    nodes = [FakeNode() for _ in node_names]
    api_ports = node_ports(ports.api_port, len(node_names))
    servers = [
        await _serve(port, node, name)
        for port, node, name in zip(api_ports, nodes, node_names, strict=True)
    ]
    others = [await _serve(p, None, None) for p in (ports.embed_port, ports.admin_svc_port)]
    rest = await asyncio.to_thread(start_envoy, ports)
    mesh = Mesh(rest, nodes, servers, others)
    await wait_until_async(lambda: _ready(mesh), 10, "Envoy ready", interval_s=0.1)
    return mesh


async def _stop(mesh: Mesh) -> None:
    for server in [*mesh.servers, *mesh.others]:
        await stop_server(server, 0)


@pytest.fixture
async def two_nodes(
    free_port: Callable[[], int], start_envoy: Callable[[GatewayPorts], str]
) -> AsyncIterator[Mesh]:
    mesh = await _start(free_port, start_envoy, ["api_svc-0", "api_svc-1"])
    yield mesh
    await _stop(mesh)


@pytest.fixture
async def bare_nodes(
    free_port: Callable[[], int], start_envoy: Callable[[GatewayPorts], str]
) -> AsyncIterator[Mesh]:
    """Two nodes without the node header: their errors are trailers-only."""
    mesh = await _start(free_port, start_envoy, [None, None])
    yield mesh
    await _stop(mesh)


async def rest(method: str, url: str, **kwargs: Any) -> Reply:
    return await asyncio.to_thread(call, method, url, **kwargs)


async def _ready(mesh: Mesh) -> bool:
    return (await rest("GET", f"{mesh.rest}/ready")).status == 200


async def _list(mesh: Mesh) -> Reply:
    return await rest("GET", f"{mesh.rest}/api/v1/recognition/subjects")


async def _add(mesh: Mesh) -> Reply:
    return await rest(
        "POST",
        f"{mesh.rest}/api/v1/recognition/faces",
        files={"file": ("a.jpg", b"\xff\xd8x", "image/jpeg")},
        query={"subject": "Ann"},
    )


async def test_rest_calls_reach_both_nodes_and_name_them(two_nodes: Mesh) -> None:
    seen: set[str] = set()
    for _ in range(40):
        reply = await _list(two_nodes)
        assert reply.status == 200 and reply.json() == {"subjects": ["s"]}
        seen.add(reply.headers[NODE_HEADER])
        if len(seen) == 2:
            break
    assert seen == {"api_svc-0", "api_svc-1"}
    created = await _add(two_nodes)
    assert created.status == 201 and created.headers[NODE_HEADER] in seen


async def test_a_dead_node_costs_no_request(two_nodes: Mesh) -> None:
    await stop_server(two_nodes.servers[1], 0)
    for _ in range(20):
        reply = await _list(two_nodes)
        assert reply.status == 200, reply.body
        assert reply.headers[NODE_HEADER] == "api_svc-0"
    for _ in range(5):
        assert (await _add(two_nodes)).status == 201
    assert await _ready(two_nodes), "one ready node of two is enough for /ready"


async def test_no_live_node_is_a_compreface_503_and_grpc_unavailable(two_nodes: Mesh) -> None:
    for server in two_nodes.servers:
        await stop_server(server, 0)
    reply = await _list(two_nodes)
    assert reply.status == 503
    body = reply.json()
    assert body["code"] == 0 and "no api_svc node could take the request" in body["message"]
    target = two_nodes.rest.removeprefix("http://")
    async with grpc.aio.insecure_channel(target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await pb_grpc.RecognitionServiceStub(channel).ListSubjects(pb.ListSubjectsRequest())
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    await wait_until_async(lambda: _not_ready(two_nodes), 10, "/ready turns 503", interval_s=0.1)


async def _not_ready(mesh: Mesh) -> bool:
    return not await _ready(mesh)


async def test_ready_needs_one_ready_node_not_a_live_one(two_nodes: Mesh) -> None:
    await two_nodes.servers[0].set_ready(False)
    assert await _ready(two_nodes)
    await two_nodes.servers[1].set_ready(False)
    await wait_until_async(
        lambda: _not_ready(two_nodes), 10, "/ready turns 503 with no ready api_svc", interval_s=0.1
    )
    # Alive but not ready (its database is down, say): still routed, it answers what it can.
    assert (await _list(two_nodes)).status == 200
    await two_nodes.servers[1].set_ready(True)
    await wait_until_async(lambda: _ready(two_nodes), 10, "/ready turns 200 again", interval_s=0.1)


async def test_reads_are_retried_on_another_node_writes_are_not(bare_nodes: Mesh) -> None:
    first, second = bare_nodes.nodes
    first.unavailable = True
    for _ in range(6):
        assert (await _list(bare_nodes)).status == 200
    assert first.calls > 0, "round robin sent some reads to the failing node first"
    first.calls = second.calls = 0
    statuses = [(await _add(bare_nodes)).status for _ in range(6)]
    assert first.calls + second.calls == 6, "an enrolment that reached a node is never repeated"
    assert statuses.count(503) == first.calls

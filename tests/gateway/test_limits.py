"""The edge's limit table (gateway/limits.py): every public RPC has a body limit sized to what it
carries, REST and gRPC clients meet the same one, and nothing over it reaches a service; header
limits and every refusal in CompreFace's shape; the client address the services are told."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from admin_svc import server as admin_server
from facegrid.admin.v1 import admin_service_pb2 as admin_pb
from facegrid.admin.v1 import admin_service_pb2_grpc as admin_grpc
from facegrid.server import METADATA_LIMITS_BYTES, start_server, stop_server
from gateway.limits import (
    ADMIN,
    KIB,
    MAX_REQUEST_HEADERS_KIB,
    RECOGNITION,
    ROUTES,
    BodyLimits,
    Kind,
    Route,
    grpc_receive_limits,
)
from gateway.render import GatewayPorts, render, size_text
from tests.helpers.rest_client import Reply, call, upload

REPO = Path(__file__).resolve().parents[2]
#: The image limit the Envoy tests render (small, to keep them quick).
IMAGE_BYTES = 256 * KIB


def _http_rules() -> dict[tuple[str, str], tuple[str, str, bool]]:
    """(service, rpc) -> (HTTP method, path template, client streaming) from the descriptor."""
    files = descriptor_pb2.FileDescriptorSet.FromString(
        (REPO / "gateway" / "descriptor.pb").read_bytes()
    )
    rules = {}
    for file in files.file:
        for service in file.service:
            full = f"{file.package}.{service.name}"
            if full not in (RECOGNITION, ADMIN):
                continue
            for method in service.method:
                rule = method.options.Extensions[annotations_pb2.http]
                verb = rule.WhichOneof("pattern")
                rules[(full, method.name)] = (
                    verb.upper(),
                    getattr(rule, verb),
                    method.client_streaming,
                )
    return rules


def test_every_public_rpc_has_a_limit_and_its_rest_path() -> None:
    rules = _http_rules()
    table = {(r.service, r.rpc): (r.method, r.template, r.streaming) for r in ROUTES}
    assert set(rules) <= set(table), f"RPCs without a body limit: {set(rules) - set(table)}"
    assert set(table) <= set(rules), f"stale rows: {set(table) - set(rules)}"
    for key, rule in rules.items():
        assert table[key] == rule, key


def _sample(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1-y", template)


def test_each_rest_pattern_matches_its_own_paths_only() -> None:
    for route in ROUTES:
        path = _sample(route.template)
        assert re.fullmatch(route.rest_regex, path), route.rpc
        assert re.fullmatch(route.rest_regex, path + "/more") is None
        others = [
            other.rpc
            for other in ROUTES
            if other is not route
            and other.method == route.method
            and re.fullmatch(other.rest_regex, path)
        ]
        assert others == [], (route.rpc, others)


def test_limits_are_sized_to_what_each_route_carries() -> None:
    limits = BodyLimits()
    kinds = {r.rpc: r.kind for r in ROUTES}
    assert limits.of(kinds["SignIn"]) <= 1 * KIB
    assert limits.of(kinds["CreateSubject"]) <= 4 * KIB
    assert limits.of(kinds["RecognizeEmbeddings"]) <= 256 * KIB
    assert limits.of(kinds["AddFace"]) == limits.request_bytes == 10 * 1024 * KIB
    assert all(limits.of(kinds[r.rpc]) <= limits.empty_bytes for r in ROUTES if r.method == "GET")
    assert limits.smallest == limits.empty_bytes


def test_services_accept_every_body_the_edge_lets_through() -> None:
    limits = BodyLimits()
    receive = grpc_receive_limits(limits)
    for route in ROUTES:
        service = "api_svc" if route.service == RECOGNITION else "admin_svc"
        assert receive[service] > limits.of(route.kind), route.rpc
    assert receive["admin_svc"] == admin_server.MAX_RECEIVE_BYTES  # only small messages
    # what Envoy forwards (its own headers added) fits the services' soft metadata limit
    assert METADATA_LIMITS_BYTES[0] >= MAX_REQUEST_HEADERS_KIB * KIB + 4 * KIB


def _config(ports: GatewayPorts) -> dict[str, Any]:
    return dict(yaml.safe_load(render(ports)))


def _manager(config: dict[str, Any]) -> dict[str, Any]:
    listener = config["static_resources"]["listeners"][0]
    return dict(listener["filter_chains"][0]["filters"][0]["typed_config"])


def test_rendered_routes_carry_the_table_limits() -> None:
    ports = GatewayPorts(max_request_bytes=3 * 1024 * KIB)
    manager = _manager(_config(ports))
    (host,) = manager["route_config"]["virtual_hosts"]
    by_regex = {
        (r["match"]["safe_regex"]["regex"], r["match"]["headers"][0]["string_match"]["exact"]): r
        for r in host["routes"]
        if "safe_regex" in r["match"]
    }
    by_path = {r["match"]["path"]: r for r in host["routes"] if "path" in r["match"]}
    limits = ports.limits
    for route in ROUTES:
        rest = by_regex[(route.rest_regex, route.method)]
        wanted = limits.of(route.kind)
        buffer = rest["typed_per_filter_config"]["body_limit"]["buffer"]
        assert buffer["max_request_bytes"] == wanted
        assert rest["metadata"]["filter_metadata"]["body_limit_end"]["max_bytes"] == str(wanted)
        grpc_route = by_path[route.grpc_path]
        per_route = grpc_route["typed_per_filter_config"]
        if route.streaming:  # each message is bounded by the service instead
            assert per_route["body_limit"]["disabled"] and per_route["body_limit_end"]["disabled"]
        else:
            assert per_route["body_limit"]["buffer"]["max_request_bytes"] == wanted
    filters = {f["name"]: f["typed_config"] for f in manager["http_filters"]}
    assert filters["body_limit"]["max_request_bytes"] == limits.smallest
    names = [f["name"] for f in manager["http_filters"]]
    transcoder = names.index("envoy.filters.http.grpc_json_transcoder")
    assert names.index("body_limit") < names.index("body_limit_end") < transcoder
    assert manager["max_request_headers_kb"] == MAX_REQUEST_HEADERS_KIB
    assert manager["use_remote_address"] is True and manager["xff_num_trusted_hops"] == 0


def test_size_text_names_whole_units() -> None:
    assert [size_text(n) for n in (1024, 4096, 10 * 1024 * KIB, 1500)] == [
        "1 KB",
        "4 KB",
        "10 MB",
        "1500 bytes",
    ]


# --- through a real Envoy -------------------------------------------------------------------


@dataclass
class Upstream:
    """Stands in for api_svc and admin_svc: records what reached it, answers UNIMPLEMENTED,
    except SignIn, which echoes the client address it was told as its access token."""

    received: list[tuple[str, int]] = field(default_factory=list)

    def handler(self) -> grpc.GenericRpcHandler:
        upstream = self

        class Handler(grpc.GenericRpcHandler):
            def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
                method = str(details.method)

                async def stream(
                    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
                ) -> AsyncIterator[bytes]:
                    size = sum([len(r) async for r in requests])
                    upstream.received.append((method, size))
                    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "fake")
                    yield b""

                if method.endswith("/BulkAddFaces"):
                    return grpc.stream_stream_rpc_method_handler(stream)

                async def unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
                    upstream.received.append((method, len(request)))
                    if method.endswith("/SignIn"):
                        address = dict(context.invocation_metadata() or ()).get(
                            "x-facegrid-client-address", ""
                        )
                        answer = admin_pb.SignInResponse(access_token=str(address))
                        return answer.SerializeToString()
                    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "fake")
                    raise AssertionError

                return grpc.unary_unary_rpc_method_handler(unary)

        return Handler()


@dataclass
class Edge:
    rest: str
    grpc_target: str
    upstream: Upstream


async def _edge(
    free_port: Callable[[], int], start_envoy: Callable[[GatewayPorts], str], trusted_hops: int
) -> AsyncIterator[Edge]:
    upstream = Upstream()
    running = await start_server(
        host="127.0.0.1",
        port=free_port(),
        register=lambda server: server.add_generic_rpc_handlers((upstream.handler(),)),
        service_names=[RECOGNITION, ADMIN],
    )
    await running.set_serving(True)
    ports = GatewayPorts(
        listen_port=free_port(),
        admin_port=free_port(),
        api_port=running.port,
        embed_port=free_port(),
        admin_svc_port=running.port,
        max_request_bytes=IMAGE_BYTES,
        trusted_hops=trusted_hops,
    )
    base = await asyncio.to_thread(start_envoy, ports)
    yield Edge(base, base.removeprefix("http://"), upstream)
    await stop_server(running, 0)


@pytest.fixture
async def edge(
    free_port: Callable[[], int], start_envoy: Callable[[GatewayPorts], str]
) -> AsyncIterator[Edge]:
    async for value in _edge(free_port, start_envoy, trusted_hops=0):
        yield value


def _padded_json(document: object, size: int) -> bytes:
    """``document`` as JSON followed by spaces, ``size`` bytes in all."""
    text = json.dumps(document).encode()
    assert len(text) <= size
    return text + b" " * (size - len(text))


def _body(route: Route, size: int) -> tuple[bytes, str]:
    """A body of ``size`` bytes the route's transcoding accepts, and its content type."""
    if route.kind is Kind.IMAGE:
        return b"\xff" * size, "image/jpeg"
    documents: dict[Kind, object] = {
        Kind.EMBEDDINGS: {"embeddings": [[0.5] * 128]},
        Kind.IDS: ["00000000-0000-0000-0000-000000000000"],
        Kind.JSON: {"subject": "Ann"},
        Kind.CREDENTIALS: {"email": "a@example.com", "password": "secret"},
        Kind.BULK: [],
        Kind.EMPTY: {},
    }
    return _padded_json(documents[route.kind], size), "application/json"


#: One route of each kind.
SAMPLES = {kind: next(r for r in ROUTES if r.kind is kind) for kind in Kind}


async def _rest(method: str, url: str, **kwargs: Any) -> Reply:
    return await asyncio.to_thread(call, method, url, **kwargs)


@pytest.mark.integration
@pytest.mark.parametrize("kind", list(SAMPLES), ids=lambda k: k.value)
async def test_a_body_at_the_limit_passes_and_one_byte_more_never_reaches_a_service(
    edge: Edge, kind: Kind
) -> None:
    route = SAMPLES[kind]
    limit = GatewayPorts(max_request_bytes=IMAGE_BYTES).limits.of(kind)
    url = edge.rest + _sample(route.template)
    body, ctype = _body(route, limit)
    at_limit = await _rest(route.method, url, raw=body, headers={"content-type": ctype})
    assert at_limit.status != 413, at_limit.body
    assert edge.upstream.received[-1][0] == route.grpc_path
    reached = len(edge.upstream.received)
    body, ctype = _body(route, limit + 1)
    over = await _rest(route.method, url, raw=body, headers={"content-type": ctype})
    assert over.status == 413
    assert over.json() == {
        "message": f"Request body too large: the limit is {size_text(limit)} per request"
        " on this path",
        "code": 26,
    }
    assert len(edge.upstream.received) == reached


@pytest.mark.integration
async def test_a_path_no_route_knows_gets_the_smallest_limit(edge: Edge) -> None:
    over = await _rest("POST", f"{edge.rest}/api/v1/no/such/path", raw=b"x" * (KIB + 1))
    assert over.status == 413 and over.json()["message"].startswith(
        "Request body too large: the limit is 1 KB"
    )
    assert edge.upstream.received == []


@pytest.mark.integration
async def test_a_body_sent_in_one_write_with_its_headers_is_measured_too(edge: Edge) -> None:
    body = _padded_json({"email": "a@example.com", "password": "x"}, 3 * KIB)
    head = (
        "POST /api/v1/admin/auth/signin HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode()

    def send() -> bytes:
        host, port = edge.grpc_target.split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(head + body)
            return sock.recv(4096)

    answer = await asyncio.to_thread(send)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert edge.upstream.received == []


@pytest.mark.integration
async def test_a_huge_body_is_refused_at_the_limit_and_the_client_hears_it(edge: Edge) -> None:
    head = (
        "POST /api/v1/recognition/embeddings/recognize HTTP/1.1\r\nhost: x\r\n"
        "content-type: application/json"
    )
    reply = await asyncio.to_thread(upload, edge.grpc_target, head, 100 * 1024 * KIB)
    assert reply.status == 413
    assert reply.json() == {
        "message": "Request body too large: the limit is 256 KB per request on this path",
        "code": 26,
    }
    assert edge.upstream.received == []


@pytest.mark.integration
async def test_grpc_clients_meet_the_same_limit_even_in_one_frame(edge: Edge) -> None:
    """A gRPC message under 16 KiB travels in one HTTP/2 DATA frame with END_STREAM, which
    Envoy's buffer filter does not count: the second check does."""
    async with grpc.aio.insecure_channel(edge.grpc_target) as channel:
        stub = admin_grpc.AdminServiceStub(channel)
        fits = await stub.SignIn(admin_pb.SignInRequest(email="a@example.com", password="x" * 900))
        assert fits.access_token == "127.0.0.1"
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.SignIn(admin_pb.SignInRequest(email="a@example.com", password="x" * 2000))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.value.details() == "request too large: the limit is 1 KB on this method"
    assert [m for m, _ in edge.upstream.received] == [f"/{ADMIN}/SignIn"]


@pytest.mark.integration
async def test_headers_over_the_limit_get_a_compreface_431(edge: Edge) -> None:
    url = f"{edge.rest}/api/v1/recognition/subjects"
    fits = await _rest("GET", url, headers={"x-padding": "a" * (MAX_REQUEST_HEADERS_KIB - 1) * KIB})
    assert fits.status == 501  # reached the upstream, which does not implement it
    for size_kib in (MAX_REQUEST_HEADERS_KIB + 1, 16, 100):
        too_big = await _rest("GET", url, headers={"x-padding": "a" * size_kib * KIB})
        assert too_big.status == 431
        assert too_big.json() == {
            "message": f"Request headers too large: the limit is {MAX_REQUEST_HEADERS_KIB} KB",
            "code": 26,
        }
    assert len(edge.upstream.received) == 1


@pytest.mark.integration
async def test_malformed_http_gets_a_compreface_400(edge: Edge) -> None:
    def send() -> bytes:
        host, port = edge.grpc_target.split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nno colon here\r\n\r\n")
            return sock.recv(4096)

    answer = await asyncio.to_thread(send)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert json.loads(body)["code"] == 26


@pytest.mark.integration
async def test_services_are_told_the_client_address_envoy_trusts(
    free_port: Callable[[], int], start_envoy: Callable[[GatewayPorts], str]
) -> None:
    spoofed = {"x-forwarded-for": "203.0.113.7", "x-facegrid-client-address": "198.51.100.1"}
    body = {"email": "a@example.com", "password": "secret"}
    path = "/api/v1/admin/auth/signin"
    async for edge in _edge(free_port, start_envoy, trusted_hops=0):
        reply = await _rest("POST", edge.rest + path, json=body, headers=spoofed)
        assert reply.json()["access_token"] == "127.0.0.1"  # the peer: no proxy is trusted
    async for edge in _edge(free_port, start_envoy, trusted_hops=1):
        reply = await _rest("POST", edge.rest + path, json=body, headers=spoofed)
        assert reply.json()["access_token"] == "203.0.113.7"  # one trusted proxy's entry

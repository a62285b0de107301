"""The ``x-facegrid-node`` header: on every answer of a node (success, abort, unexpected error,
streamed), merged with the handler's own initial metadata, and on health checks too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facegrid.errors import ServiceError, abort, set_http_status
from facegrid.node_header import NODE_HEADER
from facegrid.server import RunningServer, start_server, stop_server

NODE = "api_svc-7"


async def _created(request: bytes, context: Any) -> bytes:
    await set_http_status(context, 201)
    return b"made"


async def _plain(request: bytes, context: Any) -> bytes:
    return request


async def _refused(request: bytes, context: Any) -> bytes:
    await abort(
        context, ServiceError(grpc.StatusCode.NOT_FOUND, "SUBJECT_NOT_FOUND", "no such", 42)
    )
    raise AssertionError("unreachable")


async def _broken(request: bytes, context: Any) -> bytes:
    raise RuntimeError("bug")


async def _count(request: bytes, context: Any) -> AsyncIterator[bytes]:
    for i in range(3):
        yield bytes([i])


async def _written(request: bytes, context: Any) -> None:
    await context.write(b"w")


def _register(server: grpc.aio.Server) -> None:
    unary = {
        "Created": _created,
        "Plain": _plain,
        "Refused": _refused,
        "Broken": _broken,
    }
    handlers: dict[str, Any] = {
        name: grpc.unary_unary_rpc_method_handler(h) for name, h in unary.items()
    }
    handlers["Count"] = grpc.unary_stream_rpc_method_handler(_count)
    handlers["Written"] = grpc.unary_stream_rpc_method_handler(_written)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.T", handlers)])


@pytest.fixture
async def served() -> AsyncIterator[tuple[RunningServer, grpc.aio.Channel]]:
    running = await start_server(
        host="127.0.0.1", port=0, register=_register, service_names=["t.T"], node_name=NODE
    )
    await running.set_serving(True)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    yield running, channel
    await channel.close()
    await stop_server(running, 0)


def _method(channel: grpc.aio.Channel, name: str, stream: bool = False) -> Any:
    """An untyped callable (bytes in, bytes out)."""
    return channel.unary_stream(name) if stream else channel.unary_unary(name)


def _node(metadata: Any) -> list[str]:
    return [value for key, value in metadata or () if key == NODE_HEADER]


async def test_a_success_carries_the_node(served: tuple[RunningServer, grpc.aio.Channel]) -> None:
    call = _method(served[1], "/t.T/Plain")(b"x")
    assert await call == b"x"
    assert _node(await call.initial_metadata()) == [NODE]


async def test_the_node_joins_the_handlers_own_initial_metadata(
    served: tuple[RunningServer, grpc.aio.Channel],
) -> None:
    call = _method(served[1], "/t.T/Created")(b"")
    assert await call == b"made"
    metadata = dict(await call.initial_metadata())
    assert metadata[NODE_HEADER] == NODE
    assert metadata["x-http-status"] == "201"


@pytest.mark.parametrize(
    ("method", "code"),
    [("Refused", grpc.StatusCode.NOT_FOUND), ("Broken", grpc.StatusCode.UNKNOWN)],
)
async def test_errors_carry_the_node(
    served: tuple[RunningServer, grpc.aio.Channel], method: str, code: grpc.StatusCode
) -> None:
    call = _method(served[1], f"/t.T/{method}")(b"")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == code
    assert _node(raised.value.initial_metadata()) == [NODE]
    if method == "Refused":
        assert dict(raised.value.trailing_metadata())["x-compreface-code"] == "42"


@pytest.mark.parametrize(
    ("method", "expected"), [("Count", [b"\0", b"\1", b"\2"]), ("Written", [b"w"])]
)
async def test_streams_carry_the_node(
    served: tuple[RunningServer, grpc.aio.Channel], method: str, expected: list[bytes]
) -> None:
    call = _method(served[1], f"/t.T/{method}", stream=True)(b"")
    assert [message async for message in call] == expected
    assert _node(await call.initial_metadata()) == [NODE]


async def test_health_checks_carry_the_node(
    served: tuple[RunningServer, grpc.aio.Channel],
) -> None:
    call = health_pb2_grpc.HealthStub(served[1]).Check(health_pb2.HealthCheckRequest())
    assert (await call).status == health_pb2.HealthCheckResponse.SERVING
    assert _node(await call.initial_metadata()) == [NODE]


async def test_a_server_without_a_node_name_sends_no_header() -> None:
    running = await start_server(
        host="127.0.0.1", port=0, register=_register, service_names=["t.T"]
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        call = _method(channel, "/t.T/Plain")(b"x")
        assert await call == b"x"
        assert _node(await call.initial_metadata()) == []
    await stop_server(running, 0)

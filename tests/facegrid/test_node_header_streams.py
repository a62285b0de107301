"""The ``x-facegrid-node`` header on a streamed response that is refused before it sends
anything: a trailers-only answer carrying the header in its trailers (Envoy's transcoder turns
only a trailers-only answer into an HTTP error status), while a stream that has sent messages
keeps the header in its initial metadata."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from facegrid.errors import ServiceError, abort
from facegrid.node_header import NODE_HEADER
from facegrid.server import start_server, stop_server

NODE = "api_svc-3"


async def _refused_writer(request: bytes, context: Any) -> None:
    await abort(context, ServiceError(grpc.StatusCode.UNAUTHENTICATED, "MISSING", "no key", 20))


async def _refused_generator(request: bytes, context: Any) -> AsyncIterator[bytes]:
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, "wrong type")
    yield b"never"


async def _late_refusal(request: bytes, context: Any) -> None:
    await context.write(b"one")
    await context.abort(grpc.StatusCode.INTERNAL, "broke off")


def _register(server: grpc.aio.Server) -> None:
    handlers: dict[str, Any] = {
        name: grpc.unary_stream_rpc_method_handler(handler)
        for name, handler in (
            ("RefusedWriter", _refused_writer),
            ("RefusedGenerator", _refused_generator),
            ("LateRefusal", _late_refusal),
        )
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.S", handlers)])


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    running = await start_server(
        host="127.0.0.1", port=0, register=_register, service_names=["t.S"], node_name=NODE
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as opened:
        yield opened
    await stop_server(running, 0)


def _method(channel: grpc.aio.Channel, name: str) -> Any:
    """An untyped streamed-response callable (bytes in, bytes out)."""
    return channel.unary_stream(name)


def _node(metadata: Any) -> list[str]:
    return [value for key, value in metadata or () if key == NODE_HEADER]


@pytest.mark.parametrize(
    ("method", "code"),
    [
        ("RefusedWriter", grpc.StatusCode.UNAUTHENTICATED),
        ("RefusedGenerator", grpc.StatusCode.PERMISSION_DENIED),
    ],
)
async def test_a_stream_refused_at_once_is_trailers_only_with_the_node(
    channel: grpc.aio.Channel, method: str, code: grpc.StatusCode
) -> None:
    call = _method(channel, f"/t.S/{method}")(b"")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        _ = [message async for message in call]
    assert raised.value.code() == code
    assert _node(raised.value.initial_metadata()) == []
    assert _node(raised.value.trailing_metadata()) == [NODE]
    if method == "RefusedWriter":
        assert dict(raised.value.trailing_metadata())["x-compreface-code"] == "20"


async def test_a_stream_refused_after_a_message_keeps_the_node_in_its_headers(
    channel: grpc.aio.Channel,
) -> None:
    call = _method(channel, "/t.S/LateRefusal")(b"")
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for message in call:
            received.append(message)
    assert received == [b"one"] and raised.value.code() == grpc.StatusCode.INTERNAL
    assert _node(await call.initial_metadata()) == [NODE]

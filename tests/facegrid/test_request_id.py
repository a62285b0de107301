"""Request ids: bound on the server, carried to the next service by the client interceptor, and
one ``rpc_finished`` event per call with its status code."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import structlog
from structlog.testing import LogCapture

from facegrid import request_id
from facegrid.request_id import (
    REQUEST_ID_KEY,
    RequestIdClientInterceptor,
    RequestIdServerInterceptor,
)


def _service(name: str, handlers: dict[str, Any]) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        name, {m: grpc.unary_unary_rpc_method_handler(h) for m, h in handlers.items()}
    )


def _method(channel: grpc.aio.Channel, name: str) -> Any:
    """An untyped unary callable (bytes in, bytes out)."""
    return channel.unary_unary(name)


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> LogCapture:
    capture = LogCapture()
    logger = structlog.wrap_logger(
        None, processors=[structlog.contextvars.merge_contextvars, capture]
    )
    monkeypatch.setattr(request_id, "log", logger)
    return capture


@pytest.fixture
async def front() -> AsyncIterator[grpc.aio.Channel]:
    """Two servers: ``front.Front/Call`` calls ``back.Back/Echo`` on the other one."""
    back = grpc.aio.server(interceptors=[RequestIdServerInterceptor()])

    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return (request_id.current_request_id() or "").encode()

    back.add_generic_rpc_handlers([_service("back.Back", {"Echo": echo})])
    back_port = back.add_insecure_port("127.0.0.1:0")
    await back.start()
    back_channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{back_port}", interceptors=[RequestIdClientInterceptor()]
    )
    call_back = _method(back_channel, "/back.Back/Echo")

    async def call(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if request == b"fail":
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
        return bytes(await call_back(b""))

    server = grpc.aio.server(interceptors=[RequestIdServerInterceptor()])
    server.add_generic_rpc_handlers([_service("front.Front", {"Call": call})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield channel
    await channel.close()
    await back_channel.close()
    await server.stop(None)
    await back.stop(None)


async def test_the_request_id_reaches_the_next_service_and_both_log_it(
    front: grpc.aio.Channel, events: LogCapture
) -> None:
    reply = await _method(front, "/front.Front/Call")(b"ok", metadata=((REQUEST_ID_KEY, "req-42"),))
    assert reply == b"req-42"
    finished = [e for e in events.entries if e["event"] == "rpc_finished"]
    assert {(e["rpc"], e["request_id"], e["code"]) for e in finished} == {
        ("/back.Back/Echo", "req-42", "OK"),
        ("/front.Front/Call", "req-42", "OK"),
    }
    assert all(e["ms"] >= 0 for e in finished)


async def test_a_call_without_an_id_gets_a_fresh_one_and_a_failure_logs_its_code(
    front: grpc.aio.Channel, events: LogCapture
) -> None:
    first = await _method(front, "/front.Front/Call")(b"ok")
    second = await _method(front, "/front.Front/Call")(b"ok")
    assert len(first) == 32 and len(second) == 32 and first != second
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await _method(front, "/front.Front/Call")(b"fail")
    assert failed.value.code() == grpc.StatusCode.NOT_FOUND
    last = [e for e in events.entries if e["event"] == "rpc_finished"][-1]
    assert (last["rpc"], last["code"]) == ("/front.Front/Call", "NOT_FOUND")

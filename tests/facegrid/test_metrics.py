"""Every call of a server is counted by method and status code, timed, and in flight while it
runs; the registry is scraped over HTTP on the metrics port."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from facegrid.errors import ServiceError, abort
from facegrid.metrics import ServiceMetrics
from facegrid.server import RunningServer, start_server, stop_server

SERVICE = "test.v1.Probe"


class Probe:
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    async def ok(self, request: bytes, context: Any) -> bytes:
        return request

    async def refused(self, request: bytes, context: Any) -> bytes:
        await abort(context, ServiceError(grpc.StatusCode.NOT_FOUND, "NOPE", "not here"))
        raise AssertionError

    async def broken(self, request: bytes, context: Any) -> bytes:
        raise RuntimeError("bug")

    async def slow(self, request: bytes, context: Any) -> bytes:
        self.entered.set()
        await self.release.wait()
        return b""

    async def count(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        for i in range(3):
            yield bytes([i])


def _register(probe: Probe) -> Callable[[grpc.aio.Server], None]:
    def register(server: grpc.aio.Server) -> None:
        handlers: dict[str, Any] = {
            name: grpc.unary_unary_rpc_method_handler(getattr(probe, name.lower()))
            for name in ("Ok", "Refused", "Broken", "Slow")
        }
        handlers["Count"] = grpc.unary_stream_rpc_method_handler(probe.count)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))

    return register


@pytest.fixture
async def served(free_port: Callable[[], int]) -> AsyncIterator[tuple[RunningServer, Probe]]:
    probe = Probe()
    running = await start_server(
        host="127.0.0.1",
        port=0,
        register=_register(probe),
        service_names=[SERVICE],
        metrics=ServiceMetrics(),
        metrics_port=free_port(),
    )
    await running.set_serving(True)
    yield running, probe
    await stop_server(running, 0)


def _scrape(running: RunningServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    assert running.metrics_server is not None
    url = f"http://127.0.0.1:{running.metrics_server.port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def _call(channel: grpc.aio.Channel, method: str) -> grpc.StatusCode:
    call: Any = channel.unary_unary(f"/{SERVICE}/{method}")
    try:
        await call(b"x")
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_calls_are_counted_by_method_and_code_with_exact_deltas(
    served: tuple[RunningServer, Probe],
) -> None:
    running, _ = served
    before = await asyncio.to_thread(_scrape, running)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        codes = [await _call(channel, m) for m in ("Ok", "Ok", "Ok", "Refused", "Broken")]
        count: Any = channel.unary_stream(f"/{SERVICE}/Count")
        streamed = [m async for m in count(b"")]
    assert codes[3:] == [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNKNOWN]
    assert len(streamed) == 3
    after = await asyncio.to_thread(_scrape, running)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    unary = {"grpc_type": "unary", "grpc_service": SERVICE}
    assert delta("grpc_server_started_total", grpc_method="Ok", **unary) == 3
    assert delta("grpc_server_handled_total", grpc_method="Ok", grpc_code="OK", **unary) == 3
    assert (
        delta("grpc_server_handled_total", grpc_method="Refused", grpc_code="NOT_FOUND", **unary)
        == 1
    )
    assert (
        delta("grpc_server_handled_total", grpc_method="Broken", grpc_code="UNKNOWN", **unary) == 1
    )
    assert (
        delta(
            "grpc_server_handled_total",
            grpc_type="server_stream",
            grpc_service=SERVICE,
            grpc_method="Count",
            grpc_code="OK",
        )
        == 1
    )
    assert delta("grpc_server_handling_seconds_count", grpc_method="Ok", **unary) == 3
    assert _value(after, "process_resident_memory_bytes") > 0


async def test_a_call_is_in_flight_until_it_ends(served: tuple[RunningServer, Probe]) -> None:
    running, probe = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        call = asyncio.ensure_future(_call(channel, "Slow"))
        await asyncio.wait_for(probe.entered.wait(), 10)
        during = await asyncio.to_thread(_scrape, running)
        probe.release.set()
        assert await call == grpc.StatusCode.OK
    after = await asyncio.to_thread(_scrape, running)
    labels = {"grpc_service": SERVICE, "grpc_method": "Slow"}
    assert _value(during, "grpc_server_in_flight", **labels) == 1
    assert _value(after, "grpc_server_in_flight", **labels) == 0

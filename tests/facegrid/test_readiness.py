"""Health ``""`` (alive) and ``facegrid.ready`` (ready for work), kept current by the server's
periodic readiness check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facegrid.server import READY_SERVICE, RunningServer, start_server, stop_server
from tests.helpers.health import health_becomes

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Dependency:
    """A dependency the test turns up, down, or broken (the check raises)."""

    def __init__(self) -> None:
        self.state = "up"

    async def check(self) -> bool:
        if self.state == "broken":
            raise ConnectionResetError("gone")
        if self.state == "hanging":
            await asyncio.Event().wait()
        return self.state == "up"


@pytest.fixture
async def served() -> AsyncIterator[tuple[RunningServer, grpc.aio.Channel, Dependency]]:
    running = await start_server(
        host="127.0.0.1", port=0, register=lambda server: None, service_names=["t.T"]
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    yield running, channel, Dependency()
    await channel.close()
    await stop_server(running, 0)


async def _status(channel: grpc.aio.Channel, service: str) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=5
    )
    return int(reply.status)


async def test_a_new_server_is_neither_alive_nor_ready(
    served: tuple[RunningServer, grpc.aio.Channel, Dependency],
) -> None:
    _, channel, _ = served
    assert await _status(channel, "") == NOT_SERVING
    assert await _status(channel, READY_SERVICE) == NOT_SERVING


@pytest.mark.parametrize("failure", ["down", "broken", "hanging"])
async def test_readiness_follows_the_dependency_while_the_node_stays_alive(
    served: tuple[RunningServer, grpc.aio.Channel, Dependency], failure: str
) -> None:
    running, channel, dependency = served
    await running.set_serving(True)
    assert await running.keep_ready(dependency.check, interval_s=0.05, timeout_s=0.2) is True
    assert await _status(channel, READY_SERVICE) == SERVING
    dependency.state = failure
    await health_becomes(channel, NOT_SERVING, timeout_s=5)
    assert await _status(channel, "") == SERVING
    assert await _status(channel, "t.T") == SERVING
    dependency.state = "up"
    await health_becomes(channel, SERVING, timeout_s=5)


async def test_stopping_ends_the_check_and_readiness(
    served: tuple[RunningServer, grpc.aio.Channel, Dependency],
) -> None:
    running, _channel, dependency = served
    await running.keep_ready(dependency.check, interval_s=0.05)
    task = running.background[0]
    await stop_server(running, 0)
    assert task.done() and running.background == []
    reply = await running.health.Check(health_pb2.HealthCheckRequest(service=READY_SERVICE), None)
    assert reply.status == NOT_SERVING

"""Awaiting a gRPC server's health (the standard health service's Watch stream): the server
pushes each change, so nothing is polled."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facegrid.server import READY_SERVICE


async def health_becomes(
    channel: grpc.aio.Channel, status: int, timeout_s: float = 10, service: str = READY_SERVICE
) -> None:
    """Returns once the server behind ``channel`` reports ``status`` for ``service`` (by
    default ``facegrid.ready``, ready for work; the current status counts); fails after
    ``timeout_s``."""
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    call = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=service))

    async def reached() -> None:
        async for reply in call:
            if reply.status == status:
                return
        raise AssertionError(f"the health stream ended before {name}")

    try:
        await asyncio.wait_for(reached(), timeout_s)
    except TimeoutError:
        raise AssertionError(f"health did not become {name} in {timeout_s:g} s") from None
    finally:
        call.cancel()

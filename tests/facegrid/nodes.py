"""Tiny in-process gRPC nodes for balancing tests: each answers its own name."""

from __future__ import annotations

from typing import Any

import grpc

from facegrid.server import RunningServer, start_server
from tests.helpers.wait import wait_until_async


class Node:
    """One node of a service ``n.N`` whose ``Who`` answers its name, or UNAVAILABLE."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0
        self.unavailable = False
        self.running: RunningServer | None = None

    async def who(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.calls += 1
        if self.unavailable:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "backend down")
        return self.name.encode()

    async def start(self) -> RunningServer:
        handler = grpc.method_handlers_generic_handler(
            "n.N", {"Who": grpc.unary_unary_rpc_method_handler(self.who)}
        )
        self.running = await start_server(
            host="127.0.0.1",
            port=0,
            register=lambda server: server.add_generic_rpc_handlers([handler]),
            service_names=["n.N"],
        )
        await self.running.set_serving(True)
        await self.running.set_ready(True)
        return self.running


async def answers(channel: grpc.aio.Channel, calls: int) -> list[str]:
    """The names of the nodes that answered ``calls`` calls of ``Who``."""
    who: Any = channel.unary_unary("/n.N/Who")
    return [bytes(await who(b"", timeout=5, wait_for_ready=True)).decode() for _ in range(calls)]


async def until_answering(channel: grpc.aio.Channel, names: set[str], calls: int = 4) -> None:
    """Waits (bounded: 5 s) until ``calls`` calls are answered by exactly the nodes ``names``:
    subchannels connect and pass or fail their health checks in their own time."""

    async def exactly() -> bool:
        return set(await answers(channel, calls)) == names

    await wait_until_async(exactly, 5, f"exactly {sorted(names)} to answer")

"""The common gRPC server of every Facegrid service: health, reflection, request ids, signals."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from facegrid.request_id import RequestIdServerInterceptor

log = structlog.get_logger()

#: Largest message a service accepts or sends, bytes (images travel in messages).
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RunningServer:
    """A started server and its health servicer."""

    server: grpc.aio.Server
    """The gRPC server."""
    health: health.aio.HealthServicer
    """Standard health service; ``set_serving`` flips every registered service."""
    service_names: tuple[str, ...]
    """Fully qualified names of the application services it serves."""
    port: int
    """Bound TCP port."""

    async def set_serving(self, serving: bool) -> None:
        """Marks the overall server and every application service (not) SERVING."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self.service_names):
            await self.health.set(name, status)


async def start_server(
    *,
    host: str,
    port: int,
    register: Callable[[grpc.aio.Server], None],
    service_names: Sequence[str],
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> RunningServer:
    """Builds, binds and starts a ``grpc.aio`` server with health and reflection.

    The server starts NOT_SERVING; the caller flips it once its dependencies are ready.
    """
    server = grpc.aio.server(
        interceptors=[RequestIdServerInterceptor()],
        options=[
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ],
    )
    register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind {host}:{port}")
    await server.start()
    running = RunningServer(server, health_servicer, tuple(service_names), bound)
    await running.set_serving(False)
    log.info("grpc_server_started", host=host, port=bound, services=list(service_names))
    return running


async def wait_for_signal() -> None:
    """Returns on the first SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def stop_server(running: RunningServer, grace_s: float) -> None:
    """Marks the server NOT_SERVING, then stops it, letting calls in flight finish."""
    await running.set_serving(False)
    await running.server.stop(grace_s)
    log.info("grpc_server_stopped", grace_s=grace_s)


def channel_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, int]]:
    """Options for client channels that carry images."""
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]

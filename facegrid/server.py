"""The common gRPC server of every Facegrid service: health, readiness, reflection, request ids,
the node header, signals.

Health has one meaning everywhere (DESIGN.md "Health, readiness and supervision"): service
name ``""`` (and each application service) is SERVING while the process is alive and takes
calls: Envoy balances on it and Kubernetes liveness probes use it. Service name
``facegrid.ready`` (:data:`READY_SERVICE`) is SERVING while the node is ready for work: its
dependencies answer (database pool, LISTEN connection, models), re-checked by a periodic task;
Envoy's ``/ready`` and Kubernetes readiness probes use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from facegrid.metrics import MetricsServer, ServiceMetrics, serve_metrics
from facegrid.node_header import NodeHeaderServerInterceptor
from facegrid.request_decoding import RequestDecodingServerInterceptor
from facegrid.request_id import RequestIdServerInterceptor

log = structlog.get_logger()

#: A node's status port (api_svc's NodeService, never routed by Envoy) is its gRPC port + this.
STATUS_PORT_OFFSET = 2000

#: Largest message a service accepts or sends unless told otherwise, bytes (images travel in
#: messages; api_svc and admin_svc accept only what their largest public route carries).
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: Room for the protobuf framing of a request beyond the body the edge let through, bytes.
MESSAGE_OVERHEAD_BYTES = 64 * 1024
#: gRPC metadata a server accepts, bytes: soft limit (above it gRPC refuses some calls at
#: random) and hard limit. Envoy lets through at most 8 KiB of request headers (gateway/limits.py),
#: so what it forwards, its own headers added, stays under the soft limit.
METADATA_LIMITS_BYTES = (16 * 1024, 32 * 1024)
#: Health service name that is SERVING while the node is ready for work.
READY_SERVICE = "facegrid.ready"
#: A server closes each client connection after about this long (gRPC adds +-10% jitter), so
#: clients balancing over a DNS name (a Kubernetes headless Service) re-resolve and find new nodes.
MAX_CONNECTION_AGE_MS = 5 * 60 * 1000
#: Calls in flight on a connection being closed for its age get this long to finish.
MAX_CONNECTION_AGE_GRACE_MS = 10 * 60 * 1000

#: Answers whether the node is ready for work now; an exception or a timeout means not ready.
ReadinessCheck = Callable[[], Awaitable[bool]]


def _status(on: bool) -> health_pb2.HealthCheckResponse.ServingStatus.ValueType:
    return (
        health_pb2.HealthCheckResponse.SERVING if on else health_pb2.HealthCheckResponse.NOT_SERVING
    )


@dataclass(frozen=True, slots=True)
class RunningServer:
    """A started server, its health servicer and its readiness task."""

    server: grpc.aio.Server
    """The gRPC server."""
    health: health.aio.HealthServicer
    """Standard health service: ``""`` and the application services (alive), ``facegrid.ready``."""
    service_names: tuple[str, ...]
    """Fully qualified names of the application services it serves."""
    port: int
    """Bound TCP port."""
    metrics_server: MetricsServer | None = None
    """The HTTP server of the node's Prometheus metrics, if any."""
    background: list[asyncio.Task[None]] = field(default_factory=list)
    """Tasks that end with the server (the readiness check)."""

    async def set_serving(self, serving: bool) -> None:
        """Marks the overall server (``""``) and every application service alive or not."""
        for name in ("", *self.service_names):
            await self.health.set(name, _status(serving))

    async def set_ready(self, ready: bool) -> None:
        """Marks the node ready for work (``facegrid.ready``) or not."""
        await self.health.set(READY_SERVICE, _status(ready))

    async def keep_ready(
        self, check: ReadinessCheck, interval_s: float = 1.0, timeout_s: float = 5.0
    ) -> bool:
        """Runs ``check`` now and then every ``interval_s`` until the server stops, keeping
        ``facegrid.ready`` current; returns the first result."""
        readiness = _Readiness(self, check, timeout_s)
        ready = await readiness.refresh()
        self.background.append(
            asyncio.create_task(readiness.run(interval_s), name="readiness-check")
        )
        return ready


class Pool(Protocol):
    """What a readiness check needs of a database pool (asyncpg's)."""

    async def fetchval(self, query: str, *args: object, timeout: float | None = None) -> object:
        """The first value of the first row of ``query``."""
        ...


def database_answers(pool: Pool, timeout_s: float = 5.0) -> ReadinessCheck:
    """A readiness check: the pool hands out a connection that answers ``SELECT 1``."""

    async def check() -> bool:
        return await pool.fetchval("SELECT 1", timeout=timeout_s) == 1

    return check


class _Readiness:
    """One node's periodic readiness check; logs every change."""

    def __init__(self, running: RunningServer, check: ReadinessCheck, timeout_s: float) -> None:
        self._running = running
        self._check = check
        self._timeout_s = timeout_s
        self._ready: bool | None = None

    async def refresh(self) -> bool:
        problem = None
        try:
            ready = bool(await asyncio.wait_for(self._check(), self._timeout_s))
        except Exception as exc:  # any failure of a dependency means "not ready"
            ready, problem = False, type(exc).__name__
        if ready != self._ready:
            log.info("readiness_changed", ready=ready, problem=problem)
            await self._running.set_ready(ready)
            self._ready = ready
        return ready

    async def run(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self.refresh()


def interceptor_chain(
    metrics: ServiceMetrics | None, node_name: str | None
) -> list[grpc.aio.ServerInterceptor]:
    """Every service's server interceptors, outermost first: metrics (when given; it sees every
    call's final status), request id, the node header (with ``node_name``), request decoding
    (innermost: its refusal gets the header)."""
    chain: list[grpc.aio.ServerInterceptor] = [RequestIdServerInterceptor()]
    if metrics is not None:
        chain.insert(0, metrics.interceptor())
    if node_name is not None:
        chain.append(NodeHeaderServerInterceptor(node_name))
    chain.append(RequestDecodingServerInterceptor())
    return chain


async def start_server(
    *,
    host: str,
    port: int,
    register: Callable[[grpc.aio.Server], None],
    service_names: Sequence[str],
    max_receive_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    node_name: str | None = None,
    max_connection_age_s: float = MAX_CONNECTION_AGE_MS / 1000,
    metrics: ServiceMetrics | None = None,
    metrics_port: int = 0,
) -> RunningServer:
    """Builds, binds and starts a ``grpc.aio`` server with health and reflection; with
    ``node_name``, every answer carries it as ``x-facegrid-node`` initial metadata; with
    ``metrics``, every call is counted and timed, and the registry is served over HTTP on
    ``metrics_port`` (0: not served). A request message over ``max_receive_bytes`` is refused by
    gRPC before any handler runs.

    The server starts NOT_SERVING and not ready; the caller flips ``""`` once it takes calls and
    starts :meth:`RunningServer.keep_ready`. ``max_connection_age_s`` (0: never) closes each client
    connection after about that long (gRPC adds +-10% jitter; calls in flight get
    MAX_CONNECTION_AGE_GRACE_MS to finish), so that clients balancing over DNS (a headless
    Service, ``dns:///`` targets) re-resolve and reach replicas added since.
    """
    server = grpc.aio.server(
        interceptors=interceptor_chain(metrics, node_name),
        options=server_options(max_receive_bytes, max_connection_age_s),
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
    try:
        exposed = None if metrics is None else serve_metrics(metrics.registry, host, metrics_port)
    except OSError:
        await server.stop(0)
        raise
    running = RunningServer(server, health_servicer, tuple(service_names), bound, exposed)
    await running.set_serving(False)
    await running.set_ready(False)
    log.info(
        "grpc_server_started", host=host, port=bound, services=list(service_names), node=node_name
    )
    return running


def server_options(max_receive_bytes: int, max_connection_age_s: float) -> list[tuple[str, int]]:
    """Channel arguments of every service's server: requests up to ``max_receive_bytes``,
    metadata up to :data:`METADATA_LIMITS_BYTES`, connections closed after
    ``max_connection_age_s`` (0: never)."""
    soft, hard = METADATA_LIMITS_BYTES
    options = [
        ("grpc.so_reuseport", 0),
        ("grpc.max_receive_message_length", max_receive_bytes),
        ("grpc.max_send_message_length", DEFAULT_MAX_MESSAGE_BYTES),
        ("grpc.max_metadata_size", soft),
        ("grpc.absolute_max_metadata_size", hard),
    ]
    if max_connection_age_s > 0:
        options.append(("grpc.max_connection_age_ms", round(max_connection_age_s * 1000)))
        options.append(("grpc.max_connection_age_grace_ms", MAX_CONNECTION_AGE_GRACE_MS))
    return options


async def wait_for_signal() -> None:
    """Returns on the first SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def stop_server(running: RunningServer, grace_s: float) -> None:
    """Ends the readiness check, marks the server NOT_SERVING and not ready, then stops it,
    letting calls in flight finish."""
    for task in running.background:
        task.cancel()
    for task in running.background:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    running.background.clear()
    await running.set_ready(False)
    await running.set_serving(False)
    await running.server.stop(grace_s)
    if running.metrics_server is not None:
        await asyncio.to_thread(running.metrics_server.stop)
    log.info("grpc_server_stopped", grace_s=grace_s)


def channel_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, int]]:
    """Options for client channels that carry images."""
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]

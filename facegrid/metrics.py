"""Prometheus metrics of a service: every gRPC call by method and status code, latency, calls in
flight, the process (memory, CPU, open files), served over HTTP on the service's gRPC port + 1000
(DESIGN.md "Ports and names").

Each server owns its registry (a process may run several servers in tests); the names follow
go-grpc-prometheus, which dashboards know:

| metric | type | labels |
|---|---|---|
| ``grpc_server_started_total`` | counter | grpc_type, grpc_service, grpc_method |
| ``grpc_server_handled_total`` | counter | grpc_type, grpc_service, grpc_method, grpc_code |
| ``grpc_server_handling_seconds`` | histogram | grpc_type, grpc_service, grpc_method |
| ``grpc_server_in_flight`` | gauge | grpc_service, grpc_method |
| ``process_*`` | (the client library's process collector) | |

Services add their own (index sizes, sync lag, batch sizes) to :attr:`ServiceMetrics.registry`.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)

from facegrid.interceptors import rewrapped

log = structlog.get_logger()

#: Latency buckets, seconds: from a cached key check to a large image on a busy CPU.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)


def _split(method: str) -> tuple[str, str]:
    """``/pkg.Service/Method`` -> (``pkg.Service``, ``Method``)."""
    _, service, name = method.split("/", 2) if method.count("/") >= 2 else ("", "", method)
    return service, name


@dataclass
class ServiceMetrics:
    """One server's registry and its gRPC metrics."""

    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )

    def __post_init__(self) -> None:
        labels = ["grpc_type", "grpc_service", "grpc_method"]
        self.started = Counter(
            "grpc_server_started",
            "RPCs started on the server.",
            labels,
            registry=self.registry,
        )
        self.handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, by status code.",
            [*labels, "grpc_code"],
            registry=self.registry,
        )
        self.handling = Histogram(
            "grpc_server_handling_seconds",
            "Time from the start of an RPC to its status, seconds.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "grpc_server_in_flight",
            "RPCs being handled now.",
            ["grpc_service", "grpc_method"],
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)

    def interceptor(self) -> grpc.aio.ServerInterceptor:
        """The server interceptor that records every call."""
        return MetricsServerInterceptor(self)


@dataclass(frozen=True, slots=True)
class MetricsServer:
    """The HTTP server of a registry's metrics (``/metrics``)."""

    port: int
    stop: Callable[[], None]


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> MetricsServer | None:
    """Serves ``registry`` on ``host:port`` in a background thread; None when ``port`` is 0."""
    if port == 0:
        return None
    server, thread = start_http_server(port, addr=host, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    log.info("metrics_server_started", host=host, port=port)
    return MetricsServer(port, stop)


def _grpc_type(handler: grpc.RpcMethodHandler[Any, Any]) -> str:
    if handler.request_streaming and handler.response_streaming:
        return "bidi_stream"
    if handler.request_streaming:
        return "client_stream"
    if handler.response_streaming:
        return "server_stream"
    return "unary"


class _Call:
    """The bookkeeping of one call."""

    def __init__(self, metrics: ServiceMetrics, kind: str, service: str, method: str) -> None:
        self._metrics = metrics
        self._labels = (kind, service, method)
        self._flight = metrics.in_flight.labels(service, method)
        metrics.started.labels(*self._labels).inc()
        self._flight.inc()
        self._began = time.perf_counter()

    def end(self, context: grpc.aio.ServicerContext[Any, Any], failed: bool) -> None:
        code = context.code() or (grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK)
        name = getattr(code, "name", str(code))
        self._metrics.handled.labels(*self._labels, name).inc()
        self._metrics.handling.labels(*self._labels).observe(time.perf_counter() - self._began)
        self._flight.dec()


def _unary_response(
    inner: Callable[..., Awaitable[Any]], start: Callable[[], _Call]
) -> Callable[..., Awaitable[Any]]:
    async def behaviour(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        call = start()
        failed = True
        try:
            response = await inner(request, context)
            failed = False
            return response
        finally:
            call.end(context, failed)

    return behaviour


def _stream_response(inner: Callable[..., Any], start: Callable[[], _Call]) -> Callable[..., Any]:
    if not inspect.isasyncgenfunction(inner):
        return _unary_response(inner, start)  # writes with context.write

    async def behaviour(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        call = start()
        failed = True
        try:
            async for message in inner(request, context):
                yield message
            failed = False
        finally:
            call.end(context, failed)

    return behaviour


class MetricsServerInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every call; runs outermost, so it sees every call's final status."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        service, method = _split(handler_call_details.method)
        kind = _grpc_type(handler)

        def start() -> _Call:
            return _Call(self._metrics, kind, service, method)

        return rewrapped(
            handler,
            lambda inner: _unary_response(inner, start),
            lambda inner: _stream_response(inner, start),
        )

"""Probes that tell when a process of the mesh is ready to serve."""

from __future__ import annotations

import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def grpc_serving(address: str, timeout_s: float = 1.0, service: str = "") -> bool:
    """True when the gRPC health service at ``address`` answers SERVING for ``service`` (``""``:
    the process is alive; ``facegrid.ready``: the node is ready for work)."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    """True when ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:  # noqa: S310 (loopback)
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def envoy_cluster_healthy(admin_url: str, cluster: str, timeout_s: float = 1.0) -> bool:
    """True when Envoy (admin interface at ``admin_url``) has a healthy host in ``cluster``:
    calls routed to it are taken."""
    try:
        with urllib.request.urlopen(f"{admin_url}/clusters", timeout=timeout_s) as reply:  # noqa: S310
            text = reply.read().decode()
    except (urllib.error.URLError, OSError):
        return False
    return any(
        line.startswith(f"{cluster}::") and line.endswith("::health_flags::healthy")
        for line in text.splitlines()
    )

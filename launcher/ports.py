"""Preflight of the mesh's ports: every one free and distinct before any process starts.

Without it, a second mesh (or any program) already listening on a port would answer the new
mesh's readiness checks, and the launcher would report ready processes that had failed to bind.
Every node's port is checked: node i of api_svc and embed_svc listens on its base port + 100 * i,
and every service's Prometheus metrics on its gRPC port + 1000; api_svc node i serves its status
(NodeService) on its own port + 2000.
"""

from __future__ import annotations

import socket

from facegrid.config import METRICS_PORT_OFFSET
from facegrid.server import STATUS_PORT_OFFSET
from gateway.render import NODE_PORT_STEP
from launcher.config import MeshConfig

#: The configuration field of each port and the environment variable that sets it.
PORT_VARIABLES = {
    "envoy_port": "FACEGRID_ENVOY_PORT",
    "envoy_admin_port": "FACEGRID_ENVOY_ADMIN_PORT",
    "api_port": "FACEGRID_API_PORT",
    "embed_port": "FACEGRID_EMBED_PORT",
    "admin_port": "FACEGRID_ADMIN_PORT",
    "console_port": "FACEGRID_CONSOLE_PORT",
    "triton_grpc_port": "FACEGRID_TRITON_GRPC_PORT",
    "triton_http_port": "FACEGRID_TRITON_HTTP_PORT",
    "triton_metrics_port": "FACEGRID_TRITON_METRICS_PORT",
}
#: Services whose metrics listen on their gRPC port + 1000, and the variable that moves them.
METRICS_VARIABLES = {
    "api_port": "FACEGRID_API_METRICS_PORT",
    "embed_port": "FACEGRID_EMBED_METRICS_PORT",
    "admin_port": "FACEGRID_ADMIN_METRICS_PORT",
}
#: Fields whose port is node 0's, and the config field counting the nodes.
NODE_COUNTS = {"api_port": "api_nodes", "embed_port": "embed_nodes"}


def port_is_free(host: str, port: int) -> bool:
    """True when a TCP listener could bind ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def mesh_ports(config: MeshConfig) -> list[tuple[int, str, str]]:
    """Every port the mesh listens on: (port, what it is, the variable that sets it)."""
    ports = []
    for field, variable in PORT_VARIABLES.items():
        base = int(getattr(config, field))
        if base == 0:  # turned off (Triton's metrics)
            continue
        nodes = int(getattr(config, NODE_COUNTS[field])) if field in NODE_COUNTS else 1
        for i in range(nodes):
            label = variable if i == 0 else f"{variable} + {NODE_PORT_STEP * i} (node {i})"
            ports.append((base + NODE_PORT_STEP * i, label, variable))
            if field in METRICS_VARIABLES:
                ports.append(
                    (
                        base + NODE_PORT_STEP * i + METRICS_PORT_OFFSET,
                        f"{label} + {METRICS_PORT_OFFSET} (metrics)",
                        variable,
                    )
                )
    for i in range(config.api_nodes):  # each api_svc node's status port (NodeService)
        offset = STATUS_PORT_OFFSET + NODE_PORT_STEP * i
        label = f"FACEGRID_API_PORT + {offset} (api_svc node {i} status)"
        ports.append((config.api_port + offset, label, "FACEGRID_API_PORT"))
    return ports


def port_problems(config: MeshConfig) -> list[str]:
    """One sentence per port that is configured twice, out of range or already in use; empty
    when all is well."""
    problems = []
    seen: dict[int, str] = {}
    for port, label, variable in mesh_ports(config):
        if port in seen:
            problems.append(f"{label} and {seen[port]} are both {port}")
            continue
        seen[port] = label
        if port > 65535:
            problems.append(f"{label} is {port}, past 65535: lower {variable}")
        elif not port_is_free(config.host, port):
            problems.append(
                f"port {port} on {config.host} ({label}) is already in use: stop what listens"
                f" there (another Facegrid?) or set {variable}"
            )
    return problems

"""Preflight of the mesh's ports: every one free and distinct before any process starts.

Without it, a second mesh (or any program) already listening on a port would answer the new
mesh's readiness checks, and the launcher would report ready processes that had failed to bind.
"""

from __future__ import annotations

import socket

from launcher.config import MeshConfig

#: The configuration field of each port and the environment variable that sets it.
PORT_VARIABLES = {
    "envoy_port": "FACEGRID_ENVOY_PORT",
    "envoy_admin_port": "FACEGRID_ENVOY_ADMIN_PORT",
    "api_port": "FACEGRID_API_PORT",
    "embed_port": "FACEGRID_EMBED_PORT",
    "admin_port": "FACEGRID_ADMIN_PORT",
    "triton_grpc_port": "FACEGRID_TRITON_GRPC_PORT",
    "triton_http_port": "FACEGRID_TRITON_HTTP_PORT",
}


def port_is_free(host: str, port: int) -> bool:
    """True when a TCP listener could bind ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_problems(config: MeshConfig) -> list[str]:
    """One sentence per port that is configured twice or already in use; empty when all is well."""
    problems = []
    seen: dict[int, str] = {}
    for field, variable in PORT_VARIABLES.items():
        port = int(getattr(config, field))
        if port in seen:
            problems.append(f"{variable} and {seen[port]} are both {port}")
            continue
        seen[port] = variable
        if not port_is_free(config.host, port):
            problems.append(
                f"port {port} on {config.host} ({variable}) is already in use: stop what listens"
                f" there (another Facegrid?) or set {variable}"
            )
    return problems

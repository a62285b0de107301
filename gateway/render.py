"""Renders Envoy's configuration for given ports; ``envoy.yaml`` is its output for the defaults.

``python -m gateway.render > envoy.yaml`` regenerates the committed file; the launcher renders a
copy when any port or path differs from the defaults. Routes: REST (transcoded) and gRPC for the
recognition and admin services only (embed_svc is internal), ``/healthz`` (liveness: Envoy is
up) and ``/ready`` (readiness: every upstream passes its gRPC health check).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template

GATEWAY_DIR = Path(__file__).resolve().parent

_MIB = 1024 * 1024

#: gRPC services exposed at the edge.
PUBLIC_SERVICES = ("facegrid.recognition.v1.RecognitionService", "facegrid.admin.v1.AdminService")


@dataclass(frozen=True, slots=True)
class GatewayPorts:
    """Where Envoy listens and where the upstream services are (all on one host)."""

    listen_port: int = 8000
    """Public REST + gRPC port (CompreFace's)."""
    admin_port: int = 9901
    """Envoy's admin interface (bound to loopback)."""
    api_port: int = 50051
    """api_svc gRPC port."""
    embed_port: int = 50052
    """embed_svc gRPC port (health-checked for readiness only, never routed)."""
    admin_svc_port: int = 50053
    """admin_svc gRPC port."""
    host: str = "127.0.0.1"
    """Interface for the listener and the upstream services."""
    descriptor_path: str = "gateway/descriptor.pb"
    """Descriptor set built by ``make proto`` (relative to the working directory)."""
    max_request_bytes: int = 10 * 1024 * 1024
    """Largest request body, bytes (CompreFace: 10 MB per request)."""
    services: tuple[str, ...] = PUBLIC_SERVICES
    """gRPC services transcoded and routed at the edge."""


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line if line else line for line in text.splitlines())


def size_text(size_bytes: int) -> str:
    """A size as the error messages say it: ``10 MB`` for whole MiB, else in bytes."""
    mib, rest = divmod(size_bytes, _MIB)
    return f"{mib} MB" if mib and not rest else f"{size_bytes} bytes"


def render(ports: GatewayPorts) -> str:
    """Returns the Envoy YAML for ``ports``."""
    template = Template((GATEWAY_DIR / "envoy.yaml.in").read_text())
    lua = (GATEWAY_DIR / "compreface_errors.lua").read_text()
    lua = lua.replace("@max_request_text@", size_text(ports.max_request_bytes))
    return template.substitute(
        listen_port=ports.listen_port,
        admin_port=ports.admin_port,
        api_port=ports.api_port,
        embed_port=ports.embed_port,
        admin_svc_port=ports.admin_svc_port,
        host=ports.host,
        descriptor_path=ports.descriptor_path,
        max_request_bytes=ports.max_request_bytes,
        services="\n".join(f"                        - {name}" for name in ports.services),
        lua=_indent(lua, 26),
    )


if __name__ == "__main__":
    sys.stdout.write(render(GatewayPorts()))

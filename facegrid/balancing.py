"""Client channels that balance over several nodes of a service (embed_svc today).

An address setting (``FACEGRID_EMBED_URL``) may name one node (``host:port``), a comma-separated
list of nodes (``127.0.0.1:50052,127.0.0.1:50152``: IP addresses, turned into gRPC's
``ipv4:``/``ipv6:`` target list) or any gRPC target such as ``dns:///embed:50052`` (a Kubernetes
headless Service: every address the name resolves to is a node). The channel balances calls
round robin over the nodes whose ``facegrid.ready`` health is SERVING (gRPC client-side health
checking), and retries a call that failed UNAVAILABLE on another node: give it only services
whose calls are safe to repeat.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence

from facegrid.config import ConfigError
from facegrid.server import DEFAULT_MAX_MESSAGE_BYTES, READY_SERVICE

#: gRPC target schemes passed through as they are.
SCHEMES = frozenset({"dns", "ipv4", "ipv6", "unix", "unix-abstract", "vsock", "xds"})
#: Longest wait between two attempts to reconnect to a node, milliseconds.
MAX_RECONNECT_BACKOFF_MS = 5000
#: Attempts of one call (the first included) when a node answers UNAVAILABLE.
MAX_ATTEMPTS = 3


def _ip_node(node: str, variable: str) -> tuple[int, str]:
    host, sep, port = node.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit():
        raise ConfigError(f"{variable}: {node!r} is not host:port")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(
            f"{variable}: a list of nodes takes IP addresses, got {host!r}; for a name that "
            "resolves to every node use dns:///name:port"
        ) from None
    text = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
    return address.version, text


def grpc_target(address: str, variable: str = "FACEGRID_EMBED_URL") -> str:
    """The gRPC target for an address setting: ``host:port``, ``ip:port,ip:port,...`` or a
    target with a scheme (``dns:///name:port``, ``ipv4:...``); ``variable`` names it in errors."""
    address = address.strip()
    if "," not in address or address.split(":", 1)[0] in SCHEMES:
        if not address:
            raise ConfigError(f"{variable} is empty")
        return address
    nodes = [_ip_node(node.strip(), variable) for node in address.split(",") if node.strip()]
    versions = {version for version, _ in nodes}
    if len(versions) != 1:
        raise ConfigError(f"{variable}: a list of nodes takes IPv4 or IPv6 addresses, not both")
    scheme = "ipv6" if versions == {6} else "ipv4"
    return f"{scheme}:{','.join(text for _, text in nodes)}"


def balanced_service_config(services: Sequence[str]) -> str:
    """gRPC service config: round robin over ready nodes, UNAVAILABLE calls of ``services``
    retried on another node (with backoff, ``MAX_ATTEMPTS`` in all)."""
    return json.dumps(
        {
            "loadBalancingConfig": [{"round_robin": {}}],
            "healthCheckConfig": {"serviceName": READY_SERVICE},
            "methodConfig": [
                {
                    "name": [{"service": service} for service in services],
                    "retryPolicy": {
                        "maxAttempts": MAX_ATTEMPTS,
                        "initialBackoff": "0.05s",
                        "maxBackoff": "0.5s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ],
        }
    )


def balanced_options(
    services: Sequence[str], max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> list[tuple[str, str | int]]:
    """Channel options that turn on :func:`balanced_service_config` for ``services``; a call
    keeps its request (up to ``max_message_bytes``) for a retry."""
    return [
        ("grpc.service_config", balanced_service_config(services)),
        ("grpc.enable_retries", 1),
        ("grpc.per_rpc_retry_buffer_size", max_message_bytes),
        # A node back from a restart rejoins within seconds (gRPC's default backoff reaches 2 min).
        ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS),
    ]

"""Free loopback ports for servers a test starts."""

from __future__ import annotations

import socket

from facegrid.config import METRICS_PORT_OFFSET
from gateway.render import node_ports
from launcher.ports import port_is_free


def unused_port() -> int:
    """A loopback TCP port that is free now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_base_port(nodes: int) -> int:
    """A base port such that node i's port (base + 100 * i, DESIGN.md "Ports and names") and
    its metrics port (+ 1000) are free for each of ``nodes`` nodes."""
    for _ in range(200):
        base = unused_port()
        ports = node_ports(base, nodes)
        ports += [port + METRICS_PORT_OFFSET for port in ports]
        if max(ports) < 65536 and all(port_is_free("127.0.0.1", port) for port in ports):
            return base
    raise AssertionError(f"no free base port for {nodes} nodes")

"""Free loopback ports for servers a test starts."""

from __future__ import annotations

import socket
from collections.abc import Mapping

from facegrid.config import METRICS_PORT_OFFSET
from gateway.render import node_ports
from launcher.config import load_config
from launcher.ports import PORT_VARIABLES, mesh_ports, port_is_free


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


def mesh_port_env(settings: Mapping[str, str | int] | None = None) -> dict[str, str]:
    """Every launcher port variable on a free port, then ``settings`` (node counts, ports a
    test fixes).

    Ports drawn one by one can clash once node, metrics and status offsets are added (one
    variable's base + 2100 is another's base), so the draws are repeated until every port the
    mesh derives from them is distinct and none lands on a port ``settings`` fixes; fixed ports
    may clash with each other on purpose."""
    fixed_settings = {name: str(value) for name, value in (settings or {}).items()}
    fixed_variables = {name for name in fixed_settings if name in PORT_VARIABLES.values()}
    for _ in range(100):
        env = {variable: str(free_base_port(3)) for variable in PORT_VARIABLES.values()}
        env.update(fixed_settings)
        ports = mesh_ports(load_config(env))
        drawn = [port for port, _, variable in ports if variable not in fixed_variables]
        fixed = {port for port, _, variable in ports if variable in fixed_variables}
        if len(set(drawn)) == len(drawn) and not fixed.intersection(drawn):
            return env
    raise AssertionError("no set of distinct free mesh ports found in 100 draws")

"""The launcher's port preflight: ports in use or configured twice are named before anything
starts."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from facegrid.config import ConfigError
from launcher.config import load_config
from launcher.ports import mesh_ports, port_is_free, port_problems
from tests.helpers.ports import free_base_port, mesh_port_env


def _config(free_port: Callable[[], int], **overrides: int) -> dict[str, str]:
    """Every port variable on a free port, all derived ports distinct, then ``overrides``."""
    return mesh_port_env(overrides)


def test_free_distinct_ports_pass(free_port: Callable[[], int]) -> None:
    assert port_problems(load_config(_config(free_port))) == []


def test_a_port_in_use_is_named_with_its_variable(free_port: Callable[[], int]) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        assert not port_is_free("127.0.0.1", busy)
        problems = port_problems(load_config(_config(free_port, FACEGRID_API_PORT=busy)))
    assert len(problems) == 1
    assert f"port {busy}" in problems[0] and "FACEGRID_API_PORT" in problems[0]


def test_the_same_port_twice_is_refused(free_port: Callable[[], int]) -> None:
    port = free_port()
    env = _config(free_port, FACEGRID_EMBED_PORT=port, FACEGRID_ADMIN_PORT=port)
    problems = port_problems(load_config(env))
    assert problems == [
        f"FACEGRID_ADMIN_PORT and FACEGRID_EMBED_PORT are both {port}",
        f"FACEGRID_ADMIN_PORT + 1000 (metrics) and FACEGRID_EMBED_PORT + 1000 (metrics) are both"
        f" {port + 1000}",
    ]


def test_every_node_port_is_checked(free_port: Callable[[], int]) -> None:
    busy_base = free_base_port(2)
    env = _config(
        free_port, FACEGRID_API_NODES=2, FACEGRID_EMBED_NODES=3, FACEGRID_API_PORT=busy_base
    )
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", busy_base + 100))
        listener.listen()
        config = load_config(env)
        ports = [port for port, _, _ in mesh_ports(config)]
        # 9 ports, one more api_svc node, two more embed_svc nodes, two api_svc status ports,
        # each service node's metrics port
        assert len(ports) == 9 + 1 + 2 + 2 + (2 + 3 + 1)
        problems = port_problems(config)
    assert problems == [
        f"port {busy_base + 100} on 127.0.0.1 (FACEGRID_API_PORT + 100 (node 1)) is already in"
        " use: stop what listens there (another Facegrid?) or set FACEGRID_API_PORT"
    ]


def test_every_metrics_port_is_checked(free_port: Callable[[], int]) -> None:
    busy_base = free_base_port(2)
    env = _config(free_port, FACEGRID_API_NODES=2, FACEGRID_API_PORT=busy_base)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", busy_base + 100 + 1000))
        listener.listen()
        problems = port_problems(load_config(env))
    assert problems == [
        f"port {busy_base + 1100} on 127.0.0.1 (FACEGRID_API_PORT + 100 (node 1) + 1000"
        " (metrics)) is already in use: stop what listens there (another Facegrid?) or set"
        " FACEGRID_API_PORT"
    ]


def test_a_node_port_may_not_be_another_setting(free_port: Callable[[], int]) -> None:
    embed = free_base_port(3)
    env = _config(
        free_port,
        FACEGRID_EMBED_NODES=2,
        FACEGRID_EMBED_PORT=embed,
        FACEGRID_ADMIN_PORT=embed + 100,
    )
    problems = port_problems(load_config(env))
    port = int(env["FACEGRID_ADMIN_PORT"])
    assert problems == [
        f"FACEGRID_ADMIN_PORT and FACEGRID_EMBED_PORT + 100 (node 1) are both {port}",
        "FACEGRID_ADMIN_PORT + 1000 (metrics) and FACEGRID_EMBED_PORT + 100 (node 1) + 1000"
        f" (metrics) are both {port + 1000}",
    ]


def test_node_ports_past_65535_are_refused(free_port: Callable[[], int]) -> None:
    env = _config(free_port, FACEGRID_API_NODES=3, FACEGRID_API_PORT=65400)
    problems = port_problems(load_config(env))
    assert any("FACEGRID_API_PORT + 200 (node 2) is 65600, past 65535" in p for p in problems)


@pytest.mark.parametrize("nodes", ["0", "11", "two"])
def test_node_counts_are_1_to_10(nodes: str) -> None:
    with pytest.raises(ConfigError, match="FACEGRID_EMBED_NODES"):
        load_config({"FACEGRID_EMBED_NODES": nodes})


def test_each_api_node_status_port_is_checked(free_port: Callable[[], int]) -> None:
    env = _config(free_port, FACEGRID_API_NODES=2)
    base = int(env["FACEGRID_API_PORT"])
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", base + 2100))
        listener.listen()
        problems = port_problems(load_config(env))
    assert problems == [
        f"port {base + 2100} on 127.0.0.1 (FACEGRID_API_PORT + 2100 (api_svc node 1 status)) is"
        " already in use: stop what listens there (another Facegrid?) or set FACEGRID_API_PORT"
    ]

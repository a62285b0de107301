"""The launcher's port preflight: ports in use or configured twice are named before anything
starts."""

from __future__ import annotations

import socket
from collections.abc import Callable

from launcher.config import load_config
from launcher.ports import PORT_VARIABLES, port_is_free, port_problems


def _config(free_port: Callable[[], int], **overrides: int) -> dict[str, str]:
    env = {variable: str(free_port()) for variable in PORT_VARIABLES.values()}
    env.update({name: str(port) for name, port in overrides.items()})
    return env


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
    assert problems == [f"FACEGRID_ADMIN_PORT and FACEGRID_EMBED_PORT are both {port}"]

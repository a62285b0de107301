"""Gateway fixtures: a real Envoy in front of upstreams the test provides."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from gateway.render import GatewayPorts
from tests.helpers.envoy import running_envoy


@pytest.fixture
def start_envoy(short_tmp: Path) -> Iterator[Callable[[GatewayPorts], str]]:
    """Starts Envoy with the rendered config for the given ports; returns its base URL once
    its listener answers /healthz. Stopped at teardown."""
    with ExitStack() as stack:
        yield lambda ports: stack.enter_context(running_envoy(ports, short_tmp))

"""Gateway fixtures: a real Envoy in front of upstreams the test provides."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.render import GatewayPorts, render
from launcher.readiness import http_ok

REPO = Path(__file__).resolve().parents[2]
ENVOY = str(Path(sys.executable).parent / "envoy")


@pytest.fixture
def start_envoy(short_tmp: Path) -> Iterator[Callable[[GatewayPorts], str]]:
    """Starts Envoy with the rendered config for the given ports; returns its base URL once
    its listener answers /healthz. Stopped at teardown."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(ports: GatewayPorts) -> str:
        config = short_tmp / f"envoy-{ports.listen_port}.yaml"
        config.write_text(render(ports))
        log = (short_tmp / f"envoy-{ports.listen_port}.log").open("wb")
        process = subprocess.Popen(
            [ENVOY, "-c", str(config), "--log-level", "warn", "--base-id", str(ports.listen_port)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        base = f"http://127.0.0.1:{ports.listen_port}"
        deadline = time.monotonic() + 30
        while not http_ok(f"{base}/healthz"):
            assert process.poll() is None, f"envoy exited: {config.with_suffix('.log')}"
            assert time.monotonic() < deadline, "envoy did not start"
            time.sleep(0.1)
        return base

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)

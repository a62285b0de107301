"""A second launcher on a running mesh's ports stops before starting anything, names the port,
and leaves the running mesh alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from launcher.readiness import http_ok
from tests.launcher.helpers import REPO, MeshHandle

pytestmark = pytest.mark.integration


def test_a_second_mesh_on_the_same_port_is_refused(mesh: MeshHandle, short_tmp: Path) -> None:
    envoy_port = mesh.rest.rsplit(":", 1)[1]
    env = dict(os.environ, FACEGRID_ENVOY_PORT=envoy_port, FACEGRID_DATA_DIR=str(short_tmp / "2"))
    env.pop("FACEGRID_DATABASE_URL", None)
    second = subprocess.run(
        [sys.executable, "-m", "launcher"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1, second.stdout + second.stderr
    assert f"port {envoy_port}" in second.stderr and "FACEGRID_ENVOY_PORT" in second.stderr
    assert not (short_tmp / "2").exists()  # nothing was started or written
    assert http_ok(f"{mesh.rest}/ready")

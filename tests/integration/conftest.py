"""The whole mesh, started by the real launcher (``python -m launcher``) on free ports.

PostgreSQL (embedded), Triton, embed_svc, admin_svc, api_svc and Envoy run as real processes;
the session ends with SIGINT to the launcher, as Ctrl-C would, and checks they all stopped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from launcher.readiness import http_ok

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class MeshHandle:
    """Addresses of a running mesh."""

    rest: str
    """Envoy base URL."""
    envoy_grpc: str
    """Envoy host:port for gRPC clients."""
    api: str
    """api_svc host:port (direct)."""
    embed: str
    """embed_svc host:port (direct, internal)."""
    admin: str
    """admin_svc host:port (direct)."""
    triton_http: str
    """Triton HTTP base URL."""
    data_dir: Path
    """The mesh's data directory (logs under logs/)."""
    launcher_log: Path
    """The launcher's own output."""

    def launcher_events(self) -> list[dict[str, object]]:
        """The launcher's JSON log events so far."""
        events = []
        for line in self.launcher_log.read_text().splitlines():
            if line.startswith("{"):
                events.append(json.loads(line))
        return events


def _children_pids(handle: MeshHandle) -> list[int]:
    return [
        int(str(e["pid"])) for e in handle.launcher_events() if e.get("event") == "process_started"
    ]


@pytest.fixture(scope="session")
def mesh(short_tmp: Path, free_port: Callable[[], int]) -> Iterator[MeshHandle]:
    ports = {
        name: free_port()
        for name in ("ENVOY", "ENVOY_ADMIN", "API", "EMBED", "ADMIN", "TRITON_GRPC", "TRITON_HTTP")
    }
    data_dir = short_tmp / "mesh"
    env = dict(os.environ)
    env.update({f"FACEGRID_{name}_PORT": str(port) for name, port in ports.items()})
    env.update(
        FACEGRID_DATA_DIR=str(data_dir),
        FACEGRID_LOGS_TO_FILES="1",
        FACEGRID_LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
    )
    env.pop("FACEGRID_DATABASE_URL", None)
    launcher_log = short_tmp / "launcher.log"
    with launcher_log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "launcher"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    handle = MeshHandle(
        rest=f"http://127.0.0.1:{ports['ENVOY']}",
        envoy_grpc=f"127.0.0.1:{ports['ENVOY']}",
        api=f"127.0.0.1:{ports['API']}",
        embed=f"127.0.0.1:{ports['EMBED']}",
        admin=f"127.0.0.1:{ports['ADMIN']}",
        triton_http=f"http://127.0.0.1:{ports['TRITON_HTTP']}",
        data_dir=data_dir,
        launcher_log=launcher_log,
    )
    deadline = time.monotonic() + 300
    while "Facegrid is up" not in launcher_log.read_text():
        if process.poll() is not None:
            logs = "\n".join(
                f"--- {p.name}\n{p.read_text()[-3000:]}" for p in (data_dir / "logs").glob("*.log")
            )
            pytest.fail(f"launcher exited:\n{launcher_log.read_text()}\n{logs}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("mesh did not start in 300 s")
        time.sleep(0.5)
    assert http_ok(f"{handle.rest}/ready")
    children = _children_pids(handle)
    yield handle
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0, launcher_log.read_text()[-3000:]
    still_running = [
        pid
        for pid in children
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    assert still_running == [], f"processes left running after Ctrl-C: {still_running}"

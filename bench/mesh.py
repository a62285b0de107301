"""A whole mesh for the load and soak benchmarks: started by the real launcher on free ports in
a scratch directory (or an already running one given by URL and key), its demo API keys, and the
processes it runs with their memory."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
PORT_VARIABLES = (
    "ENVOY",
    "ENVOY_ADMIN",
    "API",
    "EMBED",
    "ADMIN",
    "TRITON_GRPC",
    "TRITON_HTTP",
    "TRITON_METRICS",
    "CONSOLE",
)


@dataclass
class Mesh:
    """A running mesh: where to call it, its keys, and (when started here) its processes."""

    rest: str
    keys: dict[str, str]
    launcher_log: Path | None = None
    pids: dict[str, int] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    """Its ports by launcher variable (``API``, ``EMBED``, ...), when started here."""

    def refresh_pids(self) -> None:
        """The current pid of every process, from the launcher's events (restarts included)."""
        if self.launcher_log is None:
            return
        for line in self.launcher_log.read_text().splitlines():
            if not line.startswith("{"):
                continue
            event = json.loads(line)
            if event.get("event") in ("process_started", "process_restarted"):
                self.pids[str(event["process"])] = int(event["pid"])

    def memory_mb(self) -> dict[str, tuple[float, float]]:
        """Memory of each process, MiB: (its own RSS, the PSS of it and its children). The PSS
        (proportional set size) of PostgreSQL's backends or Triton's python-backend stubs adds up
        to what they really hold, where their RSS would count shared memory once per process.
        The launcher's children are the other processes: its own alone."""
        self.refresh_pids()
        sizes = {}
        for name, pid in sorted(self.pids.items()):
            try:
                root = psutil.Process(pid)
                tree = [root] if name == "launcher" else [root, *root.children(recursive=True)]
                pss = sum(p.memory_full_info().pss for p in tree)
                sizes[name] = (root.memory_info().rss / 2**20, pss / 2**20)
            except psutil.NoSuchProcess:
                sizes[name] = (float("nan"), float("nan"))
        return sizes


def _free_base() -> int:
    """A port whose +100 (a second node), +1000 (metrics) and +2000 (status) are free too."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base = int(sock.getsockname()[1])
        if base + 2200 > 65535:
            continue
        ok = True
        for port in (base + 100, base + 1000, base + 1100, base + 2000, base + 2100):
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
        if ok:
            return base


def _keys(log: Path) -> dict[str, str]:
    text = log.read_text()
    return dict(re.findall(r"^\s+(RECOGNITION|DETECTION|VERIFICATION)\s+\S+\s+(\S+)$", text, re.M))


def launch(env: dict[str, str], log: Path, timeout_s: float) -> subprocess.Popen[bytes]:
    """``python -m launcher`` with ``env``, its output in ``log``; returns once it printed
    "Facegrid is up" (RuntimeError with the log's tail if it exits or ``timeout_s`` passes)."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "launcher"], cwd=REPO, env=env, stdout=out, stderr=out
        )
    deadline = time.monotonic() + timeout_s
    while "Facegrid is up" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the mesh did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    return process


@contextmanager
def started_mesh(
    api_nodes: int = 1, embed_nodes: int = 1, extra_env: dict[str, str] | None = None
) -> Iterator[Mesh]:
    """A mesh started by ``python -m launcher`` in a scratch directory (with ``extra_env`` added
    to the launcher's environment); stopped on exit."""
    work = Path(tempfile.mkdtemp(prefix="fgb-", dir="/tmp"))
    work.chmod(0o755)
    ports = {name: _free_base() for name in PORT_VARIABLES}
    env = dict(os.environ)
    env.update({f"FACEGRID_{name}_PORT": str(port) for name, port in ports.items()})
    env.update(
        FACEGRID_DATA_DIR=str(work / "mesh"),
        FACEGRID_LOGS_TO_FILES="1",
        FACEGRID_LOG_FORMAT="json",
        FACEGRID_API_NODES=str(api_nodes),
        FACEGRID_EMBED_NODES=str(embed_nodes),
        PYTHONUNBUFFERED="1",
    )
    env.pop("FACEGRID_DATABASE_URL", None)
    env.update(extra_env or {})
    log = work / "launcher.log"
    launcher = launch(env, log, timeout_s=600)
    try:
        mesh = Mesh(
            f"http://127.0.0.1:{ports['ENVOY']}",
            _keys(work / "mesh" / "logs" / "admin_svc.log"),
            log,
            ports=ports,
        )
        mesh.refresh_pids()
        mesh.pids["launcher"] = launcher.pid
        yield mesh
    finally:
        launcher.send_signal(signal.SIGINT)
        try:
            launcher.wait(timeout=60)
        except subprocess.TimeoutExpired:
            launcher.kill()
        subprocess.run(["rm", "-rf", str(work)], check=False)

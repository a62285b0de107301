"""A real tritonserver (from PyPI nvidia-pytriton) on free ports, for tests that need Triton.

The command line and environment come from ``launcher.triton.triton_command`` (the launcher's
recipe: copied backends with the Python 3.11 stub, LD_LIBRARY_PATH on the bundled libraries,
the venv on PATH, ``--pinned-memory-pool-byte-size=0``, gRPC and HTTP on 127.0.0.1, metrics
off). Readiness is Triton's HTTP ``/v2/health/ready``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from launcher.readiness import http_ok
from launcher.triton import triton_command
from tests.helpers.ports import unused_port
from tests.helpers.processes import stop_process
from tests.helpers.wait import wait_until

REPO = Path(__file__).resolve().parents[2]
#: The model repository (``make models`` fills it); FACEGRID_MODEL_REPOSITORY overrides it.
REPOSITORY = Path(os.environ.get("FACEGRID_MODEL_REPOSITORY") or REPO / "triton_models").resolve()


def missing_models(names: list[str], repository: Path = REPOSITORY) -> list[str]:
    """The models of ``names`` that have no ``config.pbtxt`` or no weights (a file beside
    ``1/model.py``: model.onnx, or dlib's .dat) yet."""
    return [
        name
        for name in names
        if not (repository / name / "config.pbtxt").is_file()
        or not any(
            p.name != "model.py" and p.is_file() for p in (repository / name / "1").glob("*")
        )
    ]


class TritonProcess:
    """One tritonserver serving ``repository``, on ports that stay the same across a stop and a
    start (so that a client keeps its address over a restart)."""

    def __init__(
        self, work_dir: Path, grpc_port: int, http_port: int, repository: Path = REPOSITORY
    ) -> None:
        self.work_dir = work_dir
        self.grpc_port = grpc_port
        self.http_port = http_port
        self.repository = repository
        self.log_path = work_dir / "triton.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def grpc_url(self) -> str:
        """host:port of its gRPC endpoint."""
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout_s: float = 120.0) -> None:
        """Starts the server and returns once it is ready (fails with its log's tail if it
        exits or is not ready in ``timeout_s``)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        command = triton_command(
            model_repository=self.repository,
            work_dir=self.work_dir,
            grpc_port=self.grpc_port,
            http_port=self.http_port,
        )
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(command.argv, env=command.env, stdout=log, stderr=log)
        self._process = process
        ready = f"http://127.0.0.1:{self.http_port}/v2/health/ready"

        def is_ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"tritonserver exited:\n{self.log_tail()}")
            return http_ok(ready)

        try:
            wait_until(is_ready, timeout_s, f"tritonserver to be ready (log {self.log_path})")
        except AssertionError:
            self.stop()
            raise

    def log_tail(self, size: int = 3000) -> str:
        """The end of its log."""
        return self.log_path.read_text(errors="replace")[-size:]

    def stop(self) -> None:
        """Stops the server (SIGTERM, then SIGKILL after 30 s)."""
        if self._process is not None:
            stop_process(self._process, 30)
        self._process = None


@contextmanager
def running_triton(repository: Path, work_dir: Path) -> Iterator[TritonProcess]:
    """A tritonserver serving ``repository`` on free ports until the block ends."""
    process = TritonProcess(work_dir, unused_port(), unused_port(), repository)
    process.start()
    try:
        yield process
    finally:
        process.stop()

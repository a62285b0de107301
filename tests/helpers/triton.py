"""A real tritonserver (from PyPI nvidia-pytriton) on free ports, for tests that need Triton."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from launcher.readiness import http_ok
from launcher.triton import triton_command

REPO = Path(__file__).resolve().parents[2]
#: The model repository (``make models`` fills it); FACEGRID_MODEL_REPOSITORY overrides it.
REPOSITORY = Path(os.environ.get("FACEGRID_MODEL_REPOSITORY") or REPO / "triton_models").resolve()


def missing_models(names: list[str]) -> list[str]:
    """The models of ``names`` that have no ``config.pbtxt`` or no weights (a file beside
    ``1/model.py``: model.onnx, or dlib's .dat) yet."""
    return [
        name
        for name in names
        if not (REPOSITORY / name / "config.pbtxt").is_file()
        or not any(
            p.name != "model.py" and p.is_file() for p in (REPOSITORY / name / "1").glob("*")
        )
    ]


class TritonProcess:
    """Starts, stops and restarts one tritonserver on fixed ports."""

    def __init__(self, work_dir: Path, grpc_port: int, http_port: int) -> None:
        self.work_dir = work_dir
        self.grpc_port = grpc_port
        self.http_port = http_port
        self.log_path = work_dir / "triton.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def grpc_url(self) -> str:
        """host:port of its gRPC endpoint."""
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout_s: float = 120.0) -> None:
        """Starts the server and waits until it is ready."""
        command = triton_command(
            model_repository=REPOSITORY,
            work_dir=self.work_dir,
            grpc_port=self.grpc_port,
            http_port=self.http_port,
        )
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(command.argv, env=command.env, stdout=log, stderr=log)
        ready = f"http://127.0.0.1:{self.http_port}/v2/health/ready"
        deadline = time.monotonic() + timeout_s
        while not http_ok(ready):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_text()[-3000:]
                raise RuntimeError(f"tritonserver did not start:\n{tail}")
            time.sleep(0.25)

    def stop(self) -> None:
        """Stops the server (SIGTERM, then SIGKILL after 30 s)."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

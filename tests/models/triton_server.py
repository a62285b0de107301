"""Starts and stops the tritonserver of PyPI ``nvidia-pytriton`` on a model repository, for tests.

The command line and environment come from ``launcher.triton.triton_command`` (the launcher's
recipe: copied backends with the Python 3.11 stub, LD_LIBRARY_PATH on the bundled libraries,
the venv on PATH, ``--pinned-memory-pool-byte-size=0``, gRPC and HTTP on 127.0.0.1 free ports,
metrics off). Readiness is polled over gRPC.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import tritonclient.grpc as grpcclient

from launcher.triton import triton_command


def free_port() -> int:
    """A loopback TCP port that is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class TritonServer:
    """A running tritonserver."""

    grpc_url: str
    """host:port of its gRPC endpoint."""
    http_port: int
    """Its HTTP port."""
    log_path: Path
    """Its stdout and stderr."""


@contextmanager
def running_triton(
    repository: Path, work_dir: Path, timeout_s: float = 120.0
) -> Iterator[TritonServer]:
    """A tritonserver serving ``repository`` until the block ends (SIGTERM, then SIGKILL)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    grpc_port, http_port = free_port(), free_port()
    command = triton_command(
        model_repository=repository, work_dir=work_dir, grpc_port=grpc_port, http_port=http_port
    )
    server = TritonServer(f"127.0.0.1:{grpc_port}", http_port, work_dir / "triton.log")
    with server.log_path.open("ab") as log:
        process = subprocess.Popen(command.argv, env=command.env, stdout=log, stderr=log)
    try:
        _wait_ready(server, process, timeout_s)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(server: TritonServer, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                if client.is_server_ready():
                    return
            except Exception:  # not listening yet
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                tail = server.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"tritonserver did not become ready:\n{tail}")
            time.sleep(0.25)
    finally:
        client.close()

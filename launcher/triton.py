"""Starts the tritonserver binary shipped in PyPI ``nvidia-pytriton`` on a model repository.

That build bundles only the python backend; the backend directory is copied somewhere writable
with the Python 3.11 stub inside it, and the server needs its bundled libraries on
LD_LIBRARY_PATH (without them it never becomes ready) and the venv on PATH (the stub imports
numpy from it).
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytriton


@dataclass(frozen=True, slots=True)
class TritonCommand:
    """Everything needed to spawn tritonserver."""

    argv: list[str]
    """Command line."""
    env: dict[str, str]
    """Environment (the caller's plus PATH and LD_LIBRARY_PATH)."""


def _python_tag() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def prepare_backends(work_dir: Path) -> Path:
    """Copies the bundled backends into ``work_dir`` (once) with the python stub; returns it."""
    package = Path(pytriton.__file__).resolve().parent / "tritonserver"
    backends = work_dir / "triton-backends"
    stub = backends / "python" / "triton_python_backend_stub"
    if not stub.exists():
        if backends.exists():
            shutil.rmtree(backends)
        shutil.copytree(package / "backends", backends)
        shutil.copy2(package / "python_backend_stubs" / _python_tag() / stub.name, stub)
    return backends


def triton_command(
    *,
    model_repository: Path,
    work_dir: Path,
    grpc_port: int,
    http_port: int,
    metrics_port: int = 0,
    host: str = "127.0.0.1",
    base_env: dict[str, str] | None = None,
) -> TritonCommand:
    """Builds the tritonserver command line and environment for a CPU machine; with a
    ``metrics_port``, Triton serves its Prometheus metrics there (inference counts, queue and
    compute time per model, CPU and memory)."""
    package = Path(pytriton.__file__).resolve().parent / "tritonserver"
    site_packages = Path(sysconfig.get_paths()["purelib"])
    libs = [str(site_packages / "nvidia_pytriton.libs")]
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir:
        libs.append(str(libdir))
    env = dict(base_env if base_env is not None else os.environ)
    env["LD_LIBRARY_PATH"] = ":".join([*libs, env.get("LD_LIBRARY_PATH", "")]).rstrip(":")
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    argv = [
        str(package / "bin" / "tritonserver"),
        f"--model-repository={model_repository.resolve()}",
        f"--backend-directory={prepare_backends(work_dir)}",
        "--pinned-memory-pool-byte-size=0",
        f"--grpc-address={host}",
        f"--grpc-port={grpc_port}",
        f"--http-address={host}",
        f"--http-port={http_port}",
        *(
            [
                "--allow-metrics=true",
                "--allow-gpu-metrics=false",
                f"--metrics-address={host}",
                f"--metrics-port={metrics_port}",
            ]
            if metrics_port
            else ["--allow-metrics=false"]
        ),
        "--exit-on-error=true",
        "--log-verbose=0",
    ]
    return TritonCommand(argv=argv, env=env)

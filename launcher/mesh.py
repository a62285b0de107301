"""Starts and stops the six processes of the embedded mesh, in dependency order.

PostgreSQL (embedded, unless an external URL is configured) -> Triton -> embed_svc, admin_svc
(applies the schema) -> api_svc -> Envoy. Each child runs in its own session so that Ctrl-C
reaches only the launcher, which then stops them in reverse order.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO

import structlog

from gateway.render import GatewayPorts, render
from launcher.config import MeshConfig
from launcher.ports import port_problems
from launcher.postgres import EmbeddedPostgres, start_embedded_postgres
from launcher.readiness import grpc_serving, http_ok
from launcher.triton import triton_command

log = structlog.get_logger()

REPO_ROOT = Path(__file__).resolve().parent.parent


class StartError(RuntimeError):
    """A process of the mesh exited or did not become ready in time."""


@dataclass
class Child:
    """A running child process and how to tell it is ready."""

    name: str
    process: subprocess.Popen[bytes]
    ready: Callable[[], bool]
    log_file: IO[bytes] | None = None


@dataclass
class Mesh:
    """The running mesh; use :func:`start_mesh` to build one."""

    config: MeshConfig
    database_url: str = ""
    postgres: EmbeddedPostgres | None = None
    children: list[Child] = field(default_factory=list)

    @property
    def rest_url(self) -> str:
        """Base URL of the public REST API (Envoy)."""
        return f"http://{self.config.host}:{self.config.envoy_port}"

    @property
    def grpc_address(self) -> str:
        """Address of the public gRPC endpoint (Envoy)."""
        return f"{self.config.host}:{self.config.envoy_port}"

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str], ready: Callable[[], bool]
    ) -> None:
        out: IO[bytes] | None = None
        if self.config.logs_to_files:
            logs = self.config.data_dir / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            out = (logs / f"{name}.log").open("ab")
        process = subprocess.Popen(  # noqa: S603 (fixed argv)
            argv,
            env=env,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
        )
        self.children.append(Child(name, process, ready, out))
        log.info("process_started", process=name, pid=process.pid)

    def _wait_ready(self, names: set[str]) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        pending = [c for c in self.children if c.name in names]
        while pending:
            for child in list(pending):
                code = child.process.poll()
                if code is not None:
                    raise StartError(f"{child.name} exited with code {code} during start")
                if child.ready():
                    log.info("process_ready", process=child.name)
                    pending.remove(child)
            if pending and time.monotonic() > deadline:
                raise StartError(f"not ready in time: {', '.join(c.name for c in pending)}")
            if pending:
                time.sleep(0.2)

    def stop(self, grace_s: float = 10.0) -> None:
        """Stops every child (SIGTERM, then SIGKILL after ``grace_s``), then PostgreSQL."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.terminate()
        for child in reversed(self.children):
            try:
                child.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning("process_killed", process=child.name)
                child.process.kill()
                child.process.wait()
            if child.log_file is not None:
                child.log_file.close()
            log.info("process_stopped", process=child.name, code=child.process.returncode)
        self.children.clear()
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None
            log.info("process_stopped", process="postgres")

    def first_exited(self) -> Child | None:
        """The first child that has exited, if any."""
        return next((c for c in self.children if c.process.poll() is not None), None)


def _token_secret(data_dir: Path) -> str:
    """The development token-signing secret, made once and kept in the data dir (0600)."""
    path = data_dir / "token_secret"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _service_env(config: MeshConfig, database_url: str, base_env: dict[str, str]) -> dict[str, str]:
    env = dict(base_env)
    host = config.host
    env.update(
        FACEGRID_DATABASE_URL=database_url,
        FACEGRID_LOG_FORMAT=config.log_format,
        FACEGRID_API_HOST=host,
        FACEGRID_API_PORT=str(config.api_port),
        FACEGRID_EMBED_HOST=host,
        FACEGRID_EMBED_PORT=str(config.embed_port),
        FACEGRID_EMBED_URL=f"{host}:{config.embed_port}",
        FACEGRID_ADMIN_HOST=host,
        FACEGRID_ADMIN_PORT=str(config.admin_port),
        FACEGRID_ADMIN_URL=f"{host}:{config.admin_port}",
        FACEGRID_TRITON_URL=f"{host}:{config.triton_grpc_port}",
        FACEGRID_MODEL_REPOSITORY=str(config.model_repository.resolve()),
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("FACEGRID_TOKEN_SECRET", _token_secret(config.data_dir))
    return env


def _envoy_config(config: MeshConfig) -> Path:
    ports = GatewayPorts(
        listen_port=config.envoy_port,
        admin_port=config.envoy_admin_port,
        api_port=config.api_port,
        embed_port=config.embed_port,
        admin_svc_port=config.admin_port,
        host=config.host,
        descriptor_path=str(REPO_ROOT / "gateway" / "descriptor.pb"),
    )
    if ports == GatewayPorts(descriptor_path=ports.descriptor_path):
        return REPO_ROOT / "envoy.yaml"
    path = config.data_dir / "envoy.yaml"
    path.write_text(render(ports))
    return path


def start_mesh(config: MeshConfig, base_env: dict[str, str]) -> Mesh:
    """Starts every process and returns once all are ready; stops them all on failure."""
    problems = port_problems(config)
    if problems:
        raise StartError("; ".join(problems))
    config.data_dir.mkdir(parents=True, exist_ok=True)
    mesh = Mesh(config)
    try:
        if config.database_url is None:
            mesh.postgres = start_embedded_postgres(config.data_dir / "pg")
            mesh.database_url = mesh.postgres.dsn
            log.info("process_ready", process="postgres", datadir=str(mesh.postgres.datadir))
        else:
            mesh.database_url = config.database_url
        env = _service_env(config, mesh.database_url, base_env)
        host = config.host
        triton = triton_command(
            model_repository=config.model_repository,
            work_dir=config.data_dir,
            grpc_port=config.triton_grpc_port,
            http_port=config.triton_http_port,
            host=host,
            base_env=env,
        )
        triton_ready = f"http://{host}:{config.triton_http_port}/v2/health/ready"
        mesh._spawn("triton", triton.argv, triton.env, lambda: http_ok(triton_ready))
        python = sys.executable
        for name, port in (
            ("embed_svc", config.embed_port),
            ("admin_svc", config.admin_port),
            ("api_svc", config.api_port),
        ):
            mesh._spawn(name, [python, "-m", name], env, partial(grpc_serving, f"{host}:{port}"))
        envoy = str(Path(python).parent / "envoy")
        # Envoy's shared-memory id defaults to 0 for every instance, so a second mesh on the
        # machine (tests beside `make run`) could not start; its own port is unique already.
        base_id = str(config.envoy_port)
        argv = [envoy, "-c", str(_envoy_config(config)), "--log-level", "warn"]
        argv += ["--base-id", base_id]
        mesh._spawn("envoy", argv, env, lambda: http_ok(f"http://{host}:{config.envoy_port}/ready"))
        mesh._wait_ready({child.name for child in mesh.children})
    except BaseException:
        mesh.stop()
        raise
    return mesh

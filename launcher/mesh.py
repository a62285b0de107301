"""Starts, supervises and stops the processes of the embedded mesh, in dependency order.

PostgreSQL (embedded, unless an external URL is configured), then Triton, the embed_svc nodes,
admin_svc (applies the schema), the api_svc nodes and the console's static file server together,
then Envoy once they are ready for work. Node i of api_svc and embed_svc listens on its base
port + 100 * i; api_svc and admin_svc balance over every embed_svc node. Each child runs in its
own session so that Ctrl-C reaches only the launcher, which then stops them, Envoy first and
PostgreSQL last. Once started, a child that exits is restarted with backoff
(launcher/supervisor.py) while the others keep serving.
"""

from __future__ import annotations

import secrets
import signal
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import structlog

from facegrid.config import METRICS_PORT_OFFSET
from facegrid.server import READY_SERVICE, STATUS_PORT_OFFSET
from gateway.render import GatewayPorts, node_ports, render
from launcher.config import MeshConfig
from launcher.ports import port_problems
from launcher.postgres import prepare_postgres
from launcher.readiness import grpc_serving, http_ok
from launcher.supervisor import ProcessSpec, StartError, Supervisor
from launcher.triton import triton_command

__all__ = ["Mesh", "StartError", "start_mesh"]

log = structlog.get_logger()

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Mesh:
    """The running mesh; use :func:`start_mesh` to build one."""

    config: MeshConfig
    supervisor: Supervisor
    database_url: str = ""
    api_addresses: list[str] = field(default_factory=list)
    """host:port of each api_svc node."""

    @property
    def rest_url(self) -> str:
        """Base URL of the public REST API (Envoy)."""
        return f"http://{self.config.host}:{self.config.envoy_port}"

    @property
    def grpc_address(self) -> str:
        """Address of the public gRPC endpoint (Envoy)."""
        return f"{self.config.host}:{self.config.envoy_port}"

    def supervise(self) -> None:
        """Restarts processes that exited (with backoff); call it several times a second."""
        self.supervisor.supervise()

    def stop(self, grace_s: float = 10.0) -> None:
        """Stops every process (SIGTERM, SIGKILL after ``grace_s``), Envoy first."""
        self.supervisor.stop(grace_s)


#: Service variables the launcher sets for each process itself (from FACEGRID_HOST, the ports and
#: the data dir), so that a value in its own environment never reaches a node.
REPLACED_VARIABLES = (
    "FACEGRID_API_HOST",
    "FACEGRID_EMBED_HOST",
    "FACEGRID_ADMIN_HOST",
    "FACEGRID_CONSOLE_HOST",
    "FACEGRID_EMBED_URL",
    "FACEGRID_TRITON_URL",
    "FACEGRID_API_METRICS_PORT",
    "FACEGRID_EMBED_METRICS_PORT",
    "FACEGRID_ADMIN_METRICS_PORT",
    "FACEGRID_API_NODE_NAME",
    "FACEGRID_API_STATUS_PORT",
    "FACEGRID_INDEX_CACHE_DIR",
)


def replaced_variables(env: dict[str, str]) -> list[str]:
    """The variables of ``REPLACED_VARIABLES`` that ``env`` sets (to anything but empty): the
    launcher ignores them, and says so at start."""
    return [name for name in REPLACED_VARIABLES if env.get(name)]


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
    embed_nodes = ",".join(
        f"{host}:{port}" for port in node_ports(config.embed_port, config.embed_nodes)
    )
    env.update(
        FACEGRID_DATABASE_URL=database_url,
        FACEGRID_LOG_FORMAT=config.log_format,
        FACEGRID_API_HOST=host,
        FACEGRID_EMBED_HOST=host,
        FACEGRID_EMBED_URL=embed_nodes,
        FACEGRID_ADMIN_HOST=host,
        FACEGRID_ADMIN_PORT=str(config.admin_port),
        FACEGRID_TRITON_URL=f"{host}:{config.triton_grpc_port}",
        FACEGRID_MODEL_REPOSITORY=str(config.model_repository.resolve()),
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("FACEGRID_TOKEN_SECRET", _token_secret(config.data_dir))
    return env


def _gateway_ports(config: MeshConfig) -> GatewayPorts:
    return GatewayPorts(
        listen_port=config.envoy_port,
        admin_port=config.envoy_admin_port,
        api_port=config.api_port,
        embed_port=config.embed_port,
        admin_svc_port=config.admin_port,
        console_port=config.console_port,
        host=config.host,
        descriptor_path=str(REPO_ROOT / "gateway" / "descriptor.pb"),
        api_nodes=config.api_nodes,
        embed_nodes=config.embed_nodes,
        max_request_bytes=config.max_request_bytes,
        trusted_hops=config.trusted_hops,
        max_connections=config.envoy_max_connections,
        max_heap_mib=config.envoy_max_heap_mb,
    )


def _envoy_config(config: MeshConfig) -> Path:
    ports = _gateway_ports(config)
    if ports == GatewayPorts(descriptor_path=ports.descriptor_path):
        return REPO_ROOT / "envoy.yaml"
    path = config.data_dir / "envoy.yaml"
    path.write_text(render(ports))
    return path


def _log_path(config: MeshConfig, name: str) -> Path | None:
    return config.data_dir / "logs" / f"{name}.log" if config.logs_to_files else None


def _service_specs(config: MeshConfig, env: dict[str, str]) -> list[ProcessSpec]:
    """Triton, the embed_svc nodes, admin_svc, the api_svc nodes and the console's server."""
    host = config.host
    python = sys.executable
    triton = triton_command(
        model_repository=config.model_repository,
        work_dir=config.data_dir,
        grpc_port=config.triton_grpc_port,
        http_port=config.triton_http_port,
        metrics_port=config.triton_metrics_port,
        host=host,
        base_env=env,
    )
    triton_ready = f"http://{host}:{config.triton_http_port}/v2/health/ready"
    specs = [
        ProcessSpec(
            "triton",
            triton.argv,
            triton.env,
            partial(http_ok, triton_ready),
            log_path=_log_path(config, "triton"),
        )
    ]

    def service(name: str, module: str, port: int, extra: dict[str, str]) -> ProcessSpec:
        ready = partial(grpc_serving, f"{host}:{port}", service=READY_SERVICE)
        argv = [python, "-m", module]
        # each node's metrics on its own gRPC port + 1000 (what the port preflight checked)
        metrics = f"FACEGRID_{module.removesuffix('_svc').upper()}_METRICS_PORT"
        env_node = {**env, **extra, metrics: str(port + METRICS_PORT_OFFSET)}
        return ProcessSpec(
            name, argv, env_node, ready, cwd=REPO_ROOT, log_path=_log_path(config, name)
        )

    for i, port in enumerate(node_ports(config.embed_port, config.embed_nodes)):
        specs.append(
            service(f"embed_svc-{i}", "embed_svc", port, {"FACEGRID_EMBED_PORT": str(port)})
        )
    specs.append(service("admin_svc", "admin_svc", config.admin_port, {}))
    for i, port in enumerate(node_ports(config.api_port, config.api_nodes)):
        node = {
            "FACEGRID_API_PORT": str(port),
            "FACEGRID_API_NODE_NAME": f"api_svc-{i}",
            "FACEGRID_API_STATUS_PORT": str(port + STATUS_PORT_OFFSET),
            "FACEGRID_INDEX_CACHE_DIR": str(config.data_dir.resolve() / "index" / f"api_svc-{i}"),
        }
        specs.append(service(f"api_svc-{i}", "api_svc", port, node))
    console = {"FACEGRID_CONSOLE_HOST": host, "FACEGRID_CONSOLE_PORT": str(config.console_port)}
    specs.append(
        ProcessSpec(
            "console",
            [python, "-m", "console"],
            {**env, **console},
            partial(http_ok, f"http://{host}:{config.console_port}/healthz"),
            cwd=REPO_ROOT,
            log_path=_log_path(config, "console"),
        )
    )
    return specs


def start_mesh(config: MeshConfig, base_env: dict[str, str]) -> Mesh:
    """Starts every process and returns once all are ready; stops them all on failure."""
    problems = port_problems(config)
    if problems:
        raise StartError("; ".join(problems))
    ignored = replaced_variables(base_env)
    if ignored:
        log.warning(
            "launcher_ignores_variables",
            variables=ignored,
            why="the launcher sets these for each process it starts (docs/configuration.md)",
        )
    config.data_dir.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor(
        initial_s=config.restart_backoff_s,
        max_s=config.restart_backoff_max_s,
        stable_s=config.restart_stable_s,
    )
    mesh = Mesh(config, supervisor)
    try:
        if config.database_url is None:
            postgres = prepare_postgres(config.data_dir / "pg")
            pg_log = _log_path(config, "postgres") or postgres.datadir / "log"
            spec = ProcessSpec(
                "postgres",
                postgres.argv,
                dict(base_env),
                postgres.ready,
                user=postgres.user,
                stop_signal=signal.SIGINT,  # PostgreSQL's "fast" shutdown
                log_path=pg_log,
            )
            supervisor.start(spec, stage=0)
            supervisor.wait_ready({"postgres"}, config.start_timeout_s)
            mesh.database_url = postgres.dsn
        else:
            mesh.database_url = config.database_url
        env = _service_env(config, mesh.database_url, base_env)
        specs = _service_specs(config, env)
        for spec in specs:
            supervisor.start(spec, stage=1)
        supervisor.wait_ready({spec.name for spec in specs}, config.start_timeout_s)
        mesh.api_addresses = [
            f"{config.host}:{port}" for port in node_ports(config.api_port, config.api_nodes)
        ]
        envoy = str(Path(sys.executable).parent / "envoy")
        # Envoy's shared-memory id defaults to 0 for every instance, so a second mesh on the
        # machine (tests beside `make run`) could not start; its own port is unique already.
        argv = [envoy, "-c", str(_envoy_config(config)), "--log-level", "warn"]
        argv += ["--base-id", str(config.envoy_port)]
        envoy_ready = partial(http_ok, f"http://{config.host}:{config.envoy_port}/ready")
        supervisor.start(
            ProcessSpec("envoy", argv, env, envoy_ready, log_path=_log_path(config, "envoy")),
            stage=2,
        )
        supervisor.wait_ready({"envoy"}, config.start_timeout_s)
    except BaseException:
        mesh.stop()
        raise
    return mesh

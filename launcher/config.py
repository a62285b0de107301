"""Configuration of the embedded default mesh (environment variables, documented defaults)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from facegrid.config import ConfigError, get_bool, get_float, get_int, get_log_format, get_str
from facegrid.logs import LogFormat
from gateway.render import MAX_NODES


@dataclass(frozen=True, slots=True)
class MeshConfig:
    """Where every process of the embedded mesh listens and keeps its data."""

    data_dir: Path
    """Data kept between runs: PostgreSQL, secrets, logs (FACEGRID_DATA_DIR, default ``var``;
    keep the path short: PostgreSQL's unix socket lives there)."""
    host: str
    """Interface every process binds (FACEGRID_HOST, default 127.0.0.1)."""
    envoy_port: int
    """Public REST + gRPC port (FACEGRID_ENVOY_PORT, default 8000)."""
    envoy_admin_port: int
    """Envoy admin interface on loopback (FACEGRID_ENVOY_ADMIN_PORT, default 9901)."""
    api_port: int
    """api_svc gRPC port of node 0 (FACEGRID_API_PORT, default 50051); node i listens on
    this + 100 * i."""
    embed_port: int
    """embed_svc gRPC port of node 0 (FACEGRID_EMBED_PORT, default 50052); node i listens on
    this + 100 * i."""
    admin_port: int
    """admin_svc gRPC port (FACEGRID_ADMIN_PORT, default 50053)."""
    console_port: int
    """The console's static file server (FACEGRID_CONSOLE_PORT, default 8300; Envoy routes every
    non-API path there)."""
    triton_grpc_port: int
    """Triton gRPC (KServe v2) port (FACEGRID_TRITON_GRPC_PORT, default 8101)."""
    triton_http_port: int
    """Triton HTTP port (FACEGRID_TRITON_HTTP_PORT, default 8100)."""
    triton_metrics_port: int
    """Triton's Prometheus metrics (FACEGRID_TRITON_METRICS_PORT, default 8102; 0 turns them
    off). The services' metrics listen on their gRPC port + 1000."""
    model_repository: Path
    """Triton model repository (FACEGRID_MODEL_REPOSITORY, default ``triton_models``)."""
    database_url: str | None
    """External PostgreSQL URI (FACEGRID_DATABASE_URL); unset starts the embedded one."""
    log_format: LogFormat
    """``console`` (default) or ``json`` for every process (FACEGRID_LOG_FORMAT)."""
    logs_to_files: bool
    """Write each process's output to ``<data_dir>/logs/<name>.log`` instead of the terminal
    (FACEGRID_LOGS_TO_FILES, default false)."""
    start_timeout_s: float
    """Seconds every process gets to become ready (FACEGRID_START_TIMEOUT_S, default 180)."""
    api_nodes: int = 1
    """api_svc processes to start, 1..10 (FACEGRID_API_NODES, default 1)."""
    embed_nodes: int = 1
    """embed_svc processes to start, 1..10 (FACEGRID_EMBED_NODES, default 1)."""
    restart_backoff_s: float = 0.5
    """Delay before the first restart of a process that exited, seconds; doubled after each
    further exit, with jitter (FACEGRID_RESTART_BACKOFF_S, default 0.5)."""
    restart_backoff_max_s: float = 30.0
    """Longest delay before a restart, seconds (FACEGRID_RESTART_BACKOFF_MAX_S, default 30)."""
    restart_stable_s: float = 60.0
    """A process that ran this long before exiting restarts after the first delay again,
    seconds (FACEGRID_RESTART_STABLE_S, default 60)."""
    max_request_bytes: int = 10 * 1024 * 1024
    """Largest image request body, bytes (FACEGRID_API_MAX_REQUEST_BYTES, default 10 MiB): Envoy's
    limit of the image routes, which api_svc reads too."""
    trusted_hops: int = 0
    """Proxies in front of Envoy whose x-forwarded-for entries are trusted for the client address
    (FACEGRID_ENVOY_TRUSTED_HOPS, default 0: Envoy's peer is the client)."""
    envoy_max_connections: int = 10_000
    """Client connections Envoy's public listener holds at once; one more is closed as it is
    accepted (FACEGRID_ENVOY_MAX_CONNECTIONS, default 10000)."""
    envoy_max_heap_mb: int = 1024
    """Envoy's heap budget, MiB: near it Envoy answers new requests 503 until it is under again
    (FACEGRID_ENVOY_MAX_HEAP_MB, default 1024, at least 64)."""


def _nodes(env: Mapping[str, str], key: str) -> int:
    value = get_int(env, key, 1, minimum=1)
    if value > MAX_NODES:
        raise ConfigError(f"{key} must be at most {MAX_NODES} on one machine, got {value}")
    return value


def load_config(env: Mapping[str, str]) -> MeshConfig:
    """Builds the mesh configuration from ``env``."""
    database_url = env.get("FACEGRID_DATABASE_URL") or None
    return MeshConfig(
        data_dir=Path(get_str(env, "FACEGRID_DATA_DIR", "var")),
        host=get_str(env, "FACEGRID_HOST", "127.0.0.1"),
        envoy_port=get_int(env, "FACEGRID_ENVOY_PORT", 8000, minimum=1),
        envoy_admin_port=get_int(env, "FACEGRID_ENVOY_ADMIN_PORT", 9901, minimum=1),
        api_port=get_int(env, "FACEGRID_API_PORT", 50051, minimum=1),
        embed_port=get_int(env, "FACEGRID_EMBED_PORT", 50052, minimum=1),
        admin_port=get_int(env, "FACEGRID_ADMIN_PORT", 50053, minimum=1),
        console_port=get_int(env, "FACEGRID_CONSOLE_PORT", 8300, minimum=1),
        triton_grpc_port=get_int(env, "FACEGRID_TRITON_GRPC_PORT", 8101, minimum=1),
        triton_http_port=get_int(env, "FACEGRID_TRITON_HTTP_PORT", 8100, minimum=1),
        triton_metrics_port=get_int(env, "FACEGRID_TRITON_METRICS_PORT", 8102, minimum=0),
        model_repository=Path(get_str(env, "FACEGRID_MODEL_REPOSITORY", "triton_models")),
        database_url=database_url,
        log_format=get_log_format(env),
        logs_to_files=get_bool(env, "FACEGRID_LOGS_TO_FILES", False),
        start_timeout_s=get_float(env, "FACEGRID_START_TIMEOUT_S", 180.0),
        api_nodes=_nodes(env, "FACEGRID_API_NODES"),
        embed_nodes=_nodes(env, "FACEGRID_EMBED_NODES"),
        restart_backoff_s=get_float(env, "FACEGRID_RESTART_BACKOFF_S", 0.5),
        restart_backoff_max_s=get_float(env, "FACEGRID_RESTART_BACKOFF_MAX_S", 30.0),
        restart_stable_s=get_float(env, "FACEGRID_RESTART_STABLE_S", 60.0),
        max_request_bytes=get_int(
            env, "FACEGRID_API_MAX_REQUEST_BYTES", 10 * 1024 * 1024, minimum=1
        ),
        trusted_hops=get_int(env, "FACEGRID_ENVOY_TRUSTED_HOPS", 0, minimum=0),
        envoy_max_connections=get_int(env, "FACEGRID_ENVOY_MAX_CONNECTIONS", 10_000, minimum=1),
        envoy_max_heap_mb=get_int(env, "FACEGRID_ENVOY_MAX_HEAP_MB", 1024, minimum=64),
    )

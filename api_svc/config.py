"""api_svc configuration, read once at start from a mapping (the environment)."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass

from api_svc.index_device import DEVICE_SETTINGS
from facegrid.balancing import grpc_target
from facegrid.config import (
    ConfigError,
    get_float,
    get_int,
    get_log_format,
    get_metrics_port,
    get_str,
)
from facegrid.logs import LogFormat
from facegrid.server import STATUS_PORT_OFFSET

#: ``FACEGRID_INDEX_LOAD`` values.
INDEX_LOAD_CHOICES = ("first_use", "start")


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """Settings of one api_svc node."""

    host: str
    """Interface to bind (FACEGRID_API_HOST, default 127.0.0.1)."""
    port: int
    """gRPC port (FACEGRID_API_PORT, default 50051)."""
    database_url: str
    """PostgreSQL URI (FACEGRID_DATABASE_URL, required)."""
    embed_url: str
    """embed_svc nodes as a gRPC target (FACEGRID_EMBED_URL, default 127.0.0.1:50052): one
    host:port, a comma-separated list of ip:port, or ``dns:///name:port``; calls are balanced
    round robin over the ready ones (facegrid/balancing.py)."""
    metrics_port: int
    """Prometheus metrics over HTTP (FACEGRID_API_METRICS_PORT, default the gRPC port + 1000;
    0 turns them off)."""
    node_name: str
    """The name this node gives in the ``x-facegrid-node`` header of every answer
    (FACEGRID_API_NODE_NAME, default ``<hostname>:<port>``; the launcher sets ``api_svc-<i>``)."""
    db_pool_max: int
    """Largest number of PostgreSQL connections (FACEGRID_API_DB_POOL_MAX, default 10)."""
    db_timeout_s: float
    """Deadline of one database call, seconds, pool wait included (FACEGRID_API_DB_TIMEOUT_S, 5)."""
    embed_timeout_s: float
    """Deadline of one embed_svc call, seconds (FACEGRID_API_EMBED_TIMEOUT_S, default 30)."""
    api_key_cache_s: float
    """How long an API key lookup (found or not) is reused, seconds; a rotated or deleted key
    stops working within this time (FACEGRID_API_KEY_CACHE_S, default 5; 0 disables)."""
    api_key_stale_s: float
    """While the database cannot be reached, an API key found within this many seconds still
    opens its service, so recognition, detection and verification keep answering
    (FACEGRID_API_KEY_STALE_S, default 3600; 0 disables)."""
    max_file_bytes: int
    """Largest image in a request, bytes after base64 decoding (FACEGRID_API_MAX_FILE_BYTES,
    default 5 MiB, CompreFace's 5 MB)."""
    max_request_bytes: int
    """Largest request body, bytes (FACEGRID_API_MAX_REQUEST_BYTES, default 10 MiB, CompreFace's
    10 MB; Envoy enforces the same limit at the edge)."""
    bulk_embed_concurrency: int
    """Images of one BulkAddFaces stream being embedded at once
    (FACEGRID_API_BULK_EMBED_CONCURRENCY, default 8); the stream reads no further item while
    that many are in embed_svc."""
    bulk_batch_max_items: int
    """Most items BulkAddFaces writes in one transaction and statement
    (FACEGRID_API_BULK_BATCH_MAX_ITEMS, default 1000); a batch is whatever is ready when the
    previous one is written, up to this."""
    bulk_batch_max_bytes: int
    """Most image and embedding bytes in one BulkAddFaces batch (FACEGRID_API_BULK_BATCH_MAX_BYTES,
    default 32 MiB)."""
    shutdown_grace_s: float
    """Seconds calls in flight may take to finish on SIGTERM (FACEGRID_SHUTDOWN_GRACE_S, 5)."""
    status_port: int
    """Port of the node status service (``facegrid.recognition.v1.NodeService``), never routed
    by Envoy (FACEGRID_API_STATUS_PORT, default the gRPC port + 2000; 0 picks a free port, as
    does an unset value when FACEGRID_API_PORT is 0)."""
    index_memory_budget_mb: int
    """MiB the collection indexes of this node may hold together before the least recently
    used are evicted (reloaded on next use); a single collection larger than the budget is
    still served (FACEGRID_INDEX_MEMORY_BUDGET_MB, default 4096; 0 = no limit)."""
    index_load: str
    """When collections load: ``first_use`` (default) or ``start`` (every recognition
    collection at start, most examples first, until the budget is reached)
    (FACEGRID_INDEX_LOAD)."""
    index_exact_max: int
    """Faces from which a collection is searched through an approximate index with exact
    re-ranking instead of exactly (FACEGRID_INDEX_EXACT_MAX, default 20000)."""
    index_device: str
    """Where approximate indexes live: ``auto`` (a GPU when FAISS has GPU support and sees
    one, else the CPU), ``cpu`` or ``gpu`` (FACEGRID_INDEX_DEVICE, default auto)."""
    index_load_timeout_s: float
    """Deadline of reading a whole collection from PostgreSQL, seconds
    (FACEGRID_INDEX_LOAD_TIMEOUT_S, default 300)."""
    grpc_max_connection_age_s: float
    """Each client connection is closed after about this many seconds (calls in flight finish
    first), so clients balancing over DNS re-resolve and reach new replicas
    (FACEGRID_GRPC_MAX_CONNECTION_AGE_S, default 300; 0 keeps connections forever)."""
    index_cache_dir: str
    """Directory of this node's index files (FACEGRID_INDEX_CACHE_DIR; default empty: none).
    A collection with an approximate index is written there once trained, after a quarter of
    its rows changed and at shutdown, and a restarted node loads it from there and fetches only
    the rows changed since (docs/api_svc.md "Index files"). One directory per node; the launcher
    sets ``<FACEGRID_DATA_DIR>/index/api_svc-<i>``."""
    malloc_trim_s: float
    """Seconds between returns of malloc's free pages to the system (``malloc_trim``,
    facegrid/heap.py; docs/operations.md "Memory") (FACEGRID_MALLOC_TRIM_S, default 30; 0: never).
    """
    memory_report_s: float
    """Seconds between ``memory_report`` log events (facegrid/memory_report.py: tracemalloc's
    top growth against RSS and malloc's free bytes), a diagnostic that slows allocation
    (FACEGRID_MEMORY_REPORT_S, default 0: off)."""
    log_format: LogFormat
    """``console`` (key=value, default) or ``json`` (FACEGRID_LOG_FORMAT)."""


def load_config(env: Mapping[str, str]) -> ApiConfig:
    """Builds the configuration from ``env``; raises ConfigError on a bad or missing value."""
    port = get_int(env, "FACEGRID_API_PORT", 50051, minimum=0)
    return ApiConfig(
        host=get_str(env, "FACEGRID_API_HOST", "127.0.0.1"),
        port=port,
        database_url=get_str(env, "FACEGRID_DATABASE_URL"),
        embed_url=grpc_target(get_str(env, "FACEGRID_EMBED_URL", "127.0.0.1:50052")),
        metrics_port=get_metrics_port(env, "FACEGRID_API_METRICS_PORT", port),
        node_name=get_str(env, "FACEGRID_API_NODE_NAME", f"{socket.gethostname()}:{port}"),
        db_pool_max=get_int(env, "FACEGRID_API_DB_POOL_MAX", 10, minimum=1),
        db_timeout_s=get_float(env, "FACEGRID_API_DB_TIMEOUT_S", 5.0),
        embed_timeout_s=get_float(env, "FACEGRID_API_EMBED_TIMEOUT_S", 30.0),
        api_key_cache_s=get_float(env, "FACEGRID_API_KEY_CACHE_S", 5.0),
        api_key_stale_s=get_float(env, "FACEGRID_API_KEY_STALE_S", 3600.0),
        max_file_bytes=get_int(env, "FACEGRID_API_MAX_FILE_BYTES", 5 * 1024 * 1024, minimum=1),
        max_request_bytes=get_int(
            env, "FACEGRID_API_MAX_REQUEST_BYTES", 10 * 1024 * 1024, minimum=1
        ),
        bulk_embed_concurrency=get_int(env, "FACEGRID_API_BULK_EMBED_CONCURRENCY", 8, minimum=1),
        bulk_batch_max_items=get_int(env, "FACEGRID_API_BULK_BATCH_MAX_ITEMS", 1000, minimum=1),
        bulk_batch_max_bytes=get_int(
            env, "FACEGRID_API_BULK_BATCH_MAX_BYTES", 32 * 1024 * 1024, minimum=1
        ),
        shutdown_grace_s=get_float(env, "FACEGRID_SHUTDOWN_GRACE_S", 5.0),
        status_port=get_int(
            env, "FACEGRID_API_STATUS_PORT", port + STATUS_PORT_OFFSET if port else 0, minimum=0
        ),
        index_memory_budget_mb=get_int(env, "FACEGRID_INDEX_MEMORY_BUDGET_MB", 4096, minimum=0),
        index_load=_choice(env, "FACEGRID_INDEX_LOAD", "first_use", INDEX_LOAD_CHOICES),
        index_exact_max=get_int(env, "FACEGRID_INDEX_EXACT_MAX", 20_000, minimum=1),
        index_device=_choice(env, "FACEGRID_INDEX_DEVICE", "auto", DEVICE_SETTINGS),
        index_load_timeout_s=get_float(env, "FACEGRID_INDEX_LOAD_TIMEOUT_S", 300.0),
        grpc_max_connection_age_s=get_float(env, "FACEGRID_GRPC_MAX_CONNECTION_AGE_S", 300.0),
        index_cache_dir=get_str(env, "FACEGRID_INDEX_CACHE_DIR", ""),
        malloc_trim_s=get_float(env, "FACEGRID_MALLOC_TRIM_S", 30.0),
        memory_report_s=get_float(env, "FACEGRID_MEMORY_REPORT_S", 0.0),
        log_format=get_log_format(env),
    )


def _choice(env: Mapping[str, str], key: str, default: str, choices: tuple[str, ...]) -> str:
    value = get_str(env, key, default)
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return value

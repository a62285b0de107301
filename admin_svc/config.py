"""admin_svc configuration, read once at start from a mapping (the environment)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from admin_svc.throttle import ThrottlePolicy
from facegrid.balancing import grpc_target
from facegrid.config import (
    ConfigError,
    get_bool,
    get_float,
    get_int,
    get_log_format,
    get_metrics_port,
    get_str,
)
from facegrid.logs import LogFormat

Environment = Literal["development", "production"]

#: Shortest accepted FACEGRID_TOKEN_SECRET, characters.
MIN_TOKEN_SECRET_CHARS = 32


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """Settings of one admin_svc node."""

    host: str
    """Interface to bind (FACEGRID_ADMIN_HOST, default 127.0.0.1)."""
    port: int
    """gRPC port (FACEGRID_ADMIN_PORT, default 50053; 0 picks a free one)."""
    metrics_port: int
    """Prometheus metrics over HTTP (FACEGRID_ADMIN_METRICS_PORT, default the gRPC port + 1000;
    0 turns them off)."""
    database_url: str = field(repr=False)
    """PostgreSQL URI (FACEGRID_DATABASE_URL, required; may hold a password: never logged)."""
    environment: Environment
    """``development`` (default) or ``production`` (FACEGRID_ENV). Production requires
    FACEGRID_TOKEN_SECRET and turns the demo set-up off unless FACEGRID_DEMO_SETUP says
    otherwise."""
    token_secret: str | None = field(repr=False)
    """Key signing access tokens, at least 32 characters (FACEGRID_TOKEN_SECRET). Required in
    production; in development, when unset, one is generated on first start and kept in the
    database (table ``settings``) so that every admin_svc node and restart shares it."""
    access_token_ttl_s: int
    """Lifetime of an access token, seconds (FACEGRID_ACCESS_TOKEN_TTL_S, default 900)."""
    refresh_token_ttl_s: int
    """Lifetime of a sign-in session and its refresh tokens, seconds
    (FACEGRID_REFRESH_TOKEN_TTL_S, default 2592000 = 30 days)."""
    demo_setup: bool
    """Create the demo application and print its API keys on the first start on an empty
    database (FACEGRID_DEMO_SETUP; default true in development, false in production)."""
    db_pool_max: int
    """Largest number of PostgreSQL connections (FACEGRID_ADMIN_DB_POOL_MAX, default 10)."""
    db_command_timeout_s: float
    """Longest a single SQL command may run, seconds (FACEGRID_ADMIN_DB_TIMEOUT_S, default 60)."""
    embed_url: str
    """embed_svc nodes as a gRPC target, used only by embedding migrations (FACEGRID_EMBED_URL,
    default 127.0.0.1:50052; a comma-separated ip:port list or ``dns:///name:port`` is balanced
    round robin, facegrid/balancing.py)."""
    embed_timeout_s: float
    """Deadline of one embed_svc call, seconds (FACEGRID_EMBED_TIMEOUT_S, default 60)."""
    migration_batch_size: int
    """Face examples re-computed per embed_svc call, 1..32 (FACEGRID_MIGRATION_BATCH_SIZE,
    default 16)."""
    migration_lease_s: float
    """A running migration whose worker has not reported for this many seconds is taken over
    by another admin_svc node (FACEGRID_MIGRATION_LEASE_S, default 120; keep it above
    FACEGRID_EMBED_TIMEOUT_S: the lease is renewed before every embed_svc call)."""
    migration_progress_s: float
    """A running migration logs ``embedding_migration_progress`` (done/total/failed, rate, time
    left) at most this often, seconds (FACEGRID_ADMIN_MIGRATION_PROGRESS_S, default 10; 0: never;
    its start and end are always logged)."""
    password_time_cost: int
    """Argon2id iterations (FACEGRID_PASSWORD_TIME_COST, default 3)."""
    password_memory_kib: int
    """Argon2id memory, KiB (FACEGRID_PASSWORD_MEMORY_KIB, default 65536 = 64 MiB)."""
    throttle: ThrottlePolicy
    """Credential attempts allowed per e-mail (FACEGRID_SIGNIN_ACCOUNT_ATTEMPTS, default 10) and
    per client address (FACEGRID_SIGNIN_ADDRESS_ATTEMPTS, default 100, sign-ups included) within
    a window of FACEGRID_SIGNIN_WINDOW_S seconds (default 900); past either, 429."""
    shutdown_grace_s: float
    """Seconds calls in flight may take to finish on SIGTERM (FACEGRID_SHUTDOWN_GRACE_S, 5)."""
    grpc_max_connection_age_s: float
    """Each client connection is closed after about this many seconds (calls in flight finish
    first), so clients balancing over DNS re-resolve and reach new replicas
    (FACEGRID_GRPC_MAX_CONNECTION_AGE_S, default 300; 0 keeps connections forever)."""
    log_format: LogFormat
    """``console`` (key=value, default) or ``json`` (FACEGRID_LOG_FORMAT)."""


def load_config(env: Mapping[str, str]) -> AdminConfig:
    """Builds the configuration from ``env``; raises ConfigError on a bad or missing value."""
    environment_raw = get_str(env, "FACEGRID_ENV", "development")
    if environment_raw not in ("development", "production"):
        raise ConfigError(
            f"FACEGRID_ENV must be development or production, got {environment_raw!r}"
        )
    environment: Environment = "production" if environment_raw == "production" else "development"
    token_secret = env.get("FACEGRID_TOKEN_SECRET") or None
    if token_secret is None and environment == "production":
        raise ConfigError("FACEGRID_TOKEN_SECRET is required when FACEGRID_ENV=production")
    if token_secret is not None and len(token_secret) < MIN_TOKEN_SECRET_CHARS:
        raise ConfigError(
            f"FACEGRID_TOKEN_SECRET must be at least {MIN_TOKEN_SECRET_CHARS} characters"
        )
    batch = get_int(env, "FACEGRID_MIGRATION_BATCH_SIZE", 16, minimum=1)
    if batch > 32:
        raise ConfigError(f"FACEGRID_MIGRATION_BATCH_SIZE must be <= 32, got {batch}")
    port = get_int(env, "FACEGRID_ADMIN_PORT", 50053, minimum=0)
    progress_s = get_float(env, "FACEGRID_ADMIN_MIGRATION_PROGRESS_S", 10.0)
    if progress_s < 0:
        raise ConfigError(f"FACEGRID_ADMIN_MIGRATION_PROGRESS_S must be >= 0, got {progress_s}")
    return AdminConfig(
        host=get_str(env, "FACEGRID_ADMIN_HOST", "127.0.0.1"),
        port=port,
        metrics_port=get_metrics_port(env, "FACEGRID_ADMIN_METRICS_PORT", port),
        database_url=get_str(env, "FACEGRID_DATABASE_URL"),
        environment=environment,
        token_secret=token_secret,
        access_token_ttl_s=get_int(env, "FACEGRID_ACCESS_TOKEN_TTL_S", 900, minimum=1),
        refresh_token_ttl_s=get_int(env, "FACEGRID_REFRESH_TOKEN_TTL_S", 2_592_000, minimum=1),
        demo_setup=get_bool(env, "FACEGRID_DEMO_SETUP", environment == "development"),
        db_pool_max=get_int(env, "FACEGRID_ADMIN_DB_POOL_MAX", 10, minimum=2),
        db_command_timeout_s=get_float(env, "FACEGRID_ADMIN_DB_TIMEOUT_S", 60.0),
        embed_url=grpc_target(get_str(env, "FACEGRID_EMBED_URL", "127.0.0.1:50052")),
        embed_timeout_s=get_float(env, "FACEGRID_EMBED_TIMEOUT_S", 60.0),
        migration_batch_size=batch,
        migration_lease_s=get_float(env, "FACEGRID_MIGRATION_LEASE_S", 120.0),
        migration_progress_s=progress_s,
        password_time_cost=get_int(env, "FACEGRID_PASSWORD_TIME_COST", 3, minimum=1),
        password_memory_kib=get_int(env, "FACEGRID_PASSWORD_MEMORY_KIB", 65536, minimum=1024),
        throttle=ThrottlePolicy(
            account_attempts=get_int(env, "FACEGRID_SIGNIN_ACCOUNT_ATTEMPTS", 10, minimum=1),
            address_attempts=get_int(env, "FACEGRID_SIGNIN_ADDRESS_ATTEMPTS", 100, minimum=1),
            window_s=get_float(env, "FACEGRID_SIGNIN_WINDOW_S", 900.0),
        ),
        shutdown_grace_s=get_float(env, "FACEGRID_SHUTDOWN_GRACE_S", 5.0),
        grpc_max_connection_age_s=get_float(env, "FACEGRID_GRPC_MAX_CONNECTION_AGE_S", 300.0),
        log_format=get_log_format(env),
    )

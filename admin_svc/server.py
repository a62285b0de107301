"""Builds and runs an admin_svc node: schema migrations, pool, servicer, gRPC server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import grpc
import structlog

from admin_svc.config import AdminConfig
from admin_svc.demo import DemoSetup, describe, ensure_demo
from admin_svc.deps import Deps
from admin_svc.embed_client import EmbedClient, GrpcEmbedClient
from admin_svc.embedding_migration import EmbeddingMigrator
from admin_svc.migrate import migrate
from admin_svc.passwords import PasswordHasher
from admin_svc.secrets_store import token_secret
from admin_svc.servicer import AdminServicer
from admin_svc.throttle import SignInThrottle
from admin_svc.tokens import TokenSigner
from facegrid.admin.v1 import admin_service_pb2_grpc
from facegrid.metrics import ServiceMetrics
from facegrid.server import (
    MESSAGE_OVERHEAD_BYTES,
    RunningServer,
    database_answers,
    start_server,
    stop_server,
    wait_for_signal,
)

log = structlog.get_logger()

SERVICE_NAME = "facegrid.admin.v1.AdminService"
#: Largest request message admin_svc accepts, bytes: its largest public request (a 4 KiB JSON
#: document at the edge, gateway/limits.py) plus room for the protobuf framing.
MAX_RECEIVE_BYTES = 4 * 1024 + MESSAGE_OVERHEAD_BYTES
#: Seconds between two deletions of ended sign-in attempt counters.
PRUNE_INTERVAL_S = 60.0


@dataclass(slots=True)
class AdminServer:
    """A running admin_svc node and what it holds."""

    running: RunningServer
    """The gRPC server (SERVING)."""
    pool: asyncpg.Pool
    """PostgreSQL pool."""
    migrator: EmbeddingMigrator
    """Embedding migration jobs of this node."""
    supervisor: asyncio.Task[None]
    """Takes over migrations abandoned by dead nodes."""
    embed_channel: grpc.aio.Channel | None
    """Channel to embed_svc, when this node opened it."""
    demo: DemoSetup | None
    """The demo set-up made at this start, if any."""
    deps: Deps
    """What the handlers share (pool, token signer, password hasher, throttle)."""

    async def stop(self, grace_s: float) -> None:
        """Stops serving, lets calls finish, then ends jobs and connections."""
        await stop_server(self.running, grace_s)
        self.supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.supervisor
        await self.migrator.close()
        if self.embed_channel is not None:
            await self.embed_channel.close()
        await self.pool.close()


async def create_server(config: AdminConfig, embed: EmbedClient | None = None) -> AdminServer:
    """Applies the schema migrations, connects, runs the demo set-up, then serves (SERVING).

    ``embed`` replaces the gRPC client of embed_svc (tests).
    """
    applied = await migrate(config.database_url)
    pool = await asyncpg.create_pool(
        config.database_url,
        min_size=1,
        max_size=config.db_pool_max,
        command_timeout=config.db_command_timeout_s,
    )
    try:
        async with pool.acquire() as conn:
            secret = await token_secret(conn, config.token_secret)
            demo = await ensure_demo(conn) if config.demo_setup else None
    except BaseException:
        await pool.close()
        raise
    if config.token_secret is None:
        log.warning(
            "token_secret_from_database",
            hint="set FACEGRID_TOKEN_SECRET (FACEGRID_ENV=production requires it)",
        )
    embed_channel = None
    if embed is None:
        embed, embed_channel = GrpcEmbedClient.connect(config.embed_url, config.embed_timeout_s)
    migrator = EmbeddingMigrator(
        pool,
        embed,
        batch_size=config.migration_batch_size,
        lease_s=config.migration_lease_s,
        progress_s=config.migration_progress_s,
    )
    deps = Deps(
        pool=pool,
        signer=TokenSigner(secret, config.access_token_ttl_s),
        hasher=PasswordHasher(config.password_time_cost, config.password_memory_kib),
        migrator=migrator,
        refresh_ttl_s=config.refresh_token_ttl_s,
        throttle=SignInThrottle(config.throttle),
    )
    servicer = AdminServicer(deps)
    running = await start_server(
        host=config.host,
        port=config.port,
        register=lambda server: admin_service_pb2_grpc.add_AdminServiceServicer_to_server(
            servicer, server
        ),
        service_names=[SERVICE_NAME],
        max_connection_age_s=config.grpc_max_connection_age_s,
        max_receive_bytes=MAX_RECEIVE_BYTES,
        metrics=ServiceMetrics(),
        metrics_port=config.metrics_port,
    )
    supervisor = asyncio.create_task(migrator.supervise(), name="migration-supervisor")
    running.background.append(
        asyncio.create_task(_prune_attempts(pool, deps.throttle), name="sign-in-attempts-pruner")
    )
    await running.set_serving(True)
    await running.keep_ready(database_answers(pool, config.db_command_timeout_s))
    log.info(
        "admin_svc_ready",
        port=running.port,
        environment=config.environment,
        migrations_applied=applied,
        demo_created=demo is not None,
    )
    return AdminServer(running, pool, migrator, supervisor, embed_channel, demo, deps)


async def _prune_attempts(pool: asyncpg.Pool, throttle: SignInThrottle) -> None:
    """Deletes ended sign-in attempt counters every minute (the table stays small); a failure
    (database down) is logged and tried again a minute later."""
    while True:
        await asyncio.sleep(PRUNE_INTERVAL_S)
        try:
            async with pool.acquire() as conn:
                pruned = await throttle.prune(conn)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("sign_in_attempts_prune_failed", error=type(exc).__name__)
            continue
        if pruned:
            log.info("sign_in_attempts_pruned", counters=pruned)


async def serve(config: AdminConfig, announce: Callable[[str], None]) -> None:
    """Runs until SIGINT/SIGTERM. ``announce`` shows the demo API keys to the operator (standard
    output, never the log)."""
    server = await create_server(config)
    if server.demo is not None:
        announce(describe(server.demo))
    try:
        await wait_for_signal()
    finally:
        await server.stop(config.shutdown_grace_s)

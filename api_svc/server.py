"""Builds and runs an api_svc node."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import asyncpg
import grpc
import structlog

from api_svc.auth import Authenticator
from api_svc.bulk_enrolment import BulkEnrolment, BulkSettings
from api_svc.config import ApiConfig
from api_svc.db import PgKeyStore, PgRequestCounter, create_pool
from api_svc.detection import FaceDetection
from api_svc.embed_client import EmbedClient, GrpcEmbedClient
from api_svc.face_index import IndexSettings
from api_svc.face_store import PgFaceStore
from api_svc.face_verification import FaceVerification
from api_svc.faces import Faces
from api_svc.image_body import BodyLimits
from api_svc.index_device import choose_device
from api_svc.index_file import IndexFiles
from api_svc.index_registry import IndexRegistry, RegistrySettings
from api_svc.index_source import PgIndexSource
from api_svc.index_sync import IndexSync
from api_svc.metrics import ApiMetrics
from api_svc.node_status import SERVICE_NAME as NODE_SERVICE_NAME
from api_svc.node_status import NodeStatusServicer
from api_svc.recognition import Recognition
from api_svc.servicer import RecognitionServicer
from api_svc.similarity import Calculators
from api_svc.stats import RequestStats
from api_svc.subjects import Subjects
from api_svc.verification import Verification
from facegrid.metrics import ServiceMetrics
from facegrid.recognition.v1 import node_service_pb2_grpc, recognition_service_pb2_grpc
from facegrid.server import (
    MESSAGE_OVERHEAD_BYTES,
    ReadinessCheck,
    RunningServer,
    database_answers,
    start_server,
    stop_server,
    wait_for_signal,
)

log = structlog.get_logger()

SERVICE_NAME = "facegrid.recognition.v1.RecognitionService"


@dataclass(frozen=True, slots=True)
class ApiServer:
    """A running api_svc node and what it holds open."""

    running: RunningServer
    pool: asyncpg.Pool
    embed_channel: grpc.aio.Channel
    stats: RequestStats
    indexes: IndexRegistry
    sync: IndexSync
    status: RunningServer
    """The node status server (NodeService) on its own port."""
    preloading: asyncio.Task[None] | None
    """Loading of every collection at start (FACEGRID_INDEX_LOAD=start), else None."""

    async def stop(self, grace_s: float) -> None:
        """Stops serving, lets calls and counts in flight finish, closes connections."""
        await stop_server(self.running, grace_s)
        await stop_server(self.status, 0)
        if self.preloading is not None:
            self.preloading.cancel()
            await asyncio.gather(self.preloading, return_exceptions=True)
        await self.sync.stop(persist_s=grace_s)
        await self.stats.drain()
        await self.embed_channel.close()
        await self.pool.close()


async def create_server(config: ApiConfig, embed: EmbedClient | None = None) -> ApiServer:
    """Connects to PostgreSQL and embed_svc (``embed`` replaces the gRPC client in tests),
    starts LISTENing for collection changes, then serves (health SERVING). A failure half-way
    closes whatever was opened before it is raised."""
    async with contextlib.AsyncExitStack() as opened:
        pool = await create_pool(config.database_url, config.db_pool_max)
        opened.push_async_callback(pool.close)
        embed_channel = GrpcEmbedClient.channel(config.embed_url)
        opened.push_async_callback(embed_channel.close)
        if embed is None:
            embed = GrpcEmbedClient(embed_channel, config.embed_timeout_s)
        limits = BodyLimits(config.max_file_bytes, config.max_request_bytes)
        stats = RequestStats(PgRequestCounter(pool, config.db_timeout_s))
        opened.push_async_callback(stats.drain)
        calculators = Calculators(embed)
        store = PgFaceStore(pool, config.db_timeout_s)
        authenticator = Authenticator(
            PgKeyStore(pool, config.db_timeout_s),
            config.api_key_cache_s,
            stale_s=config.api_key_stale_s,
        )
        metrics = ServiceMetrics()
        api_metrics = ApiMetrics(metrics.registry)
        source = PgIndexSource(pool, config.db_timeout_s, config.index_load_timeout_s)
        settings = registry_settings(config)
        files = (
            IndexFiles(Path(config.index_cache_dir), settings.index)
            if config.index_cache_dir
            else None
        )
        indexes = IndexRegistry(
            source, calculators, settings, on_rebuilt=api_metrics.rebuilt, files=files
        )
        sync = IndexSync(
            config.database_url,
            indexes,
            on_service_change=authenticator.forget_all,
            on_applied=api_metrics.applied,
        )
        api_metrics.watch(indexes, sync, stats, authenticator)
        opened.push_async_callback(sync.stop)
        await sync.start(config.db_timeout_s)
        servicer = RecognitionServicer(
            authenticator=authenticator,
            stats=stats,
            detection=FaceDetection(embed, limits),
            verification=Verification(embed, calculators, limits),
            subjects=Subjects(store),
            faces=Faces(store, embed, limits),
            face_verification=FaceVerification(store, embed, calculators, limits),
            recognition=Recognition(indexes, embed, calculators, limits),
            bulk=BulkEnrolment(
                store,
                embed,
                calculators,
                config.max_file_bytes,
                BulkSettings(
                    config.bulk_embed_concurrency,
                    config.bulk_batch_max_items,
                    config.bulk_batch_max_bytes,
                ),
            ),
        )
        running = await start_server(
            host=config.host,
            port=config.port,
            register=partial(
                recognition_service_pb2_grpc.add_RecognitionServiceServicer_to_server, servicer
            ),
            service_names=[SERVICE_NAME],
            node_name=config.node_name,
            max_connection_age_s=config.grpc_max_connection_age_s,
            # the edge holds every body to its route's limit; the largest is an image request
            max_receive_bytes=config.max_request_bytes + MESSAGE_OVERHEAD_BYTES,
            metrics=metrics,
            metrics_port=config.metrics_port,
        )
        opened.push_async_callback(stop_server, running, 0)
        status = await start_server(
            host=config.host,
            port=config.status_port,
            register=partial(
                node_service_pb2_grpc.add_NodeServiceServicer_to_server,
                NodeStatusServicer(config.node_name, indexes),
            ),
            service_names=[NODE_SERVICE_NAME],
        )
        opened.push_async_callback(stop_server, status, 0)
        await status.set_serving(True)
        preloading = None
        if config.index_load == "start":
            preloading = asyncio.create_task(indexes.preload(await source.collections()))
        await running.set_serving(True)
        await running.keep_ready(ready_for_work(database_answers(pool, config.db_timeout_s), sync))
        opened.pop_all()  # all is open: the ApiServer closes it from now on
    return ApiServer(running, pool, embed_channel, stats, indexes, sync, status, preloading)


def registry_settings(config: ApiConfig) -> RegistrySettings:
    """How the node's indexes are built and bounded."""
    return RegistrySettings(
        index=IndexSettings(
            exact_max=config.index_exact_max, device=choose_device(config.index_device)
        ),
        memory_budget_bytes=config.index_memory_budget_mb * 1024 * 1024,
    )


def ready_for_work(database: ReadinessCheck, sync: IndexSync) -> ReadinessCheck:
    """api_svc is ready (``facegrid.ready``) while its pool answers and its LISTEN connection,
    which keeps the indexes current, is up."""

    async def check() -> bool:
        return sync.listener_pid is not None and await database()

    return check


async def serve(config: ApiConfig) -> None:
    """Runs until SIGINT/SIGTERM, then drains and closes every connection."""
    server = await create_server(config)
    try:
        await wait_for_signal()
    finally:
        await server.stop(config.shutdown_grace_s)

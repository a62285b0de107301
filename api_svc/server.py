"""Builds and runs an api_svc node."""

from __future__ import annotations

from functools import partial

import asyncpg
import grpc
import structlog

from api_svc.config import ApiConfig
from api_svc.servicer import RecognitionServicer
from facegrid.recognition.v1 import recognition_service_pb2_grpc
from facegrid.request_id import RequestIdClientInterceptor
from facegrid.server import (
    RunningServer,
    channel_options,
    start_server,
    stop_server,
    wait_for_signal,
)

log = structlog.get_logger()

SERVICE_NAME = "facegrid.recognition.v1.RecognitionService"


async def create_server(config: ApiConfig) -> tuple[RunningServer, asyncpg.Pool, grpc.aio.Channel]:
    """Connects to PostgreSQL and embed_svc, then starts serving (health SERVING)."""
    pool = await asyncpg.create_pool(config.database_url, min_size=1, max_size=config.db_pool_max)
    embed_channel = grpc.aio.insecure_channel(
        config.embed_url,
        options=channel_options(),
        interceptors=[RequestIdClientInterceptor()],
    )
    servicer = RecognitionServicer()
    running = await start_server(
        host=config.host,
        port=config.port,
        register=partial(
            recognition_service_pb2_grpc.add_RecognitionServiceServicer_to_server, servicer
        ),
        service_names=[SERVICE_NAME],
    )
    await running.set_serving(True)
    return running, pool, embed_channel


async def serve(config: ApiConfig) -> None:
    """Runs until SIGINT/SIGTERM, then drains and closes every connection."""
    running, pool, embed_channel = await create_server(config)
    try:
        await wait_for_signal()
    finally:
        await stop_server(running, config.shutdown_grace_s)
        await embed_channel.close()
        await pool.close()

"""Fixtures of embed_svc tests: a served embed_svc on a fake backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest

from embed_svc import catalog
from embed_svc.catalog import AttributeSpec
from embed_svc.config import EmbedConfig, load_config
from embed_svc.server import create_server
from facegrid.embedding.v1 import embedding_service_pb2_grpc
from facegrid.server import channel_options
from tests.embed_svc.fakes import FAKE_ATTRIBUTES, FakeBackend, ServedEmbed


def embed_config(**overrides: str) -> EmbedConfig:
    """embed_svc configuration on a free port with test-friendly values (the fake detector's
    boxes on drawn scenes are no faces dlib's HOG could confirm: the second look is off)."""
    env = {
        "FACEGRID_EMBED_PORT": "0",
        "FACEGRID_MAX_DETECT_SIZE": "800",
        "FACEGRID_CONFIRM_BELOW": "0",
    }
    env.update(overrides)
    return load_config(env)


@asynccontextmanager
async def _served(
    attributes: AttributeSpec | None = catalog.ATTRIBUTES,
) -> AsyncIterator[ServedEmbed]:
    """embed_svc on a fresh fake backend, on a free port, with a client."""
    backend = FakeBackend()
    server = await create_server(embed_config(), backend, attributes)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", options=channel_options())
    try:
        yield ServedEmbed(
            server, backend, channel, embedding_service_pb2_grpc.EmbeddingServiceStub(channel)
        )
    finally:
        await channel.close()
        await server.close(0.5)


@pytest.fixture(scope="module")
async def served_fake_module() -> AsyncIterator[ServedEmbed]:
    """embed_svc on a fake backend, on a free port, shared by a module's tests."""
    async with _served() as served:
        yield served


@pytest.fixture(scope="module")
async def served_with_attributes() -> AsyncIterator[ServedEmbed]:
    """embed_svc on a fake backend that also has a (fake) age/gender network."""
    async with _served(FAKE_ATTRIBUTES) as served:
        yield served


@pytest.fixture
def served_fake(served_fake_module: ServedEmbed) -> ServedEmbed:
    """The shared embed_svc with its fake backend reset (up, default models, no calls)."""
    served_fake_module.backend.reset()
    return served_fake_module

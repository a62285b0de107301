"""admin_svc fixtures: an in-process admin_svc on a free port with a fake embed_svc, on the
test's fresh database (PostgreSQL fixtures: tests/helpers/postgres.py), and a listener of its
change notifications."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from admin_svc.config import load_config
from admin_svc.server import create_server
from facegrid.admin.v1 import admin_service_pb2_grpc
from tests.admin_svc.helpers import Admin, FakeEmbed, Listener, admin_env


@pytest.fixture
async def admin(db_url: str) -> AsyncIterator[Admin]:
    """admin_svc in this process (real gRPC server on a free port) with a fake embed_svc."""
    embed = FakeEmbed()
    server = await create_server(load_config(admin_env(db_url)), embed=embed)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.running.port}")
    yield Admin(server, admin_service_pb2_grpc.AdminServiceStub(channel), channel, embed, db_url)
    await channel.close()
    await server.stop(0)


@pytest.fixture
async def listener(db_url: str) -> AsyncIterator[Listener]:
    """The test database's change notifications, from the test's start."""
    listener = await Listener.listen(db_url)
    yield listener
    await listener.close()

"""Building an api_svc node: a start-up that fails half-way leaves nothing open."""

from __future__ import annotations

import socket
from typing import Any

import grpc
import pytest

from api_svc import server as server_module
from api_svc.config import load_config
from api_svc.server import create_server
from tests.api_svc.fakes import FakeEmbed

pytestmark = pytest.mark.integration


async def test_a_start_that_fails_half_way_closes_what_it_opened(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: dict[str, Any] = {}
    real_pool, real_channel = server_module.create_pool, server_module.GrpcEmbedClient.channel
    real_sync = server_module.IndexSync

    async def pool_spy(*args: Any) -> Any:
        opened["pool"] = await real_pool(*args)
        return opened["pool"]

    def channel_spy(address: str) -> grpc.aio.Channel:
        opened["channel"] = real_channel(address)
        return opened["channel"]

    def sync_spy(*args: Any, **kwargs: Any) -> Any:
        opened["sync"] = real_sync(*args, **kwargs)
        return opened["sync"]

    monkeypatch.setattr(server_module, "create_pool", pool_spy)
    monkeypatch.setattr(server_module.GrpcEmbedClient, "channel", staticmethod(channel_spy))
    monkeypatch.setattr(server_module, "IndexSync", sync_spy)
    with socket.socket() as taken:  # the port is in use: binding fails after everything else
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {"FACEGRID_DATABASE_URL": db_url, "FACEGRID_API_PORT": str(taken.getsockname()[1])}
        with pytest.raises(RuntimeError, match="Failed to bind"):
            await create_server(load_config(env), embed=FakeEmbed())
    assert opened["pool"].is_closing()
    assert opened["channel"].get_state() == grpc.ChannelConnectivity.SHUTDOWN
    assert opened["sync"].connects == 1 and opened["sync"].listener_pid is None

"""Channels over several nodes: address settings as gRPC targets, round robin over the ready
nodes, a call retried on another node when one answers UNAVAILABLE."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
import pytest

from facegrid.balancing import balanced_options, balanced_service_config, grpc_target
from facegrid.config import ConfigError
from facegrid.server import READY_SERVICE, stop_server
from tests.facegrid.nodes import Node, answers, until_answering


@pytest.mark.parametrize(
    ("address", "target"),
    [
        ("127.0.0.1:50052", "127.0.0.1:50052"),
        ("embed:50052", "embed:50052"),
        ("dns:///embed-headless:50052", "dns:///embed-headless:50052"),
        ("127.0.0.1:50052, 127.0.0.1:50152", "ipv4:127.0.0.1:50052,127.0.0.1:50152"),
        ("[::1]:50052,[::1]:50152", "ipv6:[::1]:50052,[::1]:50152"),
        ("ipv4:10.0.0.1:1,10.0.0.2:1", "ipv4:10.0.0.1:1,10.0.0.2:1"),
    ],
)
def test_address_settings_become_grpc_targets(address: str, target: str) -> None:
    assert grpc_target(address) == target
    assert grpc_target(target) == target  # a target stays as it is


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("embed-a:50052,embed-b:50052", "dns:///name:port"),
        ("127.0.0.1,127.0.0.2:1", "not host:port"),
        ("127.0.0.1:1,[::1]:1", "not both"),
        ("  ", "empty"),
    ],
)
def test_bad_address_lists_name_the_problem(address: str, problem: str) -> None:
    with pytest.raises(ConfigError, match="FACEGRID_EMBED_URL") as raised:
        grpc_target(address)
    assert problem in str(raised.value)


def test_the_service_config_balances_over_ready_nodes() -> None:
    config = json.loads(balanced_service_config(["a.A"]))
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    assert config["healthCheckConfig"] == {"serviceName": READY_SERVICE}
    (method,) = config["methodConfig"]
    assert method["name"] == [{"service": "a.A"}]
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]


@pytest.fixture
async def nodes() -> AsyncIterator[tuple[list[Node], grpc.aio.Channel]]:
    nodes = [Node("a"), Node("b")]
    ports = [(await node.start()).port for node in nodes]
    target = grpc_target(",".join(f"127.0.0.1:{port}" for port in ports))
    channel = grpc.aio.insecure_channel(target, options=balanced_options(["n.N"]))
    await channel.channel_ready()
    yield nodes, channel
    await channel.close()
    for node in nodes:
        assert node.running is not None
        await stop_server(node.running, 0)


async def test_calls_go_round_robin_to_ready_nodes_only(
    nodes: tuple[list[Node], grpc.aio.Channel],
) -> None:
    (_a, b), channel = nodes
    await until_answering(channel, {"a", "b"})
    assert b.running is not None
    await b.running.set_ready(False)
    await until_answering(channel, {"a"}, calls=2)
    assert await answers(channel, 6) == ["a"] * 6


async def test_an_unavailable_answer_is_retried_on_the_other_node(
    nodes: tuple[list[Node], grpc.aio.Channel],
) -> None:
    (a, _b), channel = nodes
    await until_answering(channel, {"a", "b"})
    a.unavailable = True
    before = a.calls
    assert await answers(channel, 6) == ["b"] * 6
    assert a.calls > before  # a was asked, failed, and the call went on to b

"""The common gRPC server: a maximum connection age makes clients reconnect (and so re-resolve
DNS names), and zero leaves connections alone."""

from __future__ import annotations

import time

import grpc

from facegrid.server import server_options, start_server, stop_server


def test_connection_age_is_an_option_only_when_positive() -> None:
    assert ("grpc.max_connection_age_ms", 2500) in server_options(1024, 2.5)
    assert all(key != "grpc.max_connection_age_ms" for key, _ in server_options(1024, 0.0))


def _peer_service(server: grpc.aio.Server) -> None:
    """``test.Peer/Who`` answers the caller's address (a new one for each new connection)."""

    async def who(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return context.peer().encode()

    handler: grpc.RpcMethodHandler = grpc.unary_unary_rpc_method_handler(who)
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("test.Peer", {"Who": handler})]
    )


async def _peers_seen(max_connection_age_s: float, within_s: float) -> set[bytes]:
    running = await start_server(
        host="127.0.0.1",
        port=0,
        register=_peer_service,
        service_names=[],
        max_connection_age_s=max_connection_age_s,
    )
    peers: set[bytes] = set()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            who: grpc.aio.UnaryUnaryMultiCallable = channel.unary_unary("/test.Peer/Who")
            deadline = time.monotonic() + within_s
            while len(peers) < 2 and time.monotonic() < deadline:
                peers.add(bytes(await who(b"", timeout=5)))
    finally:
        await stop_server(running, 0)
    return peers


async def test_clients_reconnect_once_a_connection_reaches_its_maximum_age() -> None:
    assert len(await _peers_seen(0.3, within_s=10)) == 2


async def test_without_a_maximum_age_the_connection_stays() -> None:
    assert len(await _peers_seen(0.0, within_s=1)) == 1

"""Envoy holds at most ``max_connections`` client connections on the public listener: one more
is closed as it is accepted, while the admin interface and the stats listener still answer."""

from __future__ import annotations

import http.client
from collections.abc import Callable, Iterator

import pytest

from gateway.render import STATS_PATH, GatewayPorts
from tests.helpers.rest_client import call
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.integration

LIMIT = 2


def _served(port: int) -> http.client.HTTPConnection | None:
    """A new kept-alive connection that got an answer to /healthz, or None when Envoy closed it."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/healthz")
        reply = connection.getresponse()
        reply.read()
        if reply.status == 200:
            return connection
    except (OSError, http.client.HTTPException):
        pass
    connection.close()
    return None


@pytest.fixture
def held() -> Iterator[list[http.client.HTTPConnection]]:
    connections: list[http.client.HTTPConnection] = []
    yield connections
    for connection in connections:
        connection.close()


def test_a_connection_past_the_limit_is_closed_and_the_admin_still_answers(
    free_port: Callable[[], int],
    start_envoy: Callable[[GatewayPorts], str],
    held: list[http.client.HTTPConnection],
) -> None:
    ports = GatewayPorts(
        listen_port=free_port(),
        admin_port=free_port(),
        stats_port=free_port(),
        max_connections=LIMIT,
    )
    start_envoy(ports)

    def hold_one() -> bool:
        # Envoy counts a closed connection (the readiness probe's) until it has processed the
        # close, so a connection may be refused for a moment before the limit is really reached.
        connection = _served(ports.listen_port)
        if connection is not None:
            held.append(connection)
        return connection is not None

    for _ in range(LIMIT):
        wait_until(hold_one, timeout_s=10, what="a connection under the limit to be served")
    assert _served(ports.listen_port) is None  # one more: closed as it is accepted

    # Every held connection still serves, and Envoy can still be observed.
    for connection in held:
        connection.request("GET", "/healthz")
        reply = connection.getresponse()
        reply.read()
        assert reply.status == 200
    stats = call("GET", f"http://127.0.0.1:{ports.stats_port}{STATS_PATH}")
    assert stats.status == 200
    admin = call("GET", f"http://127.0.0.1:{ports.admin_port}/stats?filter=global_cx_overflow")
    assert admin.status == 200
    overflow = [
        int(line.rsplit(":", 1)[1])
        for line in admin.body.decode().splitlines()
        if "downstream_global_cx_overflow" in line
    ]
    assert overflow and sum(overflow) >= 1, admin.body

    # A connection closed makes room for a new one.
    held.pop().close()
    wait_until(hold_one, timeout_s=10, what="a new connection once one was closed")

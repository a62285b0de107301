"""Near its heap budget Envoy answers new requests 503 in CompreFace's error shape (REST) and
UNAVAILABLE (gRPC), and its admin interface still answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from facegrid.recognition.v1 import recognition_service_pb2 as pb
from facegrid.recognition.v1 import recognition_service_pb2_grpc as pb_grpc
from gateway.render import GatewayPorts
from tests.helpers.envoy import running_envoy
from tests.helpers.rest_client import call
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.integration


def test_over_its_heap_budget_envoy_refuses_requests_in_compreface_shape(
    free_port: Callable[[], int], short_tmp: Path
) -> None:
    # A 1 MiB budget: Envoy's own heap is well past it from the start.
    ports = GatewayPorts(listen_port=free_port(), admin_port=free_port(), max_heap_mib=1)
    admin = f"http://127.0.0.1:{ports.admin_port}"
    with running_envoy(ports, short_tmp, probe=f"{admin}/ready") as base:

        def refusing() -> bool:  # the monitor's first reading comes a refresh after start
            stats = call("GET", f"{admin}/stats?filter=stop_accepting_requests").body.decode()
            return "overload.envoy.overload_actions.stop_accepting_requests.active: 1" in stats

        wait_until(refusing, timeout_s=10, what="Envoy to act on its heap budget")
        refused = call("GET", f"{base}/healthz")
        assert refused.status == 503
        body = json.loads(refused.body)
        assert body["code"] == 0
        assert "overloaded" in body["message"]
        rest = call("POST", f"{base}/api/v1/recognition/recognize", raw=b"x")
        assert rest.status == 503
        assert "overloaded" in json.loads(rest.body)["message"]

        with grpc.insecure_channel(f"127.0.0.1:{ports.listen_port}") as channel:
            stub = pb_grpc.RecognitionServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refusal:
                stub.ListSubjects(pb.ListSubjectsRequest(), timeout=10)
        assert refusal.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "overloaded" in (refusal.value.details() or "")

        assert call("GET", f"{admin}/ready").status == 200  # the admin interface still answers


def test_under_its_heap_budget_envoy_serves(
    free_port: Callable[[], int], start_envoy: Callable[[GatewayPorts], str]
) -> None:
    ports = GatewayPorts(listen_port=free_port(), admin_port=free_port(), max_heap_mib=256)
    base = start_envoy(ports)  # waits for /healthz to answer 200
    stats = call("GET", f"http://127.0.0.1:{ports.admin_port}/stats?filter=stop_accepting")
    assert "overload.envoy.overload_actions.stop_accepting_requests.active: 0" in (
        stats.body.decode()
    )
    assert call("GET", f"{base}/healthz").status == 200


def test_not_ready_is_not_called_overloaded(
    free_port: Callable[[], int], start_envoy: Callable[[GatewayPorts], str]
) -> None:
    # No service behind this Envoy: /ready is a 503 of its own, not the heap budget's refusal.
    base = start_envoy(GatewayPorts(listen_port=free_port(), admin_port=free_port()))
    reply = call("GET", f"{base}/ready")
    assert reply.status == 503
    assert b"overloaded" not in reply.body

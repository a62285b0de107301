"""The mesh's metrics, scraped as Prometheus would: exact counter deltas on api_svc and
embed_svc after known requests through Envoy, index sizes after an enrolment, embed batch sizes,
and the metrics of Triton and Envoy."""

from __future__ import annotations

import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from facegrid.config import METRICS_PORT_OFFSET
from tests.helpers.photos import astronaut_png
from tests.helpers.rest_client import call
from tests.helpers.wait import wait_until
from tests.launcher.helpers import MeshHandle

pytestmark = pytest.mark.integration

RECOGNITION = "facegrid.recognition.v1.RecognitionService"
EMBEDDING = "facegrid.embedding.v1.EmbeddingService"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return str(reply.read().decode())


def _scrape(address: str) -> Samples:
    host, port = address.rsplit(":", 1)
    return _parse(_get(f"http://{host}:{int(port) + METRICS_PORT_OFFSET}/metrics"))


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _sum(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over every label set that includes ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


@pytest.fixture(scope="module")
def key(keys: dict[str, str]) -> str:
    return keys["RECOGNITION"]


def test_known_requests_move_the_counters_by_exactly_their_number(
    mesh: MeshHandle, key: str
) -> None:
    photo = astronaut_png()

    # The mesh is shared with earlier test modules: a call of the kinds counted below that one
    # of them left running (a client that hung up while embed_svc still worked) must end
    # before the counters are read. (Other calls, long-lived streams, may stay in flight.)
    def quiet() -> bool:
        api, embed = _scrape(mesh.api), _scrape(mesh.embed)
        counted = ("AddFace", "RecognizeFaces", "CreateSubject")
        return (
            sum(_sum(api, "grpc_server_in_flight", grpc_method=m) for m in counted) == 0
            and _sum(embed, "grpc_server_in_flight", grpc_method="AnalyzeImages") == 0
        )

    wait_until(quiet, timeout_s=60, what="no counted call in flight on api_svc and embed_svc")
    api_before, embed_before = _scrape(mesh.api), _scrape(mesh.embed)
    headers = {"x-api-key": key}
    rest = mesh.rest + "/api/v1/recognition"
    subject = f"Metrics {uuid.uuid4().hex[:8]}"
    files = {"file": ("a.png", photo, "image/png")}
    enrolled = call(
        "POST", f"{rest}/faces", headers=headers, files=files, query={"subject": subject}
    )
    assert enrolled.status == 201, enrolled.body
    for _ in range(3):
        assert call("POST", f"{rest}/recognize", headers=headers, files=files).status == 200
    for name in ("", "a\x00b"):  # two refusals, before any work
        refused = call("POST", f"{rest}/subjects", headers=headers, json={"subject": name})
        assert refused.status == 400
    # A refusal's status reaches the client as it is sent, before the server's interceptor
    # counts the call (it counts, then leaves the in-flight gauge, in one step): wait for that.
    wait_until(quiet, timeout_s=60, what="the counted calls to leave the in-flight gauges")
    api_after, embed_after = _scrape(mesh.api), _scrape(mesh.embed)

    def handled(after: Samples, before: Samples, service: str, method: str, code: str) -> float:
        labels = {
            "grpc_type": "unary",
            "grpc_service": service,
            "grpc_method": method,
            "grpc_code": code,
        }
        return _value(after, "grpc_server_handled_total", **labels) - _value(
            before, "grpc_server_handled_total", **labels
        )

    assert handled(api_after, api_before, RECOGNITION, "AddFace", "OK") == 1
    assert handled(api_after, api_before, RECOGNITION, "RecognizeFaces", "OK") == 3
    assert handled(api_after, api_before, RECOGNITION, "CreateSubject", "INVALID_ARGUMENT") == 2
    assert handled(embed_after, embed_before, EMBEDDING, "AnalyzeImages", "OK") == 4
    timed = _value(
        api_after,
        "grpc_server_handling_seconds_count",
        grpc_type="unary",
        grpc_service=RECOGNITION,
        grpc_method="RecognizeFaces",
    ) - _value(
        api_before,
        "grpc_server_handling_seconds_count",
        grpc_type="unary",
        grpc_service=RECOGNITION,
        grpc_method="RecognizeFaces",
    )
    assert timed == 3
    batches = _sum(embed_after, "facegrid_embed_batch_size_count") - _sum(
        embed_before, "facegrid_embed_batch_size_count"
    )
    assert batches >= 4  # at least the detector once per image
    assert _value(api_after, "facegrid_index_faces") >= 1
    assert _value(api_after, "facegrid_index_collections") >= 1
    assert _value(api_after, "facegrid_index_sync_connected") == 1
    assert _value(api_after, "process_resident_memory_bytes") > 0


def test_triton_and_envoy_metrics_are_served(mesh: MeshHandle, key: str) -> None:
    triton = _parse(_get(mesh.triton_metrics))
    assert _sum(triton, "nv_inference_request_success_total") > 0
    envoy = _get(f"{mesh.envoy_admin}/stats/prometheus")
    assert "envoy_cluster_upstream_rq_total" in envoy

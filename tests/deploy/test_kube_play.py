"""The real Kubernetes Deployments of embed_svc and api_svc, run by ``podman kube play`` against
the compose mesh's PostgreSQL and Triton: they become ready, and the api_svc pod answers a
recognise of a person enrolled through the compose mesh (so it loaded the collection from
PostgreSQL).

``podman kube play`` runs pods but no Services, DNS, Secrets or controllers, so only this is
patched in the rendered cpu overlay: one replica each; the pods join the compose network (where
``triton`` and ``postgres`` resolve as the manifests expect); the database URL Secret becomes a
literal; FACEGRID_EMBED_URL names the embed_svc pod's address instead of the headless Service;
each gRPC port is published on 127.0.0.1 for the test's own readiness loop.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.api import httpbody_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facegrid.node_header import NODE_HEADER
from facegrid.recognition.v1 import recognition_service_pb2 as pb
from facegrid.recognition.v1 import recognition_service_pb2_grpc as rpc
from facegrid.server import READY_SERVICE
from tests.deploy.helpers import REPO, ComposeMesh, container_logs, podman, send_image
from tests.helpers.photos import shared_faces
from tests.helpers.wait import wait_for_value

pytestmark = [pytest.mark.integration, pytest.mark.containers]

KUBE = REPO / "deploy" / "kubernetes"
#: The pods are ready when their readiness health service (DESIGN.md) serves.
HEALTH_SERVICE = READY_SERVICE
#: Enrolled through compose's Envoy from one photo, recognised by the pod in another (not one of
#: the compose test's people).
PERSON = "alex"


def rendered_cpu_overlay() -> list[dict[str, Any]]:
    """The cpu overlay with the images the environment names (as compose used)."""
    kubectl = str(REPO / ".venv-deploy" / "bin" / "kubectl")
    result = subprocess.run(
        [sys.executable, str(KUBE / "render.py"), "cpu", "--kubectl", kubectl],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def playable(
    docs: list[dict[str, Any]], deployment: str, host_port: int, config: dict[str, str]
) -> list[dict[str, Any]]:
    """The Deployment named ``deployment`` and the settings ConfigMap, patched as the module
    docstring says (``config``: settings replaced; FACEGRID_DATABASE_URL replaces the Secret)."""
    config = dict(config)
    database_url = config.pop("FACEGRID_DATABASE_URL", None)
    config_map = copy.deepcopy(
        next(
            d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "facegrid-env"
        )
    )
    # podman gives envFrom precedence over env: patch the ConfigMap, not the container.
    config_map["data"].update(config)
    workload = copy.deepcopy(
        next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == deployment)
    )
    workload["spec"]["replicas"] = 1
    container = workload["spec"]["template"]["spec"]["containers"][0]
    for item in container.get("env", []):
        if item["name"] == "FACEGRID_DATABASE_URL":
            item.pop("valueFrom")
            assert database_url is not None
            item["value"] = database_url
    container["ports"][0].update(hostPort=host_port, hostIP="127.0.0.1")
    return [config_map, workload]


@dataclass
class Played:
    """Pods started with ``podman kube play`` and the files to take them down."""

    files: list[Path]

    def down(self) -> None:
        for path in reversed(self.files):
            podman("kube", "down", str(path), timeout_s=120)


def serving(address: str) -> bool | None:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=HEALTH_SERVICE), timeout=3
            )
        except grpc.RpcError:
            return None
    return True if reply.status == health_pb2.HealthCheckResponse.SERVING else None


def play(path: Path, docs: list[dict[str, Any]], network: str) -> None:
    path.write_text(yaml.safe_dump_all(docs))
    podman("kube", "play", "--network", network, str(path), timeout_s=180)


@pytest.fixture(scope="module")
def api_pod(
    compose_mesh: ComposeMesh,
    free_port: Callable[[], int],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """The api_svc pod's published gRPC address, once it and its embed_svc pod serve."""
    docs = rendered_cpu_overlay()
    folder = tmp_path_factory.mktemp("kube")
    played = Played([])
    embed_port, api_port = free_port(), free_port()
    try:
        embed = playable(docs, "embed-svc", embed_port, {})
        played.files.append(folder / "embed-svc.yaml")
        play(played.files[-1], embed, compose_mesh.network)
        pod = "embed-svc-pod-0-embed-svc"
        wait_for_value(lambda: serving(f"127.0.0.1:{embed_port}"), 180, "the embed_svc pod")
        address = podman(
            "inspect",
            pod,
            "--format",
            f'{{{{(index .NetworkSettings.Networks "{compose_mesh.network}").IPAddress}}}}',
        ).strip()
        assert address, f"{pod} has no address on {compose_mesh.network}"
        api = playable(
            docs,
            "api-svc",
            api_port,
            {
                "FACEGRID_DATABASE_URL": compose_mesh.database_url,
                "FACEGRID_EMBED_URL": f"{address}:50052",
            },
        )
        played.files.append(folder / "api-svc.yaml")
        play(played.files[-1], api, compose_mesh.network)
        try:
            wait_for_value(lambda: serving(f"127.0.0.1:{api_port}"), 180, "the api_svc pod")
        except AssertionError as err:
            raise AssertionError(f"{err}\n{container_logs('api-svc-pod-0-api-svc')}") from None
        yield f"127.0.0.1:{api_port}"
    finally:
        played.down()
        left = podman("pod", "ps", "--format", "{{.Name}}").split()
        assert not {"embed-svc-pod-0", "api-svc-pod-0"} & set(left), left


def test_the_pods_run_the_manifests_images_as_their_users(api_pod: str) -> None:
    for pod, image in (
        ("embed-svc-pod-0-embed-svc", "facegrid"),
        ("api-svc-pod-0-api-svc", "facegrid"),
    ):
        user, read_only, name = podman(
            "inspect",
            pod,
            "--format",
            "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.ImageName}}",
        ).split()
        assert user == "10001:10001" and read_only == "true"
        assert name.rsplit(":", 1)[0].endswith(image)


def test_the_api_pod_recognises_a_person_enrolled_through_the_compose_mesh(
    compose_mesh: ComposeMesh, api_pod: str
) -> None:
    key = compose_mesh.tenant.recognition_key
    photos = shared_faces() / PERSON
    reply = send_image(
        f"{compose_mesh.rest}/api/v1/recognition/faces",
        key,
        photos / "02.jpg",
        query={"subject": f"{PERSON}-kube"},
    )
    assert reply.status == 201, reply.body
    image = httpbody_pb2.HttpBody(content_type="image/jpeg", data=(photos / "03.jpg").read_bytes())
    with grpc.insecure_channel(api_pod) as channel:
        stub = rpc.RecognitionServiceStub(channel)

        nodes: set[str] = set()

        def best() -> str | None:
            answer, call = stub.RecognizeFaces.with_call(
                pb.RecognizeFacesRequest(image=image), metadata=[("x-api-key", key)], timeout=30
            )
            nodes.update(str(v) for k, v in call.initial_metadata() if k == NODE_HEADER)
            subjects = answer.result[0].subjects
            return (
                subjects[0].subject
                if subjects and subjects[0].subject == f"{PERSON}-kube"
                else None
            )

        assert (
            wait_for_value(best, 30, "the pod to find the new face", interval_s=0.2)
            == f"{PERSON}-kube"
        )
    # The Deployment names each node after its pod (FACEGRID_API_NODE_NAME from metadata.name).
    assert nodes == {"api-svc-pod-0"}

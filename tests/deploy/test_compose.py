"""compose.yaml brought up whole with podman-compose from the images `make images` built:
PostgreSQL, Triton (CPU), two embed_svc and two api_svc replicas, admin_svc, the web console and
Envoy. As a client through Envoy only: load the console and the OpenAPI document, sign up,
detect a face, enrol three people from ../shared/faces, recognise them in other photos, and see
that both api_svc replicas answered. Then down."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from functools import partial

import pytest
import yaml

from tests.deploy.helpers import (
    API_REPLICAS,
    PODMAN_COMPOSE,
    PODMAN_ENV,
    REPO,
    ComposeMesh,
    container_logs,
    podman,
    send_image,
)
from tests.helpers.photos import shared_faces
from tests.helpers.rest_client import Reply, call
from tests.helpers.wait import wait_for_value

pytestmark = [pytest.mark.integration, pytest.mark.containers]

#: People enrolled from their first photo and recognised in their second.
PEOPLE = ("obama", "biden", "kit")
SERVICES = ("postgres", "triton", "embed-svc", "admin-svc", "api-svc", "console", "envoy")


def test_every_service_runs_with_its_replicas(compose_mesh: ComposeMesh) -> None:
    running = compose_mesh.compose.containers(running_only=True)
    expected = {compose_mesh.compose.container(service) for service in SERVICES}
    expected |= {compose_mesh.compose.container("api-svc", n) for n in range(1, API_REPLICAS + 1)}
    expected.add(compose_mesh.compose.container("embed-svc", 2))
    assert expected <= set(running), running


def test_the_console_loads_through_envoy(compose_mesh: ComposeMesh) -> None:
    """``/`` is the console's app (`make console`'s build, copied into its image), its hashed
    script is served with a year's caching, and ``/openapi.json`` is the REST API's OpenAPI
    document."""

    def served_page() -> Reply | None:
        reply = call("GET", f"{compose_mesh.rest}/")
        return reply if reply.status == 200 else None

    # Envoy's /ready counts the API services only: the console may still be starting.
    page = wait_for_value(served_page, 60, "the console through Envoy", interval_s=0.5)
    assert page.headers["content-type"].startswith("text/html")
    html = page.body.decode()
    assert "<title>Facegrid console</title>" in html and '<div id="app">' in html
    # The built page, not the source one: Vite replaced the entry with a hashed bundle.
    scripts = re.findall(r'<script type="module"[^>]* src="(/assets/[^"]+\.js)"', html)
    assert scripts, html
    script = call("GET", f"{compose_mesh.rest}{scripts[0]}")
    assert script.status == 200 and len(script.body) > 1000
    assert "immutable" in script.headers["cache-control"]
    reply = call("GET", f"{compose_mesh.rest}/openapi.json")
    assert reply.status == 200, reply.body[:500]
    document = json.loads(reply.body)
    assert document["openapi"].startswith("3.")
    assert "/api/v1/recognition/recognize" in document["paths"]
    assert "/api/v1/admin/auth/signup" in document["paths"]


def test_detects_the_face_in_a_photo(compose_mesh: ComposeMesh) -> None:
    photo = shared_faces() / "obama" / "01.jpg"
    reply = send_image(
        f"{compose_mesh.rest}/api/v1/detection/detect", compose_mesh.tenant.detection_key, photo
    )
    assert reply.status == 200, reply.body
    faces = reply.json()["result"]
    assert len(faces) == 1 and faces[0]["box"]["probability"] > 0.9


def test_enrols_three_people_and_recognises_them_in_other_photos(compose_mesh: ComposeMesh) -> None:
    key = compose_mesh.tenant.recognition_key
    faces = shared_faces()
    for person in PEOPLE:
        reply = send_image(
            f"{compose_mesh.rest}/api/v1/recognition/faces",
            key,
            faces / person / "01.jpg",
            query={"subject": person},
        )
        assert reply.status == 201, reply.body
        assert reply.json()["subject"] == person

    def best_subject(person: str) -> str | None:
        # Enrolled through one api_svc node, recognised through either: a node sees the new
        # faces once PostgreSQL's notification reached it.
        reply = send_image(
            f"{compose_mesh.rest}/api/v1/recognition/recognize", key, faces / person / "02.jpg"
        )
        assert reply.status == 200, reply.body
        subjects = reply.json()["result"][0]["subjects"]
        return subjects[0]["subject"] if subjects and subjects[0]["subject"] == person else None

    for person in PEOPLE:
        assert (
            wait_for_value(
                partial(best_subject, person),
                30,
                f"{person} recognised",
                interval_s=0.2,
            )
            == person
        )


def test_both_api_svc_replicas_answer_through_envoy(compose_mesh: ComposeMesh) -> None:
    """Envoy balances over both containers: the ``x-facegrid-node`` header of the answers names
    each one (``<hostname>:50051``), and each container's log has a request id it served."""
    photo = shared_faces() / "biden" / "01.jpg"
    containers = [compose_mesh.compose.container("api-svc", n) for n in range(1, API_REPLICAS + 1)]
    node_of = {
        podman("inspect", name, "--format", "{{.Config.Hostname}}").strip() + ":50051": name
        for name in containers
    }
    served: dict[str, list[str]] = {}

    def nodes_that_answered() -> set[str] | None:
        request_id = f"deploy-{uuid.uuid4().hex}"
        reply = send_image(
            f"{compose_mesh.rest}/api/v1/detection/detect",
            compose_mesh.tenant.detection_key,
            photo,
            request_id=request_id,
        )
        assert reply.status == 200, reply.body
        node = reply.headers.get("x-facegrid-node", "")
        assert node in node_of, f"answered by {node!r}, not one of {sorted(node_of)}"
        served.setdefault(node, []).append(request_id)
        return set(served) if len(served) == API_REPLICAS else None

    answered = wait_for_value(nodes_that_answered, 60, "both api_svc replicas", interval_s=0.1)
    assert {node_of[node] for node in answered} == set(containers)
    for node, request_ids in served.items():
        assert request_ids[0] in container_logs(node_of[node], tail=1000)


def test_the_gpu_env_file_swaps_triton_for_the_gpu_one() -> None:
    """deploy/compose/gpu.env: the gpu profile's triton-gpu reserving one NVIDIA device, no CPU
    Triton, embed_svc pointed at the GPU one (compose's own view of the file: `config`)."""
    env = {
        **os.environ,
        "FACEGRID_TOKEN_SECRET": "x" * 32,
        "FACEGRID_POSTGRES_PASSWORD": "unused",
    }
    services = {}
    for env_file in ("gpu.env", "standins.env"):
        result = subprocess.run(
            [
                str(PODMAN_ENV),
                str(PODMAN_COMPOSE),
                "--env-file",
                str(REPO / "deploy" / "compose" / env_file),
                "-f",
                str(REPO / "compose.yaml"),
                "config",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=env,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        services[env_file] = yaml.safe_load(result.stdout)["services"]
    gpu, cpu = services["gpu.env"], services["standins.env"]
    assert "triton-gpu" not in cpu and int(cpu["triton"]["deploy"]["replicas"]) == 1
    assert int(gpu["triton"]["deploy"]["replicas"]) == 0
    device = gpu["triton-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert device == {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    assert gpu["embed-svc"]["environment"]["FACEGRID_TRITON_URL"] == "triton-gpu:8001"
    assert cpu["embed-svc"]["environment"]["FACEGRID_TRITON_URL"] == "triton:8001"

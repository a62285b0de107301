"""compose.yaml brought up whole with podman-compose from the images `make images` built:
PostgreSQL, Triton (CPU), two embed_svc and two api_svc replicas, admin_svc and Envoy. As a
client through Envoy only: sign up, detect a face, enrol three people from ../shared/faces,
recognise them in other photos, and see that both api_svc replicas answered. Then down."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.deploy.containers import (
    Compose,
    Tenant,
    container_logs,
    faces_dir,
    new_tenant,
    podman,
    poll,
    send_image,
)
from tests.rest_client import call

pytestmark = [pytest.mark.integration, pytest.mark.containers]

#: People enrolled from their first photo and recognised in their second.
PEOPLE = ("obama", "biden", "kit")
SERVICES = ("postgres", "triton", "embed-svc", "admin-svc", "api-svc", "envoy")
API_REPLICAS = 2


@dataclass(frozen=True)
class ComposeMesh:
    compose: Compose
    rest: str
    tenant: Tenant

    def all_logs(self) -> str:
        names = podman(
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            f"label=io.podman.compose.project={self.compose.project}",
        ).split()
        return "\n".join(f"== {name}\n{container_logs(name, 15)}" for name in names)


def _ready(rest: str) -> bool | None:
    try:
        return True if call("GET", f"{rest}/ready", timeout_s=5).status == 200 else None
    except OSError:
        return None


@pytest.fixture(scope="module")
def mesh(free_port: Callable[[], int]) -> Iterator[ComposeMesh]:
    port = free_port()
    env = dict(os.environ)
    env.update(
        FACEGRID_TOKEN_SECRET=secrets.token_hex(32),
        FACEGRID_POSTGRES_PASSWORD=secrets.token_hex(16),
        FACEGRID_ENVOY_PUBLISH=f"127.0.0.1:{port}",
        FACEGRID_API_REPLICAS=str(API_REPLICAS),
        FACEGRID_EMBED_REPLICAS="2",
    )
    compose = Compose(project=f"fgtest{uuid.uuid4().hex[:6]}", env=env)
    rest = f"http://127.0.0.1:{port}"
    up = compose.run("up", "-d")
    try:
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
        handle = ComposeMesh(compose, rest, Tenant("", ""))
        try:
            poll(lambda: _ready(rest), timeout_s=300, what="Envoy's /ready", every_s=2)
        except AssertionError as err:
            raise AssertionError(f"{err}\n{handle.all_logs()}") from None
        yield ComposeMesh(compose, rest, new_tenant(rest))
    finally:
        down = compose.run("down", "-v", "-t", "5")
        left = podman(
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            f"label=io.podman.compose.project={compose.project}",
        )
        assert down.returncode == 0, down.stderr[-3000:]
        assert left.split() == [], f"containers left after down: {left}"


def test_every_service_runs_with_its_replicas(mesh: ComposeMesh) -> None:
    running = podman(
        "ps",
        "--format",
        "{{.Names}}",
        "--filter",
        f"label=io.podman.compose.project={mesh.compose.project}",
    ).split()
    expected = {mesh.compose.container(service) for service in SERVICES}
    expected |= {mesh.compose.container("api-svc", n) for n in range(1, API_REPLICAS + 1)}
    expected.add(mesh.compose.container("embed-svc", 2))
    assert expected <= set(running), running


def test_detects_the_face_in_a_photo(mesh: ComposeMesh) -> None:
    photo = faces_dir() / "obama" / "01.jpg"
    reply = send_image(f"{mesh.rest}/api/v1/detection/detect", mesh.tenant.detection_key, photo)
    assert reply.status == 200, reply.body
    faces = reply.json()["result"]
    assert len(faces) == 1 and faces[0]["box"]["probability"] > 0.9


def test_enrols_three_people_and_recognises_them_in_other_photos(mesh: ComposeMesh) -> None:
    key = mesh.tenant.recognition_key
    faces = faces_dir()
    for person in PEOPLE:
        reply = send_image(
            f"{mesh.rest}/api/v1/recognition/faces",
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
            f"{mesh.rest}/api/v1/recognition/recognize", key, faces / person / "02.jpg"
        )
        assert reply.status == 200, reply.body
        subjects = reply.json()["result"][0]["subjects"]
        return subjects[0]["subject"] if subjects and subjects[0]["subject"] == person else None

    for person in PEOPLE:
        assert (
            poll(
                lambda p=person: best_subject(p),
                timeout_s=30,
                what=f"{person} recognised",
                every_s=0.2,
            )
            == person
        )


def test_both_api_svc_replicas_answer_through_envoy(mesh: ComposeMesh) -> None:
    """Each request carries its own id; each api_svc container logs the ids it served."""
    photo = faces_dir() / "biden" / "01.jpg"
    sent: list[str] = []

    def replicas_that_answered() -> set[str] | None:
        request_id = f"deploy-{uuid.uuid4().hex}"
        reply = send_image(
            f"{mesh.rest}/api/v1/detection/detect",
            mesh.tenant.detection_key,
            photo,
            request_id=request_id,
        )
        assert reply.status == 200, reply.body
        sent.append(request_id)
        answered = set()
        for number in range(1, API_REPLICAS + 1):
            name = mesh.compose.container("api-svc", number)
            logs = container_logs(name, tail=400)
            if any(rid in logs for rid in sent):
                answered.add(name)
        return answered if len(answered) == API_REPLICAS else None

    answered = poll(replicas_that_answered, timeout_s=60, what="both api_svc replicas", every_s=0.1)
    assert len(answered) == API_REPLICAS

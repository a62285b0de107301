"""Helpers of the container tests: podman and podman-compose on the project's own storage
(deploy/podman-env), the running compose mesh's handle, and a client of the REST API through
Envoy that signs up and makes API keys as a new user would."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.photos import shared_faces
from tests.helpers.rest_client import Reply, call

REPO = Path(__file__).resolve().parents[2]
PODMAN_ENV = REPO / "deploy" / "podman-env"
PODMAN_COMPOSE = REPO / ".venv-deploy" / "bin" / "podman-compose"
#: Images `make images` tags (the stand-ins replace Envoy's and pgvector's public images).
STANDINS_ENV = REPO / "deploy" / "compose" / "standins.env"
SERVICE_IMAGE = "localhost/facegrid:latest"
TRITON_IMAGE = "localhost/facegrid-triton-cpu:latest"
ENVOY_IMAGE = "localhost/facegrid-envoy:latest"
POSTGRES_IMAGE = "localhost/facegrid-postgres:latest"
PASSWORD = "correct horse battery staple"


def podman(*args: str, timeout_s: float = 120, check: bool = True) -> str:
    """Runs podman on the project's storage; its stdout (and stderr, on failure, in the error)."""
    result = subprocess.run(
        [str(PODMAN_ENV), "podman", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {result.stderr[-3000:]}")
    return result.stdout


def container_logs(name: str, tail: int = 40) -> str:
    """The last lines a container printed (stdout and stderr)."""
    result = subprocess.run(
        [str(PODMAN_ENV), "podman", "logs", "--tail", str(tail), name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.stdout + result.stderr


def shared_dir() -> Path:
    """../shared beside the checkout (DESIGN.md and the face photos)."""
    return shared_faces().parent


@dataclass(frozen=True)
class Compose:
    """One podman-compose project of compose.yaml."""

    project: str
    env: Mapping[str, str]

    def run(self, *args: str, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
        command = [str(PODMAN_ENV), str(PODMAN_COMPOSE), "-p", self.project]
        command += ["--env-file", str(STANDINS_ENV), "-f", str(REPO / "compose.yaml"), *args]
        return subprocess.run(
            command,
            cwd=REPO,
            env=dict(self.env),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def container(self, service: str, number: int = 1) -> str:
        """The container name of replica ``number`` of ``service``."""
        return f"{self.project}_{service}_{number}"

    def containers(self, *, running_only: bool = False) -> list[str]:
        """Names of the project's containers (all of them, or the running ones)."""
        which = [] if running_only else ["-a"]
        label = f"label=io.podman.compose.project={self.project}"
        return podman("ps", *which, "--format", "{{.Names}}", "--filter", label).split()


@dataclass(frozen=True)
class Tenant:
    """A signed-up owner's API keys, one service of each type."""

    recognition_key: str
    detection_key: str


def new_tenant(rest: str) -> Tenant:
    """Signs a first user up and in, creates an application with a RECOGNITION and a DETECTION
    service through the admin REST API, and returns their keys."""
    admin = f"{rest}/api/v1/admin"
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    user = {"email": email, "password": PASSWORD, "first_name": "Ann", "last_name": "Lee"}
    reply = call("POST", f"{admin}/auth/signup", json=user)
    assert reply.status == 201, reply.body
    reply = call("POST", f"{admin}/auth/signin", json={"email": email, "password": PASSWORD})
    assert reply.status == 200, reply.body
    auth = {"authorization": f"Bearer {reply.json()['access_token']}"}
    reply = call("POST", f"{admin}/apps", json={"name": "Deployment test"}, headers=auth)
    assert reply.status == 201, reply.body
    app_id = reply.json()["application"]["application_id"]
    keys = {}
    for kind in ("RECOGNITION", "DETECTION"):
        body = {"name": kind.lower(), "type": f"SERVICE_TYPE_{kind}"}
        reply = call("POST", f"{admin}/apps/{app_id}/services", json=body, headers=auth)
        assert reply.status == 201, reply.body
        keys[kind] = reply.json()["service"]["api_key"]
    return Tenant(recognition_key=keys["RECOGNITION"], detection_key=keys["DETECTION"])


def send_image(
    url: str, key: str, photo: Path, *, query: dict[str, str] | None = None, request_id: str = ""
) -> Reply:
    """POSTs ``photo`` as the multipart ``file`` field with an API key (and a request id)."""
    ctype = "image/png" if photo.suffix == ".png" else "image/jpeg"
    headers = {"x-api-key": key}
    if request_id:
        headers["x-request-id"] = request_id
    return call(
        "POST",
        url,
        files={"file": (photo.name, photo.read_bytes(), ctype)},
        headers=headers,
        query=query,
    )


API_REPLICAS = 2


@dataclass(frozen=True)
class ComposeMesh:
    """A running compose project: Envoy's REST URL and a signed-up owner's keys."""

    compose: Compose
    rest: str
    tenant: Tenant
    database_url: str
    """The database as the services reach it inside the compose network."""

    @property
    def network(self) -> str:
        """The compose project's network (other pods join it to reach its services by name)."""
        return f"{self.compose.project}_default"

    def all_logs(self) -> str:
        names = self.compose.containers()
        return "\n".join(f"== {name}\n{container_logs(name, 15)}" for name in names)

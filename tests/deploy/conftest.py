"""The compose mesh, brought up once for the container tests (compose.yaml with the images of
`make images` and the stand-ins), and torn down at the end of the session."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.deploy.containers import Compose, Tenant, container_logs, new_tenant, poll
from tests.rest_client import call

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


def _ready(rest: str) -> bool | None:
    try:
        return True if call("GET", f"{rest}/ready", timeout_s=5).status == 200 else None
    except OSError:
        return None


@pytest.fixture(scope="session")
def compose_mesh(free_port: Callable[[], int]) -> Iterator[ComposeMesh]:
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
        password = env["FACEGRID_POSTGRES_PASSWORD"]
        database_url = f"postgresql://facegrid:{password}@postgres:5432/facegrid"
        handle = ComposeMesh(compose, rest, Tenant("", ""), database_url)
        try:
            poll(lambda: _ready(rest), timeout_s=300, what="Envoy's /ready", every_s=2)
        except AssertionError as err:
            raise AssertionError(f"{err}\n{handle.all_logs()}") from None
        yield ComposeMesh(compose, rest, new_tenant(rest), database_url)
    finally:
        down = compose.run("down", "-v", "-t", "5")
        left = compose.containers()
        assert down.returncode == 0, down.stderr[-3000:]
        assert left == [], f"containers left after down: {left}"

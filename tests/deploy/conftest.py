"""The compose mesh, brought up once for the container tests (compose.yaml with the images of
`make images` and the stand-ins), and torn down at the end of the session."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.deploy.helpers import API_REPLICAS, Compose, ComposeMesh, Tenant, new_tenant
from tests.helpers.rest_client import call
from tests.helpers.wait import wait_for_value


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
            wait_for_value(lambda: _ready(rest), 300, "Envoy's /ready", interval_s=2)
        except AssertionError as err:
            raise AssertionError(f"{err}\n{handle.all_logs()}") from None
        yield ComposeMesh(compose, rest, new_tenant(rest), database_url)
    finally:
        down = compose.run("down", "-v", "-t", "5")
        left = compose.containers()
        assert down.returncode == 0, down.stderr[-3000:]
        assert left == [], f"containers left after down: {left}"

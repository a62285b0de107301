"""admin_svc end to end over REST: the real ``python -m admin_svc`` process on an empty database,
behind a real Envoy (gRPC-JSON transcoding and the CompreFace Lua filter), driven over HTTP.

Walks the issue's acceptance path: sign up, sign in, create an application and a RECOGNITION
service, read its API key, rotate it, clone it (with subjects and examples inserted here),
read its statistics, delete it; the demo keys printed at first start; the error statuses.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.render import GatewayPorts
from launcher.readiness import envoy_cluster_healthy, grpc_serving
from tests.admin_svc.helpers import TEST_TOKEN_SECRET, add_example, add_subject
from tests.helpers.envoy import running_envoy
from tests.helpers.processes import stop_process
from tests.helpers.rest_client import Reply, call
from tests.helpers.wait import wait_for_process, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DESCRIPTOR = REPO / "gateway" / "descriptor.pb"
API = "/api/v1/admin"
UUID_TEXT = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@dataclass
class Edge:
    """admin_svc behind Envoy."""

    base: str
    """Envoy's base URL."""
    db_url: str
    """admin_svc's database."""
    admin_output: Path
    """admin_svc's standard output (logs and the demo notice)."""

    def call(self, method: str, path: str, token: str | None = None, json: Any = None) -> Reply:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return call(method, f"{self.base}{API}{path}", json=json, headers=headers)


@pytest.fixture
def edge(empty_db_url: str, short_tmp: Path, free_port: Callable[[], int]) -> Iterator[Edge]:
    assert b"facegrid.admin.v1" in DESCRIPTOR.read_bytes(), "run `make proto`"
    ports = GatewayPorts(
        listen_port=free_port(),
        admin_port=free_port(),
        api_port=free_port(),
        embed_port=free_port(),
        admin_svc_port=free_port(),
        descriptor_path=str(DESCRIPTOR),
    )
    work = short_tmp / f"edge-{uuid.uuid4().hex[:6]}"
    work.mkdir()
    env = {
        **os.environ,
        "FACEGRID_DATABASE_URL": empty_db_url,
        "FACEGRID_ADMIN_PORT": str(ports.admin_svc_port),
        "FACEGRID_TOKEN_SECRET": TEST_TOKEN_SECRET,
        "FACEGRID_DEMO_SETUP": "true",
        "FACEGRID_PASSWORD_TIME_COST": "1",
        "FACEGRID_PASSWORD_MEMORY_KIB": "1024",
        "FACEGRID_EMBED_URL": f"127.0.0.1:{ports.embed_port}",
    }
    output = work / "admin.out"
    with output.open("wb") as out:
        admin = subprocess.Popen(
            [sys.executable, "-m", "admin_svc"], cwd=REPO, env=env, stdout=out, stderr=out
        )
    try:
        with running_envoy(ports, work) as base:
            address = f"127.0.0.1:{ports.admin_svc_port}"
            wait_for_process(admin, lambda: grpc_serving(address), 60, "admin_svc", output)
            admin_url = f"http://127.0.0.1:{ports.admin_port}"
            wait_until(
                lambda: envoy_cluster_healthy(admin_url, "admin_svc"), 30, "envoy to route to it"
            )
            yield Edge(base, empty_db_url, output)
    finally:
        status = stop_process(admin)
    assert status == 0, output.read_text()[-2000:]


def _insert_faces(db_url: str, service_id: str) -> None:
    async def insert() -> None:
        conn = await asyncpg.connect(db_url)
        try:
            sid = uuid.UUID(service_id)
            for i in range(3):
                subject = await add_subject(conn, sid, f"person {i}")
                await add_example(conn, sid, subject, seed=i)
                await add_example(conn, sid, subject, seed=100 + i)
            await conn.execute("SELECT fg_count_requests($1, 4)", sid)
        finally:
            await conn.close()

    asyncio.run(insert())


def _block_writes(db_url: str, service_id: str) -> None:
    async def block() -> None:
        conn = await asyncpg.connect(db_url)
        try:
            await conn.execute(
                "UPDATE collection_state SET writes_blocked = true WHERE service_id = $1",
                uuid.UUID(service_id),
            )
        finally:
            await conn.close()

    asyncio.run(block())


def test_the_acceptance_path_over_rest(edge: Edge) -> None:
    signup = edge.call(
        "POST",
        "/auth/signup",
        json={"email": "Owner@Example.com", "password": "password-1", "first_name": "Olga"},
    )
    assert signup.status == 201, signup.body
    assert signup.json()["user"]["global_role"] == "GLOBAL_ROLE_OWNER"
    signin = edge.call(
        "POST", "/auth/signin", json={"email": "owner@example.com", "password": "password-1"}
    )
    assert signin.status == 200, signin.body
    token = signin.json()["access_token"]
    assert signin.json()["expires_in_s"] == 900
    assert re.match(r"^\d{4}-\d\d-\d\dT", signin.json()["access_token_expire_time"])

    app = edge.call("POST", "/apps", token, {"name": "Front door"})
    assert app.status == 201, app.body
    app_id = app.json()["application"]["application_id"]
    created = edge.call(
        "POST",
        f"/apps/{app_id}/services",
        token,
        {"name": "staff", "type": "SERVICE_TYPE_RECOGNITION"},
    )
    assert created.status == 201, created.body
    service = created.json()["service"]
    service_id, key = service["service_id"], service["api_key"]
    assert re.fullmatch(UUID_TEXT, key)
    assert (service["subject_count"], service["image_count"]) == (0, 0)

    read = edge.call("GET", f"/apps/{app_id}/services/{service_id}", token)
    assert read.status == 200 and read.json()["service"]["api_key"] == key
    rotated = edge.call("POST", f"/apps/{app_id}/services/{service_id}/api-key/rotate", token, {})
    assert rotated.status == 200, rotated.body
    new_key = rotated.json()["service"]["api_key"]
    assert new_key != key and re.fullmatch(UUID_TEXT, new_key)

    _insert_faces(edge.db_url, service_id)
    cloned = edge.call(
        "POST", f"/apps/{app_id}/services/{service_id}/clone", token, {"name": "staff copy"}
    )
    assert cloned.status == 201, cloned.body
    copy = cloned.json()["service"]
    assert (copy["subject_count"], copy["image_count"]) == (3, 6)
    assert copy["api_key"] not in (key, new_key)

    stats = edge.call("GET", f"/apps/{app_id}/services/{service_id}/statistics", token)
    assert stats.status == 200, stats.body
    days = stats.json()["days"]
    assert len(days) == 30 and days[-1]["request_count"] == 4
    assert stats.json()["total_request_count"] == 4

    deleted = edge.call("DELETE", f"/apps/{app_id}/services/{service_id}", token)
    assert deleted.status == 200, deleted.body
    gone = edge.call("GET", f"/apps/{app_id}/services/{service_id}", token)
    assert gone.status == 404
    assert gone.json() == {"message": f"service {service_id} not found", "code": 10}
    listed = edge.call("GET", f"/apps/{app_id}/services", token)
    assert [s["name"] for s in listed.json()["services"]] == ["staff copy"]


def test_the_demo_keys_printed_at_first_start_belong_to_the_demo_services(edge: Edge) -> None:
    wait_until(
        lambda: "demo-verification" in edge.admin_output.read_text(),
        30,
        "admin_svc to print the demo keys",
    )
    printed = dict(re.findall(rf"(demo-\w+)\s+({UUID_TEXT})", edge.admin_output.read_text()))
    assert set(printed) == {"demo-recognition", "demo-detection", "demo-verification"}
    edge.call(
        "POST",
        "/auth/signup",
        json={"email": "o@x.io", "password": "password-1", "first_name": "O"},
    )
    token = edge.call(
        "POST", "/auth/signin", json={"email": "o@x.io", "password": "password-1"}
    ).json()["access_token"]
    [demo] = edge.call("GET", "/apps", token).json()["applications"]
    assert demo["name"] == "Demo" and demo["owner"]["email"] == "o@x.io"
    services = edge.call("GET", f"/apps/{demo['application_id']}/services", token).json()[
        "services"
    ]
    assert {s["name"]: s["api_key"] for s in services} == printed
    assert {s["name"]: s["type"] for s in services} == {
        "demo-recognition": "SERVICE_TYPE_RECOGNITION",
        "demo-detection": "SERVICE_TYPE_DETECTION",
        "demo-verification": "SERVICE_TYPE_VERIFICATION",
    }


def test_errors_come_out_with_their_http_status(edge: Edge) -> None:
    body = {"email": "a@x.io", "password": "password-1", "first_name": "A"}
    assert edge.call("POST", "/auth/signup", json=body).status == 201
    taken = edge.call("POST", "/auth/signup", json=body)  # answered as a new account
    assert taken.status == 201 and taken.json()["user"]["email"] == "a@x.io"
    invalid = edge.call("POST", "/auth/signup", json={**body, "email": "b@x.io", "password": "x"})
    assert invalid.status == 400 and invalid.json()["code"] == 26
    assert edge.call("GET", "/users/me").status == 401
    assert edge.call("GET", "/users/me", token="forged.token.value").status == 401
    wrong = edge.call("POST", "/auth/signin", json={"email": "a@x.io", "password": "password-2"})
    assert wrong.status == 401
    token = edge.call(
        "POST", "/auth/signin", json={"email": "a@x.io", "password": "password-1"}
    ).json()["access_token"]
    edge.call("POST", "/auth/signup", json={**body, "email": "u@x.io"})
    user_token = edge.call(
        "POST", "/auth/signin", json={"email": "u@x.io", "password": "password-1"}
    ).json()["access_token"]
    assert edge.call("POST", "/apps", user_token, {"name": "nope"}).status == 403
    app_id = edge.call("POST", "/apps", token, {"name": "mine"}).json()["application"][
        "application_id"
    ]
    duplicate = edge.call("POST", "/apps", token, {"name": "mine"})
    assert duplicate.status == 409 and "already exists" in duplicate.json()["message"]
    assert edge.call("GET", f"/apps/{app_id}", user_token).status == 403
    assert edge.call("GET", f"/apps/{uuid.uuid4()}", token).status == 404
    service = edge.call(
        "POST", f"/apps/{app_id}/services", token, {"name": "s", "type": "SERVICE_TYPE_RECOGNITION"}
    ).json()["service"]
    _block_writes(edge.db_url, service["service_id"])
    blocked = edge.call(
        "POST", f"/apps/{app_id}/services/{service['service_id']}/clone", token, {"name": "c"}
    )
    assert blocked.status == 405, blocked.body
    assert blocked.json()["code"] == 32
    signed_out = edge.call("POST", "/auth/signout", token, {})
    assert signed_out.status == 200
    assert edge.call("GET", "/users/me", token).status == 401

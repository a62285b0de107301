"""The TypeScript client (clients/typescript, built by ``make client-ts``: protoc-gen-es stubs
and Connect's gRPC transport on Node.js) against this session's mesh through Envoy: a
BulkAddFaces stream, recognition, subjects, and its errors with their ErrorInfo details."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from typing import Any

import pytest

from tests.helpers.photos import shared_faces
from tests.helpers.rest_client import call
from tests.helpers.wait import wait_for_value
from tests.launcher.helpers import REPO, MeshHandle, sql

pytestmark = pytest.mark.integration

TS = REPO / "clients" / "typescript"
PASSWORD = "correct horse battery staple"


def quickstart(mesh: MeshHandle, key: str, *args: str) -> tuple[int, list[dict[str, Any]]]:
    """Runs ``node dist/quickstart.js ARGS``: its exit status and its JSON lines."""
    env = {**os.environ, "FACEGRID_URL": f"http://{mesh.envoy_grpc}", "FACEGRID_API_KEY": key}
    result = subprocess.run(
        ["node", "dist/quickstart.js", *args],
        cwd=TS,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stderr == "", result.stderr
    return result.returncode, [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture(scope="module")
def key(mesh: MeshHandle) -> str:
    """The key of a new RECOGNITION service of a new application, made over REST by a new
    global ADMINISTRATOR (once the TypeScript client is built)."""
    built = subprocess.run(["make", "client-ts"], cwd=REPO, capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    admin = f"{mesh.rest}/api/v1/admin"
    email = f"ts-{uuid.uuid4().hex[:10]}@example.com"
    user = {"email": email, "password": PASSWORD, "first_name": "Ts"}
    assert call("POST", f"{admin}/auth/signup", json=user).status == 201
    sql(mesh, "UPDATE users SET global_role = 'ADMINISTRATOR' WHERE email = $1", email)
    credentials = {"email": email, "password": PASSWORD}
    token = call("POST", f"{admin}/auth/signin", json=credentials).json()["access_token"]
    auth = {"authorization": f"Bearer {token}"}
    app = call("POST", f"{admin}/apps", json={"name": f"ts {uuid.uuid4().hex[:10]}"}, headers=auth)
    assert app.status == 201, app.body
    app_id = app.json()["application"]["application_id"]
    body = {"name": "ts", "type": "SERVICE_TYPE_RECOGNITION"}
    service = call("POST", f"{admin}/apps/{app_id}/services", json=body, headers=auth)
    assert service.status == 201, service.body
    return str(service.json()["service"]["api_key"])


def test_enrol_recognize_and_list_from_typescript(mesh: MeshHandle, key: str) -> None:
    faces = shared_faces()
    photos = [str(faces / "obama" / name) for name in ("01.jpg", "02.jpg")]
    group = str(faces / "groups" / "02_2faces.jpg")
    status, results = quickstart(mesh, key, "enrol", "Obama", *photos, group)
    assert status == 0
    by_key = {r["clientKey"]: r for r in results}
    assert sorted(r["index"] for r in results) == [0, 1, 2]
    assert len(by_key["01.jpg"]["imageId"]) == len(by_key["02.jpg"]["imageId"]) == 36
    assert by_key["02_2faces.jpg"]["error"] == {"reason": "TOO_MANY_FACES", "code": 31}

    def recognised() -> dict[str, Any] | None:
        status, [reply] = quickstart(mesh, key, "recognize", str(faces / "obama" / "03.jpg"))
        assert status == 0, reply
        [face] = reply["faces"]
        subjects = face["subjects"]
        return reply if subjects and subjects[0]["subject"] == "Obama" else None

    reply = wait_for_value(recognised, 30, "the enrolled faces recognised from TypeScript")
    assert reply["node"] == "api_svc-0"
    assert reply["faces"][0]["subjects"][0]["similarity"] > 0.5
    assert quickstart(mesh, key, "subjects") == (0, [{"subjects": ["Obama"]}])


def test_typescript_errors_carry_the_reason_and_compreface_code(mesh: MeshHandle, key: str) -> None:
    status, [reply] = quickstart(mesh, key, "image", str(uuid.uuid4()))
    assert status == 1
    error = reply["error"]
    assert (error["code"], error["reason"], error["comprefaceCode"]) == (
        "NotFound",
        "FACE_NOT_FOUND",
        44,
    )
    photo = str(shared_faces() / "obama" / "01.jpg")
    status, [reply] = quickstart(mesh, str(uuid.uuid4()), "enrol", "Nobody", photo)
    assert status == 1
    assert (reply["error"]["code"], reply["error"]["reason"]) == (
        "Unauthenticated",
        "UNKNOWN_API_KEY",
    )

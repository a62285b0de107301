"""admin_svc as a new user meets it through Envoy: sign-up to service deletion over REST, and an
embedding migration that re-computes stored faces with the real embed_svc on Triton."""

from __future__ import annotations

import asyncio
import io
import re
import time
import uuid
from typing import Any

import asyncpg
import numpy as np
import pytest
from PIL import Image

from tests.helpers.photos import astronaut_png
from tests.helpers.rest_client import call
from tests.helpers.wait import wait_until
from tests.launcher.helpers import MeshHandle

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"


def database_url(mesh: MeshHandle) -> str:
    """The embedded PostgreSQL's URI, as the launcher printed it."""
    found = re.search(r"PostgreSQL:\s+(\S+)", mesh.launcher_log.read_text())
    assert found, "the launcher did not print the PostgreSQL URI"
    return found.group(1)


async def make_administrator(url: str, email: str) -> None:
    """Gives a user the global ADMINISTRATOR role (the owner is whoever signed up first in the
    session's mesh, which other test modules share)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "UPDATE users SET global_role = 'ADMINISTRATOR' WHERE email = $1"
            " AND global_role = 'USER'",
            email,
        )
    finally:
        await conn.close()


def signed_in(mesh: MeshHandle, email: str, *, administrator: bool = True) -> dict[str, str]:
    """Signs a new user up (global ADMINISTRATOR unless told otherwise, or OWNER if first) and
    in; the authorization header of their access token."""
    admin = f"{mesh.rest}/api/v1/admin"
    user = {"email": email, "password": PASSWORD, "first_name": "Ann", "last_name": "Lee"}
    reply = call("POST", f"{admin}/auth/signup", json=user)
    assert reply.status == 201, reply.body
    if administrator:
        asyncio.run(make_administrator(database_url(mesh), email))
    reply = call("POST", f"{admin}/auth/signin", json={"email": email, "password": PASSWORD})
    assert reply.status == 200, reply.body
    return {"authorization": f"Bearer {reply.json()['access_token']}"}


def new_service(mesh: MeshHandle, auth: dict[str, str], app_name: str) -> tuple[str, dict]:
    """Creates an application with one RECOGNITION service; (application id, service)."""
    admin = f"{mesh.rest}/api/v1/admin"
    reply = call("POST", f"{admin}/apps", json={"name": app_name}, headers=auth)
    assert reply.status == 201, reply.body
    app_id = reply.json()["application"]["application_id"]
    body = {"name": "staff", "type": "SERVICE_TYPE_RECOGNITION"}
    reply = call("POST", f"{admin}/apps/{app_id}/services", json=body, headers=auth)
    assert reply.status == 201, reply.body
    return app_id, reply.json()["service"]


def unit_vector(seed: int, dim: int) -> bytes:
    """A random L2-normalised little-endian float32 vector."""
    vector = np.random.default_rng(seed).normal(size=dim)
    return (vector / np.linalg.norm(vector)).astype("<f4").tobytes()


async def seed_examples(url: str, service_id: str, images: list[bytes]) -> list[uuid.UUID]:
    """One subject with one example per image, as an earlier calculator would have stored them."""
    conn = await asyncpg.connect(url)
    try:
        subject = uuid.uuid4()
        await conn.execute(
            "INSERT INTO subjects (id, service_id, name) VALUES ($1, $2, 'Eileen Collins')",
            subject,
            uuid.UUID(service_id),
        )
        ids = []
        for i, image in enumerate(images):
            example = uuid.uuid4()
            await conn.execute(
                "INSERT INTO face_examples (id, service_id, subject_id, embedding, embedding_dim,"
                " calculator, calculator_version, image, image_content_type)"
                " VALUES ($1, $2, $3, $4, 128, 'old-calculator', '0', $5, 'image/png')",
                example,
                uuid.UUID(service_id),
                subject,
                unit_vector(i, 128),
                image,
            )
            ids.append(example)
        return ids
    finally:
        await conn.close()


async def stored_examples(url: str, service_id: str) -> dict[uuid.UUID, Any]:
    """The service's examples by id."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT id, calculator, calculator_version, embedding_dim, embedding"
            " FROM face_examples WHERE service_id = $1",
            uuid.UUID(service_id),
        )
        return {r["id"]: r for r in rows}
    finally:
        await conn.close()


def test_a_new_user_runs_a_service_from_sign_up_to_deletion(mesh: MeshHandle) -> None:
    admin = f"{mesh.rest}/api/v1/admin"
    auth = signed_in(mesh, "owner@example.com")
    app_id, service = new_service(mesh, auth, "Shop")
    base = f"{admin}/apps/{app_id}/services/{service['service_id']}"
    key = service["api_key"]
    assert uuid.UUID(key) and service["type"] == "SERVICE_TYPE_RECOGNITION"

    asyncio.run(seed_examples(database_url(mesh), service["service_id"], [b"a", b"b"]))
    got = call("GET", base, headers=auth).json()["service"]
    assert (got["subject_count"], got["image_count"], got["api_key"]) == (1, 2, key)

    rotated = call("POST", f"{base}/api-key/rotate", json={}, headers=auth)
    assert rotated.status == 200, rotated.body
    new_key = rotated.json()["service"]["api_key"]
    assert new_key != key and uuid.UUID(new_key)
    assert rotated.json()["service"]["subject_count"] == 1  # subjects stay with the service

    clone = call("POST", f"{base}/clone", json={"name": "staff copy"}, headers=auth)
    assert clone.status == 201, clone.body
    copy = clone.json()["service"]
    assert copy["service_id"] != service["service_id"] and copy["api_key"] not in (key, new_key)
    assert (copy["subject_count"], copy["image_count"]) == (1, 2)

    stats = call("GET", f"{base}/statistics", headers=auth)
    assert stats.status == 200 and stats.json()["total_request_count"] == 0
    days = [d["date"] for d in stats.json()["days"]]
    assert days == sorted(days) and time.strftime("%Y-%m-%d", time.gmtime()) in days[-2:]

    assert call("DELETE", base, headers=auth).status == 200
    listed = call("GET", f"{admin}/apps/{app_id}/services", headers=auth).json()["services"]
    assert [s["service_id"] for s in listed] == [copy["service_id"]]
    left = asyncio.run(stored_examples(database_url(mesh), service["service_id"]))
    assert left == {}
    assert call("GET", base, headers=auth).status == 404

    stranger = signed_in(mesh, "stranger@example.com", administrator=False)
    refused = call("GET", f"{admin}/apps/{app_id}/services", headers=stranger)
    assert refused.status in (403, 404), refused.body
    assert set(refused.json()) == {"message", "code"}


def test_a_migration_recomputes_stored_faces_with_the_real_calculator(mesh: MeshHandle) -> None:
    admin = f"{mesh.rest}/api/v1/admin"
    auth = signed_in(mesh, "migrator@example.com")
    app_id, service = new_service(mesh, auth, "Migrated")
    base = f"{admin}/apps/{app_id}/services/{service['service_id']}"
    astronaut = astronaut_png()
    mirrored = io.BytesIO()
    Image.open(io.BytesIO(astronaut)).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(
        mirrored, "PNG"
    )
    url = database_url(mesh)
    ids = asyncio.run(seed_examples(url, service["service_id"], [astronaut, mirrored.getvalue()]))

    started = call("POST", f"{base}/migrations", json={"calculator": "mobileface"}, headers=auth)
    assert started.status == 201, started.body
    migration = started.json()["migration"]
    assert migration["target_calculator"] == "mobileface" and migration["total_count"] == 2
    progress = f"{base}/migrations/{migration['migration_id']}"

    def ended() -> bool:
        nonlocal migration
        migration = call("GET", progress, headers=auth).json()["migration"]
        return bool(migration["status"] != "MIGRATION_STATUS_RUNNING")

    wait_until(ended, 120, "the migration to end", interval_s=0.5)
    assert migration["status"] == "MIGRATION_STATUS_SUCCEEDED", migration
    assert migration["migrated_count"] == 2

    examples = asyncio.run(stored_examples(url, service["service_id"]))
    assert set(examples) == set(ids)
    vectors = []
    for row in examples.values():
        assert (row["calculator"], row["embedding_dim"]) == ("mobileface", 256)
        vector = np.frombuffer(row["embedding"], dtype="<f4")
        assert vector.shape == (256,) and abs(float(np.linalg.norm(vector)) - 1.0) < 1e-4
        vectors.append(vector)
    # The same face, mirrored: the new calculator's embeddings agree (random ones would not).
    assert float(vectors[0] @ vectors[1]) > 0.6
    got = call("GET", base, headers=auth).json()["service"]
    assert got["calculator"] == "mobileface" and not got.get("writes_blocked", False)

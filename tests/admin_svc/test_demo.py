"""The demo set-up on the first start on an empty database, and the development token secret."""

from __future__ import annotations

import uuid

import asyncpg
import grpc
import pytest

from admin_svc.config import load_config
from admin_svc.demo import describe, ensure_demo
from admin_svc.secrets_store import token_secret
from admin_svc.server import create_server
from facegrid.admin.v1 import admin_service_pb2 as pb
from facegrid.admin.v1 import admin_service_pb2_grpc
from tests.admin_svc.helpers import FakeEmbed, admin_env

pytestmark = pytest.mark.integration


async def test_an_empty_database_gets_one_demo_service_of_each_type_once(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        setup = await ensure_demo(conn)
        assert setup is not None
        assert [(s.name, s.type) for s in setup.services] == [
            ("demo-recognition", "RECOGNITION"),
            ("demo-detection", "DETECTION"),
            ("demo-verification", "VERIFICATION"),
        ]
        keys = {s.api_key for s in setup.services}
        assert len(keys) == 3
        stored = await conn.fetch(
            "SELECT api_key FROM services WHERE application_id = $1", setup.application_id
        )
        assert {r["api_key"] for r in stored} == keys
        assert await ensure_demo(conn) is None
        assert await conn.fetchval("SELECT count(*) FROM applications") == 1
    text = describe(setup)
    assert all(str(key) in text for key in keys)


async def test_a_database_with_accounts_gets_no_demo(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO users (id, email, first_name, global_role, password_hash)"
            " VALUES ($1, 'a@b.c', 'A', 'OWNER', 'x')",
            uuid.uuid4(),
        )
        assert await ensure_demo(conn) is None
        assert await conn.fetchval("SELECT count(*) FROM applications") == 0


async def test_the_first_user_owns_the_demo_application(db_url: str) -> None:
    config = load_config(admin_env(db_url, FACEGRID_DEMO_SETUP="true"))
    server = await create_server(config, embed=FakeEmbed())
    try:
        assert server.demo is not None
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.running.port}") as channel:
            stub = admin_service_pb2_grpc.AdminServiceStub(channel)
            await stub.SignUp(
                pb.SignUpRequest(email="first@example.com", password="password-1", first_name="F")
            )
            signed = await stub.SignIn(
                pb.SignInRequest(email="first@example.com", password="password-1")
            )
            auth = (("authorization", f"Bearer {signed.access_token}"),)
            apps = await stub.ListApplications(pb.ListApplicationsRequest(), metadata=auth)
            [demo] = apps.applications
            assert (demo.name, demo.owner.email) == ("Demo", "first@example.com")
            listed = await stub.ListServices(
                pb.ListServicesRequest(application_id=demo.application_id), metadata=auth
            )
            assert {s.api_key for s in listed.services} == {
                str(s.api_key) for s in server.demo.services
            }
    finally:
        await server.stop(0)


async def test_without_a_configured_secret_one_is_made_once_and_shared(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        first = await token_secret(conn, None)
        assert len(first) >= 32
        assert await token_secret(conn, None) == first
        assert await token_secret(conn, "configured-" + "y" * 30) == b"configured-" + b"y" * 30

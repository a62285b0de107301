"""Services (face collections) through AdminService: create, list with counts, rename, API keys,
clone, delete, statistics, and the 405 refusal while a migration blocks writes."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid

import asyncpg
import grpc
import pytest

from facegrid.admin.v1 import admin_service_pb2 as pb
from facegrid.common.v1 import common_pb2
from facegrid.errors import error_info
from facegrid.schema import api_key_digest
from tests.admin_svc.helpers import Admin, add_example, add_subject, count_requests, rpc_error

pytestmark = pytest.mark.integration

Auth = tuple[tuple[str, str], ...]
UUID_FORM = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture
async def owner(admin: Admin) -> tuple[Auth, pb.Application]:
    _, auth = await admin.user("owner@example.com")
    return auth, await admin.create_app(auth, "faces app")


async def _fill(db_url: str, service_id: str, subjects: int, per_subject: int) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        sid = uuid.UUID(service_id)
        for i in range(subjects):
            subject = await add_subject(conn, sid, f"person {i}")
            for j in range(per_subject):
                await add_example(conn, sid, subject, seed=i * 10 + j)
    finally:
        await conn.close()


async def test_create_validates_and_lists_services_with_counts(
    admin: Admin, owner: tuple[Auth, pb.Application]
) -> None:
    auth, app = owner
    app_id = app.application_id
    made = {
        t: await admin.create_service(auth, app_id, name, t)
        for name, t in (
            ("b-rec", common_pb2.SERVICE_TYPE_RECOGNITION),
            ("a-det", common_pb2.SERVICE_TYPE_DETECTION),
            ("c-ver", common_pb2.SERVICE_TYPE_VERIFICATION),
        )
    }
    keys = [s.api_key for s in made.values()]
    assert all(UUID_FORM.match(k) for k in keys) and len(set(keys)) == 3
    await _fill(admin.db_url, made[common_pb2.SERVICE_TYPE_RECOGNITION].service_id, 3, 2)
    listed = await admin.stub.ListServices(
        pb.ListServicesRequest(application_id=app_id), metadata=auth
    )
    assert [(s.name, s.subject_count, s.image_count) for s in listed.services] == [
        ("a-det", 0, 0),
        ("b-rec", 3, 6),
        ("c-ver", 0, 0),
    ]
    for request, field in (
        (pb.CreateServiceRequest(application_id=app_id, name="x"), "type"),
        (
            pb.CreateServiceRequest(
                application_id=app_id, name="", type=common_pb2.SERVICE_TYPE_DETECTION
            ),
            "name",
        ),
        (
            pb.CreateServiceRequest(
                application_id=app_id, name="n" * 51, type=common_pb2.SERVICE_TYPE_DETECTION
            ),
            "name",
        ),
    ):
        error = await rpc_error(admin.stub.CreateService(request, metadata=auth))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        info = error_info(error)
        assert info is not None and info.metadata["field"] == field
    duplicate = await rpc_error(
        admin.stub.CreateService(
            pb.CreateServiceRequest(
                application_id=app_id, name="B-REC", type=common_pb2.SERVICE_TYPE_DETECTION
            ),
            metadata=auth,
        )
    )
    assert duplicate.code() == grpc.StatusCode.ALREADY_EXISTS
    info = error_info(duplicate)
    assert info is not None and info.reason == "SERVICE_NAME_TAKEN"


async def test_rename_service_and_application(
    admin: Admin, owner: tuple[Auth, pb.Application]
) -> None:
    auth, app = owner
    first = await admin.create_service(auth, app.application_id, "first")
    await admin.create_service(auth, app.application_id, "second")
    renamed = await admin.stub.RenameService(
        pb.RenameServiceRequest(
            application_id=app.application_id, service_id=first.service_id, name="  primary  "
        ),
        metadata=auth,
    )
    assert renamed.service.name == "primary"
    clash = await rpc_error(
        admin.stub.RenameService(
            pb.RenameServiceRequest(
                application_id=app.application_id, service_id=first.service_id, name="Second"
            ),
            metadata=auth,
        )
    )
    assert clash.code() == grpc.StatusCode.ALREADY_EXISTS
    await admin.create_app(auth, "taken name")
    app_clash = await rpc_error(
        admin.stub.RenameApplication(
            pb.RenameApplicationRequest(application_id=app.application_id, name="TAKEN NAME"),
            metadata=auth,
        )
    )
    assert app_clash.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_rotating_the_key_keeps_the_subjects(
    admin: Admin, owner: tuple[Auth, pb.Application]
) -> None:
    auth, app = owner
    service = await admin.create_service(auth, app.application_id)
    await _fill(admin.db_url, service.service_id, 2, 1)
    rotated = await admin.stub.RotateApiKey(
        pb.RotateApiKeyRequest(application_id=app.application_id, service_id=service.service_id),
        metadata=auth,
    )
    assert rotated.service.api_key != service.api_key
    assert (rotated.service.subject_count, rotated.service.image_count) == (2, 2)
    conn = await asyncpg.connect(admin.db_url)
    try:
        lookup = "SELECT id FROM services WHERE api_key_sha256 = $1"
        old_key, new_key = uuid.UUID(service.api_key), uuid.UUID(rotated.service.api_key)
        assert await conn.fetchval(lookup, api_key_digest(old_key)) is None
        assert str(await conn.fetchval(lookup, api_key_digest(new_key))) == service.service_id
    finally:
        await conn.close()


async def test_clone_copies_subjects_and_examples_under_a_new_key(
    admin: Admin, owner: tuple[Auth, pb.Application]
) -> None:
    auth, app = owner
    source = await admin.create_service(auth, app.application_id, "source")
    await _fill(admin.db_url, source.service_id, 4, 3)
    clone = await admin.stub.CloneService(
        pb.CloneServiceRequest(
            application_id=app.application_id, service_id=source.service_id, name="copy"
        ),
        metadata=auth,
    )
    copy = clone.service
    assert (copy.name, copy.type, copy.subject_count, copy.image_count) == (
        "copy",
        common_pb2.SERVICE_TYPE_RECOGNITION,
        4,
        12,
    )
    assert copy.api_key != source.api_key and copy.service_id != source.service_id
    conn = await asyncpg.connect(admin.db_url)
    try:
        rows = await conn.fetch(
            "SELECT s.service_id, s.name, e.embedding FROM face_examples e"
            " JOIN subjects s ON s.id = e.subject_id"
        )
    finally:
        await conn.close()
    content: dict[str, set[tuple[str, bytes]]] = {}
    for r in rows:
        content.setdefault(str(r["service_id"]), set()).add((r["name"], r["embedding"]))
    assert content[source.service_id] == content[copy.service_id]
    assert len(content[source.service_id]) == 12
    clash = await rpc_error(
        admin.stub.CloneService(
            pb.CloneServiceRequest(
                application_id=app.application_id, service_id=source.service_id, name="COPY"
            ),
            metadata=auth,
        )
    )
    assert clash.code() == grpc.StatusCode.ALREADY_EXISTS
    listed = await admin.stub.ListServices(
        pb.ListServicesRequest(application_id=app.application_id), metadata=auth
    )
    assert sorted(s.name for s in listed.services) == ["copy", "source"]


async def test_delete_service_removes_all_its_data(
    admin: Admin, owner: tuple[Auth, pb.Application]
) -> None:
    auth, app = owner
    doomed = await admin.create_service(auth, app.application_id, "doomed")
    kept = await admin.create_service(auth, app.application_id, "kept")
    await _fill(admin.db_url, doomed.service_id, 2, 2)
    await _fill(admin.db_url, kept.service_id, 1, 1)
    conn = await asyncpg.connect(admin.db_url)
    try:
        assert await count_requests(conn, uuid.UUID(doomed.service_id), 3) == 3
    finally:
        await conn.close()
    await admin.stub.DeleteService(
        pb.DeleteServiceRequest(application_id=app.application_id, service_id=doomed.service_id),
        metadata=auth,
    )
    conn = await asyncpg.connect(admin.db_url)
    try:
        for table in ("subjects", "face_examples", "service_stats", "collection_state"):
            count = await conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE service_id = $1",
                uuid.UUID(doomed.service_id),
            )
            assert count == 0, table
        assert await conn.fetchval("SELECT count(*) FROM face_examples") == 1
    finally:
        await conn.close()
    again = await rpc_error(
        admin.stub.DeleteService(
            pb.DeleteServiceRequest(
                application_id=app.application_id, service_id=doomed.service_id
            ),
            metadata=auth,
        )
    )
    assert again.code() == grpc.StatusCode.NOT_FOUND


async def test_statistics_count_atomically_and_read_back_per_day(
    admin: Admin, owner: tuple[Auth, pb.Application], pool: asyncpg.Pool
) -> None:
    auth, app = owner
    service = await admin.create_service(auth, app.application_id)
    sid = uuid.UUID(service.service_id)
    today = dt.datetime.now(dt.UTC).date()
    await asyncio.gather(*(count_requests(pool, sid) for _ in range(25)))
    await count_requests(pool, sid, 5)
    await count_requests(pool, sid, 7, today - dt.timedelta(days=2))
    reply = await admin.stub.GetServiceStatistics(
        pb.GetServiceStatisticsRequest(
            application_id=app.application_id, service_id=service.service_id
        ),
        metadata=auth,
    )
    assert len(reply.days) == 30
    assert reply.days[-1].date == today.isoformat()
    assert reply.days[-1].request_count == 30
    assert reply.days[-3].request_count == 7
    assert sum(d.request_count for d in reply.days) == reply.total_request_count == 37
    ranged = await admin.stub.GetServiceStatistics(
        pb.GetServiceStatisticsRequest(
            application_id=app.application_id,
            service_id=service.service_id,
            start_date=(today - dt.timedelta(days=2)).isoformat(),
            end_date=(today - dt.timedelta(days=1)).isoformat(),
        ),
        metadata=auth,
    )
    assert [(d.request_count) for d in ranged.days] == [7, 0]
    for start, end in (
        ("2024-13-01", ""),
        ("2024-01-02", "2024-01-01"),
        ("2020-01-01", "2024-01-01"),
    ):
        error = await rpc_error(
            admin.stub.GetServiceStatistics(
                pb.GetServiceStatisticsRequest(
                    application_id=app.application_id,
                    service_id=service.service_id,
                    start_date=start,
                    end_date=end,
                ),
                metadata=auth,
            )
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_cloning_a_service_under_migration_is_refused_with_405_code_32(
    admin: Admin, owner: tuple[Auth, pb.Application]
) -> None:
    auth, app = owner
    service = await admin.create_service(auth, app.application_id)
    conn = await asyncpg.connect(admin.db_url)
    try:
        await conn.execute(
            "UPDATE collection_state SET writes_blocked = true WHERE service_id = $1",
            uuid.UUID(service.service_id),
        )
    finally:
        await conn.close()
    got = await admin.stub.GetService(
        pb.GetServiceRequest(application_id=app.application_id, service_id=service.service_id),
        metadata=auth,
    )
    assert got.service.writes_blocked
    error = await rpc_error(
        admin.stub.CloneService(
            pb.CloneServiceRequest(
                application_id=app.application_id, service_id=service.service_id, name="c"
            ),
            metadata=auth,
        )
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    trailing = dict(error.trailing_metadata() or ())
    assert trailing.get("x-http-status") == "405"
    assert trailing.get("x-compreface-code") == "32"
    info = error_info(error)
    assert info is not None and info.reason == "WRITES_BLOCKED_BY_MIGRATION"
    listed = await admin.stub.ListServices(
        pb.ListServicesRequest(application_id=app.application_id), metadata=auth
    )
    assert len(listed.services) == 1

"""The PostgreSQL stores against the real schema: key lookup by digest and request counts."""

from __future__ import annotations

import datetime
import uuid

import asyncpg
import pytest

from api_svc.auth import Authenticator, ServiceType
from api_svc.db import PgKeyStore, PgRequestCounter
from api_svc.stats import RequestStats, utc_today
from facegrid.errors import ServiceError
from facegrid.schema import api_key_digest
from tests.api_svc.helpers import demo_keys

pytestmark = pytest.mark.integration


async def test_a_key_finds_its_service_by_digest(pool: asyncpg.Pool) -> None:
    keys = await demo_keys(pool)
    store = PgKeyStore(pool, timeout_s=5)
    service_id, key = keys["VERIFICATION"]
    record = await store.find(api_key_digest(key))
    assert record is not None
    assert (record.service.id, record.service.type, record.api_key) == (
        service_id,
        ServiceType.VERIFICATION,
        key,
    )
    assert record.service.calculator is None
    assert await store.find(api_key_digest(uuid.uuid4())) is None


async def test_a_rotated_key_stops_working_when_the_cache_is_off(pool: asyncpg.Pool) -> None:
    keys = await demo_keys(pool)
    service_id, key = keys["DETECTION"]
    auth = Authenticator(PgKeyStore(pool, timeout_s=5), cache_s=0)
    metadata = (("x-api-key", str(key)),)
    assert (await auth.authenticate(metadata, ServiceType.DETECTION)).id == service_id
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE services SET api_key = $1 WHERE id = $2", uuid.uuid4(), service_id
        )
    with pytest.raises(ServiceError) as raised:
        await auth.authenticate(metadata, ServiceType.DETECTION)
    assert raised.value.compreface_code == 10


async def test_requests_are_counted_per_service_and_day(pool: asyncpg.Pool) -> None:
    keys = await demo_keys(pool)
    service_id, _ = keys["DETECTION"]
    stats = RequestStats(PgRequestCounter(pool, timeout_s=5))
    for _ in range(3):
        stats.record(service_id)
    await stats.drain()
    async with pool.acquire() as conn:
        count = await conn.fetchval(
            "SELECT request_count FROM service_stats WHERE service_id = $1", service_id
        )
    assert count == 3


async def test_counts_of_a_deleted_service_are_dropped_and_the_rest_written(
    pool: asyncpg.Pool,
) -> None:
    keys = await demo_keys(pool)
    service_id, _ = keys["DETECTION"]
    today = utc_today()
    yesterday = today - datetime.timedelta(days=1)
    counter = PgRequestCounter(pool, timeout_s=5)
    await counter.add_counts({(uuid.uuid4(), today): 7, (service_id, today): 2})
    await counter.add_counts({(service_id, today): 3, (service_id, yesterday): 1})
    rows = await pool.fetch(
        "SELECT day, request_count FROM service_stats WHERE service_id = $1 ORDER BY day",
        service_id,
    )
    assert [(r["day"], r["request_count"]) for r in rows] == [(yesterday, 1), (today, 5)]
    assert await pool.fetchval("SELECT sum(request_count) FROM service_stats") == 6

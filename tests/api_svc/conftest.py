"""api_svc fixtures: the servicer on the real schema (a fresh migrated database per test, from
tests/helpers/postgres.py) with the demo keys and a fake embed_svc."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from api_svc.auth import Authenticator
from api_svc.db import PgKeyStore
from api_svc.stats import RequestStats
from tests.api_svc.fakes import FakeCounter, FakeEmbed, face
from tests.api_svc.helpers import GROUP, OTHER, PNG, Store, build_servicer, demo_keys, serving


@pytest.fixture
async def api(free_port: Callable[[], int], pool: asyncpg.Pool) -> AsyncIterator[Store]:
    """The stored-face and recognition RPCs over the real schema (test_servicer.py overrides it
    with a servicer that never reaches a database)."""
    keys = await demo_keys(pool)
    embed = FakeEmbed(
        faces={
            PNG: [face(10, 50, [2.0, 0.0, 0.0])],
            OTHER: [face(10, 50, [0.0, 0.0, 3.0])],
            GROUP: [
                face(100, 80, [0.0, 1.0, 0.0]),
                face(300, 60, [0.9, 0.1, 0.0]),
            ],
        }
    )
    servicer = build_servicer(
        Authenticator(PgKeyStore(pool, 5), 0), RequestStats(FakeCounter()), embed, pool
    )
    service_id, key = keys["RECOGNITION"]
    async with serving(servicer, free_port()) as stub:
        yield Store(
            stub,
            embed,
            pool,
            service_id,
            (("x-api-key", str(key)),),
            (("x-api-key", str(keys["DETECTION"][1])),),
        )

"""Every way the database can be unreachable is a 503 ("try again"), never a 500: a lost
connection (asyncpg's InterfaceError), a server shutting down, crashed or starting up (SQLSTATE
class 57), a connection failure (class 08), a timeout. A wrong statement stays a 500."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import grpc
import pytest

from api_svc.db import PgKeyStore, is_outage
from api_svc.face_store import PgFaceStore
from facegrid.errors import ServiceError

OUTAGES = [
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle"),
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.CrashShutdownError("the database system is in recovery mode"),
    asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    asyncpg.exceptions.ConnectionFailureError("connection failure"),
    ConnectionRefusedError(111, "refused"),
    TimeoutError(),
]


class BrokenPool:
    """A pool whose every connection fails with ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    @asynccontextmanager
    async def acquire(self, *args: object, **kwargs: object) -> Any:
        raise self.error
        yield


@pytest.mark.parametrize("error", OUTAGES, ids=lambda e: type(e).__name__)
async def test_an_outage_is_unavailable_for_key_lookups_and_stores(error: BaseException) -> None:
    assert is_outage(error)
    pool: Any = BrokenPool(error)
    for call in (
        PgKeyStore(pool, 5).find(b"\0" * 32),
        PgFaceStore(pool, 5).create_subject(uuid.uuid4(), "Ann"),
    ):
        with pytest.raises(ServiceError) as raised:
            await call
        assert raised.value.code is grpc.StatusCode.UNAVAILABLE


def test_a_statement_error_is_not_an_outage() -> None:
    assert not is_outage(asyncpg.exceptions.UndefinedColumnError("no such column"))
    assert not is_outage(asyncpg.exceptions.UniqueViolationError("taken"))

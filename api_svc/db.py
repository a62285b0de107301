"""api_svc's PostgreSQL access: API key lookup and request statistics.

One bounded asyncpg pool per process; each statement is prepared once per connection by
asyncpg's statement cache (``fetchrow``/``fetchval`` with a constant query text), and every call
has a deadline that includes the wait for a free connection.
"""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg
import grpc
import structlog

from api_svc.auth import KeyRecord, Service, ServiceType
from api_svc.stats import CountKey
from facegrid.errors import ServiceError

log = structlog.get_logger()

_FIND_SERVICE = "SELECT id, type, calculator, api_key FROM services WHERE api_key_sha256 = $1"
#: Adds a batch of counts; services deleted meanwhile are skipped.
_COUNT_REQUESTS = (
    "SELECT count(fg_count_requests(u.service_id, u.n, u.day))"
    " FROM unnest($1::uuid[], $2::integer[], $3::date[]) AS u(service_id, n, day)"
    " WHERE EXISTS (SELECT 1 FROM services s WHERE s.id = u.service_id)"
)


async def create_pool(url: str, max_size: int) -> asyncpg.Pool:
    """A pool of at most ``max_size`` connections (one opened at once)."""
    return await asyncpg.create_pool(url, min_size=1, max_size=max_size)


def is_outage(exc: BaseException) -> bool:
    """True when ``exc`` means the database cannot serve now (not that the request is wrong):
    no connection, a connection lost mid-call, a timeout, or a server shutting down, crashed or
    starting up (SQLSTATE classes 08 and 57)."""
    if isinstance(exc, TimeoutError | OSError | asyncpg.InterfaceError):
        return True
    return isinstance(exc, asyncpg.PostgresError) and (exc.sqlstate or "")[:2] in ("08", "57")


def database_unavailable(exc: BaseException) -> ServiceError:
    """The error of a request the database could not serve (logged with the exception type)."""
    log.warning("database_unavailable", error=type(exc).__name__)
    return ServiceError(
        grpc.StatusCode.UNAVAILABLE,
        "DATABASE_UNAVAILABLE",
        "the service database is unavailable; try again",
    )


class PgKeyStore:
    """KeyStore over ``services``."""

    def __init__(self, pool: asyncpg.Pool, timeout_s: float) -> None:
        self._pool = pool
        self._timeout_s = timeout_s

    async def find(self, digest: bytes) -> KeyRecord | None:
        """The service whose key has SHA-256 ``digest``, if any."""
        try:
            async with self._pool.acquire(timeout=self._timeout_s) as conn:
                row = await conn.fetchrow(_FIND_SERVICE, digest, timeout=self._timeout_s)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise database_unavailable(exc) from None
        if row is None:
            return None
        service = Service(row["id"], ServiceType(row["type"]), row["calculator"])
        return KeyRecord(service, row["api_key"])


class PgRequestCounter:
    """Adds requests to ``service_stats`` through ``fg_count_requests``, a batch per statement."""

    def __init__(self, pool: asyncpg.Pool, timeout_s: float) -> None:
        self._pool = pool
        self._timeout_s = timeout_s

    async def add_counts(self, counts: Mapping[CountKey, int]) -> None:
        """Adds each count to its service's counter of that day; counts of services that no
        longer exist are dropped (a deletion that races the statement makes it try again)."""
        keys = list(counts)
        args = ([s for s, _ in keys], [counts[k] for k in keys], [d for _, d in keys])
        for attempt in range(2):
            try:
                async with self._pool.acquire(timeout=self._timeout_s) as conn:
                    await conn.fetchval(_COUNT_REQUESTS, *args, timeout=self._timeout_s)
                return
            except asyncpg.ForeignKeyViolationError:
                if attempt:
                    raise

"""Per-service, per-day request statistics, counted after each successful request.

Counting never delays or fails a request: each count runs as a background task whose failure is
logged and dropped (a ForeignKeyViolation means the service was deleted meanwhile).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Protocol

import structlog

log = structlog.get_logger()


class RequestCounter(Protocol):
    """Where counts go."""

    async def add(self, service_id: uuid.UUID) -> None:
        """Counts one request of ``service_id`` today."""
        ...


class RequestStats:
    """Counts successful requests in the background."""

    def __init__(self, counter: RequestCounter) -> None:
        self._counter = counter
        self._tasks: set[asyncio.Task[None]] = set()

    def record(self, service_id: uuid.UUID) -> None:
        """Schedules one count for ``service_id``; returns at once."""
        task = asyncio.create_task(self._add(service_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _add(self, service_id: uuid.UUID) -> None:
        try:
            await self._counter.add(service_id)
        except Exception as exc:
            log.warning(
                "request_count_failed", service_id=str(service_id), error=type(exc).__name__
            )

    async def drain(self) -> None:
        """Waits for the counts in flight (at shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

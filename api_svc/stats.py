"""Per-service, per-day request statistics, counted after each successful request.

Counting never delays or fails a request: ``record`` adds one to an in-memory tally keyed by
service and UTC day, and a background task writes the tally every ``flush_interval_s`` (sooner
when it holds ``max_keys`` keys) in one statement, and a last time on ``drain``. The tally is
bounded: past ``max_keys`` distinct keys, further new keys are dropped and counted in
``dropped``. A write that fails (the database is down) keeps its counts in the tally, merged with
those recorded meanwhile, and is tried again at the next interval: counts survive an outage of
any length as long as they fit the bound (they are per service and day, so a bound of 10,000
keys holds a day of 10,000 services). The first failure and the recovery are logged. A service
deleted meanwhile is skipped by the write itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections import Counter
from collections.abc import Mapping
from typing import Protocol

import structlog

log = structlog.get_logger()

#: A service and the UTC day its requests were made.
CountKey = tuple[uuid.UUID, dt.date]


class RequestCounter(Protocol):
    """Where counts go."""

    async def add_counts(self, counts: Mapping[CountKey, int]) -> None:
        """Adds each count to its service's counter of that day."""
        ...


def utc_today() -> dt.date:
    """Today's date in UTC (the day statistics are kept by)."""
    return dt.datetime.now(dt.UTC).date()


class RequestStats:
    """Tallies successful requests and writes them in batches in the background."""

    def __init__(
        self,
        counter: RequestCounter,
        *,
        flush_interval_s: float = 1.0,
        max_keys: int = 10_000,
    ) -> None:
        self._counter = counter
        self._flush_interval_s = flush_interval_s
        self._max_keys = max_keys
        self._pending: Counter[CountKey] = Counter()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._stopping = False
        self._flusher: asyncio.Task[None] | None = None
        self.dropped = 0
        """Requests not counted because the tally was full."""
        self.failed_writes = 0
        """Writes that failed (their counts were kept for the next one)."""
        self._failing = False

    def record(self, service_id: uuid.UUID) -> None:
        """Counts one request of ``service_id`` today; returns at once."""
        key = (service_id, utc_today())
        if key not in self._pending and len(self._pending) >= self._max_keys:
            self.dropped += 1
            self._wake.set()
            return
        self._pending[key] += 1
        if len(self._pending) >= self._max_keys:
            self._wake.set()
        if self._flusher is None or self._flusher.done():
            self._stopping = False
            self._stop.clear()
            self._flusher = asyncio.create_task(self._run(), name="request-stats")

    async def _run(self) -> None:
        while not self._stopping:
            if self._failing:  # no sooner than the interval, however full the tally
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self._flush_interval_s)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._flush_interval_s)
            self._wake.clear()
            await self._flush()

    @property
    def pending(self) -> int:
        """Requests counted in memory and not written yet."""
        return self._pending.total()

    async def _flush(self) -> None:
        batch, self._pending = self._pending, Counter()
        if not batch:
            return
        try:
            await self._counter.add_counts(batch)
        except Exception as exc:
            self.failed_writes += 1
            self._keep(batch)
            if not self._failing:
                log.warning(
                    "request_count_failed",
                    services=len(batch),
                    requests=batch.total(),
                    error=type(exc).__name__,
                    kept=True,
                )
            self._failing = True
            return
        if self._failing:
            log.info("request_counts_written_again", services=len(batch), requests=batch.total())
            self._failing = False

    def _keep(self, batch: Counter[CountKey]) -> None:
        """Puts the counts of a failed write back, within the bound."""
        for key, count in batch.items():
            if key in self._pending or len(self._pending) < self._max_keys:
                self._pending[key] += count
            else:
                self.dropped += count

    async def drain(self) -> None:
        """Writes every count recorded so far and stops the background task (at shutdown)."""
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            self._stopping = True
            self._wake.set()
            self._stop.set()
            await asyncio.gather(flusher, return_exceptions=True)
        await self._flush()
        if self._pending:
            log.warning("request_counts_lost_at_shutdown", requests=self.pending)
        if self.dropped:
            log.warning("request_counts_dropped", requests=self.dropped)

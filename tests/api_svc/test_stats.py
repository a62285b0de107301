"""Request statistics: a bounded tally per service and day, written in batches in the
background and on drain; failures never reach the request."""

from __future__ import annotations

import asyncio
import uuid

from api_svc.stats import RequestStats, utc_today
from tests.api_svc.fakes import FakeCounter

A, B, C = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


async def test_many_requests_become_one_write_per_flush() -> None:
    counter = FakeCounter()
    stats = RequestStats(counter, flush_interval_s=3600)
    for service in (A, B, A, A, B):
        stats.record(service)
    assert counter.batches == []  # nothing written per request
    await stats.drain()
    assert counter.batches == [{(A, utc_today()): 3, (B, utc_today()): 2}]


async def test_counts_are_written_periodically_without_a_drain() -> None:
    counter = FakeCounter()
    stats = RequestStats(counter, flush_interval_s=0.01)
    stats.record(A)
    stats.record(A)
    await asyncio.wait_for(counter.written.wait(), 10)
    assert counter.counted == [A, A]
    await stats.drain()
    assert len(counter.batches) == 1


async def test_a_full_tally_is_written_at_once_and_new_keys_past_it_are_dropped() -> None:
    counter = FakeCounter()
    stats = RequestStats(counter, flush_interval_s=3600, max_keys=2)
    stats.record(A)
    stats.record(B)  # full: the background task is woken long before its interval
    stats.record(B)
    stats.record(C)  # a third key before that write: dropped, not buffered
    await asyncio.wait_for(counter.written.wait(), 10)
    assert sorted(counter.counted) == sorted([A, B, B])
    assert stats.dropped == 1
    stats.record(C)  # room again
    await stats.drain()
    assert counter.counted[-1] == C


async def test_a_failed_write_is_logged_and_dropped() -> None:
    counter = FakeCounter(broken=True)
    stats = RequestStats(counter, flush_interval_s=3600)
    stats.record(A)
    await stats.drain()  # logged, not raised
    counter.broken = False
    stats.record(B)
    await stats.drain()
    assert counter.counted == [B]

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


async def test_counts_of_a_failed_write_are_kept_and_written_when_the_database_is_back() -> None:
    counter = FakeCounter(broken=True)
    stats = RequestStats(counter, flush_interval_s=3600)
    stats.record(A)
    stats.record(A)
    await stats.drain()  # logged, not raised; the counts stay
    assert (stats.pending, stats.failed_writes) == (2, 1)
    counter.broken = False
    stats.record(B)
    await stats.drain()
    assert sorted(counter.counted) == sorted([A, A, B])
    assert counter.batches == [{(A, utc_today()): 2, (B, utc_today()): 1}]  # one write
    assert stats.pending == 0


async def test_an_outage_keeps_at_most_the_bound_and_counts_what_it_drops() -> None:
    counter = FakeCounter(broken=True)
    stats = RequestStats(counter, flush_interval_s=3600, max_keys=2)
    stats.record(A)
    await stats.drain()  # failed: A kept
    stats.record(B)
    stats.record(C)  # the tally holds A and B: C is dropped
    await stats.drain()
    assert stats.dropped == 1
    counter.broken = False
    await stats.drain()
    assert sorted(counter.counted) == sorted([A, B])


async def test_while_writes_fail_the_tally_is_retried_each_interval_not_per_request() -> None:
    counter = FakeCounter(broken=True)
    calls = 0
    tried = asyncio.Event()
    add_counts = counter.add_counts

    async def counted(counts: object) -> None:
        nonlocal calls
        calls += 1
        tried.set()
        await add_counts(counts)  # type: ignore[arg-type]

    counter.add_counts = counted  # type: ignore[method-assign]
    stats = RequestStats(counter, flush_interval_s=3600, max_keys=1)
    stats.record(A)  # full: wakes the writer, whose write fails
    await asyncio.wait_for(tried.wait(), 10)
    for _ in range(50):
        stats.record(A)  # each wakes it again
        await asyncio.sleep(0)  # and lets it run
    assert calls == 1
    await stats.drain()

"""A running embedding migration's progress events (admin_svc/migration_progress.py), with an
injected clock: at most one per interval, with counts, rate and time left."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from admin_svc.migration_progress import MigrationProgress, ProgressReport
from admin_svc.store.embedding_migrations import MigrationRow


def _row(total: int, migrated: int = 0, skipped: int = 0, failed: int = 0) -> MigrationRow:
    return MigrationRow(
        id=uuid.UUID(int=7),
        service_id=uuid.UUID(int=8),
        target_calculator="calc-b",
        target_version="2",
        status="RUNNING",
        total_count=total,
        migrated_count=migrated,
        skipped_count=skipped,
        failed_count=failed,
        error_message="",
        created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        finished_at=None,
    )


class _Clock:
    """Returns the times it is given, one per call."""

    def __init__(self, *times: float) -> None:
        self._times: Iterator[float] = iter(times)

    def __call__(self) -> float:
        return next(self._times)


def test_progress_is_logged_at_most_once_per_interval_with_rate_and_time_left() -> None:
    clock = _Clock(100.0, 104.0, 110.0, 115.0, 120.0)
    progress = MigrationProgress(_row(total=100, skipped=2), interval_s=10.0, clock=clock)
    with capture_logs() as events:
        assert progress.staged(16, 0) is None  # 4 s in: too early
        first = progress.staged(15, 1)  # 10 s in: 32 handled, 3.2/s, 66 left
        assert progress.staged(16, 0) is None  # 5 s after the last event
        second = progress.staged(16, 0)  # 10 s after it
    assert first == ProgressReport(
        done=34, total=100, migrated=31, skipped=2, failed=1, rate_per_s=3.2, eta_s=66 / 3.2
    )
    assert second is not None and (second.done, second.migrated) == (66, 63)
    assert second.rate_per_s == pytest.approx(64 / 20)
    assert [e["event"] for e in events] == ["embedding_migration_progress"] * 2
    assert events[0] == {
        "event": "embedding_migration_progress",
        "log_level": "info",
        "migration_id": str(uuid.UUID(int=7)),
        "done": 34,
        "total": 100,
        "migrated": 31,
        "skipped": 2,
        "failed": 1,
        "rate_per_s": 3.2,
        "eta_s": 21,
    }


def test_a_taken_over_migration_rates_only_what_this_worker_handled() -> None:
    clock = _Clock(0.0, 10.0)
    progress = MigrationProgress(_row(total=100, migrated=50, skipped=2), 10.0, clock)
    report = progress.staged(10, 0)
    assert report is not None
    assert (report.done, report.rate_per_s, report.eta_s) == (62, 1.0, 38.0)


def test_no_rate_no_time_left_and_an_interval_of_zero_logs_nothing() -> None:
    idle = MigrationProgress(_row(total=10, skipped=10), 5.0, _Clock(0.0, 5.0))
    report = idle.staged(0, 0)
    assert report is not None and (report.rate_per_s, report.eta_s) == (0.0, None)
    off = MigrationProgress(_row(total=10), 0.0, _Clock(0.0, 1e9))
    with capture_logs() as events:
        assert off.staged(10, 0) is None
    assert events == []

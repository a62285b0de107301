"""A running embedding migration's progress in admin_svc's log: one ``embedding_migration_progress``
event at most every ``interval_s`` seconds with the counts, the rate and an estimate of the time
left. Counts come from the batches the job stages (no query of its own)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from admin_svc.store.embedding_migrations import MigrationRow

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class ProgressReport:
    """How far a migration is, as logged."""

    done: int
    """Examples handled: migrated + skipped + failed."""
    total: int
    """Examples the migration covers."""
    migrated: int
    skipped: int
    """Examples without a stored image (counted when the migration starts)."""
    failed: int
    """Images embed_svc rejected."""
    rate_per_s: float
    """Examples handled per second by this worker since it started (or took over) the job."""
    eta_s: float | None
    """Seconds left at that rate; None before anything was handled."""


class MigrationProgress:
    """Counts a migration's staged batches and logs its progress now and then."""

    def __init__(
        self,
        migration: MigrationRow,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``migration``: the row as this worker got it (counts of an earlier worker included);
        ``interval_s``: least time between two events (0 or less: none)."""
        self._id = str(migration.id)
        self._total = migration.total_count
        self._migrated = migration.migrated_count
        self._skipped = migration.skipped_count
        self._failed = migration.failed_count
        self._interval_s = interval_s
        self._clock = clock
        self._started = self._last = clock()
        self._done_at_start = self._done()

    def _done(self) -> int:
        return self._migrated + self._skipped + self._failed

    def staged(self, migrated: int, failed: int) -> ProgressReport | None:
        """Adds a staged batch's counts; logs and returns a report when ``interval_s`` has passed
        since the last one (or the start), else None."""
        self._migrated += migrated
        self._failed += failed
        now = self._clock()
        if self._interval_s <= 0 or now - self._last < self._interval_s:
            return None
        self._last = now
        report = self.report(now)
        log.info(
            "embedding_migration_progress",
            migration_id=self._id,
            done=report.done,
            total=report.total,
            migrated=report.migrated,
            skipped=report.skipped,
            failed=report.failed,
            rate_per_s=round(report.rate_per_s, 2),
            eta_s=None if report.eta_s is None else round(report.eta_s),
        )
        return report

    def report(self, now: float) -> ProgressReport:
        """The counts so far, with the rate since the start and the time left at that rate."""
        done = self._done()
        elapsed = now - self._started
        handled = done - self._done_at_start
        rate = handled / elapsed if elapsed > 0 else 0.0
        eta = max(self._total - done, 0) / rate if rate > 0 else None
        return ProgressReport(
            done=done,
            total=self._total,
            migrated=self._migrated,
            skipped=self._skipped,
            failed=self._failed,
            rate_per_s=rate,
            eta_s=eta,
        )

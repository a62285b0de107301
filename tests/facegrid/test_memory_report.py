"""The opt-in memory diagnostic: Python's allocations that grew are named by their source line,
next to RSS and glibc's own figures."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import pytest

from facegrid import memory_report
from facegrid.heap import heap_info
from facegrid.memory_report import MemoryReport, rss_bytes


def _grown_here(top: object) -> bool:
    """Whether a line of this file grew by at least 2 MB (``path:line +N KiB (+M blocks)``)."""
    assert isinstance(top, list)
    return any(
        line.startswith(f"{__file__}:") and int(line.split()[1].lstrip("+")) >= 2000 for line in top
    )


@pytest.fixture
def report() -> Iterator[MemoryReport]:
    was_tracing = tracemalloc.is_tracing()
    made = MemoryReport()
    yield made
    if not was_tracing:
        tracemalloc.stop()


def test_growth_is_named_by_the_line_that_holds_it(report: MemoryReport) -> None:
    kept = [bytearray(1024) for _ in range(2000)]  # about 2 MiB held here
    fields = report.report()
    assert len(kept) == 2000
    assert _grown_here(fields["top_growth"]), fields["top_growth"]
    assert float(fields["traced_growth_mb"]) >= 1.9  # type: ignore[arg-type]
    assert float(fields["rss_mb"]) > 0  # type: ignore[arg-type]


def test_the_next_report_counts_from_the_previous_one(report: MemoryReport) -> None:
    kept = [bytearray(1024) for _ in range(2000)]
    report.report()
    top = report.report()["top_growth"]
    assert len(kept) == 2000
    assert not _grown_here(top), top


def test_glibc_figures_add_up_to_the_heap() -> None:
    info = heap_info()
    assert info is not None  # glibc 2.33 or later: the platform of PLATFORM.md
    assert info.in_use > 0 and info.free >= 0
    assert info.in_use + info.free <= info.heap
    assert rss_bytes() > info.in_use // 2


def test_off_by_default() -> None:
    assert memory_report.start(0) is None
    assert memory_report.start(-1) is None

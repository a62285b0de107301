"""An opt-in diagnostic of a process's memory: Python's allocations against the allocator's
and the system's view, logged every few minutes.

Set ``FACEGRID_MEMORY_REPORT_S`` above 0 (api_svc, embed_svc) and :func:`start` turns on
``tracemalloc`` and logs a ``memory_report`` event that often: the process's RSS, glibc's
``mallinfo2`` (bytes in use and bytes free inside the heap), the bytes Python's allocations hold
(``tracemalloc``) and the source lines whose allocations grew most since the previous report.
A leak shows as traced bytes growing with RSS, at the lines that hold them; allocator
fragmentation as RSS and the heap's free bytes growing while the traced and in-use bytes stay
level. ``tracemalloc`` slows allocation and keeps a trace per block: never on in production.
"""

from __future__ import annotations

import os
import threading
import tracemalloc

import structlog

from facegrid.heap import heap_info

log = structlog.get_logger()

_MB = 1024 * 1024
#: Frames kept per allocation trace (tracemalloc's cost grows with it).
TRACE_FRAMES = 4


def rss_bytes() -> int:
    """Resident set size of this process (Linux's /proc/self/statm; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


class MemoryReport:
    """Snapshots of Python's allocations, each compared with the one before."""

    def __init__(self, top: int = 8) -> None:
        self._top = top
        if not tracemalloc.is_tracing():
            tracemalloc.start(TRACE_FRAMES)
        self._previous = tracemalloc.take_snapshot()
        self._first_traced = tracemalloc.get_traced_memory()[0]

    def report(self) -> dict[str, object]:
        """The figures of one ``memory_report`` event; the growth is since the last call."""
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        growth = snapshot.compare_to(self._previous, "lineno")[: self._top]
        self._previous = snapshot
        traced = tracemalloc.get_traced_memory()[0]
        fields: dict[str, object] = {
            "rss_mb": round(rss_bytes() / _MB, 1),
            "traced_mb": round(traced / _MB, 1),
            "traced_growth_mb": round((traced - self._first_traced) / _MB, 1),
            "top_growth": [
                f"{stat.traceback[0].filename}:{stat.traceback[0].lineno}"
                f" {stat.size_diff / 1024:+.0f} KiB ({stat.count_diff:+d} blocks)"
                for stat in growth
            ],
        }
        heap = heap_info()
        if heap is not None:
            fields.update(
                heap_mb=round(heap.heap / _MB, 1),
                mmapped_mb=round(heap.mmapped / _MB, 1),
                malloc_in_use_mb=round(heap.in_use / _MB, 1),
                malloc_free_mb=round(heap.free / _MB, 1),
            )
        return fields


def start(interval_s: float) -> threading.Event | None:
    """Traces allocations and logs a ``memory_report`` every ``interval_s`` seconds from a
    daemon thread (set the returned event to stop it); nothing when ``interval_s`` <= 0."""
    if interval_s <= 0:
        return None
    report = MemoryReport()
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval_s):
            log.info("memory_report", **report.report())

    threading.Thread(target=run, name="memory-report", daemon=True).start()
    log.info("memory_report_started", interval_s=interval_s)
    return stop

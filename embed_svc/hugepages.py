"""Transparent huge pages for memory a large model was just loaded into (Linux).

dlib's 68-point predictor is a forest of about 7,500 regression trees whose leaves are small
heap blocks spread over some 80 MB; each face reads one leaf per tree, so nearly every read is
on a different 4 KiB page and misses the TLB (under a hypervisor, a two-level page walk). On
2 MiB pages the same reads cost a fraction of that (docs/benchmarks.md, Throughput).
``huge_pages_for`` runs a loader and then asks the kernel to back the anonymous memory it
added with huge pages (``madvise`` MADV_HUGEPAGE, then MADV_COLLAPSE, Linux 6.1+, which does it
at once instead of leaving it to khugepaged). Only the page size changes: the contents and the
results are the same. Where the kernel or the C library does not allow it, nothing happens.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import structlog

from facegrid.heap import libc_function

T = TypeVar("T")

MADV_HUGEPAGE = 14
MADV_COLLAPSE = 25

#: The process's memory map.
MAPS = Path("/proc/self/maps")

log = structlog.get_logger(__name__)


def anonymous_regions(maps: str) -> dict[int, int]:
    """Start -> end of every private writable anonymous region (the heap and the C library's
    other arenas) in the text of a ``/proc/<pid>/maps`` file."""
    regions = {}
    for line in maps.splitlines():
        fields = line.split()
        if len(fields) < 5 or not fields[1].startswith("rw") or fields[1][3] != "p":
            continue
        name = fields[5] if len(fields) > 5 else ""
        if name not in ("", "[heap]"):
            continue
        start, end = (int(value, 16) for value in fields[0].split("-"))
        regions[start] = end
    return regions


def grown(before: dict[int, int], after: dict[int, int]) -> list[tuple[int, int]]:
    """(start, end) of the memory added since ``before``: regions of ``after`` that are new,
    and the added tail of those that grew (the heap grows at its end)."""
    added = []
    for start, end in sorted(after.items()):
        old_end = before.get(start)
        if old_end is None:
            added.append((start, end))
        elif end > old_end:
            added.append((old_end, end))
    return added


def _madvise() -> Callable[[int, int, int], int] | None:
    return libc_function("madvise", [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int)


def _read_maps() -> dict[int, int] | None:
    try:
        return anonymous_regions(MAPS.read_text())
    except OSError:
        return None


def huge_pages_for(load: Callable[[], T]) -> T:
    """``load()``, with the anonymous memory it allocated moved onto huge pages if possible."""
    before = _read_maps()
    result = load()
    madvise = _madvise()
    after = _read_maps()
    if madvise is None or before is None or after is None:
        return result
    advised = collapsed = 0
    for start, end in grown(before, after):
        if madvise(start, end - start, MADV_HUGEPAGE) == 0:
            advised += end - start
            if madvise(start, end - start, MADV_COLLAPSE) == 0:
                collapsed += end - start
    log.info("huge_pages", advised_mib=advised >> 20, collapsed_mib=collapsed >> 20)
    return result

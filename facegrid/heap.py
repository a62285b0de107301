"""Handing memory freed by large temporaries back to the system, and glibc's malloc statistics.

glibc's allocator keeps freed blocks for reuse: after a collection is loaded, trained or caught
up, the temporaries of the work (COPY chunks, sort keys, k-means buffers, the code lists of a
previous approximate index, each worker thread's own arena) would stay in the process's resident
memory, measured at 50 MiB at 1M faces. ``malloc_trim(0)`` returns the free pages of every arena.
Under a steady load the same happens slowly: each request's buffers (an image, its decoded
pixels) are freed in whichever arena they came from and the free space kept there grows with the
mix of sizes seen, so the services also trim every ``FACEGRID_MALLOC_TRIM_S`` seconds
(:func:`start_trimming`; docs/operations.md "Memory"). Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger()

#: A periodic trim slower than this is logged (it holds each arena's lock meanwhile).
SLOW_TRIM_S = 0.05


def libc_function(name: str, argtypes: list[type], restype: type) -> Any | None:
    """The C library's function ``name`` with its types declared; None where there is none."""
    library = ctypes.util.find_library("c")
    if library is None:
        return None
    try:
        function = getattr(ctypes.CDLL(library), name)
    except (OSError, AttributeError):
        return None
    function.argtypes = argtypes
    function.restype = restype
    return function


@functools.cache
def _trim() -> Callable[[int], int] | None:
    return libc_function("malloc_trim", [ctypes.c_size_t], ctypes.c_int)


def release_free_memory() -> bool:
    """Returns free heap pages to the system; False where that is not possible."""
    trim = _trim()
    if trim is None:
        return False
    trim(0)
    return True


def start_trimming(interval_s: float) -> threading.Event | None:
    """Calls :func:`release_free_memory` every ``interval_s`` seconds from a daemon thread (set
    the returned event to stop it); nothing when ``interval_s`` <= 0 or without glibc."""
    if interval_s <= 0 or _trim() is None:
        return None
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval_s):
            began = time.perf_counter()
            release_free_memory()
            took = time.perf_counter() - began
            if took > SLOW_TRIM_S:
                log.info("malloc_trim_slow", seconds=round(took, 3))

    threading.Thread(target=run, name="malloc-trim", daemon=True).start()
    return stop


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


@dataclass(frozen=True, slots=True)
class HeapInfo:
    """glibc's malloc statistics summed over its arenas, bytes."""

    heap: int
    """Heap space taken from the system (sbrk and arena heaps), mmapped blocks not counted."""
    mmapped: int
    """Large blocks served by their own mmap."""
    in_use: int
    """Bytes of the heap handed out and not yet freed."""
    free: int
    """Bytes of the heap free but kept by the allocator (fragmentation when it grows)."""


@functools.cache
def _mallinfo2() -> Callable[[], _MallInfo2] | None:
    return libc_function("mallinfo2", [], _MallInfo2)


def heap_info() -> HeapInfo | None:
    """glibc's malloc statistics; None elsewhere than glibc 2.33 or later."""
    function = _mallinfo2()
    if function is None:
        return None
    info = function()
    return HeapInfo(int(info.arena), int(info.hblkhd), int(info.uordblks), int(info.fordblks))

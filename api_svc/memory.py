"""Handing memory freed by large temporaries back to the system.

glibc's allocator keeps freed blocks for reuse: after a collection is loaded, trained or caught
up, the temporaries of the work (COPY chunks, sort keys, k-means buffers, the code lists of a
previous approximate index, each worker thread's own arena) would stay in the process's resident
memory, measured at 50 MiB at 1M faces. ``malloc_trim(0)`` returns the free pages of every arena.
Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        function = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function


def release_free_memory() -> bool:
    """Returns free heap pages to the system; False where that is not possible."""
    trim = _trim()
    if trim is None:
        return False
    trim(0)
    return True

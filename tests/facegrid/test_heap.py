"""Handing malloc's free pages back: a heap left full of holes by freed buffers (what a
service's requests leave behind) shrinks in RSS once trimmed, by a call or the periodic thread."""

from __future__ import annotations

from facegrid.heap import heap_info, release_free_memory, start_trimming
from facegrid.memory_report import rss_bytes
from tests.helpers.wait import wait_until

_MB = 1024 * 1024
#: Under glibc's mmap threshold (128 KiB at start), so each comes from the heap.
_BLOCK = 100_000


def _holes(megabytes: int) -> list[bytearray]:
    """About ``megabytes`` MB of freed, touched blocks inside the heap, each between two blocks
    still held (so the heap cannot shrink from its top): what is returned keeps them apart."""
    blocks = [bytearray(_BLOCK) for _ in range(2 * megabytes * _MB // _BLOCK)]
    del blocks[::2]
    return blocks


def test_a_trim_returns_the_free_pages_between_blocks_still_held() -> None:
    release_free_memory()
    held = _holes(60)
    before = rss_bytes()
    info = heap_info()
    assert info is not None and info.free >= 50 * _MB
    assert release_free_memory()
    assert rss_bytes() < before - 40 * _MB
    assert len(held) > 0


def test_the_trimming_thread_returns_them_too() -> None:
    release_free_memory()
    stop = start_trimming(0.05)
    assert stop is not None
    try:
        # Measured before the holes are made: the thread may trim before any later reading.
        # Held: 60 MB; freed between them: 60 MB more, which only a trim gives back.
        baseline = rss_bytes()
        held = _holes(60)
        wait_until(lambda: rss_bytes() < baseline + 90 * _MB, timeout_s=10, what="RSS trimmed")
        assert len(held) > 0
    finally:
        stop.set()


def test_no_trimming_thread_when_turned_off() -> None:
    assert start_trimming(0) is None

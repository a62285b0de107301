"""Huge pages for a freshly loaded model: which regions are advised, and that nothing else
changes."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from embed_svc import hugepages

MAPS = """\
55d0c0a00000-55d0c0a21000 r--p 00000000 08:01 123 /usr/bin/python3.11
55d0c1000000-55d0c1400000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0004000000 rw-p 00000000 00:00 0
7f0004000000-7f0008000000 ---p 00000000 00:00 0
7f0008000000-7f0008200000 rw-s 00000000 00:05 77 /dev/shm/triton
7f0009000000-7f0009100000 rw-p 00001000 08:01 124 /usr/lib/libdlib.so
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
"""


def test_anonymous_regions_are_the_heap_and_private_anonymous_mappings() -> None:
    assert hugepages.anonymous_regions(MAPS) == {
        0x55D0C1000000: 0x55D0C1400000,
        0x7F0000000000: 0x7F0004000000,
    }


def test_added_memory_is_new_regions_and_the_tails_of_grown_ones() -> None:
    before = {0x1000: 0x5000, 0x9000: 0xA000, 0xB000: 0xF000}
    after = {0x1000: 0x8000, 0x9000: 0xA000, 0xB000: 0xC000, 0x20000: 0x40000}
    assert hugepages.grown(before, after) == [(0x5000, 0x8000), (0x20000, 0x40000)]


def test_only_memory_the_loader_added_is_advised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    maps = tmp_path / "maps"
    maps.write_text(MAPS)
    monkeypatch.setattr(hugepages, "MAPS", maps)
    calls: list[tuple[int, int, int]] = []

    def madvise(start: int, length: int, advice: int) -> int:
        calls.append((start, length, advice))
        return 0

    monkeypatch.setattr(hugepages, "_madvise", lambda: madvise)

    def load() -> str:
        maps.write_text(MAPS + "7f1000000000-7f1006000000 rw-p 00000000 00:00 0\n")
        return "model"

    assert hugepages.huge_pages_for(load) == "model"
    size = 0x6000000
    assert calls == [
        (0x7F1000000000, size, hugepages.MADV_HUGEPAGE),
        (0x7F1000000000, size, hugepages.MADV_COLLAPSE),
    ]


def test_a_real_allocation_is_found_and_keeps_its_contents() -> None:
    # 48 MiB: the C library gives an allocation this large its own anonymous mapping.
    size = 48 << 20
    before = hugepages.anonymous_regions(hugepages.MAPS.read_text())
    block = hugepages.huge_pages_for(lambda: ctypes.create_string_buffer(b"\x07" * size, size))
    after = hugepages.anonymous_regions(hugepages.MAPS.read_text())
    address = ctypes.addressof(block)
    assert any(start <= address < end for start, end in hugepages.grown(before, after))
    assert block.raw == b"\x07" * size

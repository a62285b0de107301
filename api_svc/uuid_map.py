"""A map from UUIDs (16-byte rows) to integers, as numpy arrays plus a small recent part.

The bulk of the map is two arrays sorted by key (16-byte strings and their int64 values), looked
up with ``searchsorted``: 24 bytes per entry and no Python object per entry. Entries put since
the last merge live in a dict; removals mark a sorted entry's value -1. The dict is merged into
the arrays once it holds more than a fraction of them: the recent keys are sorted and inserted
where they belong (O(n) copying, no sort of the whole map: 1M entries merge in tens of ms), so a
put costs O(1) amortised and lookups stay vectorised. Not thread-safe: the owner serialises
writers and readers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from api_svc.face_rows import UUID_BYTES, IdArray, id_keys

#: Recent entries kept in the dict before a merge: at least this many...
_MERGE_MIN = 4096
#: ...or this fraction of the sorted entries.
_MERGE_FRACTION = 0.125


@dataclass(frozen=True, slots=True)
class UuidMapParts:
    """What a map holds, as arrays (to write it to disk and read it back)."""

    keys: npt.NDArray[np.bytes_]
    """Sorted keys (16-byte strings)."""
    values: npt.NDArray[np.int64]
    """Their values, -1 where removed."""
    recent_keys: IdArray
    """Keys put since the last merge, ``(m, 16)``."""
    recent_values: npt.NDArray[np.int64]
    """Their values."""


class UuidMap:
    """UUID -> int64 (values >= 0)."""

    def __init__(self) -> None:
        self._keys: npt.NDArray[np.bytes_] = np.empty(0, dtype=f"S{UUID_BYTES}")
        self._values: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self._dead = 0
        self._recent: dict[bytes, int] = {}

    @classmethod
    def of(cls, ids: IdArray, values: npt.NDArray[np.int64]) -> UuidMap:
        """A map of ``ids[i] -> values[i]`` built at once (later duplicates win)."""
        made = cls()
        made._set_sorted(id_keys(ids), np.asarray(values, dtype=np.int64))
        return made

    @classmethod
    def from_parts(cls, parts: UuidMapParts) -> UuidMap:
        """The map ``parts`` describe (taking over its sorted arrays)."""
        made = cls()
        made._keys, made._values = parts.keys, parts.values
        made._dead = int(np.count_nonzero(parts.values < 0))
        raw = np.ascontiguousarray(parts.recent_keys).tobytes()
        made._recent = {
            raw[i * UUID_BYTES : (i + 1) * UUID_BYTES]: value
            for i, value in enumerate(parts.recent_values.tolist())
        }
        return made

    def parts(self) -> UuidMapParts:
        """What the map holds (the sorted arrays themselves, not copies)."""
        recent = np.frombuffer(b"".join(self._recent), dtype=np.uint8).reshape(-1, UUID_BYTES)
        values = np.fromiter(self._recent.values(), np.int64, len(self._recent))
        return UuidMapParts(self._keys, self._values, recent, values)

    def __len__(self) -> int:
        return len(self._keys) - self._dead + len(self._recent)

    @property
    def nbytes(self) -> int:
        """Memory held, bytes (the dict estimated at 120 bytes an entry)."""
        return self._keys.nbytes + self._values.nbytes + 120 * len(self._recent)

    def get(self, ids: IdArray) -> npt.NDArray[np.int64]:
        """The value of each id, -1 where absent."""
        keys = id_keys(ids)
        found = self._sorted_positions(keys)
        values = np.full(len(keys), -1, dtype=np.int64)
        hit = found >= 0
        values[hit] = self._values[found[hit]]
        if self._recent:
            raw = np.ascontiguousarray(ids).tobytes()
            for i in range(len(keys)):
                recent = self._recent.get(raw[i * UUID_BYTES : (i + 1) * UUID_BYTES])
                if recent is not None:
                    values[i] = recent
        return values.astype(np.int64)

    def put(self, ids: IdArray, values: npt.NDArray[np.int64]) -> None:
        """Sets ``ids[i] -> values[i]`` (replacing a present id's value)."""
        self.remove(ids)
        raw = np.ascontiguousarray(ids).tobytes()
        for i, value in enumerate(np.asarray(values).tolist()):
            self._recent[raw[i * UUID_BYTES : (i + 1) * UUID_BYTES]] = int(value)
        if len(self._recent) > max(_MERGE_MIN, _MERGE_FRACTION * len(self._keys)):
            self._merge()

    def remove(self, ids: IdArray) -> npt.NDArray[np.int64]:
        """Removes ``ids``; returns the value each had (-1 where absent)."""
        values = self.get(ids)
        if not len(ids):
            return values
        found = self._sorted_positions(id_keys(ids))
        hit = found[found >= 0]
        hit = hit[self._values[hit] >= 0]
        self._values[hit] = -1
        self._dead += len(np.unique(hit))
        if self._recent:
            raw = np.ascontiguousarray(ids).tobytes()
            for i in range(len(ids)):
                self._recent.pop(raw[i * UUID_BYTES : (i + 1) * UUID_BYTES], None)
        return values

    def copy(self) -> UuidMap:
        """An independent copy."""
        made = UuidMap()
        made._keys, made._values = self._keys.copy(), self._values.copy()
        made._dead, made._recent = self._dead, dict(self._recent)
        return made

    def items(self) -> tuple[IdArray, npt.NDArray[np.int64]]:
        """Every (id, value), as an ``(n, 16)`` id array and a value array."""
        self._merge()
        ids = self._keys.view(np.uint8).reshape(-1, UUID_BYTES)
        return ids, self._values

    def _sorted_positions(self, keys: npt.NDArray[np.bytes_]) -> npt.NDArray[np.int64]:
        """Position of each key in the sorted arrays, -1 where absent or removed."""
        if not len(self._keys):
            return np.full(len(keys), -1, dtype=np.int64)
        at = np.searchsorted(self._keys, keys)
        clipped = np.minimum(at, len(self._keys) - 1)
        hit = (self._keys[clipped] == keys) & (self._values[clipped] >= 0)
        return np.where(hit, clipped, -1).astype(np.int64)

    def _merge(self) -> None:
        keys, values = self._keys, self._values
        if self._dead:
            alive = values >= 0
            keys, values = keys[alive], values[alive]
        if self._recent:
            # Recent keys are never alive in the sorted part (put removes them there first).
            recent = np.frombuffer(b"".join(self._recent), dtype=f"S{UUID_BYTES}")
            recent_values = np.fromiter(self._recent.values(), np.int64, len(self._recent))
            order = np.argsort(recent, kind="stable")
            recent, recent_values = recent[order], recent_values[order]
            at = np.searchsorted(keys, recent)
            keys = np.insert(keys, at, recent)
            values = np.insert(values, at, recent_values)
        self._recent = {}
        self._keys, self._values, self._dead = keys, values, 0

    def _set_sorted(self, keys: npt.NDArray[np.bytes_], values: npt.NDArray[np.int64]) -> None:
        # A stable sort keeps later duplicates after earlier ones; keep the last of each run.
        order = np.argsort(keys, kind="stable")
        keys, values = keys[order], values[order]
        if len(keys) > 1:
            last = np.ones(len(keys), dtype=bool)
            last[:-1] = keys[1:] != keys[:-1]
            keys, values = keys[last], values[last]
        self._keys, self._values, self._dead = keys, values, 0

"""The subjects an index knows: id -> row, row -> name, without a Python object per subject.

Names loaded in bulk stay in one UTF-8 blob with offsets; subjects added later and renamed ones
are kept in small Python containers until the next rebuild compacts everything into a new blob.
Not thread-safe: FaceIndex serialises access.
"""

from __future__ import annotations

import uuid

import numpy as np
import numpy.typing as npt

from api_svc.face_rows import UUID_BYTES, IdArray, SubjectBatch, id_array
from api_svc.uuid_map import UuidMap, joined


class SubjectTable:
    """Subjects by row number (rows are never reused until a rebuild)."""

    def __init__(self, batch: SubjectBatch | None = None) -> None:
        base = batch if batch is not None else SubjectBatch.of([])
        self._base = base
        self._rows = UuidMap.of(base.ids, np.arange(len(base), dtype=np.int64))
        self._extra_names: list[str] = []
        self._renamed: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._base) + len(self._extra_names)

    @property
    def nbytes(self) -> int:
        """Memory held, bytes (Python containers estimated)."""
        extra = 100 * (len(self._extra_names) + len(self._renamed))
        return (
            self._base.ids.nbytes
            + len(self._base.names)
            + self._base.offsets.nbytes
            + (self._rows.nbytes + extra)
        )

    def name(self, row: int) -> str:
        """The current name of subject ``row``."""
        renamed = self._renamed.get(row)
        if renamed is not None:
            return renamed
        if row < len(self._base):
            return self._base.name(row)
        return self._extra_names[row - len(self._base)]

    def rows(self, ids: IdArray) -> npt.NDArray[np.int64]:
        """The row of each subject id, -1 where unknown."""
        return self._rows.get(ids)

    def row_of(self, subject_id: uuid.UUID) -> int:
        """The row of one subject id, -1 where unknown."""
        return int(self._rows.get(id_array([subject_id]))[0])

    def intern(self, batch: SubjectBatch) -> npt.NDArray[np.int64]:
        """Rows of the batch's subjects, adding unknown ones and taking their names as current."""
        rows = self._rows.get(batch.ids)
        for i in np.flatnonzero(rows >= 0).tolist():
            row, name = int(rows[i]), batch.name(i)
            if self.name(row) != name:
                self._renamed[row] = name
        missing = np.flatnonzero(rows < 0)
        if len(missing):
            new_rows = np.arange(len(self), len(self) + len(missing), dtype=np.int64)
            self._extra_names.extend(batch.name(i) for i in missing.tolist())
            rows[missing] = new_rows
            self._rows.put(batch.ids[missing], new_rows)
        return rows

    def rename(self, names: dict[uuid.UUID, str]) -> None:
        """Gives known subjects new names (unknown ids are ignored)."""
        for subject_id, name in names.items():
            row = self.row_of(subject_id)
            if row >= 0:
                self._renamed[row] = name

    def batch(self) -> SubjectBatch:
        """Every subject by row, with its current name (``SubjectTable(batch)`` gives the same
        rows back)."""
        if not self._extra_names and not self._renamed:
            return self._base
        parts = self._rows.parts()
        ids = np.empty((len(self), UUID_BYTES), np.uint8)
        alive = parts.values >= 0
        ids[parts.values[alive]] = joined(parts.hi[alive], parts.lo[alive])
        ids[parts.recent_values] = parts.recent_keys
        names = [self.name(row).encode() for row in range(len(self))]
        offsets = np.zeros(len(names) + 1, dtype=np.int64)
        np.cumsum([len(n) for n in names], out=offsets[1:])
        return SubjectBatch(ids, b"".join(names), offsets)

    def copy(self) -> SubjectTable:
        """An independent copy (the bulk blob is immutable and shared)."""
        made = SubjectTable.__new__(SubjectTable)
        made._base = self._base
        made._rows = self._rows.copy()
        made._extra_names = list(self._extra_names)
        made._renamed = dict(self._renamed)
        return made

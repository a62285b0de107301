"""Face examples and subjects as numpy blocks: what the index holds and what its sources read.

Ids are UUIDs held as rows of 16 bytes (``uint8`` arrays of shape ``(n, 16)``, the bytes of
``uuid.UUID.bytes``, as PostgreSQL's binary format sends them), never as one Python object per
face. Subject names travel as one UTF-8 blob with offsets. Each example carries the version of
its row (PostgreSQL's ``xmin``, the transaction that wrote it): a persisted index compares them
with the database's to find the rows changed since it was written (``index_catchup``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: Bytes of one UUID.
UUID_BYTES = 16

#: The version of a row whose version is not known (no transaction has id 0).
NO_VERSION = 0

IdArray = npt.NDArray[np.uint8]
"""UUIDs as rows of 16 bytes, shape ``(n, 16)``."""
Vectors = npt.NDArray[np.float32]
"""Embeddings, one float32 row each, shape ``(n, dim)``."""
Versions = npt.NDArray[np.uint32]
"""Row versions (``xmin``), one per example."""


def id_array(ids: Iterable[uuid.UUID]) -> IdArray:
    """``ids`` as an ``(n, 16)`` byte array."""
    raw = b"".join(i.bytes for i in ids)
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, UUID_BYTES).copy()


def uuids(array: IdArray) -> list[uuid.UUID]:
    """The rows of an id array as UUIDs."""
    raw = np.ascontiguousarray(array).tobytes()
    return [uuid.UUID(bytes=raw[i : i + UUID_BYTES]) for i in range(0, len(raw), UUID_BYTES)]


def id_keys(array: IdArray) -> npt.NDArray[np.bytes_]:
    """A view of the ids as one sortable 16-byte string each (for searchsorted and sort)."""
    return np.ascontiguousarray(array).view(f"S{UUID_BYTES}").reshape(-1)


@dataclass(frozen=True, slots=True)
class Example:
    """One stored face example (what a row of ``face_examples`` joined to its subject holds)."""

    image_id: uuid.UUID
    """The example's id (CompreFace's image_id)."""
    subject_id: uuid.UUID
    """Its subject's id."""
    subject: str
    """Its subject's name."""
    embedding: bytes
    """Little-endian float32 embedding as stored in ``face_examples.embedding``."""
    version: int = NO_VERSION
    """The row's ``xmin`` (``NO_VERSION`` when not known)."""


@dataclass(frozen=True, slots=True)
class SubjectBatch:
    """Subjects: ids and names."""

    ids: IdArray
    """Subject ids, ``(s, 16)``."""
    names: bytes
    """Every name in UTF-8, one after the other."""
    offsets: npt.NDArray[np.int64]
    """Where each name starts in ``names``, plus its end: ``s + 1`` values."""

    def __len__(self) -> int:
        return len(self.ids)

    def name(self, row: int) -> str:
        """The name of subject ``row``."""
        return self.names[int(self.offsets[row]) : int(self.offsets[row + 1])].decode()

    @classmethod
    def of(cls, pairs: Iterable[tuple[uuid.UUID, str]]) -> SubjectBatch:
        """A batch from (id, name) pairs."""
        ids, names = [], []
        for subject_id, name in pairs:
            ids.append(subject_id)
            names.append(name.encode())
        offsets = np.zeros(len(names) + 1, dtype=np.int64)
        np.cumsum([len(n) for n in names], out=offsets[1:])
        return cls(id_array(ids), b"".join(names), offsets)


def empty_subjects() -> SubjectBatch:
    """No subjects."""
    return SubjectBatch(np.empty((0, UUID_BYTES), np.uint8), b"", np.zeros(1, np.int64))


@dataclass(frozen=True, slots=True)
class FaceBatch:
    """Face examples of one calculator and the subjects they belong to."""

    image_ids: IdArray
    """Example ids, ``(n, 16)``."""
    subject_ids: IdArray
    """Each example's subject id, ``(n, 16)``."""
    vectors: Vectors
    """Each example's embedding, ``(n, dim)`` (the index normalises them)."""
    subjects: SubjectBatch
    """Names of (at least) the subjects the examples belong to."""
    versions: Versions | None = None
    """Each example's row version (None: not known)."""

    def __len__(self) -> int:
        return len(self.image_ids)

    def row_versions(self) -> Versions:
        """``versions``, or ``NO_VERSION`` for each example when they are not known."""
        if self.versions is None:
            return np.full(len(self), NO_VERSION, dtype=np.uint32)
        return self.versions

    @classmethod
    def of(cls, examples: Sequence[Example], dim: int) -> FaceBatch:
        """A batch of the examples whose embedding has ``dim`` values (others are left out)."""
        rows = [e for e in examples if len(e.embedding) == 4 * dim]
        vectors = np.frombuffer(b"".join(e.embedding for e in rows), dtype="<f4")
        names = {e.subject_id: e.subject for e in rows}
        return cls(
            id_array(e.image_id for e in rows),
            id_array(e.subject_id for e in rows),
            vectors.astype(np.float32).reshape(len(rows), dim),
            SubjectBatch.of(names.items()),
            np.fromiter((e.version for e in rows), np.uint32, len(rows)),
        )


def empty_faces(dim: int) -> FaceBatch:
    """No faces."""
    no_ids = np.empty((0, UUID_BYTES), np.uint8)
    return FaceBatch(no_ids, no_ids, np.empty((0, dim), np.float32), empty_subjects())

"""One collection's face examples in memory, searchable by cosine similarity.

An exact FAISS inner-product index (``IndexIDMap2(IndexFlatIP)``) over the L2-normalised
embeddings of the examples made by the collection's calculator. Inner product of unit vectors is
the cosine, and the Euclidean distance CompreFace's similarity needs is ``sqrt(2 - 2 * ip)``.
FAISS ids are a counter local to the index; a map gives each id's example and subject.
Mutations and searches are synchronous and run on the event loop, so a search never sees a
half-applied change.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import faiss
import numpy as np
import numpy.typing as npt

from facegrid.similarity import normalised


@dataclass(frozen=True, slots=True)
class Example:
    """A stored face example as the index holds it."""

    image_id: uuid.UUID
    """The example's id (CompreFace's image_id)."""
    subject_id: uuid.UUID
    """Its subject's id."""
    subject: str
    """Its subject's name."""
    embedding: bytes
    """Little-endian float32 embedding as stored in ``face_examples.embedding``."""


@dataclass(frozen=True, slots=True)
class Hit:
    """One example found by a search."""

    image_id: uuid.UUID
    """The example's id."""
    subject: str
    """Its subject's name."""
    distance: float
    """Euclidean distance between the L2-normalised query and example, 0..2."""


def unit_rows(vectors: npt.ArrayLike, dim: int) -> npt.NDArray[np.float32]:
    """``vectors`` as a C-contiguous float32 matrix of unit rows (zero rows stay zero)."""
    unit = normalised(np.asarray(vectors, dtype=np.float32).reshape(-1, dim))
    return np.ascontiguousarray(unit, dtype=np.float32)


class FaceIndex:
    """The examples of one collection made by one calculator (embeddings of ``dim`` values)."""

    def __init__(self, calculator: str, dim: int) -> None:
        self.calculator = calculator
        self.dim = dim
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._next_label = 0
        self._by_label: dict[int, tuple[uuid.UUID, uuid.UUID]] = {}
        self._labels: dict[uuid.UUID, int] = {}
        self._subjects: dict[uuid.UUID, str] = {}

    def __len__(self) -> int:
        return len(self._labels)

    def image_ids(self) -> set[uuid.UUID]:
        """The ids of every indexed example."""
        return set(self._labels)

    def subject_of(self, image_id: uuid.UUID) -> str | None:
        """The subject name of an indexed example, if indexed."""
        label = self._labels.get(image_id)
        return None if label is None else self._subjects[self._by_label[label][1]]

    def add(self, examples: Iterable[Example]) -> None:
        """Adds (or replaces) ``examples``; those whose size is not ``dim`` are skipped."""
        rows = [e for e in examples if len(e.embedding) == 4 * self.dim]
        self.remove([e.image_id for e in rows])
        if not rows:
            return
        labels = np.arange(self._next_label, self._next_label + len(rows), dtype=np.int64)
        self._next_label += len(rows)
        vectors = np.frombuffer(b"".join(e.embedding for e in rows), dtype="<f4")
        self._index.add_with_ids(unit_rows(vectors, self.dim), labels)
        for label, example in zip(labels.tolist(), rows, strict=True):
            self._by_label[label] = (example.image_id, example.subject_id)
            self._labels[example.image_id] = label
            self._subjects[example.subject_id] = example.subject

    def remove(self, image_ids: Iterable[uuid.UUID]) -> int:
        """Removes the examples ``image_ids`` (unknown ids ignored); returns how many went."""
        labels = [self._labels.pop(i) for i in image_ids if i in self._labels]
        if labels:
            # faiss's Python wrapper takes an id array here (its stubs only know IDSelector).
            self._index.remove_ids(np.asarray(labels, dtype=np.int64))  # type: ignore[arg-type]
            for label in labels:
                del self._by_label[label]
        return len(labels)

    def remove_subjects(self, subject_ids: Iterable[uuid.UUID]) -> int:
        """Removes every example of ``subject_ids``; returns how many went."""
        gone = set(subject_ids)
        doomed = [image for image, subject in self._by_label.values() if subject in gone]
        for subject_id in gone:
            self._subjects.pop(subject_id, None)
        return self.remove(doomed)

    def rename_subjects(self, names: dict[uuid.UUID, str]) -> None:
        """Gives subjects new names (those without examples here are ignored)."""
        for subject_id, name in names.items():
            if subject_id in self._subjects:
                self._subjects[subject_id] = name

    def search(self, queries: npt.ArrayLike, k: int) -> list[list[Hit]]:
        """The ``k`` nearest examples of each query row, nearest first."""
        matrix = unit_rows(queries, self.dim)
        if not len(self._labels) or k < 1:
            return [[] for _ in range(len(matrix))]
        scores, labels = self._index.search(matrix, min(k, len(self._labels)))
        distances = np.sqrt(np.clip(2.0 - 2.0 * scores.astype(np.float64), 0.0, 4.0))
        return [
            [
                self._hit(int(label), float(d))
                for label, d in zip(row, drow, strict=True)
                if label >= 0
            ]
            for row, drow in zip(labels, distances, strict=True)
        ]

    def _hit(self, label: int, distance: float) -> Hit:
        image_id, subject_id = self._by_label[label]
        return Hit(image_id, self._subjects[subject_id], distance)

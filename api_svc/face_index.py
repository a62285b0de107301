"""One collection's face examples in memory, searchable by cosine similarity from many threads.

The examples are numpy blocks, one row per face and no Python object per face: the L2-normalised
float32 embeddings (``n x dim``), the image ids (16 bytes each), each face's subject row and its
label. Labels are stable integers given at insertion (rows move when others are removed: the
last row fills the hole); a label -> row array and a UUID -> label map (``uuid_map``) find
faces by id. Subject names live in a ``SubjectTable``.

Search: exact (FAISS's brute-force inner product over the rows) while the collection is small;
from ``IndexSettings.exact_max`` faces on, an approximate IVF-PQ index (``ann.py``) proposes
``AnnSettings.candidates`` labels per query and they are re-ranked exactly on the float32 rows,
so distances are always exact. Inner product of unit vectors is the cosine, and the Euclidean
distance CompreFace's similarity needs is ``sqrt(2 - 2 * ip)``.

Concurrency: every method is thread-safe. Searches hold a read lock (many at once, in worker
threads: FAISS and numpy release the GIL), each change holds the write lock for its whole
application (writers first: a waiting change is not starved by searches), so a search sees a
change entirely or not at all. ``retrain`` builds a new approximate index from the rows outside
the lock while searches go on, then swaps it in under the write lock. Changes also hold the
*change gate* (a plain mutex taken before the write lock): ``paused`` holds it alone to read the
whole index at rest (to write it to disk) without holding the read lock, so that no change
waits on the readers-writer lock meanwhile and searches never queue behind one.

Memory: the row blocks are allocated with room to grow (twice the rows they hold); room that was
never written is address space, not memory (the pages of a large array are backed only once
touched), so it costs nothing until rows arrive, and growing copies the rows rarely.
"""

from __future__ import annotations

import contextlib
import math
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

import faiss
import fasteners
import numpy as np
import numpy.typing as npt

from api_svc.ann import AnnSettings, IvfSearch
from api_svc.face_rows import (
    NO_VERSION,
    UUID_BYTES,
    FaceBatch,
    IdArray,
    SubjectBatch,
    Vectors,
    Versions,
    id_array,
    uuids,
)
from api_svc.index_device import CPU, IndexDevice
from api_svc.subject_table import SubjectTable
from api_svc.uuid_map import UuidMap, UuidMapParts
from facegrid.similarity import normalised

#: Growth factor of the row blocks when an insert does not fit (the room is address space).
_GROWTH: Final = 2.0
#: Rows normalised at once while adopting a loaded block (bounds the temporary).
_CHUNK: Final = 1 << 16

IndexKind = Literal["exact", "ivf"]
_Array = TypeVar("_Array", bound=npt.NDArray[Any])


@dataclass(frozen=True, slots=True)
class IndexSettings:
    """When and how a collection's index goes approximate."""

    exact_max: int = 20_000
    """Faces from which the index is approximate (FACEGRID_INDEX_EXACT_MAX)."""
    ann: AnnSettings = field(default_factory=AnnSettings)
    """Shape and search of the approximate index."""
    device: IndexDevice = CPU
    """Where approximate indexes live."""
    retrain_growth: float = 4.0
    """An approximate index is retrained when the collection grows or shrinks by this factor
    from the size it was trained for."""
    max_tombstones: float = 0.1
    """On a device that cannot remove, the share of removed faces that triggers a retrain."""


@dataclass(frozen=True, slots=True)
class Hit:
    """One example found by a search."""

    image_id: uuid.UUID
    """The example's id."""
    subject: str
    """Its subject's name."""
    distance: float
    """Euclidean distance between the L2-normalised query and example, 0..2."""


@dataclass(frozen=True, slots=True)
class IndexStatus:
    """What an index holds (node status RPC)."""

    faces: int
    """Faces indexed."""
    nbytes: int
    """Memory held, bytes (rows, ids, maps and the approximate index)."""
    kind: IndexKind
    """``exact`` or ``ivf``."""
    detail: str
    """Parameters, e.g. ``IVF1024,PQ32 nprobe=32``."""
    device: str
    """Where the approximate index lives (``cpu``, ``gpu:0``)."""


@dataclass(frozen=True, slots=True)
class IndexParts:
    """Everything an index holds, for writing it to disk and reading it back (``index_file``).
    The row arrays hold ``count`` rows (or more: room the index keeps)."""

    calculator: str
    dim: int
    count: int
    """Faces."""
    next_label: int
    """The label the next face gets (labels are never reused)."""
    vectors: Vectors
    """Unit rows."""
    image_ids: IdArray
    subject_rows: npt.NDArray[np.int32]
    """Each face's row in ``subjects``."""
    labels: npt.NDArray[np.int64]
    versions: Versions
    subjects: SubjectBatch
    """Subjects by row."""
    ids: UuidMapParts
    """Image id -> label."""
    ann: IvfSearch | None
    """The approximate part."""


def unit_rows(vectors: npt.ArrayLike, dim: int) -> Vectors:
    """``vectors`` as a C-contiguous float32 matrix of unit rows (zero rows stay zero)."""
    unit = normalised(np.asarray(vectors, dtype=np.float32).reshape(-1, dim))
    return np.ascontiguousarray(unit, dtype=np.float32)


def _normalise_in_place(vectors: Vectors) -> None:
    for start in range(0, len(vectors), _CHUNK):
        block = vectors[start : start + _CHUNK]
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        np.divide(block, norms, out=block, where=norms > 0)


def _grown(array: _Array, size: int, used: int | None = None) -> _Array:
    """``array`` with room for ``size`` rows (itself when it has it); the first ``used`` rows
    (default all) are kept."""
    if len(array) >= size:
        return array
    kept = len(array) if used is None else used
    capacity = max(size, int(len(array) * _GROWTH) + 64)
    bigger = np.empty((capacity, *array.shape[1:]), dtype=array.dtype)
    bigger[:kept] = array[:kept]
    return bigger  # type: ignore[return-value]


def with_room(array: _Array) -> _Array:
    """The array ``array`` is the first rows of, when it is such a view (the spare rows of a
    block read from the database or a file come along), else ``array`` made C-contiguous."""
    base = array.base
    if (
        isinstance(base, np.ndarray)
        and array.flags.c_contiguous
        and base.flags.c_contiguous
        and base.dtype == array.dtype
        and base.shape[1:] == array.shape[1:]
        and len(base) >= len(array)
        and base.ctypes.data == array.ctypes.data
    ):
        return base  # type: ignore[return-value]
    return np.ascontiguousarray(array)  # type: ignore[return-value]


class FaceIndex:
    """The examples of one collection made by one calculator (embeddings of ``dim`` values)."""

    def __init__(self, calculator: str, dim: int, settings: IndexSettings | None = None) -> None:
        self.calculator = calculator
        self.dim = dim
        self.settings = settings or IndexSettings()
        self._lock = fasteners.ReaderWriterLock()
        self._gate = threading.Lock()
        self._n = 0
        self._vectors: Vectors = np.empty((0, dim), np.float32)
        self._image_ids: IdArray = np.empty((0, UUID_BYTES), np.uint8)
        self._subject_rows: npt.NDArray[np.int32] = np.empty(0, np.int32)
        self._labels: npt.NDArray[np.int64] = np.empty(0, np.int64)
        self._versions: Versions = np.empty(0, np.uint32)
        self._row_of: npt.NDArray[np.int64] = np.empty(0, np.int64)
        self._next_label = 0
        self._ids = UuidMap()
        self._subjects = SubjectTable()
        self._ann: IvfSearch | None = None

    @classmethod
    def build(
        cls,
        calculator: str,
        dim: int,
        batch: FaceBatch,
        settings: IndexSettings | None = None,
        *,
        approximate: bool = True,
    ) -> FaceIndex:
        """An index over ``batch`` (distinct image ids), taking over its arrays (the vectors
        are normalised in place); approximate when the batch is large, unless ``approximate``
        is False (then exact until ``retrain``: a first load serves sooner that way)."""
        index = cls(calculator, dim, settings)
        count = len(batch)
        vectors = with_room(np.asarray(batch.vectors, dtype=np.float32))
        _normalise_in_place(vectors[:count])
        image_ids = with_room(batch.image_ids)
        versions = with_room(batch.row_versions())
        index._subjects = SubjectTable(batch.subjects)
        subject_rows = index._subjects.rows(batch.subject_ids)
        known = subject_rows >= 0
        if not known.all():  # a face whose subject is not in the batch: left out
            vectors = vectors[:count][known]
            image_ids = image_ids[:count][known]
            versions = versions[:count][known]
            subject_rows = subject_rows[known]
            count = int(known.sum())
        index._vectors, index._image_ids, index._versions = vectors, image_ids, versions
        index._subject_rows = subject_rows.astype(np.int32)
        index._labels = np.arange(count, dtype=np.int64)
        index._row_of = np.arange(count, dtype=np.int64)
        index._next_label = count
        index._n = count
        index._ids = UuidMap.of(index._image_ids[:count], index._labels)
        if approximate and count >= index.settings.exact_max:
            index._ann = IvfSearch.build(
                index._vectors[:count], index._labels, index.settings.ann, index.settings.device
            )
        return index

    @classmethod
    def from_parts(cls, parts: IndexParts, settings: IndexSettings | None = None) -> FaceIndex:
        """The index ``parts`` describe (read from a file), taking over its arrays."""
        index = cls(parts.calculator, parts.dim, settings)
        count = parts.count
        index._vectors = with_room(parts.vectors)
        index._image_ids = with_room(parts.image_ids)
        index._subject_rows = with_room(parts.subject_rows)
        index._labels = with_room(parts.labels)
        index._versions = with_room(parts.versions)
        index._next_label = parts.next_label
        index._row_of = np.full(max(parts.next_label, 1), -1, dtype=np.int64)
        index._row_of[index._labels[:count]] = np.arange(count, dtype=np.int64)
        index._n = count
        index._ids = UuidMap.from_parts(parts.ids)
        index._subjects = SubjectTable(parts.subjects)
        index._ann = parts.ann
        return index

    def __len__(self) -> int:
        return self._n

    @property
    def kind(self) -> IndexKind:
        """``exact`` or ``ivf``."""
        return "exact" if self._ann is None else "ivf"

    def status(self) -> IndexStatus:
        """Faces, bytes and kind (read without the lock: a change in progress may show
        partly)."""
        ann = self._ann
        detail = "flat" if ann is None else f"IVF{ann.nlist},SQ4 nprobe={ann.nprobe}"
        return IndexStatus(
            self._n, self.nbytes, self.kind, detail, "cpu" if ann is None else ann.device.name
        )

    @property
    def nbytes(self) -> int:
        """Memory held, bytes (read without the lock, as ``status``): the rows in use (the room
        beyond them is not backed by memory until used), maps and the approximate index."""
        arrays = (self._vectors, self._image_ids, self._subject_rows, self._labels, self._versions)
        per_row = sum(a.itemsize * int(np.prod(a.shape[1:])) for a in arrays)
        held = self._n * per_row + 8 * self._next_label
        held += self._ids.nbytes + self._subjects.nbytes
        ann = self._ann
        return held + (0 if ann is None else ann.nbytes)

    def image_ids(self) -> set[uuid.UUID]:
        """The ids of every indexed example (one object each: for tests and small indexes)."""
        with self._lock.read_lock():
            return set(uuids(self._image_ids[: self._n]))

    def subject_of(self, image_id: uuid.UUID) -> str | None:
        """The subject name of an indexed example, if indexed."""
        with self._lock.read_lock():
            label = int(self._ids.get(id_array([image_id]))[0])
            if label < 0:
                return None
            return self._subjects.name(int(self._subject_rows[self._row_of[label]]))

    # -- changes ------------------------------------------------------------------------------

    def add(self, batch: FaceBatch) -> None:
        """Adds (or replaces) the batch's examples."""
        self.replace([], batch)

    def replace(self, removed: Iterable[uuid.UUID] | IdArray, batch: FaceBatch) -> int:
        """Removes the examples ``removed``, then adds (or replaces) the batch's, as one change
        (the batch's subjects take their names from it, even with no example); returns how
        many of ``removed`` were indexed."""
        gone = removed if isinstance(removed, np.ndarray) else id_array(removed)
        with self._gate, self._lock.write_lock():
            count = self._drop(self._ids.remove(gone))
            if len(batch):
                self._drop(self._ids.remove(batch.image_ids))
                self._insert(batch)
            elif len(batch.subjects):
                self._subjects.intern(batch.subjects)
            return count

    def remove(self, image_ids: Iterable[uuid.UUID] | IdArray) -> int:
        """Removes the examples ``image_ids`` (unknown ids ignored); returns how many went."""
        return self.replace(image_ids, FaceBatch.of([], self.dim))

    def remove_subjects(self, subject_ids: Iterable[uuid.UUID]) -> int:
        """Removes every example of ``subject_ids``; returns how many went."""
        wanted = id_array(subject_ids)
        with self._gate, self._lock.write_lock():
            rows = self._subjects.rows(wanted)
            doomed = np.flatnonzero(np.isin(self._subject_rows[: self._n], rows[rows >= 0]))
            self._ids.remove(self._image_ids[doomed])
            count = self._drop(self._labels[doomed])
            return count

    def rename_subjects(self, names: dict[uuid.UUID, str]) -> None:
        """Gives subjects new names (those unknown here are ignored)."""
        with self._gate, self._lock.write_lock():
            self._subjects.rename(names)

    @contextlib.contextmanager
    def paused(self) -> Iterator[IndexParts]:
        """Holds changes back (not searches) and yields what the index holds, as views valid
        until the block ends."""
        with self._gate:
            n = self._n
            yield IndexParts(
                calculator=self.calculator,
                dim=self.dim,
                count=n,
                next_label=self._next_label,
                vectors=self._vectors[:n],
                image_ids=self._image_ids[:n],
                subject_rows=self._subject_rows[:n],
                labels=self._labels[:n],
                versions=self._versions[:n],
                subjects=self._subjects.batch(),
                ids=self._ids.parts(),
                ann=self._ann,
            )

    def stale(self, image_ids: IdArray, versions: Versions) -> tuple[IdArray, IdArray]:
        """Against the ids and row versions a collection holds now: (ids whose row is missing
        here, has another version or an unknown one, ids held here that it no longer holds)."""
        with self._lock.read_lock():
            labels = self._ids.get(image_ids)
            known = labels >= 0
            rows = self._row_of[labels[known]]
            same = np.zeros(len(image_ids), dtype=bool)
            same[known] = (self._versions[rows] == versions[known]) & (
                versions[known] != NO_VERSION
            )
            seen = np.zeros(self._n, dtype=bool)
            seen[rows] = True
            gone = self._image_ids[: self._n][~seen].copy()
        return np.ascontiguousarray(image_ids[~same]), gone

    def _insert(self, batch: FaceBatch) -> None:
        self._subjects.intern(batch.subjects)
        subject_rows = self._subjects.rows(batch.subject_ids)
        known = subject_rows >= 0
        vectors = unit_rows(batch.vectors[known], self.dim)
        count, start = len(vectors), self._n
        end = start + count
        labels = np.arange(self._next_label, self._next_label + count, dtype=np.int64)
        self._next_label += count
        self._vectors = _grown(self._vectors, end, start)
        self._image_ids = _grown(self._image_ids, end, start)
        self._subject_rows = _grown(self._subject_rows, end, start)
        self._labels = _grown(self._labels, end, start)
        self._versions = _grown(self._versions, end, start)
        self._row_of = _grown(self._row_of, self._next_label, self._next_label - count)
        self._vectors[start:end] = vectors
        self._image_ids[start:end] = batch.image_ids[known]
        self._subject_rows[start:end] = subject_rows[known]
        self._labels[start:end] = labels
        self._versions[start:end] = batch.row_versions()[known]
        self._row_of[labels] = np.arange(start, end)
        self._n = end
        self._ids.put(batch.image_ids[known], labels)
        if self._ann is not None:
            self._ann.add(vectors, labels)

    def _drop(self, labels: npt.NDArray[np.int64]) -> int:
        """Removes the faces ``labels`` (-1 entries ignored): the last rows fill the holes."""
        labels = np.unique(labels[labels >= 0])
        if not len(labels):
            return 0
        rows = self._row_of[labels]
        self._row_of[labels] = -1
        if self._ann is not None:
            self._ann.remove(labels)
        keep = self._n - len(rows)
        holes = np.sort(rows[rows < keep])
        tail = np.arange(keep, self._n)
        movers = tail[~np.isin(tail, rows)]
        for array in (
            self._vectors,
            self._image_ids,
            self._subject_rows,
            self._labels,
            self._versions,
        ):
            array[holes] = array[movers]
        self._row_of[self._labels[holes]] = holes
        self._n = keep
        return len(labels)

    # -- search -------------------------------------------------------------------------------

    def search(self, queries: npt.ArrayLike, k: int) -> list[list[Hit]]:
        """The ``k`` nearest examples of each query row, nearest first."""
        matrix = unit_rows(queries, self.dim)
        with self._lock.read_lock():
            count = min(k, self._n)
            if count < 1:
                return [[] for _ in range(len(matrix))]
            if self._ann is None:
                scores, rows = faiss.knn(
                    matrix, self._vectors[: self._n], count, faiss.METRIC_INNER_PRODUCT
                )
            else:
                labels = self._ann.candidates(matrix, max(count, self.settings.ann.candidates))
                scores, rows = self._rerank(matrix, labels, count)
            return [
                [self._hit(int(r), float(s)) for r, s in zip(row, srow, strict=True) if r >= 0]
                for row, srow in zip(rows, scores, strict=True)
            ]

    def _rerank(
        self, queries: Vectors, labels: npt.NDArray[np.int64], k: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The ``k`` best of each query's candidate labels by exact inner product."""
        rows = np.where(labels >= 0, self._row_of[np.maximum(labels, 0)], -1)
        exact = np.einsum("qcd,qd->qc", self._vectors[np.maximum(rows, 0)], queries)
        exact[rows < 0] = -np.inf
        order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        best_rows = np.take_along_axis(rows, order, axis=1)
        best = np.take_along_axis(exact, order, axis=1)
        return best, np.where(np.isfinite(best), best_rows, -1)

    def _hit(self, row: int, score: float) -> Hit:
        image_id = uuid.UUID(bytes=self._image_ids[row].tobytes())
        subject = self._subjects.name(int(self._subject_rows[row]))
        return Hit(image_id, subject, math.sqrt(min(4.0, max(0.0, 2.0 - 2.0 * score))))

    # -- approximate index upkeep -------------------------------------------------------------

    def wants_retrain(self) -> str | None:
        """Why the approximate part should be rebuilt now (None: it is fine)."""
        with self._lock.read_lock():
            settings, ann, count = self.settings, self._ann, self._n
            if ann is None:
                return "grew past exact_max" if count >= settings.exact_max else None
            if count < settings.exact_max / 2:
                return "shrank under exact_max / 2"
            growth = settings.retrain_growth
            if count > ann.trained_on * growth or count * growth < ann.trained_on:
                return f"size {count} far from trained {ann.trained_on}"
            if ann.tombstones > settings.max_tombstones * max(count, 1):
                return "tombstones"
            return None

    def retrain(self, seed: int = 1234) -> None:
        """Builds the approximate part the current size calls for (or drops it when the
        collection is small again) and swaps it in. Searches and changes go on meanwhile: the
        rows are read a chunk at a time under the read lock, and the changes made since are
        caught up under the write lock at the swap (labels are never reused, so "added since"
        and "removed since" are exact)."""
        with self._lock.read_lock():
            count, approximate = self._n, self._ann is not None
            exact_max = self.settings.exact_max
            wanted = count >= exact_max or (approximate and count >= exact_max / 2)
            if wanted:
                rng = np.random.default_rng(seed)
                size = IvfSearch.sample_size(count, self.settings.ann)
                sample = self._vectors[np.sort(rng.choice(count, size, replace=False))]
        if not wanted:
            with self._gate, self._lock.write_lock():
                self._ann = None
            return
        ann = IvfSearch.trained(sample, count, self.settings.ann, self.settings.device, seed)
        added = np.zeros(0, dtype=bool)
        position = 0
        while True:
            with self._lock.read_lock():
                if position >= self._n:
                    break
                end = min(self._n, position + _CHUNK)
                vectors = self._vectors[position:end].copy()
                labels = self._labels[position:end].copy()
                added = _grown_flags(added, self._next_label)
            ann.add(vectors, labels)
            added[labels] = True
            position += len(labels)
        ann.compact()
        with self._gate, self._lock.write_lock():
            added = _grown_flags(added, self._next_label)
            alive = self._labels[: self._n]
            missing = alive[~added[alive]]
            if len(missing):
                ann.add(self._vectors[self._row_of[missing]], missing)
            ann.remove(np.flatnonzero(added & (self._row_of[: len(added)] < 0)).astype(np.int64))
            self._ann = ann


def _grown_flags(flags: npt.NDArray[np.bool_], size: int) -> npt.NDArray[np.bool_]:
    """``flags`` extended with False up to ``size``."""
    if len(flags) >= size:
        return flags
    return np.concatenate([flags, np.zeros(size - len(flags), dtype=bool)])

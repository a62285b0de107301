"""The approximate part of a large collection's index: a FAISS inverted-file index of compressed
codes that proposes candidates, which FaceIndex re-ranks exactly on its float32 rows.

``IVF<nlist>,SQ4`` over inner product (docs/api_svc.md "The index" has the measurements that
chose it): the coarse quantizer's ``nlist`` centroids are trained by k-means on a sample of the
collection, each vector's residual to its centroid is stored as a 4-bit scalar-quantised code
(``dim / 2`` bytes a face, against ``4 * dim`` for the rows) in one inverted list, and a search
scans the ``nprobe`` lists nearest the query. The codes are small and the re-ranking rows are the
only full copy of the vectors. Labels are the caller's (FaceIndex's stable face labels); removal
by label scans the lists with a hash-set selector, so no per-face direct map is held.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from api_svc.face_rows import Vectors
from api_svc.index_device import CPU, IndexDevice

#: Vectors encoded per ``add`` call while filling an index.
_ADD_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class AnnSettings:
    """How approximate indexes are shaped and searched."""

    nprobe_fraction: float = 1 / 32
    """Share of the inverted lists a search scans (at least ``min_nprobe``)."""
    min_nprobe: int = 32
    """Fewest lists a search scans (all of them when there are fewer)."""
    candidates: int = 64
    """Candidates proposed per query for exact re-ranking (at least k)."""
    sample_per_list: int = 40
    """Training vectors per inverted list (k-means sample)."""
    train_iterations: int = 12
    """k-means iterations of the coarse quantizer."""


def lists_for(count: int) -> int:
    """Inverted lists for a collection of ``count`` faces: the power of two nearest
    ``sqrt(count)``, between 32 and 8192 (1M faces: 1024 lists of about 1,000)."""
    target = max(1.0, math.sqrt(max(count, 1)))
    return int(min(8192, max(32, 2 ** round(math.log2(target)))))


class IvfSearch:
    """Candidates by label from an IVF-SQ4 index (placed on ``device``)."""

    def __init__(
        self, index: Any, ivf: Any, quantizer: Any, device: IndexDevice, trained_on: int
    ) -> None:
        self._index = index
        self._ivf = ivf
        self._quantizer = quantizer  # the IVF index does not own it (unless read from a file)
        self.nlist = int(ivf.nlist)
        """Inverted lists."""
        self.nprobe = int(ivf.nprobe)
        """Lists a search scans."""
        self._code_size = int(ivf.code_size)
        self.device = device
        self.trained_on = trained_on
        """How many faces the index was trained for (rebuilds go by it)."""
        self.tombstones = 0
        """Removed faces still in a device copy that cannot remove (GPU)."""

    @classmethod
    def trained(
        cls,
        sample: Vectors,
        count: int,
        settings: AnnSettings,
        device: IndexDevice = CPU,
        seed: int = 1234,
    ) -> IvfSearch:
        """An empty index for about ``count`` faces, trained on ``sample`` (unit rows)."""
        dim = sample.shape[1]
        nlist = lists_for(count)
        quantizer = faiss.IndexFlatIP(dim)
        ivf = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, nlist, faiss.ScalarQuantizer.QT_4bit, faiss.METRIC_INNER_PRODUCT
        )
        ivf.cp.niter = settings.train_iterations
        ivf.cp.seed = seed
        # Small collections train on fewer points than FAISS likes: no warning for that.
        ivf.cp.min_points_per_centroid = 1
        ivf.train(np.ascontiguousarray(sample))
        ivf.nprobe = min(nlist, max(settings.min_nprobe, round(nlist * settings.nprobe_fraction)))
        placed = device.place(ivf)
        if placed is not ivf:
            _set_nprobe(placed, ivf.nprobe)
        return cls(placed, ivf, quantizer, device, count)

    @staticmethod
    def sample_size(count: int, settings: AnnSettings) -> int:
        """Training vectors for an index of ``count`` faces."""
        return min(count, lists_for(count) * settings.sample_per_list)

    @classmethod
    def build(
        cls,
        vectors: Vectors,
        labels: npt.NDArray[np.int64],
        settings: AnnSettings,
        device: IndexDevice = CPU,
        seed: int = 1234,
    ) -> IvfSearch:
        """An index trained on a sample of ``vectors`` (unit rows) holding all of them."""
        count = len(vectors)
        rng = np.random.default_rng(seed)
        picks = np.sort(rng.choice(count, cls.sample_size(count, settings), replace=False))
        made = cls.trained(vectors[picks], count, settings, device, seed)
        for start in range(0, count, _ADD_CHUNK):
            made.add(vectors[start : start + _ADD_CHUNK], labels[start : start + _ADD_CHUNK])
        made.compact()
        return made

    def compact(self) -> None:
        """Moves each inverted list into storage of its exact size. FAISS grows a list by
        doubling as faces are added one at a time, which leaves about a third of the codes'
        memory unused after a fill (24 MiB at 1M faces). CPU indexes only."""
        if self._index is not self._ivf:
            return
        lists = self._ivf.invlists
        exact = faiss.ArrayInvertedLists(lists.nlist, lists.code_size)
        for number in range(lists.nlist):
            size = lists.list_size(number)
            if size:
                exact.add_entries(number, size, lists.get_ids(number), lists.get_codes(number))
        self._ivf.replace_invlists(exact, True)
        exact.this.disown()  # type: ignore[attr-defined]  # the index owns it now

    def write(self, write: Callable[[bytes], object]) -> bool:
        """Serialises the index through ``write`` (FAISS's own format); False, writing nothing,
        for an index placed on a device (its host copy is not kept)."""
        if self._index is not self._ivf or self.tombstones:
            return False
        writer = faiss.PyCallbackIOWriter(write)  # type: ignore[attr-defined]
        faiss.write_index(self._ivf, writer)
        del writer  # flushes
        return True

    @classmethod
    def read(
        cls,
        read: Callable[[int], bytes],
        trained_on: int,
        device: IndexDevice = CPU,
    ) -> IvfSearch:
        """An index serialised by ``write``, read through ``read`` and placed on ``device``."""
        reader = faiss.PyCallbackIOReader(read)  # type: ignore[attr-defined]
        ivf = faiss.read_index(reader)  # already of its own class (and owns itself)
        del reader
        if not isinstance(ivf, faiss.IndexIVFScalarQuantizer):
            raise ValueError(f"not an IVF-SQ index: {type(ivf).__name__}")
        placed = device.place(ivf)
        if placed is not ivf:
            _set_nprobe(placed, ivf.nprobe)
        return cls(placed, ivf, ivf.quantizer, device, trained_on)

    @property
    def nbytes(self) -> int:
        """Memory held (host side): codes, their labels and the centroids, bytes."""
        total = int(self._index.ntotal)
        return total * (self._code_size + 8) + self.nlist * int(self._index.d) * 4

    def add(self, vectors: Vectors, labels: npt.NDArray[np.int64]) -> None:
        """Adds unit rows under ``labels``."""
        self._index.add_with_ids(np.ascontiguousarray(vectors), np.ascontiguousarray(labels))

    def remove(self, labels: npt.NDArray[np.int64]) -> None:
        """Removes ``labels`` (a device that cannot remove keeps them as tombstones)."""
        if not len(labels):
            return
        if not self.device.removes:
            self.tombstones += len(labels)
            return
        selector = faiss.IDSelectorBatch(len(labels), faiss.swig_ptr(np.ascontiguousarray(labels)))
        self._index.remove_ids(selector)

    def candidates(self, queries: Vectors, count: int) -> npt.NDArray[np.int64]:
        """The ``count`` (plus tombstones' share) best labels of each query, -1 padded."""
        wanted = count + min(self.tombstones, count)
        _, labels = self._index.search(np.ascontiguousarray(queries), wanted)
        return np.asarray(labels, dtype=np.int64)


def _set_nprobe(index: Any, nprobe: int) -> None:
    """Sets ``nprobe`` on a placed (e.g. GPU) IVF index."""
    if hasattr(index, "setNumProbes"):
        index.setNumProbes(nprobe)
    else:
        index.nprobe = nprobe

"""Index files: an index written and read back answers as the original (exact and approximate,
after removals, renames and new subjects), its rows come back with room to grow, a file that is
not whole or not this collection's is refused, and writing holds changes back but not
searches; FaceIndex.stale tells new, changed and gone rows apart by their versions."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from api_svc.face_index import FaceIndex, IndexSettings
from api_svc.face_rows import NO_VERSION, Example, FaceBatch, id_array, uuids
from api_svc.index_file import MAGIC, IndexFileError, IndexFiles
from tests.api_svc.test_face_index import clustered, examples_of

SERVICE = uuid.uuid4()


def versioned(examples: list[Example], version: int) -> list[Example]:
    return [replace(e, version=version) for e in examples]


def changed_index(settings: IndexSettings, count: int = 1500) -> tuple[FaceIndex, np.ndarray]:
    """An index that went through removals, a rename and new subjects (recent map entries)."""
    dim = 16
    vectors, picks = clustered(count, dim, seed=11)
    faces = versioned(examples_of(vectors, picks), 5)
    index = FaceIndex.build("dlib", dim, FaceBatch.of(faces, dim), settings)
    index.remove([f.image_id for f in faces[:40]])
    index.rename_subjects({faces[100].subject_id: "renamed"})
    newcomer = Example(uuid.uuid4(), uuid.uuid4(), "newcomer", vectors[0].tobytes(), 9)
    index.add(FaceBatch.of([newcomer], dim))
    return index, vectors


def answers(index: FaceIndex, queries: np.ndarray) -> list[list[tuple[uuid.UUID, str, float]]]:
    return [
        [(h.image_id, h.subject, round(h.distance, 5)) for h in hits]
        for hits in index.search(queries, 5)
    ]


@pytest.mark.parametrize("exact_max", [10**9, 1000])
def test_a_written_index_reads_back_answering_the_same(tmp_path: Path, exact_max: int) -> None:
    settings = IndexSettings(exact_max=exact_max)
    index, vectors = changed_index(settings)
    files = IndexFiles(tmp_path, settings)
    size = files.write(SERVICE, 42, index)
    assert size == files.path(SERVICE).stat().st_size
    assert list(tmp_path.iterdir()) == [files.path(SERVICE)]  # no temporary left
    cached = files.read(SERVICE)
    assert cached is not None and cached.seq == 42 and cached.nbytes == size
    read = cached.index
    assert (read.kind, read.calculator, read.dim, len(read)) == (
        index.kind,
        "dlib",
        16,
        len(index),
    )
    assert read.image_ids() == index.image_ids()
    assert answers(read, vectors[::50]) == answers(index, vectors[::50])
    assert read.status().detail == index.status().detail
    # It keeps changing like the original: the row blocks have room to grow.
    with read.paused() as parts:
        assert parts.vectors.base is not None and len(parts.vectors.base) >= 2 * len(read)
    added = Example(uuid.uuid4(), uuid.uuid4(), "late", vectors[1].tobytes(), 10)
    read.add(FaceBatch.of([added], 16))
    assert read.remove([added.image_id]) == 1
    assert answers(read, vectors[::50]) == answers(index, vectors[::50])


def test_files_that_are_not_whole_or_not_this_collections_are_refused(tmp_path: Path) -> None:
    index, _ = changed_index(IndexSettings(exact_max=10**9), count=200)
    files = IndexFiles(tmp_path)
    assert files.read(SERVICE) is None  # no file
    files.write(SERVICE, 1, index)
    data = files.path(SERVICE).read_bytes()
    other = uuid.uuid4()
    files.path(other).write_bytes(data)
    with pytest.raises(IndexFileError, match="not a format 2 file"):
        files.read(other)
    files.path(SERVICE).write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexFileError, match="not a whole index file"):
        files.read(SERVICE)
    files.path(SERVICE).write_bytes(MAGIC + b"{}" + data[-16:])
    with pytest.raises(IndexFileError):
        files.read(SERVICE)
    files.remove(SERVICE)
    assert files.read(SERVICE) is None


@pytest.mark.parametrize("section", ["vectors", "image_ids", "id_values", "ann"])
def test_a_flipped_byte_in_any_section_is_refused(tmp_path: Path, section: str) -> None:
    index, _ = changed_index(IndexSettings(exact_max=1000))
    assert index.kind == "ivf"
    files = IndexFiles(tmp_path)
    files.write(SERVICE, 3, index)
    path = files.path(SERVICE)
    data = bytearray(path.read_bytes())
    length = int.from_bytes(data[-16:-8], "little")
    sections = json.loads(data[-16 - length : -16])["sections"]
    data[sections[section]["offset"] + 7] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(IndexFileError, match=f"section {section} is damaged"):
        files.read(SERVICE)


def test_writing_holds_changes_back_but_not_searches(tmp_path: Path) -> None:
    index, vectors = changed_index(IndexSettings(exact_max=10**9), count=300)
    changed = threading.Event()
    searched = threading.Event()

    def change() -> None:
        index.add(FaceBatch.of(examples_of(vectors[:1], np.array([0])), 16))
        changed.set()

    with index.paused():
        writer = threading.Thread(target=change)
        writer.start()

        def search() -> None:
            index.search(vectors[:1], 1)
            searched.set()

        searcher = threading.Thread(target=search)
        searcher.start()
        assert searched.wait(5)  # a search runs while the index is held at rest
        assert not changed.wait(0.2)  # the change waits for the pause to end
    assert changed.wait(5)
    writer.join()
    searcher.join()


def test_stale_tells_new_changed_unknown_and_gone_rows_apart() -> None:
    dim = 3
    kept, changed, gone, unknown = (
        Example(uuid.uuid4(), uuid.uuid4(), "s", np.eye(dim, dtype="<f4")[i % dim].tobytes(), v)
        for i, v in enumerate((5, 5, 5, NO_VERSION))
    )
    index = FaceIndex.build("dlib", dim, FaceBatch.of([kept, changed, gone, unknown], dim))
    new = uuid.uuid4()
    ids = id_array([kept.image_id, changed.image_id, unknown.image_id, new])
    fetch, dropped = index.stale(ids, np.array([5, 6, NO_VERSION, 1], dtype=np.uint32))
    assert uuids(fetch) == [changed.image_id, unknown.image_id, new]
    assert uuids(dropped) == [gone.image_id]

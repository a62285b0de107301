"""FaceIndex: add, replace, remove, subjects, and exact cosine search."""

from __future__ import annotations

import math
import uuid

import numpy as np
import pytest

from api_svc.face_index import Example, FaceIndex

ALICE, BOB = uuid.uuid4(), uuid.uuid4()


def example(vector: list[float], subject_id: uuid.UUID = ALICE, name: str = "alice") -> Example:
    return Example(uuid.uuid4(), subject_id, name, np.asarray(vector, dtype="<f4").tobytes())


def test_search_finds_the_nearest_examples_first_with_their_distance() -> None:
    index = FaceIndex("dlib", 3)
    near, far = example([2.0, 0.0, 0.0]), example([0.0, 1.0, 0.0], BOB, "bob")
    index.add([far, near])
    [hits] = index.search([[1.0, 0.1, 0.0]], 2)
    assert [h.image_id for h in hits] == [near.image_id, far.image_id]
    assert [h.subject for h in hits] == ["alice", "bob"]
    query = np.array([1.0, 0.1, 0.0]) / np.linalg.norm([1.0, 0.1, 0.0])
    assert hits[0].distance == pytest.approx(np.linalg.norm(query - [1, 0, 0]), abs=1e-5)
    assert hits[1].distance == pytest.approx(np.linalg.norm(query - [0, 1, 0]), abs=1e-5)


def test_k_larger_than_the_index_and_an_empty_index() -> None:
    index = FaceIndex("dlib", 3)
    assert index.search([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], 3) == [[], []]
    index.add([example([1.0, 0.0, 0.0])])
    [hits] = index.search([[0.0, 0.0, 1.0]], 5)
    assert len(hits) == 1 and hits[0].distance == pytest.approx(math.sqrt(2), abs=1e-5)


def test_remove_by_id_and_by_subject() -> None:
    index = FaceIndex("dlib", 3)
    a1, a2 = example([1.0, 0.0, 0.0]), example([0.9, 0.1, 0.0])
    b = example([0.0, 1.0, 0.0], BOB, "bob")
    index.add([a1, a2, b])
    assert index.remove([a1.image_id, uuid.uuid4()]) == 1
    assert index.image_ids() == {a2.image_id, b.image_id}
    assert index.remove_subjects([BOB]) == 1
    assert index.image_ids() == {a2.image_id}
    [hits] = index.search([[0.0, 1.0, 0.0]], 3)
    assert [h.image_id for h in hits] == [a2.image_id]


def test_adding_an_id_again_replaces_it_and_wrong_sizes_are_skipped() -> None:
    index = FaceIndex("dlib", 3)
    first = example([1.0, 0.0, 0.0])
    index.add([first])
    moved = Example(first.image_id, BOB, "bob", np.asarray([0, 0, 1], dtype="<f4").tobytes())
    index.add([moved, example([1.0, 0.0])])
    assert len(index) == 1
    [hits] = index.search([[0.0, 0.0, 1.0]], 1)
    assert (hits[0].subject, hits[0].distance) == ("bob", pytest.approx(0.0, abs=1e-3))


def test_renamed_subjects_answer_with_their_new_name() -> None:
    index = FaceIndex("dlib", 3)
    kept = example([1.0, 0.0, 0.0])
    index.add([kept])
    index.rename_subjects({ALICE: "alicia", BOB: "nobody here"})
    assert index.subject_of(kept.image_id) == "alicia"
    [hits] = index.search([[1.0, 0.0, 0.0]], 1)
    assert hits[0].subject == "alicia"

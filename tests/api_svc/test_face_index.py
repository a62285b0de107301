"""FaceIndex: add, replace, remove, subjects and exact cosine search; the numpy rows against a
brute-force reference through random changes; the approximate path (recall against exact search
on a clustered set, changes at every size, retraining while changes go on); the tombstones of a
device that cannot remove."""

from __future__ import annotations

import math
import uuid

import numpy as np
import pytest

from api_svc.ann import AnnSettings, IvfSearch, lists_for
from api_svc.face_index import FaceIndex, IndexSettings
from api_svc.face_rows import Example, FaceBatch, empty_faces
from api_svc.index_device import IndexDevice

ALICE, BOB = uuid.uuid4(), uuid.uuid4()


def example(vector: list[float], subject_id: uuid.UUID = ALICE, name: str = "alice") -> Example:
    return Example(uuid.uuid4(), subject_id, name, np.asarray(vector, dtype="<f4").tobytes())


def exact_index(*examples: Example, dim: int = 3) -> FaceIndex:
    index = FaceIndex.build("dlib", dim, empty_faces(dim))
    index.add(FaceBatch.of(list(examples), dim))
    return index


def clustered(
    count: int, dim: int, seed: int, centres: int = 200, spread: float = 0.3, people: int = 0
):
    """Unit vectors around ``centres`` random unit centres (drawn from seed ``people``) at about
    ``spread`` from them, as photos of one person lie around each other."""
    middle = np.random.default_rng(people).normal(size=(centres, dim))
    middle /= np.linalg.norm(middle, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, centres, count)
    vectors = middle[picks] + rng.normal(scale=spread / math.sqrt(dim), size=(count, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), picks


def examples_of(vectors: np.ndarray, picks: np.ndarray) -> list[Example]:
    subjects = [uuid.UUID(int=int(p) + 1) for p in range(int(picks.max()) + 1)]
    return [
        Example(uuid.uuid4(), subjects[p], f"person-{p}", v.astype("<f4").tobytes())
        for v, p in zip(vectors, picks, strict=True)
    ]


def test_search_finds_the_nearest_examples_first_with_their_distance() -> None:
    near, far = example([2.0, 0.0, 0.0]), example([0.0, 1.0, 0.0], BOB, "bob")
    index = exact_index(far, near)
    [hits] = index.search([[1.0, 0.1, 0.0]], 2)
    assert [h.image_id for h in hits] == [near.image_id, far.image_id]
    assert [h.subject for h in hits] == ["alice", "bob"]
    query = np.array([1.0, 0.1, 0.0]) / np.linalg.norm([1.0, 0.1, 0.0])
    assert hits[0].distance == pytest.approx(np.linalg.norm(query - [1, 0, 0]), abs=1e-5)
    assert hits[1].distance == pytest.approx(np.linalg.norm(query - [0, 1, 0]), abs=1e-5)


def test_k_larger_than_the_index_and_an_empty_index() -> None:
    index = exact_index()
    assert index.search([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], 3) == [[], []]
    index.add(FaceBatch.of([example([1.0, 0.0, 0.0])], 3))
    [hits] = index.search([[0.0, 0.0, 1.0]], 5)
    assert len(hits) == 1 and hits[0].distance == pytest.approx(math.sqrt(2), abs=1e-5)


def test_remove_by_id_and_by_subject() -> None:
    a1, a2 = example([1.0, 0.0, 0.0]), example([0.9, 0.1, 0.0])
    b = example([0.0, 1.0, 0.0], BOB, "bob")
    index = exact_index(a1, a2, b)
    assert index.remove([a1.image_id, uuid.uuid4()]) == 1
    assert index.image_ids() == {a2.image_id, b.image_id}
    assert index.remove_subjects([BOB]) == 1
    assert index.image_ids() == {a2.image_id}
    [hits] = index.search([[0.0, 1.0, 0.0]], 3)
    assert [h.image_id for h in hits] == [a2.image_id]


def test_adding_an_id_again_replaces_it_and_wrong_sizes_are_skipped() -> None:
    first = example([1.0, 0.0, 0.0])
    index = exact_index(first)
    moved = Example(first.image_id, BOB, "bob", np.asarray([0, 0, 1], dtype="<f4").tobytes())
    index.add(FaceBatch.of([moved, example([1.0, 0.0])], 3))
    assert len(index) == 1
    [hits] = index.search([[0.0, 0.0, 1.0]], 1)
    assert (hits[0].subject, hits[0].distance) == ("bob", pytest.approx(0.0, abs=1e-3))


def test_renamed_subjects_answer_with_their_new_name() -> None:
    kept = example([1.0, 0.0, 0.0])
    index = exact_index(kept)
    index.rename_subjects({ALICE: "alicia", BOB: "nobody here"})
    assert index.subject_of(kept.image_id) == "alicia"
    [hits] = index.search([[1.0, 0.0, 0.0]], 1)
    assert hits[0].subject == "alicia"
    # A later insert carrying the subject's current name keeps it.
    index.add(FaceBatch.of([example([0.0, 1.0, 0.0], ALICE, "alicia")], 3))
    assert index.subject_of(kept.image_id) == "alicia"


def test_the_rows_match_a_reference_through_random_changes() -> None:
    rng = np.random.default_rng(7)
    dim = 8
    index = FaceIndex.build("dlib", dim, empty_faces(dim))
    reference: dict[uuid.UUID, tuple[np.ndarray, uuid.UUID]] = {}
    subjects = [uuid.uuid4() for _ in range(5)]
    for _ in range(60):
        action = rng.integers(0, 3)
        if action < 2 or not reference:
            batch = []
            for _ in range(int(rng.integers(1, 40))):
                subject = subjects[int(rng.integers(0, len(subjects)))]
                batch.append(example(list(rng.normal(size=dim)), subject, str(subject)))
            if reference and rng.random() < 0.5:  # replace some existing ones too
                again = list(reference)[: int(rng.integers(1, 5))]
                batch += [
                    Example(
                        i,
                        subjects[0],
                        str(subjects[0]),
                        rng.normal(size=dim).astype("<f4").tobytes(),
                    )
                    for i in again
                ]
            index.add(FaceBatch.of(batch, dim))
            for e in batch:
                reference[e.image_id] = (np.frombuffer(e.embedding, "<f4"), e.subject_id)
        elif action == 2:
            doomed = list(reference)[:: int(rng.integers(2, 6))]
            assert index.remove(doomed) == len(doomed)
            for i in doomed:
                del reference[i]
        if rng.random() < 0.1:
            gone = subjects[int(rng.integers(0, len(subjects)))]
            expected = sum(1 for _, s in reference.values() if s == gone)
            assert index.remove_subjects([gone]) == expected
            reference = {k: v for k, v in reference.items() if v[1] != gone}
        assert index.image_ids() == set(reference)
    ids = list(reference)
    vectors = np.stack([reference[i][0] for i in ids])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for row in rng.integers(0, len(ids), 20):
        [hits] = index.search([vectors[row]], 1)
        assert hits[0].image_id == ids[row]
        assert index.subject_of(ids[row]) == str(reference[ids[row]][1])


def test_the_approximate_path_recalls_what_exact_search_finds() -> None:
    dim = 32
    vectors, picks = clustered(6000, dim, seed=1)
    faces = examples_of(vectors, picks)
    settings = IndexSettings(exact_max=2000)
    approximate = FaceIndex.build("dlib", dim, FaceBatch.of(faces, dim), settings)
    exact = FaceIndex.build("dlib", dim, FaceBatch.of(faces, dim), IndexSettings(exact_max=10**9))
    assert (approximate.kind, exact.kind) == ("ivf", "exact")
    # Queries: other "photos" of the same people, as the index never saw them.
    queries, _ = clustered(300, dim, seed=2)
    found = approximate.search(queries, 1)
    truth = exact.search(queries, 1)
    agree = np.mean([a[0].image_id == t[0].image_id for a, t in zip(found, truth, strict=True)])
    assert agree >= 0.99
    # Re-ranked exactly: the distances are the exact ones.
    assert all(
        a[0].distance == pytest.approx(t[0].distance, abs=1e-5)
        for a, t in zip(found, truth, strict=True)
        if a[0].image_id == t[0].image_id
    )


def test_approximate_indexes_take_adds_and_deletes() -> None:
    dim = 16
    vectors, picks = clustered(3000, dim, seed=3)
    faces = examples_of(vectors, picks)
    index = FaceIndex.build("dlib", dim, FaceBatch.of(faces, dim), IndexSettings(exact_max=1000))
    assert index.kind == "ivf"
    newcomer = example(list(np.eye(dim)[0]), BOB, "bob")
    index.add(FaceBatch.of([newcomer], dim))
    [hits] = index.search([np.eye(dim)[0]], 1)
    assert hits[0].image_id == newcomer.image_id
    assert index.remove([newcomer.image_id, faces[5].image_id]) == 2
    [hits] = index.search([np.eye(dim)[0]], 3)
    assert newcomer.image_id not in {h.image_id for h in hits}
    [hits] = index.search([vectors[5]], 3)
    assert faces[5].image_id not in {h.image_id for h in hits}
    [hits] = index.search([vectors[6]], 1)
    assert hits[0].image_id == faces[6].image_id


def test_retraining_catches_up_with_changes_made_meanwhile() -> None:
    dim = 16
    vectors, picks = clustered(2500, dim, seed=4)
    faces = examples_of(vectors, picks)
    settings = IndexSettings(exact_max=2000)
    index = FaceIndex.build("dlib", dim, FaceBatch.of(faces, dim), settings, approximate=False)
    assert index.kind == "exact" and index.wants_retrain() == "grew past exact_max"
    late = example(list(np.eye(dim)[1]), BOB, "bob")
    original = IvfSearch.trained

    def train_then_change(*args, **kwargs):  # a change lands while the index trains
        trained = original(*args, **kwargs)
        index.add(FaceBatch.of([late], dim))
        index.remove([faces[0].image_id])
        return trained

    IvfSearch.trained = train_then_change  # type: ignore[method-assign]
    try:
        index.retrain()
    finally:
        IvfSearch.trained = original  # type: ignore[method-assign]
    assert index.kind == "ivf" and index.wants_retrain() is None
    assert index.search([np.eye(dim)[1]], 1)[0][0].image_id == late.image_id
    assert faces[0].image_id not in {h.image_id for h in index.search([vectors[0]], 5)[0]}
    # Small again: back to exact search.
    index.remove([f.image_id for f in faces[:2000]])
    assert index.wants_retrain() == "shrank under exact_max / 2"
    index.retrain()
    assert index.kind == "exact"
    assert index.search([vectors[2100]], 1)[0][0].image_id == faces[2100].image_id


def test_a_device_that_cannot_remove_keeps_tombstones_that_searches_skip() -> None:
    dim = 16
    vectors, picks = clustered(1500, dim, seed=5)
    faces = examples_of(vectors, picks)
    cannot_remove = IndexDevice("gpu:fake", False, lambda index: index)
    settings = IndexSettings(exact_max=1000, device=cannot_remove)
    index = FaceIndex.build("dlib", dim, FaceBatch.of(faces, dim), settings)
    assert index.status().device == "gpu:fake"
    doomed = [f.image_id for f in faces[:100]]
    assert index.remove(doomed) == 100
    for row in range(0, 100, 10):
        [hits] = index.search([vectors[row]], 3)
        assert not {h.image_id for h in hits} & set(doomed)
        assert len(hits) == 3
    assert index.wants_retrain() is None  # 100 of 1400 is under 10%
    index.remove([f.image_id for f in faces[100:300]])
    assert index.wants_retrain() == "tombstones"
    index.retrain()
    assert index.wants_retrain() is None


def test_status_reports_faces_bytes_and_kind() -> None:
    dim = 16
    vectors, picks = clustered(1200, dim, seed=6)
    faces = examples_of(vectors, picks)
    index = FaceIndex.build("dlib", dim, FaceBatch.of(faces, dim), IndexSettings(exact_max=1000))
    status = index.status()
    assert (status.faces, status.kind, status.device) == (1200, "ivf", "cpu")
    assert status.detail == f"IVF{lists_for(1200)},SQ4 nprobe={AnnSettings().min_nprobe}"
    assert status.nbytes >= 1200 * dim * 4


def test_lists_grow_with_the_collection() -> None:
    assert [lists_for(n) for n in (1000, 100_000, 1_000_000, 10_000_000)] == [32, 256, 1024, 4096]

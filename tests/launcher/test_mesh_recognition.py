"""Recognition against the whole collection through the real mesh and Envoy, as a CompreFace
client calls it with the demo RECOGNITION key: real photos, the in-memory index kept current
from NOTIFY (polled with a deadline, since the index follows the database asynchronously)."""

from __future__ import annotations

import pytest

from tests.helpers.rest_client import Reply
from tests.launcher.helpers import (
    GROUP,
    MeshHandle,
    detected_embedding,
    enrol,
    error,
    rest,
    until,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("empty_collection")]

RECOGNIZE = "/api/v1/recognition/recognize"


def recognize(mesh: MeshHandle, keys: dict[str, str], data: bytes, **query: str) -> Reply:
    return rest(
        mesh, keys, "POST", RECOGNIZE, files={"file": ("f.jpg", data, "image/jpeg")}, query=query
    )


def test_the_flipped_astronaut_is_recognised_as_eileen(mesh, keys, photos) -> None:
    assert enrol(mesh, keys, "Eileen", photos["astronaut"]).status == 201
    body = until(
        lambda: recognize(mesh, keys, photos["flipped"]),
        lambda b: bool(b["result"][0]["subjects"]),
    )
    [face] = body["result"]
    [best] = face["subjects"]
    assert best["subject"] == "Eileen" and best["similarity"] > 0.5
    assert set(face) == {"box", "landmarks", "subjects", "detector_score"}
    for name in ("other", GROUP):
        strangers = recognize(mesh, keys, photos[name]).json()["result"]
        assert len(strangers) > 1
        for stranger in strangers:
            [entry] = stranger["subjects"]
            assert entry["subject"] == "Eileen" and entry["similarity"] < 0.5


def test_prediction_count_ranks_every_example(mesh, keys, photos) -> None:
    assert enrol(mesh, keys, "Eileen", photos["astronaut"]).status == 201
    assert enrol(mesh, keys, "Eileen", photos["flipped"]).status == 201
    body = until(
        lambda: recognize(mesh, keys, photos["astronaut"], prediction_count="2"),
        lambda b: len(b["result"][0]["subjects"]) == 2,
    )
    subjects = body["result"][0]["subjects"]
    assert [s["subject"] for s in subjects] == ["Eileen", "Eileen"]
    assert subjects[0]["similarity"] >= subjects[1]["similarity"] > 0.5
    assert subjects[0]["similarity"] > 0.999  # the very same photo
    assert error(recognize(mesh, keys, photos["astronaut"], prediction_count="0")) == (400, 12)


def test_an_empty_collection_and_a_photo_without_a_face(mesh, keys, photos) -> None:
    body = recognize(mesh, keys, photos["astronaut"]).json()
    assert [f["subjects"] for f in body["result"]] == [[]]
    assert error(recognize(mesh, keys, photos["blank"])) == (400, 28)


def test_recognize_embeddings(mesh, keys, photos) -> None:
    assert enrol(mesh, keys, "Eileen", photos["astronaut"]).status == 201
    embedding = detected_embedding(mesh, keys, photos["flipped"])
    path = "/api/v1/recognition/embeddings/recognize"
    body = until(
        lambda: rest(mesh, keys, "POST", path, json={"embeddings": [embedding]}),
        lambda b: bool(b["result"][0]["similarities"]),
    )
    [result] = body["result"]
    assert len(result["embedding"]) == len(embedding)
    [best] = result["similarities"]
    assert best["subject"] == "Eileen" and best["similarity"] > 0.5
    wrong = rest(mesh, keys, "POST", path, json={"embeddings": [[0.1, 0.2]]})
    assert error(wrong) == (400, 26)

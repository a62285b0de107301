"""The stored-face part of the recognition API through the real mesh and Envoy, as a CompreFace
client calls it with the demo RECOGNITION key: subjects, enrolment of real photos, listing,
the stored image, verification against a stored example, deletion, CompreFace's codes, and a
write refused while a migration blocks the collection."""

from __future__ import annotations

import base64

import pytest

from tests.helpers.rest_client import call
from tests.launcher.helpers import (
    FACES,
    GROUP,
    SUBJECTS,
    detected_embedding,
    enrol,
    error,
    rest,
    sql,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("empty_collection")]


def test_enrol_list_download_and_verify(mesh, keys, photos) -> None:
    reply = enrol(mesh, keys, "astronaut", photos["astronaut"])
    assert reply.status == 201, reply.body
    body = reply.json()
    assert set(body) == {"image_id", "subject"} and body["subject"] == "astronaut"
    image_id = body["image_id"]

    assert rest(mesh, keys, "GET", SUBJECTS).json() == {"subjects": ["astronaut"]}
    listed = rest(mesh, keys, "GET", FACES, query={"page": "0", "size": "10"}).json()
    assert listed == {
        "faces": [{"image_id": image_id, "subject": "astronaut"}],
        "page_number": 0,
        "page_size": 10,
        "total_pages": 1,
        "total_elements": 1,
    }

    img = rest(mesh, keys, "GET", f"{FACES}/{image_id}/img")
    assert img.status == 200
    assert img.headers["content-type"] == "image/png"
    assert img.body == photos["astronaut"]

    same = rest(
        mesh,
        keys,
        "POST",
        f"{FACES}/{image_id}/verify",
        files={"file": ("f.png", photos["flipped"], "image/png")},
    )
    assert same.status == 200, same.body
    [face] = same.json()["result"]
    assert face["subject"] == "astronaut" and face["similarity"] > 0.5
    assert len(face["landmarks"]) == 5 and set(face["box"]) >= {"probability", "x_min"}
    other = rest(
        mesh,
        keys,
        "POST",
        f"{FACES}/{image_id}/verify",
        files={"file": ("o.jpg", photos["other"], "image/jpeg")},
    ).json()["result"]
    assert other and all(f["similarity"] < 0.5 for f in other)


def test_json_base64_enrolment_and_embedding_verification(mesh, keys, photos) -> None:
    reply = rest(
        mesh,
        keys,
        "POST",
        FACES,
        query={"subject": "b64"},
        json={"file": base64.b64encode(photos["astronaut"]).decode()},
    )
    assert reply.status == 201, reply.body
    image_id = reply.json()["image_id"]
    detected = detected_embedding(mesh, keys, photos["flipped"])
    verified = rest(
        mesh,
        keys,
        "POST",
        f"/api/v1/recognition/embeddings/faces/{image_id}/verify",
        json={"embeddings": [detected]},
    )
    assert verified.status == 200, verified.body
    [result] = verified.json()["result"]
    assert result["similarity"] > 0.5 and len(result["embedding"]) == len(detected)


def test_rename_and_merge(mesh, keys, photos) -> None:
    first = enrol(mesh, keys, "a", photos["astronaut"]).json()["image_id"]
    second = enrol(mesh, keys, "b", photos["flipped"]).json()["image_id"]
    renamed = rest(mesh, keys, "PUT", f"{SUBJECTS}/a", json={"subject": "c"})
    assert (renamed.status, renamed.json()) == (200, {"updated": True})
    assert rest(mesh, keys, "GET", SUBJECTS).json() == {"subjects": ["b", "c"]}
    merged = rest(mesh, keys, "PUT", f"{SUBJECTS}/c", json={"subject": "b"})
    assert merged.json() == {"updated": True}
    assert rest(mesh, keys, "GET", SUBJECTS).json() == {"subjects": ["b"]}
    faces = rest(mesh, keys, "GET", FACES, query={"subject": "b"}).json()["faces"]
    assert sorted(f["image_id"] for f in faces) == sorted([first, second])


def test_delete_by_id_by_ids_by_subject_and_all(mesh, keys, photos) -> None:
    ids = [enrol(mesh, keys, s, photos["astronaut"]).json()["image_id"] for s in "aabbc"]
    one = rest(mesh, keys, "DELETE", f"{FACES}/{ids[0]}")
    assert (one.status, one.json()) == (200, {"image_id": ids[0], "subject": "a"})
    assert error(rest(mesh, keys, "DELETE", f"{FACES}/{ids[0]}")) == (404, 44)
    many = rest(mesh, keys, "POST", f"{FACES}/delete", json=[ids[1], ids[0]])
    assert (many.status, many.json()) == (200, [{"image_id": ids[1], "subject": "a"}])
    by_subject = rest(mesh, keys, "DELETE", FACES, query={"subject": "b"})
    assert by_subject.json() == {"deleted": 2}
    assert rest(mesh, keys, "DELETE", FACES).json() == {"deleted": 1}
    assert rest(mesh, keys, "GET", FACES).json()["total_elements"] == 0
    assert rest(mesh, keys, "GET", SUBJECTS).json() == {"subjects": ["a", "b", "c"]}
    deleted = rest(mesh, keys, "DELETE", f"{SUBJECTS}/a")
    assert (deleted.status, deleted.json()) == (200, {"subject": "a"})
    assert rest(mesh, keys, "DELETE", SUBJECTS).json() == {"deleted": 2}


def test_compreface_error_codes(mesh, keys, photos) -> None:
    assert error(enrol(mesh, keys, "x", photos["blank"])) == (400, 28)
    assert error(enrol(mesh, keys, "x", photos[GROUP])) == (400, 31)
    assert error(enrol(mesh, keys, "a/b", photos["astronaut"])) == (400, 26)
    unknown = "9f2b1c4e-8a3d-4f6b-9c1e-2d3f4a5b6c7d"
    assert error(rest(mesh, keys, "GET", f"{FACES}/{unknown}/img")) == (404, 44)
    assert error(
        rest(
            mesh,
            keys,
            "POST",
            f"{FACES}/{unknown}/verify",
            files={"file": ("f.png", photos["astronaut"], "image/png")},
        )
    ) == (404, 44)
    assert error(rest(mesh, keys, "DELETE", f"{SUBJECTS}/nobody")) == (404, 42)
    assert error(rest(mesh, keys, "PUT", f"{SUBJECTS}/nobody", json={"subject": "x"})) == (404, 42)
    created = rest(mesh, keys, "POST", SUBJECTS, json={"subject": "dup"})
    assert (created.status, created.json()) == (201, {"subject": "dup"})
    assert error(rest(mesh, keys, "POST", SUBJECTS, json={"subject": "dup"})) == (400, 43)
    assert rest(mesh, keys, "GET", SUBJECTS).json() == {"subjects": ["dup"]}


def test_a_detection_key_is_refused(mesh, keys) -> None:
    reply = call("GET", mesh.rest + SUBJECTS, headers={"x-api-key": keys["DETECTION"]})
    assert error(reply) == (404, 10)
    assert "RECOGNITION" in reply.json()["message"]


def test_writes_are_refused_while_a_migration_blocks_the_collection(mesh, keys, photos) -> None:
    image_id = enrol(mesh, keys, "kept", photos["astronaut"]).json()["image_id"]
    sql(
        mesh,
        "UPDATE collection_state SET writes_blocked = true FROM services s"
        " WHERE s.id = collection_state.service_id AND s.api_key = $1::uuid",
        keys["RECOGNITION"],
    )
    assert error(enrol(mesh, keys, "new", photos["astronaut"])) == (405, 32)
    assert error(rest(mesh, keys, "POST", SUBJECTS, json={"subject": "new"})) == (405, 32)
    assert error(rest(mesh, keys, "DELETE", f"{FACES}/{image_id}")) == (405, 32)
    assert error(rest(mesh, keys, "DELETE", SUBJECTS)) == (405, 32)
    assert rest(mesh, keys, "GET", SUBJECTS).json() == {"subjects": ["kept"]}
    assert [f["image_id"] for f in rest(mesh, keys, "GET", FACES).json()["faces"]] == [image_id]

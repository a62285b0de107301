"""Every recognition call of the sync client against the real mesh, through Envoy, with real
photos: detection, enrolment, recognition, verification, embeddings, subjects and faces."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from facegrid_client import Facegrid, floats, pb
from PIL import Image

from .conftest import Collection, Mesh, until

pytestmark = pytest.mark.integration


def two_people(people: dict[str, list[Path]]) -> tuple[str, str]:
    first, second = list(people)[:2]
    return first, second


def test_detect_takes_a_path_bytes_or_a_numpy_array(mesh: Mesh, collection: Collection, people):
    photo = people[next(iter(people))][0]
    array = np.asarray(Image.open(photo).convert("RGB"))
    with Facegrid(mesh.target, api_key=collection.keys["DETECTION"]) as fg:
        boxes = []
        for image in (photo, str(photo), photo.read_bytes(), array):
            [face] = fg.detect(image).result
            boxes.append((face.box.x_min, face.box.y_min, face.box.x_max, face.box.y_max))
            assert 0.5 < face.box.probability <= 1
    assert boxes[0] == boxes[1] == boxes[2]
    assert all(abs(a - b) <= 3 for a, b in zip(boxes[0], boxes[3], strict=True)), boxes


def test_detect_with_plugins_and_status(mesh: Mesh, collection: Collection, group_photo: Path):
    with Facegrid(mesh.target, api_key=collection.keys["DETECTION"]) as fg:
        reply = fg.detect(
            group_photo, face_plugins=["age", "gender", "landmarks", "calculator"], status=True
        )
        limited = fg.detect(group_photo, limit=1, face_plugins="pose")
    assert len(reply.result) == 2
    for face in reply.result:
        assert face.gender.value in ("male", "female")
        assert face.age.low <= face.age.high
        assert len(face.landmarks.values) == 5
        assert len(face.embedding.values) == 128
        assert "detector" in face.execution_time
    assert "calculator" in reply.plugins_versions
    [face] = limited.result
    assert face.HasField("pose") and not face.HasField("age")


def test_enrol_recognize_and_verify_against_a_stored_face(
    mesh: Mesh, collection: Collection, people
):
    first, second = two_people(people)
    with Facegrid(mesh.target, api_key=collection.keys["RECOGNITION"]) as fg:
        added = fg.add_face(first, people[first][0])
        assert added.subject == first and len(added.image_id) == 36
        fg.add_face(second, people[second][0].read_bytes(), det_prob_threshold=0.5)
        assert set(fg.list_subjects()) >= {first, second}

        reply = until(
            lambda: fg.recognize(people[first][1], prediction_count=2),
            lambda r: r.result[0].subjects[0].subject == first,
        )
        [face] = reply.result
        assert face.subjects[0].similarity > 0.5
        assert [s.subject for s in face.subjects] == [first, second]

        only = fg.recognize(people[first][1], similarity_threshold=0.99999, rank_by_subject=True)
        assert list(only.result[0].subjects) == []

        [match] = fg.verify_face(added.image_id, people[first][2]).result
        assert match.subject == first and match.similarity > 0.5
        [other] = fg.verify_face(added.image_id, people[second][1]).result
        assert other.similarity < match.similarity


def test_verify_two_images(mesh: Mesh, collection: Collection, people):
    first, second = two_people(people)
    with Facegrid(mesh.target, api_key=collection.keys["VERIFICATION"]) as fg:
        same = fg.verify(people[first][0], people[first][1], status=True)
        different = fg.verify(people[first][0], people[second][0])
    [result] = same.result
    assert result.source_image_face.box.probability > 0.5
    assert result.face_matches[0].similarity > different.result[0].face_matches[0].similarity
    assert "calculator" in result.plugins_versions


def test_embedding_calls(mesh: Mesh, collection: Collection, people):
    first, second = two_people(people)
    with Facegrid(mesh.target, api_key=collection.keys["DETECTION"]) as fg:
        vectors = {
            person: floats(
                fg.detect(people[person][1], face_plugins="calculator").result[0].embedding
            )
            for person in (first, second)
        }
    recognition = Facegrid(mesh.target, api_key=collection.keys["RECOGNITION"])
    with recognition as fg:
        stored = fg.add_face(first, people[first][2])
        [best] = until(
            lambda: fg.recognize_embeddings([vectors[first]], prediction_count=1).result,
            lambda r: bool(r[0].similarities) and r[0].similarities[0].subject == first,
        )
        assert len(best.embedding) == 128
        against = fg.verify_embeddings_against_face(
            stored.image_id, [np.asarray(vectors[second]), vectors[first]]
        ).result
        assert against[0].similarity >= against[1].similarity
        assert list(against[0].embedding) == pytest.approx(vectors[first], abs=1e-6)
    with Facegrid(mesh.target, api_key=collection.keys["VERIFICATION"]) as fg:
        result = fg.verify_embeddings(vectors[first], [vectors[second], vectors[first]]).result
    assert result[0].similarity == pytest.approx(1.0, abs=1e-4)
    assert result[1].similarity < result[0].similarity


def test_subjects_and_faces(mesh: Mesh, collection: Collection, admin_token: str, people):
    person = list(people)[2]
    photos = people[person]
    with Facegrid(mesh.target, api_key=collection.keys["RECOGNITION"]) as fg:
        assert fg.create_subject("Nobody Yet") == "Nobody Yet"
        ids = [fg.add_face(person, photo).image_id for photo in photos[:3]]

        page = fg.list_faces(subject=person, size=2)
        assert (page.total_elements, page.total_pages, len(page.faces)) == (3, 2, 2)
        second = fg.list_faces(subject=person, size=2, page=1)
        assert {f.image_id for f in [*page.faces, *second.faces]} == set(ids)

        image = fg.face_image(ids[0])
        assert image.data == photos[0].read_bytes()
        assert image.content_type == "image/jpeg"

        assert fg.rename_subject(person, "Renamed") is True
        assert {f.subject for f in fg.list_faces(subject="Renamed").faces} == {"Renamed"}
        deleted = fg.delete_face(ids[0])
        assert (deleted.image_id, deleted.subject) == (ids[0], "Renamed")
        refs = fg.delete_faces_by_ids([ids[1], "00000000-0000-0000-0000-000000000000"])
        assert [(r.image_id, r.subject) for r in refs] == [(ids[1], "Renamed")]
        assert fg.delete_faces(subject="Renamed") == 1
        assert fg.delete_subject("Renamed") == "Renamed"
        assert "Renamed" not in fg.list_subjects()

        scratch = fg.with_options(api_key=scratch_key(mesh, collection, admin_token))
        scratch.add_face("One", photos[0])
        scratch.add_face("Two", photos[1])
        assert sorted(scratch.list_subjects()) == ["One", "Two"]
        assert scratch.delete_subjects() == 2
        assert scratch.list_subjects() == []
        scratch.create_subject("Three")
        scratch.add_face("Three", photos[2])
        assert scratch.delete_faces() == 1


def scratch_key(mesh: Mesh, collection: Collection, token: str) -> str:
    """The key of a new, empty recognition service of the collection's application."""
    with Facegrid(mesh.target, token=token) as fg:
        service = fg.admin.create_service(collection.application_id, "scratch", "RECOGNITION")
    return service.api_key


def test_grey_and_rgba_arrays_are_images(mesh: Mesh, collection: Collection, people):
    photo = Image.open(people[next(iter(people))][0])
    with Facegrid(mesh.target, api_key=collection.keys["DETECTION"]) as fg:
        grey = fg.detect(np.asarray(photo.convert("L"))).result
        rgba = fg.detect(np.asarray(photo.convert("RGBA"))).result
        png = io.BytesIO()
        photo.save(png, format="PNG")
        from_png = fg.detect(png.getvalue()).result
    assert len(grey) == len(rgba) == len(from_png) == 1


def test_direct_to_the_services_as_inside_a_cluster(
    mesh: Mesh, collection: Collection, admin_token: str, people
):
    person = list(people)[3]
    with Facegrid(
        f"dns:///{mesh.api_target}",
        admin_target=mesh.admin_target,
        api_key=collection.keys["RECOGNITION"],
        token=admin_token,
        load_balancing="round_robin",
    ) as fg:
        fg.add_face(person, people[person][0])
        assert person in fg.list_subjects()
        service = fg.admin.get_service(collection.application_id, collection.recognition_id)
        assert service.api_key == collection.keys["RECOGNITION"]
        assert service.subject_count >= 1
        assert service.type == pb.common.SERVICE_TYPE_RECOGNITION

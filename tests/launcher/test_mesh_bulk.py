"""Bulk enrolment through the real mesh and Envoy: the BulkAddFaces stream over gRPC with good
and bad items (real photos of ../shared/faces), its REST form and body limit, and the importer
(``python -m facegrid_import``) with an interruption and a resume. The in-memory index follows
the database asynchronously, so recognition is polled with a deadline."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from facegrid.recognition.v1 import recognition_service_pb2 as pb
from facegrid.recognition.v1 import recognition_service_pb2_grpc as pb_grpc
from tests.helpers.photos import shared_faces
from tests.helpers.rest_client import call
from tests.helpers.wait import wait_for_process
from tests.launcher.helpers import (
    FACES,
    REPO,
    SUBJECTS,
    MeshHandle,
    detected_embedding,
    error,
    rest,
    until,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("empty_collection")]

BULK = "/api/v1/recognition/faces/bulk"
RECOGNIZE = "/api/v1/recognition/recognize"


def identities() -> dict[str, list[Path]]:
    """Photo paths by person, from the manifest."""
    root = shared_faces()
    manifest = json.loads((root / "manifest.json").read_text())
    return {
        person: [root / entry["file"] for entry in entries]
        for person, entries in manifest["identities"].items()
    }


def group_photo() -> bytes:
    return (shared_faces() / "groups" / "02_2faces.jpg").read_bytes()


def recognised_as(mesh: MeshHandle, keys: dict[str, str], data: bytes, subject: str) -> str:
    """The best subject of the face in ``data``, polled until it is ``subject`` or 15 s pass."""
    body = until(
        lambda: rest(mesh, keys, "POST", RECOGNIZE, files={"file": ("f.jpg", data, "image/jpeg")}),
        lambda b: (
            bool(b["result"] and b["result"][0]["subjects"])
            and b["result"][0]["subjects"][0]["subject"] == subject
        ),
    )
    [face] = body["result"]
    best = face["subjects"][0]
    assert best["similarity"] > 0.5, best
    return str(best["subject"])


def face_count(mesh: MeshHandle, keys: dict[str, str]) -> int:
    listed = rest(mesh, keys, "GET", FACES, query={"size": "1"})
    assert listed.status == 200, listed.body
    return int(listed.json()["total_elements"])


def test_the_stream_stores_every_good_item_and_no_bad_one(mesh, keys, photos) -> None:
    people = {p: files for p, files in identities().items() if len(files) >= 4}
    chosen = sorted(people)[:3]
    items: list[pb.BulkAddFacesRequest] = []
    for person in chosen:
        for path in people[person][:2]:
            items.append(
                pb.BulkAddFacesRequest(
                    client_key=f"{person}/{path.name}",
                    subject=person,
                    file=path.read_bytes(),
                    content_type="image/jpeg",
                )
            )
    imported = sorted(people)[3]
    vector = detected_embedding(mesh, keys, people[imported][0].read_bytes())
    items.append(
        pb.BulkAddFacesRequest(
            client_key="imported",
            subject=imported,
            embedding=pb.PrecomputedEmbedding(values=vector, calculator="dlib-resnet-v1"),
        )
    )
    good = len(items)
    bad = {
        "blank": pb.BulkAddFacesRequest(subject="blank", file=photos["blank"]),
        "group": pb.BulkAddFacesRequest(subject="group", file=group_photo()),
        "junk": pb.BulkAddFacesRequest(subject="junk", file=b"not an image at all"),
        "unknown": pb.BulkAddFacesRequest(
            subject="unknown",
            embedding=pb.PrecomputedEmbedding(values=vector, calculator="no-such-calculator"),
        ),
        "short": pb.BulkAddFacesRequest(
            subject="short",
            embedding=pb.PrecomputedEmbedding(values=vector[:5], calculator="dlib-resnet-v1"),
        ),
    }
    for key, item in bad.items():
        item.client_key = key
        items.insert(len(items) // 2, item)

    with grpc.insecure_channel(mesh.envoy_grpc) as channel:
        stub = pb_grpc.RecognitionServiceStub(channel)
        results = list(
            stub.BulkAddFaces(
                iter(items), metadata=[("x-api-key", keys["RECOGNITION"])], timeout=120
            )
        )
    assert sorted(r.index for r in results) == list(range(len(items)))
    by_key = {r.client_key: r for r in results}
    for index, item in enumerate(items):
        assert by_key[item.client_key].index == index
    errors = {k: (r.error.reason, r.error.code) for k, r in by_key.items() if r.HasField("error")}
    assert errors == {
        "blank": ("NO_FACE_DETECTED", 28),
        "group": ("TOO_MANY_FACES", 31),
        "junk": ("UNSUPPORTED_IMAGE_FORMAT", 21),
        "unknown": ("UNKNOWN_CALCULATOR", 26),
        "short": ("WRONG_EMBEDDING_SIZE", 26),
    }
    assert sum(r.HasField("image_id") for r in results) == good
    assert face_count(mesh, keys) == good
    subjects = rest(mesh, keys, "GET", SUBJECTS).json()["subjects"]
    assert sorted(subjects) == sorted([*chosen, imported])
    for person in [*chosen, imported]:
        held_out = people[person][-1].read_bytes()
        assert recognised_as(mesh, keys, held_out, person) == person


def test_the_rest_form_answers_an_array_of_results(mesh, keys, photos) -> None:
    small = sorted(
        (path for files in identities().values() for path in files[:1]),
        key=lambda path: path.stat().st_size,
    )[:3]
    body = [
        {"subject": path.parent.name, "file": base64.b64encode(path.read_bytes()).decode()}
        for path in small
    ]
    body.append({"subject": "blank", "file": base64.b64encode(photos["blank"]).decode()})
    body.append({"subject": "bad name/", "file": body[0]["file"], "client_key": "k"})
    reply = rest(mesh, keys, "POST", BULK, json=body)
    assert reply.status == 200, reply.body
    results = sorted(reply.json(), key=lambda r: r["index"])
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["subject"] for r in results] == [item["subject"] for item in body]
    assert all(set(r) == {"index", "client_key", "subject", "image_id"} for r in results[:3])
    assert results[3]["error"] == {
        "reason": "NO_FACE_DETECTED",
        "code": 28,
        "message": "No face is found in the given image",
        "http_status": 400,
    }
    assert (results[4]["client_key"], results[4]["error"]["code"]) == ("k", 26)
    assert face_count(mesh, keys) == 3
    stored = {r["image_id"] for r in results[:3]}
    listed = rest(mesh, keys, "GET", FACES).json()["faces"]
    assert {f["image_id"] for f in listed} == stored

    assert error(call("POST", mesh.rest + BULK, json=body)) == (400, 20)  # no API key
    assert error(rest(mesh, keys, "POST", BULK, json={"subject": "not an array"})) == (400, 26)


def test_the_rest_form_has_the_image_routes_body_limit(mesh, keys) -> None:
    chunk = base64.b64encode(bytes(700 * 1024)).decode()
    body = [{"subject": f"p{i}", "file": chunk} for i in range(11)]  # about 10.5 MB of JSON
    assert len(json.dumps(body)) > 10 * 1024 * 1024
    reply = rest(mesh, keys, "POST", BULK, json=body)
    assert error(reply) == (413, 26)
    assert "10 MB" in reply.json()["message"]
    assert face_count(mesh, keys) == 0


def build_folder(root: Path) -> tuple[int, dict[str, bytes]]:
    """``root/<person>/<photo>`` from the shared photos (every photo but each person's last,
    kept to recognise), plus one group photo under ``root/group``; the number of one-face
    files and the held-out photos."""
    held_out = {}
    count = 0
    for person, files in identities().items():
        if len(files) < 3:
            continue
        (root / person).mkdir(parents=True)
        for path in files[:-1]:
            shutil.copy(path, root / person / path.name)
            count += 1
        held_out[person] = files[-1].read_bytes()
    (root / "group").mkdir()
    (root / "group" / "two.jpg").write_bytes(group_photo())
    return count, held_out


def test_the_importer_resumes_after_an_interruption(
    mesh, keys, short_tmp: Path, tmp_path: Path
) -> None:
    root = tmp_path / "people"
    count, held_out = build_folder(root)
    state = short_tmp / "import-state.jsonl"
    argv = [
        sys.executable,
        "-m",
        "facegrid_import",
        str(root),
        "--api-key",
        keys["RECOGNITION"],
        "--url",
        mesh.envoy_grpc,
        "--state",
        str(state),
        "--no-progress",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(
        [*argv, "--concurrency", "1"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_process(
            first,
            lambda: state.exists() and len(state.read_text().splitlines()) >= 3,
            120,
            "the importer to store three files",
        )
    except AssertionError as failed:
        first.kill()
        raise AssertionError(f"{failed}\n{first.communicate()[0].decode()}") from None
    first.send_signal(signal.SIGINT)
    out = first.communicate(timeout=120)[0].decode()
    assert first.returncode == 130, out
    assert "interrupted: rerun the same command to resume" in out
    done_first = len(state.read_text().splitlines())
    assert 3 <= done_first < count
    assert face_count(mesh, keys) == done_first

    second = subprocess.run(
        [*argv, "--concurrency", "4"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert second.returncode == 1, second.stdout + second.stderr  # the group photo
    assert f"{done_first} files already stored" in second.stdout + second.stderr
    assert "FAILED group/two.jpg: TOO_MANY_FACES (code 31)" in second.stdout
    assert f"stored {count - done_first}, failed 1" in second.stdout
    assert len(state.read_text().splitlines()) == count
    assert face_count(mesh, keys) == count  # nothing twice
    person = sorted(held_out)[0]
    assert recognised_as(mesh, keys, held_out[person], person) == person
    assert "group" not in rest(mesh, keys, "GET", SUBJECTS).json()["subjects"]

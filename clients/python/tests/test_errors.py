"""Every kind of failure raises FacegridError, against the real mesh: bad input, unknown and
wrong keys, unknown ids, missing or weak administration rights, duplicates, nothing listening,
a deadline passed."""

from __future__ import annotations

import socket
import uuid

import grpc
import numpy as np
import pytest
from facegrid_client import Facegrid, FacegridError

from .conftest import Collection, Mesh

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"


def raised(call) -> FacegridError:
    with pytest.raises(FacegridError) as error:
        call()
    return error.value


def test_bad_input_is_invalid_argument_with_compreface_code(mesh: Mesh, collection: Collection):
    with Facegrid(mesh.target, api_key=collection.keys["RECOGNITION"]) as fg:
        blank = np.zeros((200, 200), dtype=np.uint8)
        error = raised(lambda: fg.add_face("Ann", blank))
        bad_name = raised(lambda: fg.create_subject("a/b"))
        bad_size = raised(lambda: fg.list_faces(size=0))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.reason, error.compreface_code, error.metadata["field"]) == (
        "NO_FACE_DETECTED",
        28,
        "file",
    )
    assert "No face is found" in error.message and "NO_FACE_DETECTED" in str(error)
    assert bad_name.code == grpc.StatusCode.INVALID_ARGUMENT and bad_name.compreface_code == 26
    assert (bad_size.code, bad_size.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_PAGE_SIZE",
    )


def test_keys_unknown_missing_and_of_the_wrong_type(mesh: Mesh, collection: Collection, people):
    photo = people[next(iter(people))][0]
    with Facegrid(mesh.target, api_key=str(uuid.uuid4())) as unknown:
        error = raised(unknown.list_subjects)
    assert (error.code, error.reason, error.compreface_code) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "UNKNOWN_API_KEY",
        10,
    )
    assert error.http_status == 404
    with Facegrid(mesh.target) as nobody:
        missing = raised(nobody.list_subjects)
    assert (missing.code, missing.reason) == (grpc.StatusCode.UNAUTHENTICATED, "MISSING_API_KEY")
    with Facegrid(mesh.target, api_key=collection.keys["DETECTION"]) as detection:
        wrong = raised(lambda: detection.recognize(photo))
    assert (wrong.code, wrong.reason) == (grpc.StatusCode.PERMISSION_DENIED, "WRONG_SERVICE_TYPE")
    assert wrong.metadata["service_type"] == "DETECTION"


def test_unknown_ids_are_not_found(mesh: Mesh, collection: Collection, admin_token: str):
    with Facegrid(mesh.target, api_key=collection.keys["RECOGNITION"]) as fg:
        face = raised(lambda: fg.face_image(str(uuid.uuid4())))
        subject = raised(lambda: fg.delete_subject("no such subject"))
    assert (face.code, face.reason, face.compreface_code) == (
        grpc.StatusCode.NOT_FOUND,
        "FACE_NOT_FOUND",
        44,
    )
    assert subject.code == grpc.StatusCode.NOT_FOUND
    with Facegrid(mesh.target, token=admin_token) as fg:
        app = raised(lambda: fg.admin.get_application(str(uuid.uuid4())))
    assert app.code == grpc.StatusCode.NOT_FOUND and app.reason


def test_administration_rights(mesh: Mesh, admin_token: str):
    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    with Facegrid(mesh.target) as fg:
        no_token = raised(fg.admin.list_applications)
        fg.admin.sign_up(email, PASSWORD, "Bo")
        # A taken e-mail signs up like a new one (no enumeration); the account is unchanged.
        taken = fg.admin.sign_up(email, PASSWORD + "?", "Someone else")
        wrong = raised(lambda: fg.admin.sign_in(email, "not the password"))
        user = fg.with_options(token=fg.admin.sign_in(email, PASSWORD).access_token)
        user_name = user.admin.current_user().first_name
        too_low = raised(lambda: user.admin.create_application("not allowed"))
        expired = fg.with_options(token="not.a.token")
        bad_token = raised(expired.admin.current_user)
    assert no_token.code == grpc.StatusCode.UNAUTHENTICATED
    assert taken.email == email
    assert user_name == "Bo"
    assert (wrong.code, wrong.reason) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")
    assert too_low.code == grpc.StatusCode.PERMISSION_DENIED and too_low.reason
    assert bad_token.code == grpc.StatusCode.UNAUTHENTICATED


def test_nothing_listening_is_unavailable_without_a_reason():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        with Facegrid(f"127.0.0.1:{port}", api_key=str(uuid.uuid4()), retry=None) as fg:
            error = raised(fg.list_subjects)
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert (error.reason, error.compreface_code, error.node) == (None, None, None)


def test_a_passed_deadline_is_deadline_exceeded(mesh: Mesh, collection: Collection, people):
    photo = people[next(iter(people))][0]
    with Facegrid(mesh.target, api_key=collection.keys["DETECTION"], timeout=1e-6) as fg:
        error = raised(lambda: fg.detect(photo))
        assert error.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert len(fg.with_options(timeout=60).detect(photo).result) == 1

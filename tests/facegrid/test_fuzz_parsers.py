"""Property-based fuzzing of the request parsers and field checks (hypothesis, fixed example
counts, derandomised): whatever a client sends, each either accepts it with its documented
guarantees or refuses it with a typed 400-type error - never another exception."""

from __future__ import annotations

import unicodedata
from pathlib import PurePosixPath

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from admin_svc import validation
from admin_svc.throttle import client_address
from api_svc.auth import parse_key
from api_svc.embedding_input import checked_vector
from api_svc.image_body import ALLOWED_EXTENSIONS, BodyLimits, read_images
from api_svc.subjects import MAX_NAME_CHARS, check_name
from facegrid.errors import ServiceError
from tests.helpers.rest_client import multipart

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
LIMITS = BodyLimits(max_file_bytes=2000, max_request_bytes=6000)


class Body:
    def __init__(self, content_type: str, data: bytes) -> None:
        self.content_type = content_type
        self.data = data


def _client_error(error: ServiceError) -> None:
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT, error
    assert error.compreface_code in (21, 26), error
    assert error.message


CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "",
            "image/png",
            "application/octet-stream",
            "application/json",
            "multipart/form-data",
            "multipart/form-data; boundary=B",
            'multipart/form-data; boundary="x y"',
            "text/plain",
        ]
    ),
    st.text(max_size=60),
)


@FUZZ
@given(content_type=CONTENT_TYPES, data=st.binary(max_size=8000))
def test_any_body_is_read_or_refused_as_a_client_error(content_type: str, data: bytes) -> None:
    for fields in (("file",), ("source_image", "target_image")):
        try:
            images = read_images(Body(content_type, data), fields, LIMITS)
        except ServiceError as error:
            _client_error(error)
            continue
        assert len(images) == len(fields)
        assert all(len(image) <= LIMITS.max_file_bytes for image in images)


FILENAMES = st.text(alphabet="abcXYZ019._- ", max_size=20)


@FUZZ
@given(
    files=st.dictionaries(
        st.sampled_from(["file", "other", "source_image"]),
        st.tuples(FILENAMES, st.binary(max_size=3000)),
        max_size=3,
    ),
    cut=st.integers(min_value=0, max_value=50),
)
def test_multipart_bodies_give_back_their_file_or_a_client_error(
    files: dict[str, tuple[str, bytes]], cut: int
) -> None:
    body, ctype = multipart(
        {name: (filename, data, "image/png") for name, (filename, data) in files.items()}
    )
    truncated = body[: len(body) - cut]
    suffix = PurePosixPath(files["file"][0]).suffix.lower().lstrip(".") if "file" in files else ""
    readable = (
        "file" in files
        and cut <= 2  # only the final CRLF is gone: the closing delimiter is whole
        and len(files["file"][1]) <= LIMITS.max_file_bytes
        and len(truncated) <= LIMITS.max_request_bytes
        and (not suffix or suffix in ALLOWED_EXTENSIONS)
    )
    try:
        [image] = read_images(Body(ctype, truncated), ("file",), LIMITS)
    except ServiceError as error:
        _client_error(error)
        assert not readable, error
        return
    assert readable and image == files["file"][1]


def _valid_name(name: str) -> bool:
    return (
        1 <= len(name) <= MAX_NAME_CHARS
        and not name.isspace()
        and not any(unicodedata.category(c) == "Cc" for c in name)
        and not set(";/\\") & set(name)
    )


@FUZZ
@given(name=st.text(max_size=80))
def test_a_subject_name_is_accepted_exactly_when_it_is_valid(name: str) -> None:
    try:
        accepted = check_name(name)
    except ServiceError as error:
        _client_error(error)
        assert not _valid_name(name)
        return
    assert accepted == name and _valid_name(name)


@FUZZ
@given(value=st.text(max_size=300))
def test_admin_fields_are_accepted_clean_or_refused(value: str) -> None:
    for check in (
        validation.email,
        lambda v: validation.display_name(v, "name"),
        lambda v: validation.uuid_field(v, "id"),
        lambda v: validation.date_field(v, "day"),
    ):
        try:
            result = check(value)
        except ServiceError as error:
            _client_error(error)
            continue
        assert not any(unicodedata.category(c) == "Cc" for c in str(result))


@FUZZ
@given(values=st.lists(st.one_of(st.floats(), st.integers(), st.text(max_size=3)), max_size=10))
def test_embeddings_are_checked_numbers_or_refused(values: list[object]) -> None:
    try:
        vector = checked_vector(values, 4, "embedding")
    except ServiceError as error:
        _client_error(error)
        return
    assert len(vector) == 4 and any(vector)


@FUZZ
@given(text=st.text(max_size=60), peer=st.text(max_size=40))
def test_keys_and_addresses_parse_or_are_none(text: str, peer: str) -> None:
    key = parse_key(text)
    assert key is None or key.hex == text.strip().replace("-", "").lower()
    address = client_address((("x-facegrid-client-address", text),), peer)
    assert address is None or address == address.strip()

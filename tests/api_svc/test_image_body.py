"""Images out of multipart, JSON base64 and raw bodies, with CompreFace's limits and codes."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import pytest

from api_svc.image_body import BodyLimits, read_images
from facegrid.errors import ServiceError
from tests.helpers.rest_client import multipart

LIMITS = BodyLimits(max_file_bytes=100, max_request_bytes=1000)
PNG = b"\x89PNG\r\n\x1a\n" + b"\r\n--x\r\n" * 3


@dataclass
class Body:
    content_type: str
    data: bytes


def form(**files: bytes) -> Body:
    data, ctype = multipart({name: (f"{name}.png", v, "image/png") for name, v in files.items()})
    return Body(ctype, data)


def fails(body: Body, fields=("file",)) -> ServiceError:
    with pytest.raises(ServiceError) as raised:
        read_images(body, fields, LIMITS)
    return raised.value


def test_multipart_parts_come_back_byte_for_byte_in_field_order() -> None:
    body = form(target_image=b"T" + PNG, source_image=PNG, other=b"x")
    assert read_images(body, ("source_image", "target_image"), LIMITS) == [PNG, b"T" + PNG]


def test_multipart_without_the_part_names_it() -> None:
    error = fails(form(image=PNG))
    assert (error.compreface_code, error.message) == (26, "Required part file is missing")


def test_a_file_name_with_a_non_image_extension_is_code_21() -> None:
    data, ctype = multipart({"file": ("notes.pdf", PNG, "application/pdf")})
    assert fails(Body(ctype, data)).compreface_code == 21


def test_a_file_name_without_extension_is_accepted() -> None:
    data, ctype = multipart({"file": ("blob", PNG, "application/octet-stream")})
    assert read_images(Body(ctype, data), ("file",), LIMITS) == [PNG]


def test_multipart_without_boundary_is_refused() -> None:
    assert fails(Body("multipart/form-data", b"--x\r\n")).reason == "MALFORMED_MULTIPART"


@pytest.mark.parametrize("dropped", [4, 10, 40, 45])
def test_a_truncated_multipart_body_is_refused(dropped: int) -> None:
    # The closing delimiter (CRLF, --, 32-character boundary, --, CRLF) is 40 bytes: without
    # all of it, the last part cannot be known to be whole.
    body = form(file=PNG)
    error = fails(Body(body.content_type, body.data[:-dropped]))
    assert (error.compreface_code, error.reason) == (26, "MALFORMED_MULTIPART")
    assert "truncated" in error.message


def test_a_multipart_body_that_is_not_one_is_refused() -> None:
    body = form(file=PNG)
    error = fails(Body(body.content_type, b"garbage" + body.data))
    assert (error.compreface_code, error.reason) == (26, "MALFORMED_MULTIPART")


def test_two_parts_of_one_name_are_refused() -> None:
    one, ctype = multipart({"file": ("a.png", PNG, "image/png")})
    boundary = ctype.split("boundary=")[1].encode()
    first_part = one[: one.rindex(b"--" + boundary + b"--")]
    error = fails(Body(ctype, first_part + one))
    assert (error.compreface_code, error.reason) == (26, "DUPLICATE_PART")
    assert error.message == "the multipart body has two file parts; send one"


def test_json_base64_with_and_without_data_url_prefix() -> None:
    encoded = base64.b64encode(PNG).decode()
    document = {"source_image": encoded, "target_image": f"data:image/png;base64,{encoded}"}
    body = Body("application/json; charset=utf-8", json.dumps(document).encode())
    assert read_images(body, ("source_image", "target_image"), LIMITS) == [PNG, PNG]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"file": "***"}', "INVALID_BASE64"),
        (b'{"file": 12}', "INVALID_BASE64"),
        (b'["file"]', "MALFORMED_JSON"),
        (b'{"file": ', "MALFORMED_JSON"),
        (b"{}", "MISSING_FILE"),
    ],
)
def test_bad_json_bodies_are_code_26(data: bytes, reason: str) -> None:
    error = fails(Body("application/json", data))
    assert (error.compreface_code, error.reason) == (26, reason)


@pytest.mark.parametrize("content_type", ["", "image/jpeg", "application/octet-stream"])
def test_raw_bytes_are_the_one_image(content_type: str) -> None:
    assert read_images(Body(content_type, PNG), ("file",), LIMITS) == [PNG]


def test_raw_bytes_cannot_carry_two_images() -> None:
    assert fails(Body("image/png", PNG), ("a", "b")).reason == "UNSUPPORTED_CONTENT_TYPE"


def test_other_content_types_are_refused() -> None:
    assert fails(Body("text/plain", PNG)).reason == "UNSUPPORTED_CONTENT_TYPE"


def test_file_and_request_limits() -> None:
    too_big_file = fails(form(file=b"x" * 101))
    assert (too_big_file.compreface_code, too_big_file.reason) == (26, "FILE_TOO_LARGE")
    assert "the limit is" in too_big_file.message
    assert read_images(form(file=b"x" * 100), ("file",), LIMITS) == [b"x" * 100]
    assert fails(Body("image/png", b"x" * 1001)).reason == "REQUEST_TOO_LARGE"


def test_a_base64_file_is_measured_after_decoding() -> None:
    encoded = base64.b64encode(b"x" * 90).decode()  # 120 characters, over the file limit
    body = Body("application/json", json.dumps({"file": encoded}).encode())
    assert read_images(body, ("file",), LIMITS) == [b"x" * 90]

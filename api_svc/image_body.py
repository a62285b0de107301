"""Images out of a request body (``google.api.HttpBody``), as CompreFace accepts them.

Envoy hands the raw body and its full Content-Type to the RPC; this module reads
- ``multipart/form-data``: the parts named by the RPC (``file``; ``source_image`` and
  ``target_image``),
- ``application/json``: an object whose members of those names are base64 strings (a
  ``data:...;base64,`` prefix is accepted),
- anything else that says it is an image (``image/*``, ``application/octet-stream``, or no
  content type, as gRPC clients may send): the body is the one image.

Errors (CompreFace code 26 unless said): a body over the request limit, a file over the file limit,
a missing part, bad base64, malformed multipart or JSON, and a file name whose extension is not
an image format CompreFace accepts (code 21).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from pathlib import PurePosixPath
from typing import Protocol

from facegrid.errors import ServiceError, invalid_argument

#: File name extensions CompreFace accepts.
ALLOWED_EXTENSIONS = frozenset({"jpeg", "jpg", "ico", "png", "bmp", "gif", "tif", "tiff", "webp"})
#: CompreFace's code for a file extension it does not accept.
EXTENSION_NOT_ALLOWED = 21
_MB = 1024 * 1024


class HttpBody(Protocol):
    """The fields of ``google.api.HttpBody`` read here."""

    @property
    def content_type(self) -> str: ...
    @property
    def data(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """Size limits of a request body."""

    max_file_bytes: int
    """Largest image, bytes (after base64 decoding)."""
    max_request_bytes: int
    """Largest body, bytes."""


def _header_params(name: str, value: str) -> Message:
    message = Message()
    message[name] = value
    return message


def _too_large(what: str, size: int, limit: int, reason: str) -> ServiceError:
    return invalid_argument(
        reason,
        f"{what} is {size / _MB:.1f} MB; the limit is {limit / _MB:g} MB",
        field=what,
    )


def _missing(field: str) -> ServiceError:
    return invalid_argument("MISSING_FILE", f"Required part {field} is missing", field=field)


def _check_extension(field: str, filename: str | None) -> None:
    if not filename:
        return
    suffix = PurePosixPath(filename).suffix.lower().lstrip(".")
    if suffix and suffix not in ALLOWED_EXTENSIONS:
        raise invalid_argument(
            "FILE_EXTENSION_NOT_ALLOWED",
            f"File extension .{suffix} of {field} is not allowed; allowed:"
            f" {', '.join(sorted(ALLOWED_EXTENSIONS))}",
            EXTENSION_NOT_ALLOWED,
            field=field,
        )


def _multipart(data: bytes, content_type: str, fields: Sequence[str]) -> dict[str, bytes]:
    boundary = _header_params("content-type", content_type).get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise invalid_argument("MALFORMED_MULTIPART", "multipart body without a boundary")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    chunks = (b"\r\n" + data).split(delimiter)
    found: dict[str, bytes] = {}
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise invalid_argument("MALFORMED_MULTIPART", "a multipart part has no headers")
        disposition = ""
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-disposition":
                disposition = value.strip()
        params = _header_params("content-disposition", disposition)
        name = params.get_param("name", header="content-disposition")
        if isinstance(name, str) and name in fields and name not in found:
            filename = params.get_param("filename", header="content-disposition")
            _check_extension(name, filename if isinstance(filename, str) else None)
            found[name] = content
    return found


def _base64(field: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise invalid_argument("INVALID_BASE64", f"{field} must be a base64 string", field=field)
    text = value.strip()
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_argument(
            "INVALID_BASE64", f"{field} is not valid base64", field=field
        ) from None


def _json(data: bytes, fields: Sequence[str]) -> dict[str, bytes]:
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise invalid_argument("MALFORMED_JSON", "the JSON body cannot be parsed") from None
    if not isinstance(document, dict):
        raise invalid_argument("MALFORMED_JSON", "the JSON body must be an object")
    return {name: _base64(name, document[name]) for name in fields if name in document}


def read_images(body: HttpBody, fields: Sequence[str], limits: BodyLimits) -> list[bytes]:
    """The images named ``fields`` of ``body``, in that order; ServiceError when any is absent
    or the body is malformed or too large."""
    data = body.data
    if len(data) > limits.max_request_bytes:
        raise _too_large("the request", len(data), limits.max_request_bytes, "REQUEST_TOO_LARGE")
    media_type = body.content_type.split(";", 1)[0].strip().lower()
    if media_type == "multipart/form-data":
        found = _multipart(data, body.content_type, fields)
    elif media_type == "application/json" or media_type.endswith("+json"):
        found = _json(data, fields)
    elif media_type in ("", "application/octet-stream") or media_type.startswith("image/"):
        if len(fields) != 1:
            raise invalid_argument(
                "UNSUPPORTED_CONTENT_TYPE",
                f"send {' and '.join(fields)} as multipart/form-data or JSON",
            )
        found = {fields[0]: data}
    else:
        raise invalid_argument(
            "UNSUPPORTED_CONTENT_TYPE",
            f"unsupported content type {media_type!r}: send multipart/form-data, JSON with"
            " base64 images, or the image bytes",
        )
    images = []
    for name in fields:
        image = found.get(name)
        if image is None:
            raise _missing(name)
        if len(image) > limits.max_file_bytes:
            raise _too_large(name, len(image), limits.max_file_bytes, "FILE_TOO_LARGE")
        images.append(image)
    return images

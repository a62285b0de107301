"""Images out of a request body (``google.api.HttpBody``), as CompreFace accepts them.

Envoy hands the raw body and its full Content-Type to the RPC; this module reads
- ``multipart/form-data``: the parts named by the RPC (``file``; ``source_image`` and
  ``target_image``),
- ``application/json``: an object whose members of those names are base64 strings (a
  ``data:...;base64,`` prefix is accepted),
- anything else that says it is an image (``image/*``, ``application/octet-stream``, or no
  content type, as gRPC clients may send): the body is the one image.

Errors (CompreFace code 26 unless said): a body over the request limit, a file over the file limit,
a missing or repeated part, bad base64, malformed multipart (python-multipart parses it; a body
without its closing delimiter is truncated and refused) or JSON, and a file name whose extension
is not an image format CompreFace accepts (code 21).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Protocol

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from facegrid.errors import ServiceError, invalid_argument

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

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


class _FormParts:
    """Collects the parts named ``fields`` of one multipart body from python-multipart's
    callbacks (other parts are skipped unread)."""

    def __init__(self, fields: Sequence[str]) -> None:
        self._fields = frozenset(fields)
        self.found: dict[str, bytes] = {}
        self.ended = False
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._data = bytearray()

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._headers.clear()
        self._name = None
        self._data = bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name.extend(data[start:end])

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value.extend(data[start:end])

    def _header_end(self) -> None:
        self._headers[bytes(self._header_name).strip().lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition"))
        name = params.get(b"name", b"").decode("latin-1")
        if name not in self._fields:
            return
        if name in self.found:
            raise invalid_argument(
                "DUPLICATE_PART", f"the multipart body has two {name} parts; send one", field=name
            )
        filename = params.get(b"filename")
        _check_extension(name, filename.decode("latin-1") if filename is not None else None)
        self._name = name

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._name is not None:
            self._data.extend(data[start:end])

    def _part_end(self) -> None:
        if self._name is not None:
            self.found[self._name] = bytes(self._data)
            self._name = None

    def _end(self) -> None:
        self.ended = True


def _multipart(data: bytes, content_type: str, fields: Sequence[str]) -> dict[str, bytes]:
    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        raise invalid_argument("MALFORMED_MULTIPART", "multipart body without a boundary")
    parts = _FormParts(fields)
    try:
        MultipartParser(boundary, parts.callbacks()).write(data)
    except FormParserError:
        raise invalid_argument("MALFORMED_MULTIPART", "the multipart body is malformed") from None
    if not parts.ended:
        raise invalid_argument(
            "MALFORMED_MULTIPART",
            "the multipart body is truncated: it has no closing boundary delimiter",
        )
    return parts.found


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

"""A minimal blocking HTTP client for REST tests (stdlib only): JSON and multipart bodies."""

from __future__ import annotations

import json as jsonlib
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reply:
    """An HTTP response."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return jsonlib.loads(self.body)


def multipart(fields: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """Encodes ``{name: (filename, data, content_type)}`` as multipart/form-data."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, (filename, data, ctype) in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def call(
    method: str,
    url: str,
    *,
    json: Any = None,
    raw: bytes | None = None,
    files: dict[str, tuple[str, bytes, str]] | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    timeout_s: float = 60.0,
) -> Reply:
    """Sends one request; 4xx/5xx answers are returned, not raised."""
    all_headers = dict(headers or {})
    data: bytes | None = None
    if json is not None:
        data = jsonlib.dumps(json).encode()
        all_headers.setdefault("content-type", "application/json")
    elif files is not None:
        data, ctype = multipart(files)
        all_headers["content-type"] = ctype
    elif raw is not None:
        data = raw
    if query:
        url = f"{url}?{urllib.parse.urlencode(query)}"
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            return Reply(
                reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.read()
            )
    except urllib.error.HTTPError as err:
        return Reply(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())

"""A minimal blocking HTTP client for REST tests (stdlib only): JSON and multipart bodies."""

from __future__ import annotations

import json as jsonlib
import socket
import threading
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


def upload(address: str, head: str, body_bytes: int, chunk: int = 65536) -> Reply:
    """Sends an HTTP/1.1 request (``head`` without its blank line) with a body of
    ``body_bytes`` zero bytes, reading the answer while it sends: a server that refuses the body
    part-way (a 413 at its limit) is heard before it closes the connection."""
    host, port = address.rsplit(":", 1)
    received = bytearray()
    with socket.create_connection((host, int(port)), timeout=60) as sock:

        def read() -> None:
            while not _whole(bytes(received)):
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                received.extend(data)

        reader = threading.Thread(target=read)
        reader.start()
        try:
            sock.sendall(f"{head}\r\ncontent-length: {body_bytes}\r\n\r\n".encode())
            zeros = bytes(chunk)
            for start in range(0, body_bytes, chunk):
                if _whole(bytes(received)):
                    break
                sock.sendall(zeros[: min(chunk, body_bytes - start)])
        except OSError:
            pass  # the server closed the connection after answering
        reader.join(timeout=60)
    header, _, payload = bytes(received).partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    return Reply(int(lines[0].split()[1]), fields, payload)


def _whole(data: bytes) -> bool:
    """True when ``data`` holds a complete response with a content-length."""
    head, found, body = data.partition(b"\r\n\r\n")
    if not found:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False

"""The mixed REST workload of the load and soak benchmarks: detect, enrol and recognise through
Envoy, as CompreFace clients call it, with blocking clients in threads (one request in flight
per client).

Enrolments are undone as they go (each client keeps at most ``keep`` faces and deletes its
oldest), so a long run keeps the collection's size, and the memory it legitimately takes,
steady: what grows is what leaks.
"""

from __future__ import annotations

import json
import os
import random
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

#: Share of each operation in the mix.
MIX = (("detect", 0.4), ("recognise", 0.45), ("enrol", 0.15))


@dataclass(frozen=True, slots=True)
class Result:
    """One request's outcome."""

    operation: str
    status: int
    """HTTP status; 0 when nothing answered."""
    seconds: float
    ended: float
    """time.monotonic() at its end."""


def default_faces() -> Path:
    """The photos folder of the load scripts: ``FACEGRID_FACES``, else the checkout's
    ../shared/faces."""
    default = Path(__file__).resolve().parents[2] / "shared" / "faces"
    return Path(os.environ.get("FACEGRID_FACES", str(default)))


def photos(folder: Path) -> tuple[list[bytes], list[bytes]]:
    """(one-face photos, group photos) of a faces folder laid out as /work/shared/faces is:
    one folder per identity and ``groups/``."""
    singles = [p.read_bytes() for p in sorted(folder.glob("*/*.jpg")) if p.parent.name != "groups"]
    groups = [p.read_bytes() for p in sorted((folder / "groups").glob("*.jpg"))]
    if not singles or not groups:
        raise SystemExit(f"{folder}: need <identity>/*.jpg and groups/*.jpg")
    return singles, groups


def _multipart(data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def _send(method: str, url: str, key: str, data: bytes | None = None) -> tuple[int, bytes]:
    headers = {"x-api-key": key}
    body = None
    if data is not None:
        body, headers["content-type"] = _multipart(data)
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as reply:
            return int(reply.status), bytes(reply.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())
    except (urllib.error.URLError, OSError):
        return 0, b""


@dataclass
class Client:
    """One client of the mix: picks an operation, sends it, records the result."""

    rest: str
    keys: dict[str, str]
    singles: list[bytes]
    groups: list[bytes]
    seed: int
    keep: int = 20
    enrolled: deque[str] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._subject = f"bench {self.seed} {uuid.uuid4().hex[:6]}"

    def one(self) -> Result:
        """Sends one request of the mix."""
        operation = self._random.choices([m for m, _ in MIX], [w for _, w in MIX])[0]
        started = time.monotonic()
        if operation == "detect":
            photo = self._random.choice(self.groups + self.singles)
            status, _ = _send(
                "POST", f"{self.rest}/api/v1/detection/detect", self.keys["DETECTION"], photo
            )
        elif operation == "recognise":
            photo = self._random.choice(self.singles)
            status, _ = _send(
                "POST",
                f"{self.rest}/api/v1/recognition/recognize",
                self.keys["RECOGNITION"],
                photo,
            )
        else:
            status = self._enrol()
        ended = time.monotonic()
        return Result(operation, status, ended - started, ended)

    def _enrol(self) -> int:
        key = self.keys["RECOGNITION"]
        query = urllib.parse.urlencode({"subject": self._subject})
        photo = self._random.choice(self.singles)
        status, body = _send("POST", f"{self.rest}/api/v1/recognition/faces?{query}", key, photo)
        if status == 201:
            self.enrolled.append(json.loads(body)["image_id"])
        while len(self.enrolled) > self.keep:  # undo the oldest: the collection stays small
            _send("DELETE", f"{self.rest}/api/v1/recognition/faces/{self.enrolled.popleft()}", key)
        return status

    def clean_up(self) -> None:
        """Deletes what this client enrolled."""
        while self.enrolled:
            _send(
                "DELETE",
                f"{self.rest}/api/v1/recognition/faces/{self.enrolled.popleft()}",
                self.keys["RECOGNITION"],
            )


def ok(result: Result) -> bool:
    """A success (every photo of the mix holds a face)."""
    return result.status in (200, 201)


def percentile(values: list[float], share: float) -> float:
    """The ``share`` percentile (nearest rank) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]

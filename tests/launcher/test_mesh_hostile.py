"""Every hostile request of issue 10, through the real Envoy of a real mesh: each gets its
CompreFace-shaped refusal ({"message", "code"} with the right status, no internal names), reaches
no service it should not (the services' own metrics say so), and changes nothing, compared on a
database snapshot (row counts of every table, every collection's sequence counter)."""

from __future__ import annotations

import asyncio
import re
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from facegrid.config import METRICS_PORT_OFFSET
from tests.helpers.photos import astronaut_png
from tests.helpers.rest_client import Reply, call, upload
from tests.launcher.helpers import MeshHandle

pytestmark = pytest.mark.integration

RECOGNITION = "facegrid.recognition.v1.RecognitionService"
EMBEDDING = "facegrid.embedding.v1.EmbeddingService"
ADMIN = "facegrid.admin.v1.AdminService"
#: Text no refusal may carry: internal header names, gRPC or Python internals.
LEAKS = re.compile(r"grpc|x-envoy|:authority|metadata|DecodeError|<class|Traceback", re.I)
#: Tables left out of the snapshot: the sign-in throttle counts refused attempts too, and request
#: statistics of earlier (successful) requests are written asynchronously, at any time.
COUNTERS = {"sign_in_attempts", "service_stats"}


def _dsn(mesh: MeshHandle) -> str:
    return f"postgresql://postgres:@/postgres?host={mesh.data_dir / 'pg'}"


Snapshot = dict[str, int]


async def _snapshot(dsn: str) -> Snapshot:
    """Row counts of every table but the throttle's counters, and each collection's seq."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        counts = {
            r["tablename"]: int(await conn.fetchval(f'SELECT count(*) FROM "{r["tablename"]}"'))
            for r in tables
            if r["tablename"] not in COUNTERS
        }
        seqs = await conn.fetch("SELECT service_id, seq FROM collection_state")
        counts.update({f"seq:{r['service_id']}": int(r["seq"]) for r in seqs})
        return counts
    finally:
        await conn.close()


@dataclass
class Mesh:
    """The mesh under attack: Envoy's address, the services' metrics, the database."""

    handle: MeshHandle
    dsn: str

    def scrape(self, address: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        host, port = address.rsplit(":", 1)
        url = f"http://{host}:{int(port) + METRICS_PORT_OFFSET}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            text = reply.read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def calls(self) -> dict[str, float]:
        """Calls started so far on api_svc, embed_svc and admin_svc, by service/method."""
        started: dict[str, float] = {}
        for address in (self.handle.api, self.handle.embed, self.handle.admin):
            for (name, labels), value in self.scrape(address).items():
                if name == "grpc_server_started_total":
                    label = dict(labels)
                    if label["grpc_service"].startswith("grpc."):
                        continue  # health checks and reflection
                    key = f"{label['grpc_service']}/{label['grpc_method']}"
                    started[key] = started.get(key, 0) + value
        return started


@pytest.fixture(scope="module")
def target(mesh: MeshHandle) -> Mesh:
    return Mesh(mesh, _dsn(mesh))


@dataclass(frozen=True)
class Hostile:
    """One hostile request and the answer it must get."""

    name: str
    send: Callable[[Mesh, dict[str, str]], Reply]
    status: int
    code: int
    reached: frozenset[str] = frozenset()
    """gRPC methods it may reach (a refusal by the service itself, after no work)."""
    message: str = ""
    """A fragment the message must contain."""


def _declared(path: str, length: int, ctype: str, key: str | None = None) -> Callable[..., Reply]:
    """A request with a body of ``length`` bytes, sent while the answer is read."""

    def send(mesh: Mesh, keys: dict[str, str]) -> Reply:
        extra = f"\r\nx-api-key: {keys[key]}" if key else ""
        head = f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: {ctype}{extra}"
        return upload(mesh.handle.envoy_grpc, head, length)

    return send


def _json(method: str, path: str, document: Any, key: str | None = None) -> Callable[..., Reply]:
    def send(mesh: Mesh, keys: dict[str, str]) -> Reply:
        headers = {"x-api-key": keys[key]} if key else {}
        return call(method, mesh.handle.rest + path, json=document, headers=headers)

    return send


def _padded(method: str, path: str, size: int, key: str | None = None) -> Callable[..., Reply]:
    """A JSON body of ``size`` bytes (valid JSON, padded with spaces)."""

    def send(mesh: Mesh, keys: dict[str, str]) -> Reply:
        headers = {"content-type": "application/json", **({"x-api-key": keys[key]} if key else {})}
        body = b'{"subject": "x"}'
        return call(method, mesh.handle.rest + path, raw=body.ljust(size), headers=headers)

    return send


def _get(path: str, key: str | None = "RECOGNITION", **headers: str) -> Callable[..., Reply]:
    def send(mesh: Mesh, keys: dict[str, str]) -> Reply:
        all_headers = {"x-api-key": keys[key]} if key else {}
        all_headers.update(headers)
        return call("GET", mesh.handle.rest + path, headers=all_headers)

    return send


def _delete(path: str) -> Callable[..., Reply]:
    def send(mesh: Mesh, keys: dict[str, str]) -> Reply:
        return call("DELETE", mesh.handle.rest + path, headers={"x-api-key": keys["RECOGNITION"]})

    return send


def _enrol(subject: str, parts: int = 1) -> Callable[..., Reply]:
    """AddFace of a real face (the face would be found: a refusal must come before detection)."""

    def send(mesh: Mesh, keys: dict[str, str]) -> Reply:
        photo = astronaut_png()
        part = '--B\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        body = (part + "Content-Type: image/png\r\n\r\n").encode() + photo + b"\r\n"
        data = body * parts + b"--B--\r\n"
        query = urllib.parse.urlencode({"subject": subject})
        return call(
            "POST",
            f"{mesh.handle.rest}/api/v1/recognition/faces?{query}",
            raw=data,
            headers={
                "x-api-key": keys["RECOGNITION"],
                "content-type": "multipart/form-data; boundary=B",
            },
        )

    return send


KIB = 1024
MIB = 1024 * KIB
ADD_FACE = f"{RECOGNITION}/AddFace"

HOSTILE = [
    # 1. bodies over their route's limit, without a key: 413 before any service holds them
    Hostile(
        "embeddings 100 MB, no key",
        _declared("/api/v1/recognition/embeddings/recognize", 100 * MIB, "application/json"),
        413,
        26,
        message="256 KB",
    ),
    Hostile(
        "embeddings just over",
        _padded("POST", "/api/v1/recognition/embeddings/recognize", 256 * KIB + 1),
        413,
        26,
    ),
    Hostile(
        "verify embeddings 100 MB",
        _declared("/api/v1/verification/embeddings/verify", 100 * MIB, "application/json"),
        413,
        26,
    ),
    Hostile(
        "sign-in 105 MB",
        _declared("/api/v1/admin/auth/signin", 105 * MIB, "application/json"),
        413,
        26,
        message="1 KB",
    ),
    Hostile("sign-in 2 KB", _padded("POST", "/api/v1/admin/auth/signin", 2 * KIB), 413, 26),
    Hostile(
        "sign-up 70 MB",
        _declared("/api/v1/admin/auth/signup", 70 * MIB, "application/json"),
        413,
        26,
    ),
    Hostile(
        "subjects 5 KB",
        _padded("POST", "/api/v1/recognition/subjects", 5 * KIB, "RECOGNITION"),
        413,
        26,
        message="4 KB",
    ),
    Hostile(
        "delete by ids 1 MB",
        _declared("/api/v1/recognition/faces/delete", MIB, "application/json"),
        413,
        26,
        message="64 KB",
    ),
    Hostile(
        "image 11 MB",
        _declared("/api/v1/recognition/faces?subject=a", 11 * MIB, "image/jpeg", "RECOGNITION"),
        413,
        26,
        message="10 MB",
    ),
    Hostile(
        "image 70 MB",
        _declared("/api/v1/detection/detect", 70 * MIB, "image/jpeg", "DETECTION"),
        413,
        26,
    ),
    Hostile("unknown path 2 KB", _padded("POST", "/api/v1/nothing/here", 2 * KIB), 413, 26),
    Hostile(
        "GET with a 2 KB body",
        _padded("GET", "/api/v1/recognition/subjects", 2 * KIB, "RECOGNITION"),
        413,
        26,
    ),
    # 2. headers: 431 in CompreFace's shape, never a random 429 listing header names
    *[
        Hostile(
            f"header {size} KB",
            _get("/api/v1/recognition/subjects", **{"x-padding": "a" * size * KIB}),
            431,
            26,
            message="8 KB",
        )
        for size in (9, 12, 16, 100)
    ],
    # 3. text fields: NUL and control characters, whitespace-only, too long, not UTF-8
    Hostile("NUL subject: AddFace", _enrol("a\x00b"), 400, 26, frozenset({ADD_FACE})),
    Hostile(
        "NUL subject: create",
        _json("POST", "/api/v1/recognition/subjects", {"subject": "a\x00b"}, "RECOGNITION"),
        400,
        26,
        frozenset({f"{RECOGNITION}/CreateSubject"}),
    ),
    Hostile(
        "NUL subject: rename",
        _json("PUT", "/api/v1/recognition/subjects/x", {"subject": "\x00"}, "RECOGNITION"),
        400,
        26,
        frozenset({f"{RECOGNITION}/RenameSubject"}),
    ),
    Hostile(
        "NUL subject: delete",
        _delete("/api/v1/recognition/subjects/a%00b"),
        400,
        26,
        frozenset({f"{RECOGNITION}/DeleteSubject"}),
    ),
    Hostile(
        "NUL subject: list faces",
        _get("/api/v1/recognition/faces?subject=a%00b"),
        400,
        26,
        frozenset({f"{RECOGNITION}/ListFaces"}),
    ),
    Hostile(
        "NUL subject: delete faces",
        _delete("/api/v1/recognition/faces?subject=%00"),
        400,
        26,
        frozenset({f"{RECOGNITION}/DeleteFaces"}),
    ),
    Hostile(
        "control character subject",
        _json("POST", "/api/v1/recognition/subjects", {"subject": "a\x1bb"}, "RECOGNITION"),
        400,
        26,
        frozenset({f"{RECOGNITION}/CreateSubject"}),
    ),
    Hostile(
        "whitespace subject: create",
        _json("POST", "/api/v1/recognition/subjects", {"subject": "   "}, "RECOGNITION"),
        400,
        26,
        frozenset({f"{RECOGNITION}/CreateSubject"}),
    ),
    Hostile("whitespace subject: AddFace", _enrol("  \t "), 400, 26, frozenset({ADD_FACE})),
    Hostile("subject of 51 characters", _enrol("x" * 51), 400, 26, frozenset({ADD_FACE})),
    Hostile(
        "subject not UTF-8",
        _delete("/api/v1/recognition/subjects/a%FFb"),
        400,
        26,
        frozenset({f"{RECOGNITION}/DeleteSubject"}),
    ),
    Hostile(
        "query not UTF-8",
        _get("/api/v1/recognition/faces?subject=%FF"),
        400,
        26,
        frozenset({f"{RECOGNITION}/ListFaces"}),
    ),
    Hostile(
        "sign-in email with NUL",
        _json(
            "POST", "/api/v1/admin/auth/signin", {"email": "a\x00@b.c", "password": "password-1"}
        ),
        400,
        26,
        frozenset({f"{ADMIN}/SignIn"}),
    ),
    Hostile(
        "sign-up email with NUL",
        _json(
            "POST",
            "/api/v1/admin/auth/signup",
            {"email": "a\x00@b.c", "password": "password-1", "first_name": "A"},
        ),
        400,
        26,
        frozenset({f"{ADMIN}/SignUp"}),
    ),
    # 4. two file parts, page sizes
    Hostile(
        "two file parts",
        _enrol("Two Parts", parts=2),
        400,
        26,
        frozenset({ADD_FACE}),
        "two file parts",
    ),
    Hostile(
        "page size 100000",
        _get("/api/v1/recognition/faces?size=100000"),
        400,
        26,
        frozenset({f"{RECOGNITION}/ListFaces"}),
        "at most 1000",
    ),
    Hostile("page out of int32", _get("/api/v1/recognition/faces?page=99999999999"), 400, 26),
]


@pytest.mark.parametrize("case", HOSTILE, ids=lambda c: c.name)
def test_a_hostile_request_is_refused_in_compreface_shape_and_changes_nothing(
    target: Mesh, keys: dict[str, str], case: Hostile
) -> None:
    baseline = asyncio.run(_snapshot(target.dsn))
    before = target.calls()
    reply = case.send(target, keys)
    body = reply.json()
    assert (reply.status, body) == (case.status, {"message": body["message"], "code": case.code})
    assert set(body) == {"message", "code"}
    assert not LEAKS.search(body["message"]), body["message"]
    assert case.message in body["message"]
    reached = {k: v - before.get(k, 0) for k, v in target.calls().items() if v != before.get(k, 0)}
    assert set(reached) <= case.reached, f"work done for a refused request: {reached}"
    assert asyncio.run(_snapshot(target.dsn)) == baseline

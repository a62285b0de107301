"""The limit table of the edge: how large a request body each public RPC may send, and headers.

Envoy enforces every body limit before anything parses the body: a buffer filter placed before
the gRPC-JSON transcoder holds at most the route's limit and answers 413 past it, so an
unauthenticated request makes no process hold more than its route's limit (the transcoder
streams a JSON body into a protobuf message, and its own ``max_request_body_size`` applies only
to ``google.api.HttpBody`` bodies). Routes match both the REST path (before the transcoder
rewrites it) and the gRPC path (gRPC clients), so REST and gRPC clients meet the same limit.
A path that no route of this table matches gets the smallest limit.

Each limit is sized to what the RPC can legitimately carry (docs/guarantees.md lists them):

| kind | default | RPCs |
|---|---|---|
| ``image`` | the request limit, 10 MiB | image uploads (multipart, JSON base64 or raw) |
| ``bulk`` | the request limit | the REST form of bulk enrolment (a JSON array of items) |
| ``embeddings`` | 256 KiB | embeddings as JSON arrays (about 90 of 128 values) |
| ``ids`` | 64 KiB | a JSON array of image ids (about 1,600) |
| ``json`` | 4 KiB | small JSON documents: names, roles, e-mail addresses |
| ``credentials`` | 1 KiB | sign-up, sign-in, tokens, passwords |
| ``empty`` | 1 KiB | GET and DELETE calls (path and query only) |

The streaming gRPC bulk RPC is not buffered (it would never end): each of its messages is bounded
by api_svc's gRPC message limit instead (:func:`grpc_receive_limits`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from facegrid.server import MESSAGE_OVERHEAD_BYTES

KIB = 1024
MIB = 1024 * KIB

RECOGNITION = "facegrid.recognition.v1.RecognitionService"
ADMIN = "facegrid.admin.v1.AdminService"

#: Largest request header block a client may send, KiB (Envoy's ``max_request_headers_kb``; the
#: services accept twice as much, facegrid.server.METADATA_LIMITS_BYTES, so that what Envoy
#: forwards, its own headers added, always fits).
MAX_REQUEST_HEADERS_KIB = 8


#: What a REST path may hold outside its parameters (no regular-expression metacharacters).
_LITERAL = re.compile(r"[A-Za-z0-9/_-]*")


class Kind(Enum):
    """What a route carries, which decides its body limit."""

    IMAGE = "image"
    BULK = "bulk"
    EMBEDDINGS = "embeddings"
    IDS = "ids"
    JSON = "json"
    CREDENTIALS = "credentials"
    EMPTY = "empty"


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """Body limit of each kind of route, bytes."""

    request_bytes: int = 10 * MIB
    """Image routes (FACEGRID_API_MAX_REQUEST_BYTES; CompreFace's 10 MB per request)."""
    bulk_bytes: int = 10 * MIB
    """The REST bulk enrolment route (the image routes' limit by default)."""
    embeddings_bytes: int = 256 * KIB
    """Embedding routes."""
    ids_bytes: int = 64 * KIB
    """A JSON array of ids."""
    json_bytes: int = 4 * KIB
    """Small JSON documents."""
    credentials_bytes: int = 1 * KIB
    """Credentials and tokens."""
    empty_bytes: int = 1 * KIB
    """Calls without a body; also every path no route matches."""

    def of(self, kind: Kind) -> int:
        """The limit of ``kind``, bytes."""
        return {
            Kind.IMAGE: self.request_bytes,
            Kind.BULK: self.bulk_bytes,
            Kind.EMBEDDINGS: self.embeddings_bytes,
            Kind.IDS: self.ids_bytes,
            Kind.JSON: self.json_bytes,
            Kind.CREDENTIALS: self.credentials_bytes,
            Kind.EMPTY: self.empty_bytes,
        }[kind]

    @property
    def smallest(self) -> int:
        """The limit of a path that no route matches."""
        return min(self.of(kind) for kind in Kind)


@dataclass(frozen=True, slots=True)
class Route:
    """One public RPC: its gRPC path, its REST method and path template, what it carries."""

    service: str
    """Fully qualified gRPC service name."""
    rpc: str
    """Method name."""
    method: str
    """HTTP method of its REST form."""
    template: str
    """REST path template (``google.api.http``), ``{name}`` for a path parameter."""
    kind: Kind
    """What its body carries."""
    streaming: bool = False
    """A client-streaming RPC: its gRPC form is not buffered (each message is bounded by the
    service's gRPC message limit), its REST form is (a JSON array, buffered whole)."""

    @property
    def grpc_path(self) -> str:
        """``/package.Service/Method``."""
        return f"/{self.service}/{self.rpc}"

    @property
    def rest_regex(self) -> str:
        """A RE2 expression matching the REST path (the query string is not part of it)."""
        parts = re.split(r"(\{[^}]+\})", self.template)
        for part in parts:
            if not part.startswith("{") and not _LITERAL.fullmatch(part):
                raise ValueError(f"{self.template}: only letters, digits, / _ - in paths")
        return "^" + "".join("[^/]+" if p.startswith("{") else p for p in parts) + "$"


def _r(rpc: str, method: str, template: str, kind: Kind, streaming: bool = False) -> Route:
    return Route(RECOGNITION, rpc, method, template, kind, streaming)


def _a(rpc: str, method: str, template: str, kind: Kind) -> Route:
    return Route(ADMIN, rpc, method, template, kind)


_REC = "/api/v1/recognition"
_APP = "/api/v1/admin/apps/{application_id}"
_SVC = _APP + "/services/{service_id}"

#: Every public RPC (a test checks this against the descriptor set's HTTP rules).
ROUTES: tuple[Route, ...] = (
    _r("AddFace", "POST", f"{_REC}/faces", Kind.IMAGE),
    _r("BulkAddFaces", "POST", f"{_REC}/faces/bulk", Kind.BULK, streaming=True),
    _r("ListFaces", "GET", f"{_REC}/faces", Kind.EMPTY),
    _r("DeleteFaces", "DELETE", f"{_REC}/faces", Kind.EMPTY),
    _r("DeleteFace", "DELETE", f"{_REC}/faces/{{image_id}}", Kind.EMPTY),
    _r("DeleteFacesByIds", "POST", f"{_REC}/faces/delete", Kind.IDS),
    _r("GetFaceImage", "GET", f"{_REC}/faces/{{image_id}}/img", Kind.EMPTY),
    _r("RecognizeFaces", "POST", f"{_REC}/recognize", Kind.IMAGE),
    _r("VerifyAgainstFace", "POST", f"{_REC}/faces/{{image_id}}/verify", Kind.IMAGE),
    _r("RecognizeEmbeddings", "POST", f"{_REC}/embeddings/recognize", Kind.EMBEDDINGS),
    _r(
        "VerifyEmbeddingsAgainstFace",
        "POST",
        f"{_REC}/embeddings/faces/{{image_id}}/verify",
        Kind.EMBEDDINGS,
    ),
    _r("CreateSubject", "POST", f"{_REC}/subjects", Kind.JSON),
    _r("ListSubjects", "GET", f"{_REC}/subjects", Kind.EMPTY),
    _r("RenameSubject", "PUT", f"{_REC}/subjects/{{current_subject}}", Kind.JSON),
    _r("DeleteSubject", "DELETE", f"{_REC}/subjects/{{subject}}", Kind.EMPTY),
    _r("DeleteSubjects", "DELETE", f"{_REC}/subjects", Kind.EMPTY),
    _r("DetectFaces", "POST", "/api/v1/detection/detect", Kind.IMAGE),
    _r("VerifyImages", "POST", "/api/v1/verification/verify", Kind.IMAGE),
    _r("VerifyEmbeddings", "POST", "/api/v1/verification/embeddings/verify", Kind.EMBEDDINGS),
    _a("SignUp", "POST", "/api/v1/admin/auth/signup", Kind.CREDENTIALS),
    _a("SignIn", "POST", "/api/v1/admin/auth/signin", Kind.CREDENTIALS),
    _a("RefreshToken", "POST", "/api/v1/admin/auth/refresh", Kind.CREDENTIALS),
    _a("SignOut", "POST", "/api/v1/admin/auth/signout", Kind.CREDENTIALS),
    _a("GetCurrentUser", "GET", "/api/v1/admin/users/me", Kind.EMPTY),
    _a("ListUsers", "GET", "/api/v1/admin/users", Kind.EMPTY),
    _a("UpdateUser", "PATCH", "/api/v1/admin/users/{user_id}", Kind.JSON),
    _a("UpdateUserRole", "PUT", "/api/v1/admin/users/{user_id}/role", Kind.JSON),
    _a("ChangePassword", "POST", "/api/v1/admin/users/me/password", Kind.CREDENTIALS),
    _a("DeleteUser", "DELETE", "/api/v1/admin/users/{user_id}", Kind.EMPTY),
    _a("CreateApplication", "POST", "/api/v1/admin/apps", Kind.JSON),
    _a("ListApplications", "GET", "/api/v1/admin/apps", Kind.EMPTY),
    _a("GetApplication", "GET", _APP, Kind.EMPTY),
    _a("RenameApplication", "PUT", _APP, Kind.JSON),
    _a("DeleteApplication", "DELETE", _APP, Kind.EMPTY),
    _a("ListMembers", "GET", f"{_APP}/members", Kind.EMPTY),
    _a("AddMember", "POST", f"{_APP}/members", Kind.JSON),
    _a("UpdateMemberRole", "PUT", f"{_APP}/members/{{user_id}}", Kind.JSON),
    _a("RemoveMember", "DELETE", f"{_APP}/members/{{user_id}}", Kind.EMPTY),
    _a("CreateService", "POST", f"{_APP}/services", Kind.JSON),
    _a("ListServices", "GET", f"{_APP}/services", Kind.EMPTY),
    _a("GetService", "GET", _SVC, Kind.EMPTY),
    _a("RenameService", "PUT", _SVC, Kind.JSON),
    _a("DeleteService", "DELETE", _SVC, Kind.EMPTY),
    _a("CloneService", "POST", f"{_SVC}/clone", Kind.JSON),
    _a("RotateApiKey", "POST", f"{_SVC}/api-key/rotate", Kind.JSON),
    _a("GetServiceStatistics", "GET", f"{_SVC}/statistics", Kind.EMPTY),
    _a("StartEmbeddingMigration", "POST", f"{_SVC}/migrations", Kind.JSON),
    _a("GetEmbeddingMigration", "GET", f"{_SVC}/migrations/{{migration_id}}", Kind.EMPTY),
)


def grpc_receive_limits(limits: BodyLimits) -> dict[str, int]:
    """The largest message api_svc and admin_svc must accept, bytes: their largest route's body
    limit plus room for the protobuf framing. (A JSON document of small strings is no larger as
    protobuf; an embedding is: api_svc's image limit covers it.) embed_svc is internal and never
    routed from outside; it keeps gRPC's 64 MiB (admin_svc's migrations send stored images)."""
    recognition = max(limits.of(r.kind) for r in ROUTES if r.service == RECOGNITION)
    admin = max(limits.of(r.kind) for r in ROUTES if r.service == ADMIN)
    return {
        "api_svc": recognition + MESSAGE_OVERHEAD_BYTES,
        "admin_svc": admin + MESSAGE_OVERHEAD_BYTES,
    }

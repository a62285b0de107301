"""The subject RPCs of ``/api/v1/recognition/subjects`` and subject names.

Names are 1..50 characters without ``;`` ``/`` ``\\`` (CompreFace's rule and the schema's CHECK),
without control characters (NUL included: PostgreSQL cannot store it) and not only whitespace,
else code 26 - checked before any other work, for names that are looked up as for new ones. An
existing name on create is code 43; an unknown subject is code 42 (404).
Renaming onto an existing name moves the examples there and deletes the old subject, in one
transaction (CompreFace merges the same way).
"""

from __future__ import annotations

import unicodedata
import uuid

import grpc

from api_svc.face_store import PgFaceStore, SubjectExists
from facegrid.errors import ServiceError, invalid_argument
from facegrid.recognition.v1 import recognition_service_pb2 as pb

#: CompreFace's code for an unknown subject.
SUBJECT_NOT_FOUND = 42
#: CompreFace's code for a subject that exists already.
SUBJECT_EXISTS = 43
#: Longest subject name, characters.
MAX_NAME_CHARS = 50
_FORBIDDEN = frozenset(";/\\")


def check_name(name: str, field: str = "subject") -> str:
    """``name`` when it is a valid subject name; else ServiceError (26) naming ``field``."""
    if not name:
        raise invalid_argument("INVALID_SUBJECT_NAME", f"{field} should not be empty", field=field)
    if name.isspace():
        raise invalid_argument(
            "INVALID_SUBJECT_NAME", f"{field} should not be only whitespace", field=field
        )
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise invalid_argument(
            "INVALID_SUBJECT_NAME",
            f"{field} should not contain control characters",
            field=field,
        )
    if len(name) > MAX_NAME_CHARS:
        raise invalid_argument(
            "INVALID_SUBJECT_NAME",
            f"{field} is {len(name)} characters long; the limit is {MAX_NAME_CHARS}",
            field=field,
        )
    if _FORBIDDEN & set(name):
        raise invalid_argument(
            "INVALID_SUBJECT_NAME",
            f"{field} should not contain any of ; / \\",
            field=field,
        )
    return name


def subject_not_found(name: str) -> ServiceError:
    """Subject ``name`` is not in the collection (404, code 42)."""
    return ServiceError(
        grpc.StatusCode.NOT_FOUND,
        "SUBJECT_NOT_FOUND",
        f"Subject {name} is not found",
        SUBJECT_NOT_FOUND,
        {"subject": name},
        http_status=404,
    )


def subject_exists(name: str) -> ServiceError:
    """Subject ``name`` is in the collection already (400, code 43)."""
    return ServiceError(
        grpc.StatusCode.ALREADY_EXISTS,
        "SUBJECT_ALREADY_EXISTS",
        f"Subject {name} already exists",
        SUBJECT_EXISTS,
        {"subject": name},
        http_status=400,
    )


class Subjects:
    """Serves the subject RPCs for an authenticated RECOGNITION service."""

    def __init__(self, store: PgFaceStore) -> None:
        self._store = store

    async def create(
        self, service_id: uuid.UUID, request: pb.CreateSubjectRequest
    ) -> pb.CreateSubjectResponse:
        """Adds a subject without examples."""
        name = check_name(request.subject)
        try:
            await self._store.create_subject(service_id, name)
        except SubjectExists:
            raise subject_exists(name) from None
        return pb.CreateSubjectResponse(subject=name)

    async def list(self, service_id: uuid.UUID) -> pb.ListSubjectsResponse:
        """Every subject name of the collection, sorted."""
        return pb.ListSubjectsResponse(subjects=await self._store.list_subjects(service_id))

    async def rename(
        self, service_id: uuid.UUID, request: pb.RenameSubjectRequest
    ) -> pb.RenameSubjectResponse:
        """Renames a subject, merging it into the new name when that exists."""
        current = check_name(request.current_subject, "current_subject")
        new = check_name(request.subject)
        if not await self._store.rename_subject(service_id, current, new):
            raise subject_not_found(request.current_subject)
        return pb.RenameSubjectResponse(updated=True)

    async def delete(
        self, service_id: uuid.UUID, request: pb.DeleteSubjectRequest
    ) -> pb.DeleteSubjectResponse:
        """Deletes a subject and its examples."""
        check_name(request.subject)
        if not await self._store.delete_subject(service_id, request.subject):
            raise subject_not_found(request.subject)
        return pb.DeleteSubjectResponse(subject=request.subject)

    async def delete_all(self, service_id: uuid.UUID) -> pb.DeleteSubjectsResponse:
        """Deletes every subject and example of the collection."""
        return pb.DeleteSubjectsResponse(deleted=await self._store.delete_subjects(service_id))

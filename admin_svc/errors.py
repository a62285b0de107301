"""The errors admin_svc answers with, built on facegrid.errors.ServiceError.

Each factory fixes the canonical gRPC code (and so the HTTP status at the edge) and a stable
UPPER_SNAKE reason; messages name the field or id concerned and never echo secrets.
"""

from __future__ import annotations

import grpc

from facegrid.errors import ServiceError, invalid_argument


def invalid(field: str, message: str, reason: str = "INVALID_FIELD") -> ServiceError:
    """A request field is missing or malformed (400; CompreFace validation code 26)."""
    return invalid_argument(reason, message, field=field)


#: CompreFace's code for an unknown service ("model not found").
SERVICE_NOT_FOUND_CODE = 10


def not_found(kind: str, ident: object) -> ServiceError:
    """An id names nothing (404); ``kind`` is e.g. ``application``."""
    return ServiceError(
        grpc.StatusCode.NOT_FOUND,
        f"{kind.upper()}_NOT_FOUND",
        f"{kind} {ident} not found",
        compreface_code=SERVICE_NOT_FOUND_CODE if kind == "service" else None,
        metadata={"id": str(ident)},
    )


def already_exists(reason: str, message: str, field: str) -> ServiceError:
    """A unique name or email is taken (409)."""
    return ServiceError(grpc.StatusCode.ALREADY_EXISTS, reason, message, metadata={"field": field})


def unauthenticated(reason: str, message: str) -> ServiceError:
    """No usable credentials (401)."""
    return ServiceError(grpc.StatusCode.UNAUTHENTICATED, reason, message)


def permission_denied(reason: str, message: str) -> ServiceError:
    """Signed in, but not allowed to do this (403)."""
    return ServiceError(grpc.StatusCode.PERMISSION_DENIED, reason, message)


def insufficient_role(action: str) -> ServiceError:
    """The caller's role does not allow ``action`` (403)."""
    return permission_denied("INSUFFICIENT_ROLE", f"your role does not allow {action}")


def not_member(application_id: object) -> ServiceError:
    """The caller acts on an application it does not belong to (403)."""
    return permission_denied(
        "NOT_APPLICATION_MEMBER", f"you are not a member of application {application_id}"
    )


def failed_precondition(reason: str, message: str) -> ServiceError:
    """The request is valid but the resource's state does not allow it (400)."""
    return ServiceError(grpc.StatusCode.FAILED_PRECONDITION, reason, message)


def unavailable(reason: str, message: str) -> ServiceError:
    """A dependency cannot be reached now; the caller may retry (503)."""
    return ServiceError(grpc.StatusCode.UNAVAILABLE, reason, message)

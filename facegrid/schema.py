"""The database contract api_svc and admin_svc share (admin_svc owns the schema;
docs/schema.md). The SQL of ``admin_svc/migrations`` spells the same values; a test holds
them equal."""

from __future__ import annotations

import hashlib
import uuid
from typing import Final

import grpc

from facegrid.errors import ServiceError

#: SQLSTATE the schema's triggers raise on a write to a collection whose writes are blocked
#: (an embedding migration runs): HTTP 405, CompreFace code 32.
WRITES_BLOCKED_SQLSTATE: Final = "FG032"
#: CompreFace's code and the HTTP status of such a refusal.
WRITES_BLOCKED_COMPREFACE_CODE: Final = 32
WRITES_BLOCKED_HTTP_STATUS: Final = 405
#: The channel the schema's triggers send change notifications on (LISTEN/NOTIFY).
CHANGES_CHANNEL: Final = "facegrid_changes"


def writes_blocked(service_id: object) -> ServiceError:
    """A write refused while the collection is migrated to another calculator (405, code 32),
    whether the service saw ``writes_blocked`` first or the triggers raised FG032."""
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        "WRITES_BLOCKED_BY_MIGRATION",
        f"service {service_id} is being migrated to another calculator;"
        " writes are refused until the migration ends",
        WRITES_BLOCKED_COMPREFACE_CODE,
        {"service_id": str(service_id)},
        http_status=WRITES_BLOCKED_HTTP_STATUS,
    )


def api_key_digest(key: uuid.UUID) -> bytes:
    """``services.api_key_sha256`` of an API key: SHA-256 of its 16 bytes (the schema's
    ``sha256(uuid_send(api_key))``), by which a presented key is looked up."""
    return hashlib.sha256(key.bytes).digest()

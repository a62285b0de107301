"""The servicer's mapping of database errors to gRPC statuses."""

from __future__ import annotations

import asyncpg
import grpc

from admin_svc.servicer import database_error


def _unique_violation(constraint: str) -> asyncpg.UniqueViolationError:
    fields = {"C": "23505", "M": "duplicate key value", "S": "ERROR", "n": constraint}
    return asyncpg.UniqueViolationError.new(fields)


def test_a_taken_name_is_already_exists_and_another_unique_violation_no_retry() -> None:
    taken = database_error(_unique_violation("users_email_key"))
    assert (taken.code, taken.reason, taken.metadata) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "EMAIL_TAKEN",
        {"field": "email"},
    )
    unlisted = database_error(_unique_violation("users_one_owner"))
    assert (unlisted.code, unlisted.reason) == (grpc.StatusCode.INTERNAL, "INTERNAL")
    assert "retry" not in unlisted.message
    conflict = database_error(asyncpg.SerializationError("could not serialize access"))
    assert (conflict.code, conflict.reason) == (grpc.StatusCode.ABORTED, "CONCURRENT_CHANGE")

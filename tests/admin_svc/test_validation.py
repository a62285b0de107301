"""Validation of names, emails, passwords, ids and dates: clear refusals."""

from __future__ import annotations

import pytest

from admin_svc import validation
from facegrid.errors import ServiceError


def test_validation_of_names_emails_passwords_and_ids() -> None:
    assert validation.display_name("  Front door  ", "name") == "Front door"
    assert validation.display_name("x" * 50, "name") == "x" * 50
    assert validation.display_name("", "last_name", allow_empty=True) == ""
    assert validation.email(" Someone@Example.COM ") == "someone@example.com"
    for call in (
        lambda: validation.display_name("x" * 51, "name"),
        lambda: validation.display_name("", "name"),
        lambda: validation.display_name("a\x00b", "name"),
        lambda: validation.email("no-at"),
        lambda: validation.email("a@b@c"),
        lambda: validation.password("1234567"),
        lambda: validation.password("x" * 129),
        lambda: validation.uuid_field("nope", "service_id"),
        lambda: validation.date_field("2024-02-30", "start_date"),
    ):
        with pytest.raises(ServiceError):
            call()

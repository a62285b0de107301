"""Pure checks of request fields; each raises a ServiceError naming the field."""

from __future__ import annotations

import datetime as dt
import re
import uuid

from admin_svc.errors import invalid

NAME_MAX_CHARS = 50
EMAIL_MAX_CHARS = 254
PASSWORD_MIN_CHARS = 8
PASSWORD_MAX_CHARS = 128

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def uuid_field(value: str, field: str) -> uuid.UUID:
    """``value`` parsed as a UUID."""
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise invalid(field, f"{field} must be a UUID, got {value[:64]!r}") from None


def display_name(value: str, field: str, *, allow_empty: bool = False) -> str:
    """A name of an application, service or person: trimmed, 1..50 characters (0..50 when
    ``allow_empty``), no control characters."""
    name = value.strip()
    if _CONTROL.search(name):
        raise invalid(field, f"{field} must not contain control characters")
    if not name and not allow_empty:
        raise invalid(field, f"{field} must not be empty")
    if len(name) > NAME_MAX_CHARS:
        raise invalid(field, f"{field} must be at most {NAME_MAX_CHARS} characters")
    return name


def email(value: str, field: str = "email") -> str:
    """A sign-in email: trimmed, lower-cased, one ``@``, 3..254 characters, no control
    characters."""
    address = value.strip().lower()
    if (
        not 3 <= len(address) <= EMAIL_MAX_CHARS
        or not _EMAIL.match(address)
        or _CONTROL.search(address)
    ):
        raise invalid(
            field, f"{field} must be an email address of at most {EMAIL_MAX_CHARS} characters"
        )
    return address


def password(value: str, field: str = "password") -> str:
    """A new password: 8..128 characters (kept exactly as given)."""
    if not PASSWORD_MIN_CHARS <= len(value) <= PASSWORD_MAX_CHARS:
        raise invalid(
            field,
            f"{field} must be {PASSWORD_MIN_CHARS}..{PASSWORD_MAX_CHARS} characters long",
            reason="WEAK_PASSWORD",
        )
    return value


def date_field(value: str, field: str) -> dt.date:
    """A ``YYYY-MM-DD`` date."""
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise invalid(field, f"{field} must be a date YYYY-MM-DD, got {value[:32]!r}") from None

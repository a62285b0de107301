"""Pure pieces of admin_svc: tokens, keys, validation, configuration, permissions, statistics."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid

import asyncpg
import grpc
import jwt
import pytest

from admin_svc import keys, validation
from admin_svc.config import load_config
from admin_svc.permissions import (
    AppAction,
    Role,
    app_allows,
    can_change_member_role,
    can_delete_user,
    can_remove_member,
    can_set_global_role,
    effective_app_role,
)
from admin_svc.servicer import database_error
from admin_svc.stats import date_range, fill_days, saturate_int32
from admin_svc.tokens import TokenError, TokenSigner
from facegrid.config import ConfigError
from facegrid.errors import ServiceError

SECRET = b"s" * 32
USER, SESSION = uuid.uuid4(), uuid.uuid4()


def test_tokens_round_trip_and_expire() -> None:
    signer = TokenSigner(SECRET, ttl_s=60)
    token, expires = signer.issue(USER, SESSION, now=1_000_000)
    assert expires == 1_000_060
    claims = signer.verify(token, now=1_000_030)
    assert (claims.user_id, claims.session_id, claims.expires_at) == (USER, SESSION, expires)
    with pytest.raises(TokenError) as info:
        signer.verify(token, now=1_000_100)
    assert info.value.problem == "expired"


def test_tampered_or_foreign_tokens_are_refused() -> None:
    signer = TokenSigner(SECRET, ttl_s=60)
    token, _ = signer.issue(USER, SESSION, now=1_000_000)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = str(uuid.uuid4())
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    other, _ = TokenSigner(b"o" * 32, 60).issue(USER, SESSION, now=1_000_000)
    for bad, problem in (
        (f"{header}.{forged_payload}.{signature}", "bad_signature"),
        (f"{none_header}.{payload}.", "bad_signature"),
        (other, "bad_signature"),
        ("a.b", "malformed"),
        ("", "malformed"),
    ):
        with pytest.raises(TokenError) as info:
            signer.verify(bad, now=1_000_000)
        assert info.value.problem == problem
    with pytest.raises(ValueError):
        TokenSigner(b"short", 60)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # HS512, 32 bytes
def test_signed_tokens_of_another_shape_are_refused() -> None:
    signer = TokenSigner(SECRET, ttl_s=60)
    claims = {"sub": str(USER), "sid": str(SESSION), "iat": 1, "exp": 2_000_000, "typ": "access"}
    for changed, problem in (
        ({"typ": "refresh"}, "malformed"),
        ({"sid": None}, "malformed"),
        ({"sub": "not-a-uuid"}, "malformed"),
        ({"exp": "soon"}, "malformed"),
    ):
        token = jwt.encode({**claims, **changed}, SECRET, algorithm="HS256")
        with pytest.raises(TokenError) as info:
            signer.verify(token, now=1_000_000)
        assert info.value.problem == problem, changed
    other_algorithm = jwt.encode(claims, SECRET, algorithm="HS512")
    with pytest.raises(TokenError) as info:
        signer.verify(other_algorithm, now=1_000_000)
    assert info.value.problem == "bad_signature"
    assert signer.verify(jwt.encode(claims, SECRET), now=1_000_000).user_id == USER


def test_api_keys_are_128_random_bits_in_uuid_form() -> None:
    made = [keys.new_api_key() for _ in range(64)]
    assert len({k.int for k in made}) == 64
    # Every bit varies (a version-4 UUID would fix six of them).
    varying = 0
    for k in made:
        varying |= k.int ^ made[0].int
    assert varying.bit_count() > 122


def test_refresh_tokens_split_into_session_and_secret() -> None:
    secret = keys.new_refresh_secret()
    token = keys.refresh_token(SESSION, secret)
    assert keys.split_refresh_token(token) == (SESSION, secret)
    assert keys.split_refresh_token("garbage") is None
    assert keys.split_refresh_token(f"{SESSION}.") is None
    assert keys.refresh_secret_digest(secret) != keys.refresh_secret_digest(secret + "x")


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


def test_configuration_defaults_and_production_rules() -> None:
    config = load_config({"FACEGRID_DATABASE_URL": "postgresql://db/x"})
    assert (config.host, config.port, config.environment) == ("127.0.0.1", 50053, "development")
    assert (config.demo_setup, config.token_secret, config.access_token_ttl_s) == (True, None, 900)
    assert "postgresql://db/x" not in repr(config)
    with pytest.raises(ConfigError, match="FACEGRID_DATABASE_URL"):
        load_config({})
    production = {"FACEGRID_DATABASE_URL": "postgresql://db/x", "FACEGRID_ENV": "production"}
    with pytest.raises(ConfigError, match="FACEGRID_TOKEN_SECRET"):
        load_config(production)
    secret = "p" * 40
    config = load_config({**production, "FACEGRID_TOKEN_SECRET": secret})
    assert config.demo_setup is False and secret not in repr(config)
    with pytest.raises(ConfigError, match="at least 32"):
        load_config({**production, "FACEGRID_TOKEN_SECRET": "short"})
    with pytest.raises(ConfigError):
        load_config({**production, "FACEGRID_ENV": "staging"})
    with pytest.raises(ConfigError):
        load_config({"FACEGRID_DATABASE_URL": "x", "FACEGRID_MIGRATION_BATCH_SIZE": "33"})


def test_application_role_rights() -> None:
    assert all(app_allows(Role.OWNER, action) for action in AppAction)
    assert not app_allows(Role.ADMINISTRATOR, AppAction.DELETE)
    assert app_allows(Role.ADMINISTRATOR, AppAction.MANAGE_SERVICES)
    assert [a for a in AppAction if app_allows(Role.USER, a)] == [AppAction.VIEW]
    assert effective_app_role(Role.ADMINISTRATOR, None) is Role.OWNER
    assert effective_app_role(Role.USER, None) is None
    assert effective_app_role(Role.USER, Role.ADMINISTRATOR) is Role.ADMINISTRATOR


@pytest.mark.parametrize(
    ("actor", "target", "new", "is_self", "allowed"),
    [
        (Role.OWNER, Role.USER, Role.ADMINISTRATOR, False, True),
        (Role.OWNER, Role.ADMINISTRATOR, Role.OWNER, False, True),
        (Role.OWNER, Role.OWNER, Role.USER, True, False),
        (Role.ADMINISTRATOR, Role.USER, Role.ADMINISTRATOR, False, True),
        (Role.ADMINISTRATOR, Role.USER, Role.OWNER, False, False),
        (Role.ADMINISTRATOR, Role.OWNER, Role.USER, False, False),
        (Role.ADMINISTRATOR, Role.ADMINISTRATOR, Role.USER, True, False),
        (Role.USER, Role.USER, Role.ADMINISTRATOR, False, False),
    ],
)
def test_global_role_changes(
    actor: Role, target: Role, new: Role, is_self: bool, allowed: bool
) -> None:
    assert can_set_global_role(actor, target, new, is_self) is allowed


def test_account_deletion_and_member_rules() -> None:
    assert not can_delete_user(Role.OWNER, Role.OWNER, is_self=True)
    assert can_delete_user(Role.USER, Role.USER, is_self=True)
    assert not can_delete_user(Role.USER, Role.USER, is_self=False)
    assert not can_delete_user(Role.ADMINISTRATOR, Role.OWNER, is_self=False)
    assert can_change_member_role(Role.OWNER, Role.USER, Role.OWNER, is_self=False)
    assert not can_change_member_role(Role.ADMINISTRATOR, Role.USER, Role.OWNER, is_self=False)
    assert not can_change_member_role(Role.ADMINISTRATOR, Role.OWNER, Role.USER, is_self=False)
    assert can_change_member_role(Role.ADMINISTRATOR, Role.USER, Role.ADMINISTRATOR, False)
    assert not can_change_member_role(Role.USER, Role.USER, Role.ADMINISTRATOR, False)
    assert can_remove_member(Role.USER, Role.USER, is_self=True)
    assert not can_remove_member(Role.USER, Role.ADMINISTRATOR, is_self=False)
    assert not can_remove_member(Role.OWNER, Role.OWNER, is_self=True)


def test_statistics_ranges() -> None:
    today = dt.date(2025, 3, 10)
    assert date_range("", "", today) == (dt.date(2025, 2, 9), today)
    assert date_range("2025-03-01", "2025-03-02", today) == (
        dt.date(2025, 3, 1),
        dt.date(2025, 3, 2),
    )
    with pytest.raises(ServiceError):
        date_range("2025-03-03", "2025-03-02", today)
    with pytest.raises(ServiceError):
        date_range("2023-01-01", "2025-03-02", today)
    days = fill_days({dt.date(2025, 3, 2): 4}, dt.date(2025, 3, 1), dt.date(2025, 3, 3))
    assert days == [(dt.date(2025, 3, 1), 0), (dt.date(2025, 3, 2), 4), (dt.date(2025, 3, 3), 0)]
    assert saturate_int32(2**40) == 2**31 - 1


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

"""Accounts and sessions through AdminService: sign-up, sign-in, tokens, sign-out, passwords."""

from __future__ import annotations

import base64
import json
import time
import uuid

import grpc
import pytest
import structlog

from admin_svc.tokens import TokenSigner
from facegrid.admin.v1 import admin_service_pb2 as pb
from facegrid.errors import error_info
from tests.admin_svc.helpers import TEST_TOKEN_SECRET, Admin, rpc_error

pytestmark = pytest.mark.integration


def _reason(error: grpc.aio.AioRpcError) -> str | None:
    info = error_info(error)
    return None if info is None else info.reason


def _bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=="))
    return decoded


async def test_the_first_user_is_owner_and_later_ones_are_users(admin: Admin) -> None:
    first = await admin.sign_up("Owner@Example.com")
    second = await admin.sign_up("second@example.com")
    assert (first.email, first.global_role) == ("owner@example.com", pb.GLOBAL_ROLE_OWNER)
    assert second.global_role == pb.GLOBAL_ROLE_USER
    uuid.UUID(first.user_id)


async def test_sign_up_of_a_taken_email_answers_as_a_new_one_and_creates_nothing(
    admin: Admin,
) -> None:
    await admin.sign_up("first@example.com")  # the OWNER; later accounts are USERs
    taken = await admin.sign_up("taken@example.com")
    again = await admin.sign_up("TAKEN@example.com", password="another-password")
    new = await admin.sign_up("new@example.com")
    for user in (again, new):  # the same shape: nothing tells a taken email apart
        assert (user.global_role, user.first_name) == (pb.GLOBAL_ROLE_USER, "Test")
        uuid.UUID(user.user_id)
    assert again.email == "taken@example.com" and again.user_id != taken.user_id
    await admin.sign_in("taken@example.com")  # the account is unchanged
    error = await rpc_error(admin.sign_in("taken@example.com", "another-password"))
    assert _reason(error) == "INVALID_CREDENTIALS"


async def test_sign_up_validates_every_field(admin: Admin) -> None:
    cases = [
        (pb.SignUpRequest(email="no-at-sign", password="password-1", first_name="A"), "email"),
        (pb.SignUpRequest(email="a@b.c", password="short", first_name="A"), "password"),
        (pb.SignUpRequest(email="a@b.c", password="password-1", first_name=" "), "first_name"),
        (
            pb.SignUpRequest(email="a@b.c", password="password-1", first_name="A" * 51),
            "first_name",
        ),
        (
            pb.SignUpRequest(
                email="a@b.c", password="password-1", first_name="A", last_name="a\tb"
            ),
            "last_name",
        ),
    ]
    for request, field in cases:
        error = await rpc_error(admin.stub.SignUp(request))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        info = error_info(error)
        assert info is not None and info.metadata["field"] == field
    users = await admin.stub.SignUp(
        pb.SignUpRequest(email="ok@b.c", password="password-1", first_name="A")
    )
    assert users.user.email == "ok@b.c"


async def test_sign_in_refuses_wrong_credentials_alike(admin: Admin) -> None:
    await admin.sign_up("user@example.com")
    wrong_password = await rpc_error(admin.sign_in("user@example.com", "password-2"))
    unknown_email = await rpc_error(admin.sign_in("nobody@example.com"))
    for error in (wrong_password, unknown_email):
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert _reason(error) == "INVALID_CREDENTIALS"
    assert wrong_password.details() == unknown_email.details()


async def test_sign_in_issues_an_expiring_signed_token_that_authenticates(admin: Admin) -> None:
    await admin.sign_up("user@example.com")
    reply = await admin.sign_in("user@example.com")
    assert reply.token_type == "Bearer"
    claims = _claims(reply.access_token)
    assert claims["exp"] == claims["iat"] + 900  # type: ignore[operator]
    assert reply.expires_in_s == 900
    assert reply.access_token_expire_time.seconds == claims["exp"]
    me = await admin.stub.GetCurrentUser(
        pb.GetCurrentUserRequest(), metadata=_bearer(reply.access_token)
    )
    assert me.user.email == "user@example.com"


async def test_missing_malformed_forged_and_expired_tokens_are_refused(admin: Admin) -> None:
    await admin.sign_up("user@example.com")
    good = (await admin.sign_in("user@example.com")).access_token
    claims = _claims(good)
    user_id, session_id = uuid.UUID(str(claims["sub"])), uuid.UUID(str(claims["sid"]))
    forged, _ = TokenSigner(b"another-secret-" * 4, 900).issue(user_id, session_id, time.time())
    expired, _ = TokenSigner(TEST_TOKEN_SECRET.encode(), 900).issue(
        user_id, session_id, time.time() - 10_000
    )
    cases = [
        ((), "TOKEN_MISSING"),
        ((("authorization", "Basic dXNlcjpwdw=="),), "TOKEN_MALFORMED"),
        (_bearer("not-a-token"), "TOKEN_INVALID"),
        (_bearer(good[:-2] + ("AA" if not good.endswith("AA") else "BB")), "TOKEN_INVALID"),
        (_bearer(forged), "TOKEN_INVALID"),
        (_bearer(expired), "TOKEN_EXPIRED"),
    ]
    for metadata, reason in cases:
        error = await rpc_error(admin.stub.ListUsers(pb.ListUsersRequest(), metadata=metadata))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, reason
        assert _reason(error) == reason


async def test_sign_out_revokes_the_access_and_refresh_tokens(admin: Admin) -> None:
    await admin.sign_up("user@example.com")
    reply = await admin.sign_in("user@example.com")
    other = await admin.sign_in("user@example.com")
    await admin.stub.SignOut(pb.SignOutRequest(), metadata=_bearer(reply.access_token))
    error = await rpc_error(
        admin.stub.GetCurrentUser(pb.GetCurrentUserRequest(), metadata=_bearer(reply.access_token))
    )
    assert _reason(error) == "SESSION_REVOKED"
    error = await rpc_error(
        admin.stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=reply.refresh_token))
    )
    assert _reason(error) == "SESSION_REVOKED"
    # Other sessions of the user stay open; one can also end by its refresh token alone.
    await admin.stub.GetCurrentUser(
        pb.GetCurrentUserRequest(), metadata=_bearer(other.access_token)
    )
    await admin.stub.SignOut(pb.SignOutRequest(refresh_token=other.refresh_token))
    error = await rpc_error(
        admin.stub.GetCurrentUser(pb.GetCurrentUserRequest(), metadata=_bearer(other.access_token))
    )
    assert _reason(error) == "SESSION_REVOKED"


async def test_refresh_rotates_the_refresh_token_and_a_replay_revokes_the_session(
    admin: Admin,
) -> None:
    await admin.sign_up("user@example.com")
    first = await admin.sign_in("user@example.com")
    second = await admin.stub.RefreshToken(
        pb.RefreshTokenRequest(refresh_token=first.refresh_token)
    )
    assert second.refresh_token != first.refresh_token
    await admin.stub.GetCurrentUser(
        pb.GetCurrentUserRequest(), metadata=_bearer(second.access_token)
    )
    replay = await rpc_error(
        admin.stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=first.refresh_token))
    )
    assert _reason(replay) == "REFRESH_TOKEN_REUSED"
    error = await rpc_error(
        admin.stub.GetCurrentUser(pb.GetCurrentUserRequest(), metadata=_bearer(second.access_token))
    )
    assert _reason(error) == "SESSION_REVOKED"
    garbage = await rpc_error(admin.stub.RefreshToken(pb.RefreshTokenRequest(refresh_token="x")))
    assert _reason(garbage) == "REFRESH_TOKEN_INVALID"


async def test_change_password_checks_the_old_one_and_ends_other_sessions(admin: Admin) -> None:
    await admin.sign_up("user@example.com")
    current = await admin.sign_in("user@example.com")
    other = await admin.sign_in("user@example.com")
    auth = _bearer(current.access_token)
    wrong = await rpc_error(
        admin.stub.ChangePassword(
            pb.ChangePasswordRequest(current_password="nope-nope", new_password="new-password"),
            metadata=auth,
        )
    )
    assert _reason(wrong) == "INVALID_CREDENTIALS"
    weak = await rpc_error(
        admin.stub.ChangePassword(
            pb.ChangePasswordRequest(current_password="password-1", new_password="short"),
            metadata=auth,
        )
    )
    assert weak.code() == grpc.StatusCode.INVALID_ARGUMENT
    await admin.stub.ChangePassword(
        pb.ChangePasswordRequest(current_password="password-1", new_password="new-password"),
        metadata=auth,
    )
    await admin.stub.GetCurrentUser(pb.GetCurrentUserRequest(), metadata=auth)
    error = await rpc_error(
        admin.stub.GetCurrentUser(pb.GetCurrentUserRequest(), metadata=_bearer(other.access_token))
    )
    assert _reason(error) == "SESSION_REVOKED"
    await rpc_error(admin.sign_in("user@example.com", "password-1"))
    await admin.sign_in("user@example.com", "new-password")


async def test_users_rename_themselves_and_list_everyone(admin: Admin) -> None:
    _, auth = await admin.user("owner@example.com")
    await admin.sign_up("zed@example.com")
    renamed = await admin.stub.UpdateUser(
        pb.UpdateUserRequest(user_id="me", first_name="Olive", last_name="Owner"), metadata=auth
    )
    assert (renamed.user.first_name, renamed.user.last_name) == ("Olive", "Owner")
    kept = await admin.stub.UpdateUser(
        pb.UpdateUserRequest(user_id="me", last_name=""), metadata=auth
    )
    assert (kept.user.first_name, kept.user.last_name) == ("Olive", "")
    listed = await admin.stub.ListUsers(pb.ListUsersRequest(), metadata=auth)
    assert [u.email for u in listed.users] == ["owner@example.com", "zed@example.com"]
    missing = await rpc_error(
        admin.stub.UpdateUser(
            pb.UpdateUserRequest(user_id=str(uuid.uuid4()), first_name="X"), metadata=auth
        )
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    bad = await rpc_error(
        admin.stub.UpdateUser(pb.UpdateUserRequest(user_id="42", first_name="X"), metadata=auth)
    )
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_deleted_users_applications_pass_to_the_owner(admin: Admin) -> None:
    owner, owner_auth = await admin.user("owner@example.com")
    second, second_auth = await admin.user("second@example.com")
    await admin.stub.UpdateUserRole(
        pb.UpdateUserRoleRequest(user_id=second.user_id, global_role=pb.GLOBAL_ROLE_ADMINISTRATOR),
        metadata=owner_auth,
    )
    app = await admin.create_app(second_auth, "theirs")
    await admin.stub.DeleteUser(pb.DeleteUserRequest(user_id="me"), metadata=second_auth)
    error = await rpc_error(
        admin.stub.GetCurrentUser(pb.GetCurrentUserRequest(), metadata=second_auth)
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    reply = await admin.stub.GetApplication(
        pb.GetApplicationRequest(application_id=app.application_id), metadata=owner_auth
    )
    assert reply.application.owner.user_id == owner.user_id


async def test_nothing_secret_reaches_the_log(admin: Admin) -> None:
    with structlog.testing.capture_logs() as events:
        await admin.sign_up("user@example.com", password="very-secret-pw")
        reply = await admin.sign_in("user@example.com", password="very-secret-pw")
        await rpc_error(admin.sign_in("user@example.com", password="wrong-secret-pw"))
        auth = _bearer(reply.access_token)
        await admin.stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=reply.refresh_token))
        app = await admin.create_app(auth, "logged")
        service = await admin.create_service(auth, app.application_id)
    text = json.dumps(events, default=str)
    assert events
    for secret in (
        "very-secret-pw",
        "wrong-secret-pw",
        reply.access_token,
        reply.refresh_token.split(".")[1],
        service.api_key,
        TEST_TOKEN_SECRET,
    ):
        assert secret not in text

"""Handlers of accounts and sessions: sign-up, sign-in, tokens, users and global roles.

Sign-up and sign-in give the same answer after the same work whether or not an account has the
email (no enumeration): sign-in checks a dummy hash for an unknown email, sign-up hashes the
password and runs the same insert, which creates nothing for a taken email. Credential attempts
are counted before any password is checked (admin_svc/throttle.py).
"""

from __future__ import annotations

import datetime as dt
import uuid

import structlog

from admin_svc import convert, keys, validation
from admin_svc.auth import Principal, require
from admin_svc.deps import Deps
from admin_svc.errors import insufficient_role, invalid, not_found, unauthenticated
from admin_svc.permissions import (
    Role,
    can_delete_user,
    can_manage_user,
    can_set_global_role,
    is_global_admin,
)
from admin_svc.store import sessions, users
from admin_svc.store.users import UserRow
from admin_svc.throttle import Attempt, digest
from facegrid.admin.v1 import admin_service_pb2 as pb
from facegrid.errors import ServiceError

log = structlog.get_logger()

#: Value of ``token_type`` in sign-in answers.
TOKEN_TYPE = "Bearer"  # noqa: S105 (a scheme name, not a secret)


def _user_id(value: str, principal: Principal, field: str = "user_id") -> uuid.UUID:
    """A user id field, where "me" means the caller."""
    if value.strip().lower() == "me":
        return principal.user.id
    return validation.uuid_field(value, field)


def _bad_credentials() -> ServiceError:
    return unauthenticated("INVALID_CREDENTIALS", "wrong email or password")


def _address(address: str | None) -> bytes | None:
    return None if address is None else digest(address)


async def sign_up(
    deps: Deps, request: pb.SignUpRequest, address: str | None = None
) -> pb.SignUpResponse:
    """Creates an account (the first one is the global OWNER); a taken email gets the same
    answer, with a user that does not exist."""
    email = validation.email(request.email)
    password = validation.password(request.password)
    first_name = validation.display_name(request.first_name, "first_name")
    last_name = validation.display_name(request.last_name, "last_name", allow_empty=True)
    async with deps.pool.acquire() as conn:
        await deps.throttle.admit(conn, Attempt(None, _address(address)))
    password_hash = await deps.hasher.hash(password)
    async with deps.pool.acquire() as conn, conn.transaction():
        user = await users.create_user(conn, email, password_hash, first_name, last_name)
    if user is None:
        log.info("sign_up_email_taken")
        user = UserRow(
            uuid.uuid4(), email, first_name, last_name, Role.USER, dt.datetime.now(dt.UTC)
        )
    else:
        log.info("user_signed_up", user_id=str(user.id), global_role=user.global_role.value)
    return pb.SignUpResponse(user=convert.user(user))


async def sign_in(
    deps: Deps, request: pb.SignInRequest, address: str | None = None
) -> pb.SignInResponse:
    """Checks the credentials and opens a session."""
    email = validation.email(request.email)
    if len(request.password) > validation.PASSWORD_MAX_CHARS:
        raise _bad_credentials()
    attempt = Attempt(digest(email), _address(address))
    async with deps.pool.acquire() as conn:
        await deps.throttle.admit(conn, attempt)
        user = await users.get_user_by_email(conn, email)
        stored_hash = None if user is None else await users.get_password_hash(conn, user.id)
    if not await deps.hasher.verify(stored_hash, request.password) or user is None:
        log.info("sign_in_refused")
        raise _bad_credentials()
    assert stored_hash is not None
    secret = keys.new_refresh_secret()
    async with deps.pool.acquire() as conn, conn.transaction():
        await deps.throttle.succeeded(conn, attempt)
        if deps.hasher.needs_rehash(stored_hash):
            await users.set_password_hash(conn, user.id, await deps.hasher.hash(request.password))
        session = await sessions.create_session(
            conn, user.id, keys.refresh_secret_digest(secret), deps.refresh_ttl_s
        )
    access_token, expires_at = deps.signer.issue(user.id, session.id, deps.clock())
    log.info("user_signed_in", user_id=str(user.id), session_id=str(session.id))
    return pb.SignInResponse(
        access_token=access_token,
        token_type=TOKEN_TYPE,
        expires_in_s=deps.signer.ttl_s,
        access_token_expire_time=convert.timestamp(dt.datetime.fromtimestamp(expires_at, dt.UTC)),
        refresh_token=keys.refresh_token(session.id, secret),
        refresh_token_expire_time=convert.timestamp(session.expires_at),
        user=convert.user(user),
    )


async def refresh_token(deps: Deps, request: pb.RefreshTokenRequest) -> pb.RefreshTokenResponse:
    """Rotates a session's refresh token and issues a new access token. A refresh token
    presented a second time (stolen, or replayed) revokes its session."""
    parsed = keys.split_refresh_token(request.refresh_token)
    if parsed is None:
        raise unauthenticated("REFRESH_TOKEN_INVALID", "the refresh token is not valid")
    session_id, secret = parsed
    new_secret = keys.new_refresh_secret()
    problem = None
    async with deps.pool.acquire() as conn, conn.transaction():
        session = await sessions.get_session_for_update(conn, session_id)
        now = dt.datetime.now(dt.UTC)
        if session is None:
            problem = unauthenticated("REFRESH_TOKEN_INVALID", "the refresh token is not valid")
        elif not sessions.is_live(session, now):
            problem = unauthenticated("SESSION_REVOKED", "the session has ended; sign in again")
        elif not keys.digests_equal(session.refresh_hash, keys.refresh_secret_digest(secret)):
            await sessions.revoke_session(conn, session.id)
            log.warning("refresh_token_reused", session_id=str(session.id))
            problem = unauthenticated(
                "REFRESH_TOKEN_REUSED",
                "this refresh token was already used; the session is revoked, sign in again",
            )
        else:
            await sessions.replace_refresh_hash(
                conn, session.id, keys.refresh_secret_digest(new_secret)
            )
    if problem is not None:
        raise problem
    assert session is not None
    access_token, expires_at = deps.signer.issue(session.user_id, session.id, deps.clock())
    return pb.RefreshTokenResponse(
        access_token=access_token,
        token_type=TOKEN_TYPE,
        expires_in_s=deps.signer.ttl_s,
        access_token_expire_time=convert.timestamp(dt.datetime.fromtimestamp(expires_at, dt.UTC)),
        refresh_token=keys.refresh_token(session.id, new_secret),
        refresh_token_expire_time=convert.timestamp(session.expires_at),
    )


async def sign_out(
    deps: Deps, principal: Principal | None, request: pb.SignOutRequest
) -> pb.SignOutResponse:
    """Revokes the session of the refresh token given, else the caller's."""
    if request.refresh_token:
        parsed = keys.split_refresh_token(request.refresh_token)
        if parsed is None:
            raise unauthenticated("REFRESH_TOKEN_INVALID", "the refresh token is not valid")
        session_id, secret = parsed
        async with deps.pool.acquire() as conn, conn.transaction():
            session = await sessions.get_session_for_update(conn, session_id)
            if session is None or not keys.digests_equal(
                session.refresh_hash, keys.refresh_secret_digest(secret)
            ):
                raise unauthenticated("REFRESH_TOKEN_INVALID", "the refresh token is not valid")
            await sessions.revoke_session(conn, session.id)
    else:
        caller = require(principal)
        session_id = caller.session_id
        async with deps.pool.acquire() as conn:
            await sessions.revoke_session(conn, session_id)
    log.info("user_signed_out", session_id=str(session_id))
    return pb.SignOutResponse()


async def get_current_user(
    deps: Deps, principal: Principal, request: pb.GetCurrentUserRequest
) -> pb.GetCurrentUserResponse:
    """The caller's account."""
    return pb.GetCurrentUserResponse(user=convert.user(principal.user))


async def list_users(
    deps: Deps, principal: Principal, request: pb.ListUsersRequest
) -> pb.ListUsersResponse:
    """Every account, for global OWNER and ADMINISTRATOR only (others would learn every
    e-mail address of the deployment)."""
    if not is_global_admin(principal.user.global_role):
        raise insufficient_role("listing users (global OWNER or ADMINISTRATOR only)")
    async with deps.pool.acquire() as conn:
        rows = await users.list_users(conn)
    return pb.ListUsersResponse(users=[convert.user(row) for row in rows])


async def update_user(
    deps: Deps, principal: Principal, request: pb.UpdateUserRequest
) -> pb.UpdateUserResponse:
    """Renames an account."""
    target_id = _user_id(request.user_id, principal)
    first_name = (
        validation.display_name(request.first_name, "first_name")
        if request.HasField("first_name")
        else None
    )
    last_name = (
        validation.display_name(request.last_name, "last_name", allow_empty=True)
        if request.HasField("last_name")
        else None
    )
    async with deps.pool.acquire() as conn, conn.transaction():
        target = await users.get_user_for_update(conn, target_id)
        if target is None:
            raise not_found("user", target_id)
        if not can_manage_user(
            principal.user.global_role, target.global_role, target.id == principal.user.id
        ):
            raise insufficient_role("renaming this user")
        updated = await users.update_names(conn, target_id, first_name, last_name)
    assert updated is not None
    return pb.UpdateUserResponse(user=convert.user(updated))


async def update_user_role(
    deps: Deps, principal: Principal, request: pb.UpdateUserRoleRequest
) -> pb.UpdateUserRoleResponse:
    """Changes a global role; giving OWNER transfers ownership."""
    target_id = _user_id(request.user_id, principal)
    new_role = convert.GLOBAL_ROLE_OF.get(request.global_role)
    if new_role is None:
        raise invalid("global_role", "global_role must be OWNER, ADMINISTRATOR or USER")
    async with deps.pool.acquire() as conn, conn.transaction():
        actor = await users.get_user_for_update(conn, principal.user.id)
        target = await users.get_user_for_update(conn, target_id)
        if target is None:
            raise not_found("user", target_id)
        assert actor is not None
        if not can_set_global_role(
            actor.global_role, target.global_role, new_role, target.id == actor.id
        ):
            raise insufficient_role(f"giving this user the global role {new_role.value}")
        if new_role is Role.OWNER:
            updated = await users.transfer_global_ownership(conn, actor.id, target.id)
        else:
            updated = await users.set_global_role(conn, target.id, new_role)
    log.info("global_role_changed", user_id=str(target_id), global_role=new_role.value)
    return pb.UpdateUserRoleResponse(user=convert.user(updated))


async def change_password(
    deps: Deps, principal: Principal, request: pb.ChangePasswordRequest
) -> pb.ChangePasswordResponse:
    """Changes the caller's password and ends its other sessions."""
    new_password = validation.password(request.new_password, "new_password")
    async with deps.pool.acquire() as conn:
        await deps.throttle.admit(conn, Attempt(digest(principal.user.email), None))
        stored_hash = await users.get_password_hash(conn, principal.user.id)
    if not await deps.hasher.verify(stored_hash, request.current_password):
        raise _bad_credentials()
    new_hash = await deps.hasher.hash(new_password)
    async with deps.pool.acquire() as conn, conn.transaction():
        await users.set_password_hash(conn, principal.user.id, new_hash)
        revoked = await sessions.revoke_other_sessions(
            conn, principal.user.id, principal.session_id
        )
    log.info("password_changed", user_id=str(principal.user.id), sessions_revoked=revoked)
    return pb.ChangePasswordResponse()


async def delete_user(
    deps: Deps, principal: Principal, request: pb.DeleteUserRequest
) -> pb.DeleteUserResponse:
    """Deletes an account; the applications it owned pass to the global OWNER."""
    target_id = _user_id(request.user_id, principal)
    async with deps.pool.acquire() as conn, conn.transaction():
        target = await users.get_user_for_update(conn, target_id)
        if target is None:
            raise not_found("user", target_id)
        if not can_delete_user(
            principal.user.global_role, target.global_role, target.id == principal.user.id
        ):
            raise insufficient_role("deleting this user")
        await users.delete_user(conn, target_id)
    log.info("user_deleted", user_id=str(target_id), by=str(principal.user.id))
    return pb.DeleteUserResponse()

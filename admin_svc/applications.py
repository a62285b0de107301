"""Handlers of applications and their members, and the access check every application-scoped
RPC starts with."""

from __future__ import annotations

import uuid

import asyncpg
import structlog

from admin_svc import convert, validation
from admin_svc.auth import Principal
from admin_svc.deps import Deps
from admin_svc.errors import insufficient_role, invalid, not_found, not_member
from admin_svc.permissions import (
    AppAction,
    Role,
    app_allows,
    can_add_member,
    can_change_member_role,
    can_create_application,
    can_remove_member,
    effective_app_role,
    is_global_admin,
)
from admin_svc.store import applications, invitations, users
from admin_svc.store.applications import ApplicationRow, MemberRow
from facegrid.admin.v1 import admin_service_pb2 as pb

log = structlog.get_logger()


async def require_app(
    conn: asyncpg.Connection, principal: Principal, application_id: str, action: AppAction
) -> tuple[ApplicationRow, Role]:
    """The application and the caller's effective role in it, once the caller may do
    ``action`` there. NOT_FOUND for an unknown id, PERMISSION_DENIED for a non-member
    (NOT_APPLICATION_MEMBER) or a role too low (INSUFFICIENT_ROLE)."""
    app_id = validation.uuid_field(application_id, "application_id")
    application = await applications.get_application(conn, app_id)
    if application is None:
        raise not_found("application", app_id)
    membership = await applications.member_role(conn, app_id, principal.user.id)
    role = effective_app_role(principal.user.global_role, membership)
    if role is None:
        raise not_member(app_id)
    if not app_allows(role, action):
        raise insufficient_role(action.value)
    return application, role


def _app_role(value: int, field: str, default: Role | None = None) -> Role:
    role = convert.APP_ROLE_OF.get(value, default)
    if role is None:
        raise invalid(field, f"{field} must be OWNER, ADMINISTRATOR or USER")
    return role


async def create_application(
    deps: Deps, principal: Principal, request: pb.CreateApplicationRequest
) -> pb.CreateApplicationResponse:
    """Creates an application owned by the caller."""
    if not can_create_application(principal.user.global_role):
        raise insufficient_role("creating applications (global OWNER or ADMINISTRATOR only)")
    name = validation.display_name(request.name, "name")
    async with deps.pool.acquire() as conn, conn.transaction():
        application = await applications.create_application(conn, name, principal.user.id)
    log.info("application_created", application_id=str(application.id))
    return pb.CreateApplicationResponse(application=convert.application(application, Role.OWNER))


async def list_applications(
    deps: Deps, principal: Principal, request: pb.ListApplicationsRequest
) -> pb.ListApplicationsResponse:
    """The applications the caller can see."""
    global_role = principal.user.global_role
    member_id = None if is_global_admin(global_role) else principal.user.id
    async with deps.pool.acquire() as conn:
        rows = await applications.list_applications(conn, member_id)
    return pb.ListApplicationsResponse(
        applications=[
            convert.application(row, effective_app_role(global_role, role)) for row, role in rows
        ]
    )


async def get_application(
    deps: Deps, principal: Principal, request: pb.GetApplicationRequest
) -> pb.GetApplicationResponse:
    """One application."""
    async with deps.pool.acquire() as conn:
        application, role = await require_app(
            conn, principal, request.application_id, AppAction.VIEW
        )
    return pb.GetApplicationResponse(application=convert.application(application, role))


async def rename_application(
    deps: Deps, principal: Principal, request: pb.RenameApplicationRequest
) -> pb.RenameApplicationResponse:
    """Renames an application."""
    name = validation.display_name(request.name, "name")
    async with deps.pool.acquire() as conn, conn.transaction():
        application, role = await require_app(
            conn, principal, request.application_id, AppAction.RENAME
        )
        await applications.rename_application(conn, application.id, name)
        renamed = await applications.get_application(conn, application.id)
    assert renamed is not None
    return pb.RenameApplicationResponse(application=convert.application(renamed, role))


async def delete_application(
    deps: Deps, principal: Principal, request: pb.DeleteApplicationRequest
) -> pb.DeleteApplicationResponse:
    """Deletes an application and everything in it."""
    async with deps.pool.acquire() as conn, conn.transaction():
        application, _ = await require_app(
            conn, principal, request.application_id, AppAction.DELETE
        )
        await applications.delete_application(conn, application.id)
    log.info("application_deleted", application_id=str(application.id))
    return pb.DeleteApplicationResponse()


async def list_members(
    deps: Deps, principal: Principal, request: pb.ListMembersRequest
) -> pb.ListMembersResponse:
    """An application's members, then its pending invitations."""
    async with deps.pool.acquire() as conn:
        application, _ = await require_app(conn, principal, request.application_id, AppAction.VIEW)
        rows = await applications.list_members(conn, application.id)
        pending = await invitations.list_invitations(conn, application.id)
    return pb.ListMembersResponse(
        members=[convert.member(row) for row in rows] + [convert.invitation(i) for i in pending]
    )


async def add_member(
    deps: Deps, principal: Principal, request: pb.AddMemberRequest
) -> pb.AddMemberResponse:
    """Adds a user to an application, or invites an email that has no account yet (the same
    answer: accounts cannot be told from unknown emails by an error)."""
    role = _app_role(request.role, "role", default=Role.USER)
    if role is Role.OWNER:
        raise invalid("role", "a member cannot be added as OWNER; transfer ownership instead")
    email = validation.email(request.email)
    async with deps.pool.acquire() as conn, conn.transaction():
        application, actor_role = await require_app(
            conn, principal, request.application_id, AppAction.VIEW
        )
        if not can_add_member(actor_role, role):
            raise insufficient_role(AppAction.MANAGE_MEMBERS.value)
        user = await users.get_user_by_email(conn, email)
        if user is None:
            invited = await invitations.add_invitation(conn, application.id, email, role)
            log.info("member_invited", application_id=str(application.id))
            return pb.AddMemberResponse(member=convert.invitation(invited))
        member = await applications.add_member(conn, application.id, user.id, role)
    log.info("member_added", application_id=str(application.id), user_id=str(user.id))
    return pb.AddMemberResponse(member=convert.member(member))


async def update_member_role(
    deps: Deps, principal: Principal, request: pb.UpdateMemberRoleRequest
) -> pb.UpdateMemberRoleResponse:
    """Changes a member's role; OWNER transfers ownership."""
    new_role = _app_role(request.role, "role")
    user_id = _member_id(request.user_id, principal)
    async with deps.pool.acquire() as conn, conn.transaction():
        application, actor_role, target = await _member_of_app(
            conn, principal, request.application_id, user_id
        )
        if not can_change_member_role(
            actor_role, target.role, new_role, user_id == principal.user.id
        ):
            raise insufficient_role(f"making this member {new_role.value}")
        if new_role is Role.OWNER:
            member = await applications.transfer_ownership(conn, application.id, user_id)
        else:
            member = await applications.set_member_role(conn, application.id, user_id, new_role)
    log.info("member_role_changed", application_id=str(application.id), user_id=str(user_id))
    return pb.UpdateMemberRoleResponse(member=convert.member(member))


async def remove_member(
    deps: Deps, principal: Principal, request: pb.RemoveMemberRequest
) -> pb.RemoveMemberResponse:
    """Removes a member (or the caller leaves), or cancels a pending invitation."""
    if "@" in request.user_id:
        return await _cancel_invitation(deps, principal, request)
    user_id = _member_id(request.user_id, principal)
    async with deps.pool.acquire() as conn, conn.transaction():
        application, actor_role, target = await _member_of_app(
            conn, principal, request.application_id, user_id
        )
        if not can_remove_member(actor_role, target.role, user_id == principal.user.id):
            raise insufficient_role("removing this member")
        await applications.remove_member(conn, application.id, user_id)
    log.info("member_removed", application_id=str(application.id), user_id=str(user_id))
    return pb.RemoveMemberResponse()


async def _cancel_invitation(
    deps: Deps, principal: Principal, request: pb.RemoveMemberRequest
) -> pb.RemoveMemberResponse:
    email = validation.email(request.user_id, "user_id")
    async with deps.pool.acquire() as conn, conn.transaction():
        application, actor_role = await require_app(
            conn, principal, request.application_id, AppAction.VIEW
        )
        invited = await invitations.get_invitation(conn, application.id, email)
        if invited is None:
            raise not_found("member", email)
        if not can_remove_member(actor_role, invited.role, is_self=False):
            raise insufficient_role("removing this member")
        await invitations.remove_invitation(conn, application.id, email)
    log.info("invitation_cancelled", application_id=str(application.id))
    return pb.RemoveMemberResponse()


async def _member_of_app(
    conn: asyncpg.Connection, principal: Principal, application_id: str, user_id: uuid.UUID
) -> tuple[ApplicationRow, Role, MemberRow]:
    """The application (the caller must see it), the caller's role in it, and the membership
    of ``user_id`` (NOT_FOUND when that user is not a member)."""
    application, actor_role = await require_app(conn, principal, application_id, AppAction.VIEW)
    target = await applications.get_member(conn, application.id, user_id)
    if target is None:
        raise not_found("member", user_id)
    return application, actor_role, target


def _member_id(value: str, principal: Principal) -> uuid.UUID:
    if value.strip().lower() == "me":
        return principal.user.id
    return validation.uuid_field(value, "user_id")

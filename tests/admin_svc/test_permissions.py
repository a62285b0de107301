"""Roles and permissions: the rules (admin_svc/permissions.py), and through AdminService on a
real database who may do what, and who may not."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

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
from facegrid.admin.v1 import admin_service_pb2 as pb
from facegrid.common.v1 import common_pb2
from facegrid.errors import error_info
from tests.admin_svc.helpers import Admin, rpc_error

Auth = tuple[tuple[str, str], ...]


@dataclass
class Team:
    """Global OWNER, a global ADMINISTRATOR, two global USERs, and the owner's application."""

    owner: pb.User
    owner_auth: Auth
    admin_user: pb.User
    admin_auth: Auth
    alice: pb.User
    alice_auth: Auth
    bob: pb.User
    bob_auth: Auth
    app: pb.Application
    service: pb.Service


@pytest.fixture
async def team(admin: Admin) -> Team:
    owner, owner_auth = await admin.user("owner@example.com")
    admin_user, admin_auth = await admin.user("admin@example.com")
    alice, alice_auth = await admin.user("alice@example.com")
    bob, bob_auth = await admin.user("bob@example.com")
    await admin.stub.UpdateUserRole(
        pb.UpdateUserRoleRequest(
            user_id=admin_user.user_id, global_role=pb.GLOBAL_ROLE_ADMINISTRATOR
        ),
        metadata=owner_auth,
    )
    app = await admin.create_app(owner_auth, "team app")
    service = await admin.create_service(owner_auth, app.application_id)
    return Team(
        owner, owner_auth, admin_user, admin_auth, alice, alice_auth, bob, bob_auth, app, service
    )


async def _denied(call: Any, reason: str) -> None:
    error = await rpc_error(call)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, reason
    info = error_info(error)
    assert info is not None and info.reason == reason


async def _add(
    admin: Admin,
    team: Team,
    email: str,
    role: pb.ApplicationRole,
    auth: Auth | None = None,
) -> None:
    await admin.stub.AddMember(
        pb.AddMemberRequest(application_id=team.app.application_id, email=email, role=role),
        metadata=auth or team.owner_auth,
    )


@pytest.mark.integration
async def test_global_users_cannot_create_applications(admin: Admin, team: Team) -> None:
    await _denied(
        admin.stub.CreateApplication(
            pb.CreateApplicationRequest(name="x"), metadata=team.alice_auth
        ),
        "INSUFFICIENT_ROLE",
    )
    created = await admin.create_app(team.admin_auth, "admins may")
    assert created.caller_role == pb.APPLICATION_ROLE_OWNER


@pytest.mark.integration
async def test_non_members_are_refused_everything_in_an_application(
    admin: Admin, team: Team
) -> None:
    app_id, service_id = team.app.application_id, team.service.service_id
    calls = [
        admin.stub.GetApplication(
            pb.GetApplicationRequest(application_id=app_id), metadata=team.alice_auth
        ),
        admin.stub.ListServices(
            pb.ListServicesRequest(application_id=app_id), metadata=team.alice_auth
        ),
        admin.stub.GetService(
            pb.GetServiceRequest(application_id=app_id, service_id=service_id),
            metadata=team.alice_auth,
        ),
        admin.stub.ListMembers(
            pb.ListMembersRequest(application_id=app_id), metadata=team.alice_auth
        ),
        admin.stub.CreateService(
            pb.CreateServiceRequest(
                application_id=app_id, name="mine", type=common_pb2.SERVICE_TYPE_DETECTION
            ),
            metadata=team.alice_auth,
        ),
        admin.stub.DeleteApplication(
            pb.DeleteApplicationRequest(application_id=app_id), metadata=team.alice_auth
        ),
        admin.stub.AddMember(
            pb.AddMemberRequest(application_id=app_id, email="alice@example.com"),
            metadata=team.alice_auth,
        ),
    ]
    for call in calls:
        await _denied(call, "NOT_APPLICATION_MEMBER")
    listed = await admin.stub.ListApplications(
        pb.ListApplicationsRequest(), metadata=team.alice_auth
    )
    assert list(listed.applications) == []


@pytest.mark.integration
async def test_application_users_only_read(admin: Admin, team: Team) -> None:
    await _add(admin, team, "alice@example.com", pb.APPLICATION_ROLE_USER)
    app_id, service_id = team.app.application_id, team.service.service_id
    auth = team.alice_auth
    got = await admin.stub.GetService(
        pb.GetServiceRequest(application_id=app_id, service_id=service_id), metadata=auth
    )
    assert got.service.api_key == team.service.api_key
    await admin.stub.GetServiceStatistics(
        pb.GetServiceStatisticsRequest(application_id=app_id, service_id=service_id), metadata=auth
    )
    members = await admin.stub.ListMembers(
        pb.ListMembersRequest(application_id=app_id), metadata=auth
    )
    assert [m.user.email for m in members.members] == ["owner@example.com", "alice@example.com"]
    listed = await admin.stub.ListApplications(pb.ListApplicationsRequest(), metadata=auth)
    assert [a.caller_role for a in listed.applications] == [pb.APPLICATION_ROLE_USER]
    refused = [
        admin.stub.CreateService(
            pb.CreateServiceRequest(
                application_id=app_id, name="x", type=common_pb2.SERVICE_TYPE_RECOGNITION
            ),
            metadata=auth,
        ),
        admin.stub.RotateApiKey(
            pb.RotateApiKeyRequest(application_id=app_id, service_id=service_id), metadata=auth
        ),
        admin.stub.DeleteService(
            pb.DeleteServiceRequest(application_id=app_id, service_id=service_id), metadata=auth
        ),
        admin.stub.CloneService(
            pb.CloneServiceRequest(application_id=app_id, service_id=service_id, name="c"),
            metadata=auth,
        ),
        admin.stub.StartEmbeddingMigration(
            pb.StartEmbeddingMigrationRequest(application_id=app_id, service_id=service_id),
            metadata=auth,
        ),
        admin.stub.RenameApplication(
            pb.RenameApplicationRequest(application_id=app_id, name="n"), metadata=auth
        ),
        admin.stub.AddMember(
            pb.AddMemberRequest(application_id=app_id, email="bob@example.com"), metadata=auth
        ),
    ]
    for call in refused:
        await _denied(call, "INSUFFICIENT_ROLE")


@pytest.mark.integration
async def test_application_administrators_manage_all_but_the_owner_and_deletion(
    admin: Admin, team: Team
) -> None:
    await _add(admin, team, "alice@example.com", pb.APPLICATION_ROLE_ADMINISTRATOR)
    app_id, auth = team.app.application_id, team.alice_auth
    created = await admin.create_service(
        auth, app_id, "by-admin", common_pb2.SERVICE_TYPE_DETECTION
    )
    await admin.stub.RotateApiKey(
        pb.RotateApiKeyRequest(application_id=app_id, service_id=created.service_id), metadata=auth
    )
    await admin.stub.RenameApplication(
        pb.RenameApplicationRequest(application_id=app_id, name="renamed"), metadata=auth
    )
    await _add(admin, team, "bob@example.com", pb.APPLICATION_ROLE_USER, auth)
    await admin.stub.UpdateMemberRole(
        pb.UpdateMemberRoleRequest(
            application_id=app_id, user_id=team.bob.user_id, role=pb.APPLICATION_ROLE_ADMINISTRATOR
        ),
        metadata=auth,
    )
    await _denied(
        admin.stub.DeleteApplication(
            pb.DeleteApplicationRequest(application_id=app_id), metadata=auth
        ),
        "INSUFFICIENT_ROLE",
    )
    await _denied(
        admin.stub.RemoveMember(
            pb.RemoveMemberRequest(application_id=app_id, user_id=team.owner.user_id), metadata=auth
        ),
        "INSUFFICIENT_ROLE",
    )
    await _denied(
        admin.stub.UpdateMemberRole(
            pb.UpdateMemberRoleRequest(
                application_id=app_id, user_id=team.owner.user_id, role=pb.APPLICATION_ROLE_USER
            ),
            metadata=auth,
        ),
        "INSUFFICIENT_ROLE",
    )
    await _denied(
        admin.stub.UpdateMemberRole(
            pb.UpdateMemberRoleRequest(
                application_id=app_id, user_id=team.bob.user_id, role=pb.APPLICATION_ROLE_OWNER
            ),
            metadata=auth,
        ),
        "INSUFFICIENT_ROLE",
    )
    await _denied(
        admin.stub.UpdateMemberRole(
            pb.UpdateMemberRoleRequest(
                application_id=app_id, user_id="me", role=pb.APPLICATION_ROLE_USER
            ),
            metadata=auth,
        ),
        "INSUFFICIENT_ROLE",
    )
    add_owner = await rpc_error(
        admin.stub.AddMember(
            pb.AddMemberRequest(
                application_id=app_id, email="admin@example.com", role=pb.APPLICATION_ROLE_OWNER
            ),
            metadata=auth,
        )
    )
    assert add_owner.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.integration
async def test_members_leave_and_owners_transfer_ownership(admin: Admin, team: Team) -> None:
    app_id = team.app.application_id
    await _add(admin, team, "alice@example.com", pb.APPLICATION_ROLE_USER)
    await _add(admin, team, "bob@example.com", pb.APPLICATION_ROLE_USER)
    again = await rpc_error(
        admin.stub.AddMember(
            pb.AddMemberRequest(application_id=app_id, email="bob@example.com"),
            metadata=team.owner_auth,
        )
    )
    assert again.code() == grpc.StatusCode.ALREADY_EXISTS
    invited = await admin.stub.AddMember(  # no account: invited, not NOT_FOUND
        pb.AddMemberRequest(application_id=app_id, email="nobody@example.com"),
        metadata=team.owner_auth,
    )
    assert invited.member.pending and invited.member.user.email == "nobody@example.com"
    await admin.stub.RemoveMember(
        pb.RemoveMemberRequest(application_id=app_id, user_id="me"), metadata=team.bob_auth
    )
    await _denied(
        admin.stub.RemoveMember(
            pb.RemoveMemberRequest(application_id=app_id, user_id="me"), metadata=team.owner_auth
        ),
        "INSUFFICIENT_ROLE",
    )
    moved = await admin.stub.UpdateMemberRole(
        pb.UpdateMemberRoleRequest(
            application_id=app_id, user_id=team.alice.user_id, role=pb.APPLICATION_ROLE_OWNER
        ),
        metadata=team.owner_auth,
    )
    assert moved.member.role == pb.APPLICATION_ROLE_OWNER
    members = await admin.stub.ListMembers(
        pb.ListMembersRequest(application_id=app_id), metadata=team.alice_auth
    )
    roles = {m.user.email: (m.role, m.pending) for m in members.members}
    assert roles == {
        "alice@example.com": (pb.APPLICATION_ROLE_OWNER, False),
        "owner@example.com": (pb.APPLICATION_ROLE_ADMINISTRATOR, False),
        "nobody@example.com": (pb.APPLICATION_ROLE_USER, True),
    }
    await admin.stub.DeleteApplication(
        pb.DeleteApplicationRequest(application_id=app_id), metadata=team.alice_auth
    )


@pytest.mark.integration
async def test_global_administrators_act_as_owner_of_every_application(
    admin: Admin, team: Team
) -> None:
    listed = await admin.stub.ListApplications(
        pb.ListApplicationsRequest(), metadata=team.admin_auth
    )
    assert [(a.name, a.caller_role) for a in listed.applications] == [
        ("team app", pb.APPLICATION_ROLE_OWNER)
    ]
    await admin.stub.DeleteApplication(
        pb.DeleteApplicationRequest(application_id=team.app.application_id),
        metadata=team.admin_auth,
    )
    gone = await rpc_error(
        admin.stub.GetApplication(
            pb.GetApplicationRequest(application_id=team.app.application_id),
            metadata=team.owner_auth,
        )
    )
    assert gone.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.integration
async def test_global_roles_follow_compreface(admin: Admin, team: Team) -> None:
    def set_role(user: pb.User, role: pb.GlobalRole, auth: Auth) -> Any:
        return admin.stub.UpdateUserRole(
            pb.UpdateUserRoleRequest(user_id=user.user_id, global_role=role), metadata=auth
        )

    await _denied(
        set_role(team.bob, pb.GLOBAL_ROLE_ADMINISTRATOR, team.alice_auth), "INSUFFICIENT_ROLE"
    )
    await _denied(set_role(team.owner, pb.GLOBAL_ROLE_USER, team.admin_auth), "INSUFFICIENT_ROLE")
    await _denied(set_role(team.bob, pb.GLOBAL_ROLE_OWNER, team.admin_auth), "INSUFFICIENT_ROLE")
    await _denied(
        set_role(team.admin_user, pb.GLOBAL_ROLE_USER, team.admin_auth), "INSUFFICIENT_ROLE"
    )
    promoted = await set_role(team.bob, pb.GLOBAL_ROLE_ADMINISTRATOR, team.admin_auth)
    assert promoted.user.global_role == pb.GLOBAL_ROLE_ADMINISTRATOR
    bad = await rpc_error(set_role(team.bob, pb.GLOBAL_ROLE_UNSPECIFIED, team.owner_auth))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    # Ownership moves only by the owner's transfer; the previous owner becomes ADMINISTRATOR.
    moved = await set_role(team.alice, pb.GLOBAL_ROLE_OWNER, team.owner_auth)
    assert moved.user.global_role == pb.GLOBAL_ROLE_OWNER
    me = await admin.stub.GetCurrentUser(pb.GetCurrentUserRequest(), metadata=team.owner_auth)
    assert me.user.global_role == pb.GLOBAL_ROLE_ADMINISTRATOR
    users = await admin.stub.ListUsers(pb.ListUsersRequest(), metadata=team.bob_auth)
    owners = [u.email for u in users.users if u.global_role == pb.GLOBAL_ROLE_OWNER]
    assert owners == ["alice@example.com"]


@pytest.mark.integration
async def test_who_may_rename_and_delete_accounts(admin: Admin, team: Team) -> None:
    def rename(user: pb.User, auth: Auth) -> Any:
        return admin.stub.UpdateUser(
            pb.UpdateUserRequest(user_id=user.user_id, first_name="New"), metadata=auth
        )

    def delete(user: pb.User, auth: Auth) -> Any:
        return admin.stub.DeleteUser(pb.DeleteUserRequest(user_id=user.user_id), metadata=auth)

    await _denied(rename(team.bob, team.alice_auth), "INSUFFICIENT_ROLE")
    await _denied(rename(team.owner, team.admin_auth), "INSUFFICIENT_ROLE")
    await rename(team.bob, team.admin_auth)
    await rename(team.admin_user, team.owner_auth)
    await _denied(delete(team.bob, team.alice_auth), "INSUFFICIENT_ROLE")
    await _denied(delete(team.owner, team.admin_auth), "INSUFFICIENT_ROLE")
    await _denied(delete(team.owner, team.owner_auth), "INSUFFICIENT_ROLE")
    await delete(team.bob, team.admin_auth)
    await delete(team.admin_user, team.owner_auth)
    users = await admin.stub.ListUsers(pb.ListUsersRequest(), metadata=team.owner_auth)
    assert sorted(u.email for u in users.users) == ["alice@example.com", "owner@example.com"]


@pytest.mark.integration
async def test_unknown_and_malformed_ids(admin: Admin, team: Team) -> None:
    missing = await rpc_error(
        admin.stub.GetApplication(
            pb.GetApplicationRequest(application_id=str(uuid.uuid4())), metadata=team.owner_auth
        )
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    info = error_info(missing)
    assert info is not None and info.reason == "APPLICATION_NOT_FOUND"
    malformed = await rpc_error(
        admin.stub.GetApplication(
            pb.GetApplicationRequest(application_id="app-1"), metadata=team.owner_auth
        )
    )
    assert malformed.code() == grpc.StatusCode.INVALID_ARGUMENT
    other_app = await admin.create_app(team.owner_auth, "other")
    wrong_app = await rpc_error(
        admin.stub.GetService(
            pb.GetServiceRequest(
                application_id=other_app.application_id, service_id=team.service.service_id
            ),
            metadata=team.owner_auth,
        )
    )
    assert wrong_app.code() == grpc.StatusCode.NOT_FOUND


# --- the rules themselves (admin_svc/permissions.py) ---------------------------------------


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

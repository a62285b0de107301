"""admin_svc's calls (a bearer token from :meth:`sign_in`, except sign-up, sign-in and
refresh): accounts, applications, members, services (face collections) and their API keys,
statistics and embedding migrations. Roles are ``pb.admin`` enum values or their names
(``"ADMINISTRATOR"``); service types ``pb.common`` values or names (``"RECOGNITION"``)."""

from __future__ import annotations

import datetime
from typing import Any, TypeVar

from facegrid_client._calls import field, repeated, reply, rpc
from facegrid_client.pb import admin as pb
from facegrid_client.pb import common

E = TypeVar("E", pb.GlobalRole, pb.ApplicationRole, common.ServiceType)


def _enum(prefix: str, value: E | str) -> E | str:
    """An enum value as it is, or its name with or without its prefix (``"ADMINISTRATOR"``)."""
    if not isinstance(value, str):
        return value
    name = value.upper()
    return name if name.startswith(prefix) else prefix + name


def _date(day: datetime.date | str) -> str:
    return day.isoformat() if isinstance(day, datetime.date) else day


def _nothing(_: Any) -> None:
    return None


@rpc("admin", "SignUp", field("user", pb.User), idempotent=False)
def sign_up(email: str, password: str, first_name: str, last_name: str = "") -> pb.SignUpRequest:
    """Creates an account (the first one of a deployment becomes the global OWNER); the new
    ``User``. Needs no token."""
    return pb.SignUpRequest(
        email=email, password=password, first_name=first_name, last_name=last_name
    )


@rpc("admin", "SignIn", reply(pb.SignInResponse), idempotent=False)
def sign_in(email: str, password: str) -> pb.SignInRequest:
    """Opens a session: ``.access_token`` (for ``token=``) and ``.refresh_token``."""
    return pb.SignInRequest(email=email, password=password)


@rpc("admin", "RefreshToken", reply(pb.RefreshTokenResponse), idempotent=False)
def refresh_token(refresh_token: str) -> pb.RefreshTokenRequest:
    """A new access token and refresh token for a refresh token (which stops working)."""
    return pb.RefreshTokenRequest(refresh_token=refresh_token)


@rpc("admin", "SignOut", _nothing, idempotent=False)
def sign_out(refresh_token: str = "") -> pb.SignOutRequest:
    """Revokes the session of the token (or of ``refresh_token``)."""
    return pb.SignOutRequest(refresh_token=refresh_token)


@rpc("admin", "GetCurrentUser", field("user", pb.User), idempotent=True)
def current_user() -> pb.GetCurrentUserRequest:
    """The caller's own account."""
    return pb.GetCurrentUserRequest()


@rpc("admin", "ListUsers", repeated("users", pb.User), idempotent=True)
def list_users() -> pb.ListUsersRequest:
    """Every account, by email."""
    return pb.ListUsersRequest()


@rpc("admin", "UpdateUser", field("user", pb.User), idempotent=False)
def update_user(
    user_id: str = "me", *, first_name: str | None = None, last_name: str | None = None
) -> pb.UpdateUserRequest:
    """Renames a user (``"me"``: the caller); the updated ``User``."""
    return pb.UpdateUserRequest(user_id=user_id, first_name=first_name, last_name=last_name)


@rpc("admin", "UpdateUserRole", field("user", pb.User), idempotent=False)
def update_user_role(user_id: str, role: pb.GlobalRole | str) -> pb.UpdateUserRoleRequest:
    """Sets another user's global role (OWNER, ADMINISTRATOR, USER)."""
    return pb.UpdateUserRoleRequest(user_id=user_id, global_role=_enum("GLOBAL_ROLE_", role))


@rpc("admin", "ChangePassword", _nothing, idempotent=False)
def change_password(current_password: str, new_password: str) -> pb.ChangePasswordRequest:
    """Changes the caller's password (its other sessions are revoked)."""
    return pb.ChangePasswordRequest(current_password=current_password, new_password=new_password)


@rpc("admin", "DeleteUser", _nothing, idempotent=False)
def delete_user(user_id: str) -> pb.DeleteUserRequest:
    """Deletes an account (``"me"``: the caller's)."""
    return pb.DeleteUserRequest(user_id=user_id)


@rpc("admin", "CreateApplication", field("application", pb.Application), idempotent=False)
def create_application(name: str) -> pb.CreateApplicationRequest:
    """Creates an application owned by the caller; the new ``Application``."""
    return pb.CreateApplicationRequest(name=name)


@rpc("admin", "ListApplications", repeated("applications", pb.Application), idempotent=True)
def list_applications() -> pb.ListApplicationsRequest:
    """The applications the caller can see, by name."""
    return pb.ListApplicationsRequest()


@rpc("admin", "GetApplication", field("application", pb.Application), idempotent=True)
def get_application(application_id: str) -> pb.GetApplicationRequest:
    """One application."""
    return pb.GetApplicationRequest(application_id=application_id)


@rpc("admin", "RenameApplication", field("application", pb.Application), idempotent=False)
def rename_application(application_id: str, name: str) -> pb.RenameApplicationRequest:
    """Renames an application."""
    return pb.RenameApplicationRequest(application_id=application_id, name=name)


@rpc("admin", "DeleteApplication", _nothing, idempotent=False)
def delete_application(application_id: str) -> pb.DeleteApplicationRequest:
    """Deletes an application with all its services and their faces."""
    return pb.DeleteApplicationRequest(application_id=application_id)


@rpc("admin", "ListMembers", repeated("members", pb.Member), idempotent=True)
def list_members(application_id: str) -> pb.ListMembersRequest:
    """The members of an application and their roles, the owner first."""
    return pb.ListMembersRequest(application_id=application_id)


@rpc("admin", "AddMember", field("member", pb.Member), idempotent=False)
def add_member(
    application_id: str, email: str, role: pb.ApplicationRole | str = "USER"
) -> pb.AddMemberRequest:
    """Adds an existing user to an application as ADMINISTRATOR or USER."""
    return pb.AddMemberRequest(
        application_id=application_id, email=email, role=_enum("APPLICATION_ROLE_", role)
    )


@rpc("admin", "UpdateMemberRole", field("member", pb.Member), idempotent=False)
def update_member_role(
    application_id: str, user_id: str, role: pb.ApplicationRole | str
) -> pb.UpdateMemberRoleRequest:
    """Changes a member's role (OWNER transfers ownership)."""
    return pb.UpdateMemberRoleRequest(
        application_id=application_id, user_id=user_id, role=_enum("APPLICATION_ROLE_", role)
    )


@rpc("admin", "RemoveMember", _nothing, idempotent=False)
def remove_member(application_id: str, user_id: str) -> pb.RemoveMemberRequest:
    """Removes a member from an application (``"me"``: leave it)."""
    return pb.RemoveMemberRequest(application_id=application_id, user_id=user_id)


@rpc("admin", "CreateService", field("service", pb.Service), idempotent=False)
def create_service(
    application_id: str, name: str, service_type: common.ServiceType | str = "RECOGNITION"
) -> pb.CreateServiceRequest:
    """Creates a service (face collection: RECOGNITION, DETECTION or VERIFICATION) with a
    fresh API key: the new ``Service``, its key in ``.api_key``."""
    return pb.CreateServiceRequest(
        application_id=application_id,
        name=name,
        type=_enum("SERVICE_TYPE_", service_type),
    )


@rpc("admin", "ListServices", repeated("services", pb.Service), idempotent=True)
def list_services(application_id: str) -> pb.ListServicesRequest:
    """The services of an application with their keys and counts, by name."""
    return pb.ListServicesRequest(application_id=application_id)


@rpc("admin", "GetService", field("service", pb.Service), idempotent=True)
def get_service(application_id: str, service_id: str) -> pb.GetServiceRequest:
    """One service with its counts and latest embedding migration."""
    return pb.GetServiceRequest(application_id=application_id, service_id=service_id)


@rpc("admin", "RenameService", field("service", pb.Service), idempotent=False)
def rename_service(application_id: str, service_id: str, name: str) -> pb.RenameServiceRequest:
    """Renames a service."""
    return pb.RenameServiceRequest(application_id=application_id, service_id=service_id, name=name)


@rpc("admin", "DeleteService", _nothing, idempotent=False)
def delete_service(application_id: str, service_id: str) -> pb.DeleteServiceRequest:
    """Deletes a service with all its subjects and faces."""
    return pb.DeleteServiceRequest(application_id=application_id, service_id=service_id)


@rpc("admin", "CloneService", field("service", pb.Service), idempotent=False)
def clone_service(application_id: str, service_id: str, name: str) -> pb.CloneServiceRequest:
    """Copies a service with its subjects and faces into a new one with its own key."""
    return pb.CloneServiceRequest(application_id=application_id, service_id=service_id, name=name)


@rpc("admin", "RotateApiKey", field("service", pb.Service), idempotent=False)
def rotate_api_key(application_id: str, service_id: str) -> pb.RotateApiKeyRequest:
    """Gives a service a new API key (the old one stops working at once)."""
    return pb.RotateApiKeyRequest(application_id=application_id, service_id=service_id)


@rpc("admin", "GetServiceStatistics", reply(pb.GetServiceStatisticsResponse), idempotent=True)
def service_statistics(
    application_id: str,
    service_id: str,
    *,
    start: datetime.date | str = "",
    end: datetime.date | str = "",
) -> pb.GetServiceStatisticsRequest:
    """Requests per day (UTC) over ``start``..``end`` (default: the last 30 days)."""
    return pb.GetServiceStatisticsRequest(
        application_id=application_id,
        service_id=service_id,
        start_date=_date(start),
        end_date=_date(end),
    )


@rpc(
    "admin",
    "StartEmbeddingMigration",
    field("migration", pb.EmbeddingMigration),
    idempotent=False,
)
def start_embedding_migration(
    application_id: str, service_id: str, calculator: str = ""
) -> pb.StartEmbeddingMigrationRequest:
    """Starts re-computing a service's examples with another calculator; poll
    :meth:`get_embedding_migration`."""
    return pb.StartEmbeddingMigrationRequest(
        application_id=application_id, service_id=service_id, calculator=calculator
    )


@rpc("admin", "GetEmbeddingMigration", field("migration", pb.EmbeddingMigration), idempotent=True)
def get_embedding_migration(
    application_id: str, service_id: str, migration_id: str
) -> pb.GetEmbeddingMigrationRequest:
    """The state and progress of an embedding migration."""
    return pb.GetEmbeddingMigrationRequest(
        application_id=application_id, service_id=service_id, migration_id=migration_id
    )

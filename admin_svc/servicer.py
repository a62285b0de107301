"""AdminService servicer: authenticates each call, runs its handler, translates errors once.

Handlers live in ``accounts``, ``applications`` and ``face_services``; they raise ServiceError
for anything the caller can act on. Database errors are translated here: violations of the
unique constraints on names and emails to ALREADY_EXISTS naming the field (of any other unique
constraint to INTERNAL: a bug, not worth a retry), the schema's FG032 to 405/code 32,
serialization failures, deadlocks and vanished references to ABORTED (retry), lost connections
to UNAVAILABLE, the rest to INTERNAL (details only in the log).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import asyncpg
import grpc
import structlog

from admin_svc import accounts, applications, face_services
from admin_svc.auth import Principal, authenticate, require
from admin_svc.deps import Deps
from admin_svc.errors import (
    already_exists,
    invalid,
    unavailable,
)
from admin_svc.throttle import client_address
from facegrid.admin.v1 import admin_service_pb2 as pb
from facegrid.admin.v1 import admin_service_pb2_grpc
from facegrid.errors import ServiceError, abort, internal, set_http_status
from facegrid.schema import WRITES_BLOCKED_SQLSTATE, writes_blocked

log = structlog.get_logger()

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Context = grpc.aio.ServicerContext[Any, Any]
AuthMode = Literal["none", "required"]
#: Response header (initial metadata) telling a throttled client when to try again, seconds.
RETRY_AFTER_KEY = "retry-after"

#: Unique constraints and the error each violation means.
_UNIQUE_ERRORS: dict[str, tuple[str, str, str]] = {
    "users_email_key": ("EMAIL_TAKEN", "an account with this email already exists", "email"),
    "applications_name_key": (
        "APPLICATION_NAME_TAKEN",
        "an application with this name already exists",
        "name",
    ),
    "services_name_key": (
        "SERVICE_NAME_TAKEN",
        "the application already has a service with this name",
        "name",
    ),
    "app_members_pkey": ("ALREADY_MEMBER", "the user is already a member", "email"),
    # the same answer for an invited email as for a member (no enumeration)
    "app_invitations_pkey": ("ALREADY_MEMBER", "the user is already a member", "email"),
}


def database_error(error: Exception) -> ServiceError:
    """The ServiceError a database failure means for the caller."""
    if isinstance(error, asyncpg.UniqueViolationError):
        known = _UNIQUE_ERRORS.get(error.constraint_name or "")
        # Any other unique constraint is an invariant the handlers guard (one OWNER, one
        # running migration) or a random id: its violation is a bug, and retrying repeats it.
        return already_exists(*known) if known is not None else internal()
    if isinstance(error, asyncpg.PostgresError) and error.sqlstate == WRITES_BLOCKED_SQLSTATE:
        return writes_blocked("of this request")
    if isinstance(error, asyncpg.CheckViolationError):
        return invalid(error.column_name or "request", "a value is out of its allowed range")
    if isinstance(
        error,
        asyncpg.SerializationError
        | asyncpg.DeadlockDetectedError
        | asyncpg.ForeignKeyViolationError,
    ):
        return ServiceError(
            grpc.StatusCode.ABORTED,
            "CONCURRENT_CHANGE",
            "the data changed while the request ran; retry it",
        )
    if isinstance(
        error,
        asyncpg.InterfaceError | asyncpg.CannotConnectNowError | OSError | TimeoutError,
    ) or (isinstance(error, asyncpg.PostgresError) and (error.sqlstate or "")[:2] in ("08", "57")):
        return unavailable("DATABASE_UNAVAILABLE", "the database cannot be reached; retry later")
    return internal()


class AdminServicer(admin_service_pb2_grpc.AdminServiceServicer):
    """Serves facegrid.admin.v1.AdminService."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def _call(
        self,
        context: Context,
        request: Req,
        handler: Callable[[Deps, Principal, Req], Awaitable[Resp]]
        | Callable[[Deps, Principal | None, Req], Awaitable[Resp]],
        auth: AuthMode,
        created: bool = False,
    ) -> Resp:
        try:
            principal = None
            if auth != "none":
                principal = await authenticate(self._deps, context.invocation_metadata())
            if auth == "required":
                principal = require(principal)
            response = await handler(self._deps, principal, request)  # type: ignore[arg-type]
        except ServiceError as error:
            if error.reason == "SIGN_IN_THROTTLED":  # HTTP clients read when to come back
                retry = error.metadata["retry_after_s"]
                await context.send_initial_metadata(((RETRY_AFTER_KEY, retry),))
            await abort(context, error)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as error:
            translated = database_error(error)
            if translated.code == grpc.StatusCode.INTERNAL:
                log.exception("database_error")
            else:
                log.info("database_refused", reason=translated.reason)
            await abort(context, translated)
        except Exception:
            log.exception("unexpected_error")
            await abort(context, internal())
        if created:
            await set_http_status(context, 201)
        return response

    async def _public(
        self,
        context: Context,
        request: Req,
        handler: Callable[[Deps, Req], Awaitable[Resp]],
        created: bool = False,
    ) -> Resp:
        async def adapted(deps: Deps, _principal: Principal | None, req: Req) -> Resp:
            return await handler(deps, req)

        return await self._call(context, request, adapted, "none", created)

    async def SignUp(self, request: pb.SignUpRequest, context: Context) -> pb.SignUpResponse:
        address = client_address(context.invocation_metadata(), context.peer())

        async def sign_up(deps: Deps, req: pb.SignUpRequest) -> pb.SignUpResponse:
            return await accounts.sign_up(deps, req, address)

        return await self._public(context, request, sign_up, created=True)

    async def SignIn(self, request: pb.SignInRequest, context: Context) -> pb.SignInResponse:
        address = client_address(context.invocation_metadata(), context.peer())

        async def sign_in(deps: Deps, req: pb.SignInRequest) -> pb.SignInResponse:
            return await accounts.sign_in(deps, req, address)

        return await self._public(context, request, sign_in)

    async def RefreshToken(
        self, request: pb.RefreshTokenRequest, context: Context
    ) -> pb.RefreshTokenResponse:
        return await self._public(context, request, accounts.refresh_token)

    async def SignOut(self, request: pb.SignOutRequest, context: Context) -> pb.SignOutResponse:
        # By refresh token: no access token needed (it may have expired already).
        auth: AuthMode = "none" if request.refresh_token else "required"
        return await self._call(context, request, accounts.sign_out, auth)

    async def GetCurrentUser(
        self, request: pb.GetCurrentUserRequest, context: Context
    ) -> pb.GetCurrentUserResponse:
        return await self._call(context, request, accounts.get_current_user, "required")

    async def ListUsers(
        self, request: pb.ListUsersRequest, context: Context
    ) -> pb.ListUsersResponse:
        return await self._call(context, request, accounts.list_users, "required")

    async def UpdateUser(
        self, request: pb.UpdateUserRequest, context: Context
    ) -> pb.UpdateUserResponse:
        return await self._call(context, request, accounts.update_user, "required")

    async def UpdateUserRole(
        self, request: pb.UpdateUserRoleRequest, context: Context
    ) -> pb.UpdateUserRoleResponse:
        return await self._call(context, request, accounts.update_user_role, "required")

    async def ChangePassword(
        self, request: pb.ChangePasswordRequest, context: Context
    ) -> pb.ChangePasswordResponse:
        return await self._call(context, request, accounts.change_password, "required")

    async def DeleteUser(
        self, request: pb.DeleteUserRequest, context: Context
    ) -> pb.DeleteUserResponse:
        return await self._call(context, request, accounts.delete_user, "required")

    async def CreateApplication(
        self, request: pb.CreateApplicationRequest, context: Context
    ) -> pb.CreateApplicationResponse:
        return await self._call(
            context, request, applications.create_application, "required", created=True
        )

    async def ListApplications(
        self, request: pb.ListApplicationsRequest, context: Context
    ) -> pb.ListApplicationsResponse:
        return await self._call(context, request, applications.list_applications, "required")

    async def GetApplication(
        self, request: pb.GetApplicationRequest, context: Context
    ) -> pb.GetApplicationResponse:
        return await self._call(context, request, applications.get_application, "required")

    async def RenameApplication(
        self, request: pb.RenameApplicationRequest, context: Context
    ) -> pb.RenameApplicationResponse:
        return await self._call(context, request, applications.rename_application, "required")

    async def DeleteApplication(
        self, request: pb.DeleteApplicationRequest, context: Context
    ) -> pb.DeleteApplicationResponse:
        return await self._call(context, request, applications.delete_application, "required")

    async def ListMembers(
        self, request: pb.ListMembersRequest, context: Context
    ) -> pb.ListMembersResponse:
        return await self._call(context, request, applications.list_members, "required")

    async def AddMember(
        self, request: pb.AddMemberRequest, context: Context
    ) -> pb.AddMemberResponse:
        return await self._call(context, request, applications.add_member, "required", created=True)

    async def UpdateMemberRole(
        self, request: pb.UpdateMemberRoleRequest, context: Context
    ) -> pb.UpdateMemberRoleResponse:
        return await self._call(context, request, applications.update_member_role, "required")

    async def RemoveMember(
        self, request: pb.RemoveMemberRequest, context: Context
    ) -> pb.RemoveMemberResponse:
        return await self._call(context, request, applications.remove_member, "required")

    async def CreateService(
        self, request: pb.CreateServiceRequest, context: Context
    ) -> pb.CreateServiceResponse:
        return await self._call(
            context, request, face_services.create_service, "required", created=True
        )

    async def ListServices(
        self, request: pb.ListServicesRequest, context: Context
    ) -> pb.ListServicesResponse:
        return await self._call(context, request, face_services.list_services, "required")

    async def GetService(
        self, request: pb.GetServiceRequest, context: Context
    ) -> pb.GetServiceResponse:
        return await self._call(context, request, face_services.get_service, "required")

    async def RenameService(
        self, request: pb.RenameServiceRequest, context: Context
    ) -> pb.RenameServiceResponse:
        return await self._call(context, request, face_services.rename_service, "required")

    async def DeleteService(
        self, request: pb.DeleteServiceRequest, context: Context
    ) -> pb.DeleteServiceResponse:
        return await self._call(context, request, face_services.delete_service, "required")

    async def CloneService(
        self, request: pb.CloneServiceRequest, context: Context
    ) -> pb.CloneServiceResponse:
        return await self._call(
            context, request, face_services.clone_service, "required", created=True
        )

    async def RotateApiKey(
        self, request: pb.RotateApiKeyRequest, context: Context
    ) -> pb.RotateApiKeyResponse:
        return await self._call(context, request, face_services.rotate_api_key, "required")

    async def GetServiceStatistics(
        self, request: pb.GetServiceStatisticsRequest, context: Context
    ) -> pb.GetServiceStatisticsResponse:
        return await self._call(context, request, face_services.get_service_statistics, "required")

    async def StartEmbeddingMigration(
        self, request: pb.StartEmbeddingMigrationRequest, context: Context
    ) -> pb.StartEmbeddingMigrationResponse:
        return await self._call(
            context, request, face_services.start_embedding_migration, "required", created=True
        )

    async def GetEmbeddingMigration(
        self, request: pb.GetEmbeddingMigrationRequest, context: Context
    ) -> pb.GetEmbeddingMigrationResponse:
        return await self._call(context, request, face_services.get_embedding_migration, "required")

"""Database rows to facegrid.admin.v1 messages, and contract enums to roles and types."""

from __future__ import annotations

import datetime as dt

from google.protobuf.timestamp_pb2 import Timestamp

from admin_svc.permissions import Role
from admin_svc.stats import saturate_int32
from admin_svc.store.applications import ApplicationRow, MemberRow
from admin_svc.store.embedding_migrations import MigrationRow
from admin_svc.store.invitations import InvitationRow
from admin_svc.store.services import ServiceRow
from admin_svc.store.users import UserRow
from facegrid.admin.v1 import admin_service_pb2 as pb
from facegrid.common.v1 import common_pb2

GLOBAL_ROLES = {
    Role.OWNER: pb.GLOBAL_ROLE_OWNER,
    Role.ADMINISTRATOR: pb.GLOBAL_ROLE_ADMINISTRATOR,
    Role.USER: pb.GLOBAL_ROLE_USER,
}
APP_ROLES = {
    Role.OWNER: pb.APPLICATION_ROLE_OWNER,
    Role.ADMINISTRATOR: pb.APPLICATION_ROLE_ADMINISTRATOR,
    Role.USER: pb.APPLICATION_ROLE_USER,
}
SERVICE_TYPES = {
    "RECOGNITION": common_pb2.SERVICE_TYPE_RECOGNITION,
    "DETECTION": common_pb2.SERVICE_TYPE_DETECTION,
    "VERIFICATION": common_pb2.SERVICE_TYPE_VERIFICATION,
}
MIGRATION_STATUSES = {
    "RUNNING": pb.MIGRATION_STATUS_RUNNING,
    "SUCCEEDED": pb.MIGRATION_STATUS_SUCCEEDED,
    "FAILED": pb.MIGRATION_STATUS_FAILED,
}
GLOBAL_ROLE_OF: dict[int, Role] = {v: k for k, v in GLOBAL_ROLES.items()}
APP_ROLE_OF: dict[int, Role] = {v: k for k, v in APP_ROLES.items()}
SERVICE_TYPE_OF: dict[int, str] = {v: k for k, v in SERVICE_TYPES.items()}


def timestamp(value: dt.datetime) -> Timestamp:
    """A protobuf Timestamp of an aware datetime."""
    result = Timestamp()
    result.FromDatetime(value)
    return result


def user(row: UserRow) -> pb.User:
    """The contract's User."""
    return pb.User(
        user_id=str(row.id),
        email=row.email,
        first_name=row.first_name,
        last_name=row.last_name,
        global_role=GLOBAL_ROLES[row.global_role],
        create_time=timestamp(row.created_at),
    )


def application(row: ApplicationRow, caller_role: Role | None) -> pb.Application:
    """The contract's Application, with the caller's effective role."""
    message = pb.Application(
        application_id=str(row.id),
        name=row.name,
        create_time=timestamp(row.created_at),
        caller_role=APP_ROLES[caller_role] if caller_role else pb.APPLICATION_ROLE_UNSPECIFIED,
    )
    if row.owner is not None:
        message.owner.CopyFrom(user(row.owner))
    return message


def member(row: MemberRow) -> pb.Member:
    """The contract's Member."""
    return pb.Member(
        user=user(row.user), role=APP_ROLES[row.role], join_time=timestamp(row.joined_at)
    )


def invitation(row: InvitationRow) -> pb.Member:
    """A pending invitation as the contract's Member (only the email of its user is known)."""
    return pb.Member(
        user=pb.User(email=row.email),
        role=APP_ROLES[row.role],
        join_time=timestamp(row.invited_at),
        pending=True,
    )


def migration(row: MigrationRow) -> pb.EmbeddingMigration:
    """The contract's EmbeddingMigration."""
    message = pb.EmbeddingMigration(
        migration_id=str(row.id),
        service_id=str(row.service_id),
        target_calculator=row.target_calculator,
        status=MIGRATION_STATUSES[row.status],
        total_count=saturate_int32(row.total_count),
        migrated_count=saturate_int32(row.migrated_count),
        skipped_count=saturate_int32(row.skipped_count),
        failed_count=saturate_int32(row.failed_count),
        error_message=row.error_message,
        create_time=timestamp(row.created_at),
    )
    if row.finished_at is not None:
        message.end_time.CopyFrom(timestamp(row.finished_at))
    return message


def service(row: ServiceRow, latest: MigrationRow | None = None) -> pb.Service:
    """The contract's Service."""
    message = pb.Service(
        service_id=str(row.id),
        application_id=str(row.application_id),
        name=row.name,
        type=SERVICE_TYPES[row.type],
        api_key=str(row.api_key),
        create_time=timestamp(row.created_at),
        subject_count=saturate_int32(row.subject_count),
        image_count=saturate_int32(row.example_count),
        calculator=row.calculator or "",
        writes_blocked=row.writes_blocked,
    )
    if latest is not None:
        message.latest_migration.CopyFrom(migration(latest))
    return message

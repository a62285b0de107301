"""Handlers of services (face collections): CRUD, cloning, API keys, statistics, migrations."""

from __future__ import annotations

import datetime as dt

import asyncpg
import structlog

from admin_svc import convert, stats, validation
from admin_svc.applications import require_app
from admin_svc.auth import Principal
from admin_svc.deps import Deps
from admin_svc.errors import invalid, not_found
from admin_svc.permissions import AppAction
from admin_svc.store import embedding_migrations, services
from admin_svc.store.services import ServiceRow
from facegrid.admin.v1 import admin_service_pb2 as pb
from facegrid.schema import writes_blocked

log = structlog.get_logger()


async def _require_service(
    conn: asyncpg.Connection,
    principal: Principal,
    application_id: str,
    service_id: str,
    action: AppAction,
) -> ServiceRow:
    """A service of an application the caller may do ``action`` in (NOT_FOUND otherwise)."""
    application, _ = await require_app(conn, principal, application_id, action)
    sid = validation.uuid_field(service_id, "service_id")
    service = await services.get_service(conn, application.id, sid)
    if service is None:
        raise not_found("service", sid)
    return service


async def create_service(
    deps: Deps, principal: Principal, request: pb.CreateServiceRequest
) -> pb.CreateServiceResponse:
    """Creates a service with a fresh API key."""
    name = validation.display_name(request.name, "name")
    service_type = convert.SERVICE_TYPE_OF.get(request.type)
    if service_type is None:
        raise invalid("type", "type must be RECOGNITION, DETECTION or VERIFICATION")
    async with deps.pool.acquire() as conn, conn.transaction():
        application, _ = await require_app(
            conn, principal, request.application_id, AppAction.MANAGE_SERVICES
        )
        service = await services.create_service(conn, application.id, name, service_type)
    log.info("service_created", service_id=str(service.id), type=service_type)
    return pb.CreateServiceResponse(service=convert.service(service))


async def list_services(
    deps: Deps, principal: Principal, request: pb.ListServicesRequest
) -> pb.ListServicesResponse:
    """An application's services with their counts."""
    async with deps.pool.acquire() as conn:
        application, _ = await require_app(conn, principal, request.application_id, AppAction.VIEW)
        rows = await services.list_services(conn, application.id)
    return pb.ListServicesResponse(services=[convert.service(row) for row in rows])


async def get_service(
    deps: Deps, principal: Principal, request: pb.GetServiceRequest
) -> pb.GetServiceResponse:
    """One service with its latest migration."""
    async with deps.pool.acquire() as conn:
        service = await _require_service(
            conn, principal, request.application_id, request.service_id, AppAction.VIEW
        )
        latest = await embedding_migrations.latest(conn, service.id)
    return pb.GetServiceResponse(service=convert.service(service, latest))


async def rename_service(
    deps: Deps, principal: Principal, request: pb.RenameServiceRequest
) -> pb.RenameServiceResponse:
    """Renames a service."""
    name = validation.display_name(request.name, "name")
    async with deps.pool.acquire() as conn, conn.transaction():
        service = await _require_service(
            conn, principal, request.application_id, request.service_id, AppAction.MANAGE_SERVICES
        )
        await services.rename_service(conn, service.id, name)
        renamed = await services.get_service(conn, service.application_id, service.id)
    assert renamed is not None
    return pb.RenameServiceResponse(service=convert.service(renamed))


async def delete_service(
    deps: Deps, principal: Principal, request: pb.DeleteServiceRequest
) -> pb.DeleteServiceResponse:
    """Deletes a service and all its data."""
    async with deps.pool.acquire() as conn, conn.transaction():
        service = await _require_service(
            conn, principal, request.application_id, request.service_id, AppAction.MANAGE_SERVICES
        )
        await services.delete_service(conn, service.id)
    log.info("service_deleted", service_id=str(service.id))
    return pb.DeleteServiceResponse()


async def clone_service(
    deps: Deps, principal: Principal, request: pb.CloneServiceRequest
) -> pb.CloneServiceResponse:
    """Copies a service with its subjects and examples under a new name and key."""
    name = validation.display_name(request.name, "name")
    async with deps.pool.acquire() as conn, conn.transaction():
        source = await _require_service(
            conn, principal, request.application_id, request.service_id, AppAction.MANAGE_SERVICES
        )
        if await services.lock_collection_shared(conn, source.id):
            raise writes_blocked(source.id)
        clone = await services.clone_service(conn, source, name)
    log.info(
        "service_cloned",
        source_id=str(source.id),
        service_id=str(clone.id),
        subjects=clone.subject_count,
        examples=clone.example_count,
    )
    return pb.CloneServiceResponse(service=convert.service(clone))


async def rotate_api_key(
    deps: Deps, principal: Principal, request: pb.RotateApiKeyRequest
) -> pb.RotateApiKeyResponse:
    """Gives a service a new API key."""
    async with deps.pool.acquire() as conn, conn.transaction():
        service = await _require_service(
            conn, principal, request.application_id, request.service_id, AppAction.MANAGE_SERVICES
        )
        await services.rotate_api_key(conn, service.id)
        rotated = await services.get_service(conn, service.application_id, service.id)
    assert rotated is not None
    log.info("api_key_rotated", service_id=str(service.id))
    return pb.RotateApiKeyResponse(service=convert.service(rotated))


async def get_service_statistics(
    deps: Deps, principal: Principal, request: pb.GetServiceStatisticsRequest
) -> pb.GetServiceStatisticsResponse:
    """Requests per day over a range, zero-filled."""
    today = dt.datetime.fromtimestamp(deps.clock(), dt.UTC).date()
    start, end = stats.date_range(request.start_date, request.end_date, today)
    async with deps.pool.acquire() as conn:
        service = await _require_service(
            conn, principal, request.application_id, request.service_id, AppAction.VIEW
        )
        counts = await services.daily_request_counts(conn, service.id, start, end)
    days = stats.fill_days(counts, start, end)
    return pb.GetServiceStatisticsResponse(
        days=[
            pb.DailyRequestCount(date=day.isoformat(), request_count=stats.saturate_int32(count))
            for day, count in days
        ],
        total_request_count=stats.saturate_int32(sum(count for _, count in days)),
    )


async def start_embedding_migration(
    deps: Deps, principal: Principal, request: pb.StartEmbeddingMigrationRequest
) -> pb.StartEmbeddingMigrationResponse:
    """Starts re-computing a service's embeddings with another calculator."""
    async with deps.pool.acquire() as conn:
        service = await _require_service(
            conn, principal, request.application_id, request.service_id, AppAction.MANAGE_SERVICES
        )
    migration = await deps.migrator.start(service, request.calculator)
    return pb.StartEmbeddingMigrationResponse(migration=convert.migration(migration))


async def get_embedding_migration(
    deps: Deps, principal: Principal, request: pb.GetEmbeddingMigrationRequest
) -> pb.GetEmbeddingMigrationResponse:
    """One migration's state and progress."""
    migration_id = validation.uuid_field(request.migration_id, "migration_id")
    async with deps.pool.acquire() as conn:
        service = await _require_service(
            conn, principal, request.application_id, request.service_id, AppAction.VIEW
        )
        migration = await embedding_migrations.get(conn, service.id, migration_id)
    if migration is None:
        raise not_found("migration", migration_id)
    return pb.GetEmbeddingMigrationResponse(migration=convert.migration(migration))

"""The demo set-up: on the first start on an empty database, an application with one service
of each type, so that a new user can call the REST API at once with the printed keys.

"Empty" means no users and no applications. A marker row in ``settings`` makes it happen once
per database even when several admin_svc nodes start together. The demo application has no
owner until the first user signs up, who becomes its OWNER (global OWNERs see it anyway).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from admin_svc.store import applications, services

DEMO_APPLICATION_NAME = "Demo"
#: (service name, type) of the demo services.
DEMO_SERVICES = (
    ("demo-recognition", "RECOGNITION"),
    ("demo-detection", "DETECTION"),
    ("demo-verification", "VERIFICATION"),
)
_MARKER = "demo_setup"


@dataclass(frozen=True, slots=True)
class DemoService:
    """A demo service and its API key."""

    name: str
    type: str
    api_key: uuid.UUID


@dataclass(frozen=True, slots=True)
class DemoSetup:
    """What the demo set-up created."""

    application_id: uuid.UUID
    services: tuple[DemoService, ...]


async def ensure_demo(conn: asyncpg.Connection) -> DemoSetup | None:
    """Creates the demo application on an empty database, once; None when it did nothing."""
    async with conn.transaction():
        claimed = await conn.fetchval(
            "INSERT INTO settings (key, value) VALUES ($1, 'started') ON CONFLICT DO NOTHING"
            " RETURNING key",
            _MARKER,
        )
        if claimed is None:
            return None
        empty = await conn.fetchval(
            "SELECT NOT EXISTS (SELECT 1 FROM users) AND NOT EXISTS (SELECT 1 FROM applications)"
        )
        if not empty:
            await conn.execute("UPDATE settings SET value = 'skipped' WHERE key = $1", _MARKER)
            return None
        application_id = await applications.create_ownerless_application(
            conn, DEMO_APPLICATION_NAME
        )
        created = []
        for name, service_type in DEMO_SERVICES:
            row = await services.create_service(conn, application_id, name, service_type)
            created.append(DemoService(row.name, row.type, row.api_key))
        await conn.execute("UPDATE settings SET value = 'created' WHERE key = $1", _MARKER)
    return DemoSetup(application_id, tuple(created))


def describe(setup: DemoSetup) -> str:
    """The lines announcing the demo keys on standard output."""
    lines = [
        f'Facegrid demo application "{DEMO_APPLICATION_NAME}" created; its API keys'
        " (send as the x-api-key header):"
    ]
    lines += [f"  {s.type:<13} {s.name:<18} {s.api_key}" for s in setup.services]
    lines.append("The first user to sign up becomes the owner of this application.")
    return "\n".join(lines)

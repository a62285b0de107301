"""Helpers of the admin_svc tests: direct-SQL collection writes (as api_svc makes them), a fake
embed_svc, and a client of an in-process admin_svc."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import grpc
import numpy as np
import pytest

from admin_svc.embed_client import Calculator, Embeddings, EmbedError
from admin_svc.server import AdminServer
from facegrid.admin.v1 import admin_service_pb2 as pb
from facegrid.admin.v1 import admin_service_pb2_grpc
from facegrid.common.v1 import common_pb2
from facegrid.schema import CHANGES_CHANNEL

#: A token secret for tests (never used outside them).
TEST_TOKEN_SECRET = "test-secret-" + "x" * 40


# --- collection helpers (direct SQL, as api_svc would write) -----------------------------------


async def make_service(
    conn: asyncpg.Connection, service_type: str = "RECOGNITION", name: str | None = None
) -> uuid.UUID:
    """Inserts an application with one service; returns the service id."""
    app_id, service_id = uuid.uuid4(), uuid.uuid4()
    await conn.execute(
        "INSERT INTO applications (id, name) VALUES ($1, $2)", app_id, f"app-{app_id.hex[:8]}"
    )
    await conn.execute(
        "INSERT INTO services (id, application_id, name, type, api_key)"
        " VALUES ($1, $2, $3, $4, $5)",
        service_id,
        app_id,
        name or "svc",
        service_type,
        uuid.uuid4(),
    )
    return service_id


def unit_vector(seed: int, dim: int) -> bytes:
    """A deterministic L2-normalised float32 embedding."""
    rng = np.random.default_rng(seed)
    vector = rng.standard_normal(dim)
    return (vector / np.linalg.norm(vector)).astype("<f4").tobytes()


async def add_subject(conn: asyncpg.Connection, service_id: uuid.UUID, name: str) -> uuid.UUID:
    """Inserts a subject."""
    subject_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO subjects (id, service_id, name) VALUES ($1, $2, $3)",
        subject_id,
        service_id,
        name,
    )
    return subject_id


async def add_example(
    conn: asyncpg.Connection,
    service_id: uuid.UUID,
    subject_id: uuid.UUID,
    *,
    seed: int = 0,
    dim: int = 128,
    calculator: str = "calc-a",
    version: str = "1",
    image: bytes | None = b"image-bytes",
) -> uuid.UUID:
    """Inserts a face example."""
    example_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO face_examples (id, service_id, subject_id, embedding, embedding_dim,"
        " calculator, calculator_version, image, image_content_type)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'image/jpeg')",
        example_id,
        service_id,
        subject_id,
        unit_vector(seed, dim),
        dim,
        calculator,
        version,
        image,
    )
    return example_id


async def count_requests(
    conn: asyncpg.Connection | asyncpg.Pool,
    service_id: uuid.UUID,
    count: int = 1,
    day: dt.date | None = None,
) -> int:
    """Adds ``count`` requests to a service's day (UTC today by default) as api_svc does;
    returns the new total of that day."""
    return int(await conn.fetchval("SELECT fg_count_requests($1, $2, $3)", service_id, count, day))


# --- change notifications -------------------------------------------------------------------


class Listener:
    """A LISTENing connection collecting decoded payloads in arrival order."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sizes: list[int] = []

    @classmethod
    async def listen(cls, db_url: str) -> Listener:
        """Listens from now on: a notification reaches the listeners present at its commit."""
        listener = cls(await asyncpg.connect(db_url))
        await listener.conn.add_listener(CHANGES_CHANNEL, listener._on_notify)
        return listener

    async def close(self) -> None:
        await self.conn.close()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.sizes.append(len(payload.encode()))
        self.queue.put_nowait(json.loads(payload))

    async def take(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` notifications (waits up to 10 s for them to arrive)."""
        return [await asyncio.wait_for(self.queue.get(), 10) for _ in range(count)]

    async def take_for(self, collection: uuid.UUID, count: int) -> list[dict[str, Any]]:
        """The next ``count`` notifications of one collection, skipping others."""
        found: list[dict[str, Any]] = []
        while len(found) < count:
            item = await asyncio.wait_for(self.queue.get(), 10)
            if item["collection"] == str(collection):
                found.append(item)
        return found


# --- a fake embed_svc -------------------------------------------------------------------------


@dataclass
class FakeEmbed:
    """EmbedClient fake: deterministic embeddings from the image bytes; can hold calls at a gate,
    reject chosen images, or be unavailable."""

    calculators: list[Calculator] = field(
        default_factory=lambda: [
            Calculator("calc-a", "1", 128, True),
            Calculator("calc-b", "2", 256, False),
        ]
    )
    gate: asyncio.Event | None = None
    """When set, embed_faces waits for it (to observe a migration mid-way)."""
    reject: set[bytes] = field(default_factory=set)
    """Images answered with a 'rejected' error."""
    unavailable: bool = False
    """Every call fails with 'unavailable'."""
    failure: EmbedError | None = None
    """Raised by every embed_faces call when set."""
    calls: list[tuple[int, str]] = field(default_factory=list)
    """(number of images, calculator) per embed_faces call."""
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once embed_faces has been called."""

    async def list_calculators(self) -> list[Calculator]:
        if self.unavailable:
            raise EmbedError("unavailable", "embed_svc unavailable (UNAVAILABLE)")
        return list(self.calculators)

    async def embed_faces(self, images: Sequence[bytes], calculator: str) -> Embeddings:
        self.calls.append((len(images), calculator))
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.unavailable:
            raise EmbedError("unavailable", "embed_svc unavailable (UNAVAILABLE)")
        if self.failure is not None:
            raise self.failure
        if any(image in self.reject for image in images):
            raise EmbedError("rejected", "embed_svc rejected the input: bad image")
        spec = next(c for c in self.calculators if c.name == calculator)
        vectors = []
        for image in images:
            seed = int.from_bytes(hashlib.sha256(image).digest()[:4], "big")
            raw = np.frombuffer(unit_vector(seed, spec.embedding_size), dtype="<f4")
            vectors.append(tuple(float(v) for v in raw * 3.0))  # not normalised on purpose
        return Embeddings(tuple(vectors), spec.name, spec.version)


# --- an in-process admin_svc ------------------------------------------------------------------


@dataclass
class Admin:
    """A running admin_svc and a stub to it."""

    server: AdminServer
    stub: admin_service_pb2_grpc.AdminServiceStub
    channel: grpc.aio.Channel
    embed: FakeEmbed
    db_url: str

    async def sign_up(
        self, email: str, password: str = "password-1", first_name: str = "Test"
    ) -> pb.User:
        reply = await self.stub.SignUp(
            pb.SignUpRequest(email=email, password=password, first_name=first_name)
        )
        return reply.user

    async def sign_in(self, email: str, password: str = "password-1") -> pb.SignInResponse:
        return await self.stub.SignIn(pb.SignInRequest(email=email, password=password))

    async def user(self, email: str) -> tuple[pb.User, tuple[tuple[str, str], ...]]:
        """Signs up and in; returns the user and the call metadata carrying its token."""
        user = await self.sign_up(email)
        reply = await self.sign_in(email)
        return user, (("authorization", f"Bearer {reply.access_token}"),)

    async def create_app(self, auth: Any, name: str = "app") -> pb.Application:
        reply = await self.stub.CreateApplication(
            pb.CreateApplicationRequest(name=name), metadata=auth
        )
        return reply.application

    async def create_service(
        self,
        auth: Any,
        application_id: str,
        name: str = "faces",
        service_type: common_pb2.ServiceType = common_pb2.SERVICE_TYPE_RECOGNITION,
    ) -> pb.Service:
        reply = await self.stub.CreateService(
            pb.CreateServiceRequest(application_id=application_id, name=name, type=service_type),
            metadata=auth,
        )
        return reply.service


def admin_env(db_url: str, **extra: str) -> dict[str, str]:
    """The environment of a test admin_svc: free port, cheap password hashing, no demo."""
    env = {
        "FACEGRID_DATABASE_URL": db_url,
        "FACEGRID_ADMIN_PORT": "0",
        "FACEGRID_TOKEN_SECRET": TEST_TOKEN_SECRET,
        "FACEGRID_PASSWORD_TIME_COST": "1",
        "FACEGRID_PASSWORD_MEMORY_KIB": "1024",
        "FACEGRID_DEMO_SETUP": "false",
        "FACEGRID_ADMIN_DB_POOL_MAX": "4",
    }
    env.update(extra)
    return env


async def rpc_error(call: Any) -> grpc.aio.AioRpcError:
    """Awaits a call that must fail and returns its error."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value

"""Helpers of the api_svc tests: the servicer wired as server.py wires it and served on a real
gRPC server, request bodies, reading CompreFace's error details, and the demo keys."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NoReturn, cast

import asyncpg
import grpc
import pytest
from google.protobuf import json_format

from admin_svc.demo import ensure_demo
from api_svc.auth import Authenticator
from api_svc.bulk_enrolment import BulkEnrolment, BulkSettings
from api_svc.detection import FaceDetection
from api_svc.embed_client import EmbedClient
from api_svc.face_store import PgFaceStore
from api_svc.face_verification import FaceVerification
from api_svc.faces import Faces
from api_svc.image_body import BodyLimits
from api_svc.index_registry import IndexRegistry
from api_svc.index_source import PgIndexSource
from api_svc.recognition import Recognition
from api_svc.servicer import RecognitionServicer
from api_svc.similarity import Calculators
from api_svc.stats import RequestStats
from api_svc.subjects import Subjects
from api_svc.verification import Verification
from facegrid.errors import error_info
from facegrid.recognition.v1 import recognition_service_pb2 as pb
from facegrid.recognition.v1 import recognition_service_pb2_grpc as pb_grpc
from facegrid.server import start_server, stop_server
from tests.api_svc.fakes import FakeEmbed
from tests.helpers.rest_client import multipart

#: Image bodies the fake embed_svc of a test knows (its ``faces`` table maps them to faces).
ONE = b"one face"
GROUP = b"group"
EMPTY = b"no face"
PNG = b"\x89PNG\r\n\x1a\n astronaut"
OTHER = b"\xff\xd8\xff other person"
LIMITS = BodyLimits(max_file_bytes=1000, max_request_bytes=3000)


class NoDatabase:
    """Stands in for the pool of a servicer whose test must not reach the database: any use
    fails the test."""

    def __getattr__(self, name: str) -> NoReturn:
        raise AssertionError(f"the test used the database (pool.{name})")


def no_database() -> asyncpg.Pool:
    """A pool that fails the test when used."""
    return cast(asyncpg.Pool, NoDatabase())


def build_servicer(
    authenticator: Authenticator, stats: RequestStats, embed: EmbedClient, pool: asyncpg.Pool
) -> RecognitionServicer:
    """The servicer as server.py wires it, over ``pool`` and a fake embed_svc."""
    calculators = Calculators(embed)
    store = PgFaceStore(pool, timeout_s=5)
    return RecognitionServicer(
        authenticator=authenticator,
        stats=stats,
        detection=FaceDetection(embed, LIMITS),
        verification=Verification(embed, calculators, LIMITS),
        subjects=Subjects(store),
        faces=Faces(store, embed, LIMITS),
        face_verification=FaceVerification(store, embed, calculators, LIMITS),
        recognition=Recognition(
            IndexRegistry(PgIndexSource(pool, 5, 60), calculators), embed, calculators, LIMITS
        ),
        bulk=BulkEnrolment(
            store, embed, calculators, LIMITS.max_file_bytes, BulkSettings(2, 3, 10_000)
        ),
    )


@asynccontextmanager
async def serving(
    servicer: RecognitionServicer, port: int
) -> AsyncIterator[pb_grpc.RecognitionServiceStub]:
    """``servicer`` on a real gRPC server on ``port``, and a stub calling it."""
    running = await start_server(
        host="127.0.0.1",
        port=port,
        register=lambda server: pb_grpc.add_RecognitionServiceServicer_to_server(servicer, server),
        service_names=["facegrid.recognition.v1.RecognitionService"],
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield pb_grpc.RecognitionServiceStub(channel)
    finally:
        await channel.close()
        await stop_server(running, 0)


def image(data: bytes) -> dict[str, Any]:
    """A google.api.HttpBody of raw image bytes (as a constructor mapping)."""
    return {"content_type": "image/png", "data": data}


def two_images(source: bytes, target: bytes) -> dict[str, Any]:
    """A multipart HttpBody with ``source_image`` and ``target_image``."""
    data, ctype = multipart(
        {
            "source_image": ("s.png", source, "image/png"),
            "target_image": ("t.png", target, "image/png"),
        }
    )
    return {"content_type": ctype, "data": data}


async def failure(call: Any) -> tuple[grpc.StatusCode, dict[str, str]]:
    """Awaits a call that must fail; its code and its ErrorInfo's metadata and reason."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    info = error_info(raised.value)
    assert info is not None
    return raised.value.code(), {**info.metadata, "reason": info.reason}


def as_json(message: Any) -> dict:
    """A reply as the REST edge prints it."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


async def demo_keys(pool: asyncpg.Pool) -> dict[str, tuple[uuid.UUID, uuid.UUID]]:
    """Creates the demo services; (service id, API key) by service type."""
    async with pool.acquire() as conn:
        setup = await ensure_demo(conn)
        assert setup is not None
        rows = await conn.fetch("SELECT id, type, api_key FROM services")
    return {r["type"]: (r["id"], r["api_key"]) for r in rows}


@dataclass
class Store:
    """The servicer over the real schema with the demo RECOGNITION key and a fake embed_svc."""

    stub: pb_grpc.RecognitionServiceStub
    embed: FakeEmbed
    pool: asyncpg.Pool
    service_id: uuid.UUID
    metadata: tuple[tuple[str, str]]
    detection_key: tuple[tuple[str, str]]


async def add(api: Store, subject: str, data: bytes = PNG) -> str:
    """Enrols ``data`` under ``subject``; returns the image id."""
    reply = await api.stub.AddFace(
        pb.AddFaceRequest(image=image(data), subject=subject), metadata=api.metadata
    )
    assert reply.subject == subject
    return reply.image_id

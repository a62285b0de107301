"""The one thing admin_svc asks embed_svc: embeddings of stored face images (migrations).

:class:`EmbedClient` is the interface the migration job depends on; :class:`GrpcEmbedClient`
implements it over facegrid.embedding.v1.EmbeddingService (EmbedFaces, GetStatus) with a
deadline on every call, translating gRPC failures once into :class:`EmbedError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import grpc
import structlog

from facegrid.balancing import balanced_options, grpc_target
from facegrid.embedding.v1 import embedding_service_pb2, embedding_service_pb2_grpc
from facegrid.request_id import RequestIdClientInterceptor
from facegrid.server import channel_options

log = structlog.get_logger()

EmbedProblem = Literal["rejected", "unavailable", "failed"]


class EmbedError(Exception):
    """embed_svc did not return embeddings.

    ``rejected``: the request was refused as invalid (e.g. an unreadable image); retrying the
    same input will not help. ``unavailable``: embed_svc could not be reached or timed out;
    retrying later may. ``failed``: anything else.
    """

    def __init__(self, problem: EmbedProblem, message: str) -> None:
        super().__init__(message)
        self.problem: EmbedProblem = problem


@dataclass(frozen=True, slots=True)
class Calculator:
    """An embedding model embed_svc offers."""

    name: str
    """Model name, e.g. ``dlib-resnet-v1``."""
    version: str
    """Version string of its source package."""
    embedding_size: int
    """Length of its embeddings."""
    is_default: bool
    """True for embed_svc's configured default."""


@dataclass(frozen=True, slots=True)
class Embeddings:
    """Embeddings of a batch of face images, in request order."""

    vectors: tuple[tuple[float, ...], ...]
    """One vector per image (L2-normalised by embed_svc)."""
    calculator: str
    """Name of the model that made them."""
    version: str
    """Its version."""


class EmbedClient(Protocol):
    """What the migration job needs from embed_svc."""

    async def list_calculators(self) -> list[Calculator]:
        """The calculators available now."""
        ...

    async def embed_faces(self, images: Sequence[bytes], calculator: str) -> Embeddings:
        """Embeddings of 1..32 already-cropped face images with ``calculator``."""
        ...


def _translate(error: grpc.aio.AioRpcError) -> EmbedError:
    """The call's failure as an EmbedError; embed_svc's own text goes to the log only, never
    into a message that could reach a client or the database."""
    code = error.code()
    log.warning("embed_svc_call_failed", grpc_code=code.name, details=(error.details() or "")[:200])
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return EmbedError("rejected", f"embed_svc rejected the input ({code.name})")
    if code in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ):
        return EmbedError("unavailable", f"embed_svc unavailable ({code.name})")
    return EmbedError("failed", f"embed_svc failed ({code.name})")


class GrpcEmbedClient:
    """EmbedClient over one long-lived gRPC channel."""

    def __init__(self, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self._stub = embedding_service_pb2_grpc.EmbeddingServiceStub(channel)
        self._timeout_s = timeout_s

    @classmethod
    def connect(cls, address: str, timeout_s: float) -> tuple[GrpcEmbedClient, grpc.aio.Channel]:
        """A client on a new channel to ``address`` (the caller closes the channel), balanced
        round robin over the ready nodes it names (facegrid/balancing.py)."""
        service = embedding_service_pb2.DESCRIPTOR.services_by_name["EmbeddingService"]
        channel = grpc.aio.insecure_channel(
            grpc_target(address),
            options=[*channel_options(), *balanced_options([service.full_name])],
            interceptors=[RequestIdClientInterceptor()],
        )
        return cls(channel, timeout_s), channel

    async def list_calculators(self) -> list[Calculator]:
        """Calculators from EmbeddingService.GetStatus."""
        try:
            status = await self._stub.GetStatus(
                embedding_service_pb2.GetStatusRequest(), timeout=self._timeout_s
            )
        except grpc.aio.AioRpcError as error:
            raise _translate(error) from None
        return [
            Calculator(c.model.name, c.model.version, c.embedding_size, c.is_default)
            for c in status.calculators
        ]

    async def embed_faces(self, images: Sequence[bytes], calculator: str) -> Embeddings:
        """EmbeddingService.EmbedFaces on one batch."""
        request = embedding_service_pb2.EmbedFacesRequest(
            images=list(images), calculator=calculator
        )
        try:
            response = await self._stub.EmbedFaces(request, timeout=self._timeout_s)
        except grpc.aio.AioRpcError as error:
            raise _translate(error) from None
        return Embeddings(
            vectors=tuple(tuple(e.values) for e in response.embeddings),
            calculator=response.calculator.name,
            version=response.calculator.version,
        )

"""api_svc's client of embed_svc (facegrid.embedding.v1.EmbeddingService).

One long-lived channel (request ids travel through RequestIdClientInterceptor), a deadline on
every call, and gRPC failures translated once into ServiceError with CompreFace's codes: embed_svc's
own request errors keep their reason and code (21 unsupported format, 26 unreadable or too large
image or bad parameter) with the image named as the REST field; anything else (unreachable,
deadline, inference failure) is code 41 with HTTP 500.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol

import grpc
import structlog

from facegrid.balancing import balanced_options, grpc_target
from facegrid.embedding.v1 import embedding_service_pb2 as embed_pb
from facegrid.embedding.v1 import embedding_service_pb2_grpc as embed_grpc
from facegrid.errors import ServiceError, error_info
from facegrid.request_id import RequestIdClientInterceptor
from facegrid.server import channel_options

log = structlog.get_logger()

#: CompreFace's code for a failure of its embedding service.
EMBEDDING_SERVICE_FAILED = 41
#: embed_svc's codes for errors that are the caller's to fix.
_REQUEST_ERRORS = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)
_IMAGE_PREFIX = re.compile(r"^image \d+: ")
#: embed_svc's calls are pure computations: safe to retry on another node.
EMBED_SERVICE = embed_pb.DESCRIPTOR.services_by_name["EmbeddingService"].full_name


class EmbedClient(Protocol):
    """What api_svc asks embed_svc."""

    async def analyze(
        self, images: Mapping[str, bytes], options: embed_pb.AnalyzeOptions
    ) -> embed_pb.AnalyzeImagesResponse:
        """Faces of each image (keyed by its REST field name, in request order)."""
        ...

    async def status(self) -> embed_pb.GetStatusResponse:
        """Models, calculators and their calibrations."""
        ...


def embed_unavailable() -> ServiceError:
    """The error of a request embed_svc could not serve."""
    return ServiceError(
        grpc.StatusCode.UNAVAILABLE,
        "EMBEDDING_SERVICE_FAILED",
        "the face embedding service is unavailable; try again",
        EMBEDDING_SERVICE_FAILED,
        http_status=500,
    )


def translate(error: grpc.RpcError, names: list[str]) -> ServiceError:
    """embed_svc's failure as the ServiceError api_svc answers."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    info = error_info(error)
    if code in _REQUEST_ERRORS and info is not None and "compreface_code" in info.metadata:
        details = error.details() if hasattr(error, "details") else ""
        message = _IMAGE_PREFIX.sub("", details or info.reason)
        metadata = dict(info.metadata)
        compreface_code = int(metadata.pop("compreface_code"))
        index = metadata.pop("image_index", None)
        if index is not None and index.isdigit() and int(index) < len(names):
            message = f"{names[int(index)]}: {message}"
            metadata["field"] = names[int(index)]
        return ServiceError(code, info.reason, message, compreface_code, metadata)
    log.warning("embed_svc_failed", grpc_code=code.name, reason=info.reason if info else None)
    return embed_unavailable()


class GrpcEmbedClient:
    """EmbedClient over one gRPC channel."""

    def __init__(self, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self._stub = embed_grpc.EmbeddingServiceStub(channel)
        self._timeout_s = timeout_s

    @staticmethod
    def channel(address: str) -> grpc.aio.Channel:
        """A channel to embed_svc that carries images and request ids, balanced round robin over
        the ready nodes ``address`` names (one, an IP list or ``dns:///name:port``; see
        facegrid/balancing.py); a call a node answers UNAVAILABLE is retried on another."""
        return grpc.aio.insecure_channel(
            grpc_target(address),
            options=[*channel_options(), *balanced_options([EMBED_SERVICE])],
            interceptors=[RequestIdClientInterceptor()],
        )

    async def analyze(
        self, images: Mapping[str, bytes], options: embed_pb.AnalyzeOptions
    ) -> embed_pb.AnalyzeImagesResponse:
        """EmbeddingService.AnalyzeImages on all ``images`` in one request."""
        request = embed_pb.AnalyzeImagesRequest(images=list(images.values()), options=options)
        try:
            response: embed_pb.AnalyzeImagesResponse = await self._stub.AnalyzeImages(
                request, timeout=self._timeout_s
            )
        except grpc.aio.AioRpcError as error:
            raise translate(error, list(images)) from None
        return response

    async def status(self) -> embed_pb.GetStatusResponse:
        """EmbeddingService.GetStatus."""
        try:
            response: embed_pb.GetStatusResponse = await self._stub.GetStatus(
                embed_pb.GetStatusRequest(), timeout=self._timeout_s
            )
        except grpc.aio.AioRpcError as error:
            raise translate(error, []) from None
        return response

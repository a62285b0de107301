"""RecognitionService servicer: the CompreFace REST API v1 surface.

Implemented RPCs authenticate the ``x-api-key`` metadata against the service type their path
needs, do their work, and count the request in the service's statistics once it succeeded.
Every RPC whose capability has not landed yet answers UNIMPLEMENTED with a message naming it;
nothing fakes a result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import structlog

from api_svc.auth import Authenticator, Service, ServiceType
from api_svc.detection import FaceDetection
from api_svc.stats import RequestStats
from api_svc.verification import Verification
from facegrid.errors import ServiceError, abort, unimplemented
from facegrid.recognition.v1 import recognition_service_pb2 as pb
from facegrid.recognition.v1 import recognition_service_pb2_grpc

log = structlog.get_logger()

Handler = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[Any]]
Response = TypeVar("Response")

#: Where the pending capability is tracked.
_RECOGNITION_ISSUE = "arrives with the recognition capability"


def _pending(method: str) -> Handler:
    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await abort(context, unimplemented(method, _RECOGNITION_ISSUE))

    handler.__name__ = method
    return handler


def _internal() -> ServiceError:
    return ServiceError(grpc.StatusCode.INTERNAL, "INTERNAL", "internal error; try again")


_SERVICE = pb.DESCRIPTOR.services_by_name["RecognitionService"]


class RecognitionServicer(recognition_service_pb2_grpc.RecognitionServiceServicer):
    """Serves facegrid.recognition.v1.RecognitionService."""

    def __init__(
        self,
        authenticator: Authenticator,
        stats: RequestStats,
        detection: FaceDetection,
        verification: Verification,
    ) -> None:
        self._authenticator = authenticator
        self._stats = stats
        self._detection = detection
        self._verification = verification

    async def _serve(
        self,
        context: grpc.aio.ServicerContext,
        wanted: ServiceType,
        work: Callable[[Service], Awaitable[Response]],
    ) -> Response:
        try:
            service = await self._authenticator.authenticate(context.invocation_metadata(), wanted)
            response = await work(service)
        except ServiceError as error:
            await abort(context, error)
        except Exception:
            log.exception("request_failed")
            await abort(context, _internal())
        self._stats.record(service.id)
        return response

    async def DetectFaces(
        self, request: pb.DetectFacesRequest, context: grpc.aio.ServicerContext
    ) -> pb.DetectFacesResponse:
        """POST /api/v1/detection/detect."""
        return await self._serve(
            context,
            ServiceType.DETECTION,
            lambda service: self._detection.detect(request, service.calculator),
        )

    async def VerifyImages(
        self, request: pb.VerifyImagesRequest, context: grpc.aio.ServicerContext
    ) -> pb.VerifyImagesResponse:
        """POST /api/v1/verification/verify."""
        return await self._serve(
            context,
            ServiceType.VERIFICATION,
            lambda service: self._verification.verify_images(request, service.calculator),
        )

    async def VerifyEmbeddings(
        self, request: pb.VerifyEmbeddingsRequest, context: grpc.aio.ServicerContext
    ) -> pb.VerifyEmbeddingsResponse:
        """POST /api/v1/verification/embeddings/verify."""
        return await self._serve(
            context,
            ServiceType.VERIFICATION,
            lambda service: self._verification.verify_embeddings(request, service.calculator),
        )


for _method in _SERVICE.methods:
    if _method.name not in vars(RecognitionServicer):
        setattr(RecognitionServicer, _method.name, _pending(_method.full_name))

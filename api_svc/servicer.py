"""RecognitionService servicer: the CompreFace REST API v1 surface.

Implemented RPCs authenticate the ``x-api-key`` metadata against the service type their path
needs, do their work, and count the request in the service's statistics once it succeeded.
An RPC whose capability has not landed yet would answer UNIMPLEMENTED with a message naming
it; nothing fakes a result.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc
import structlog
from google.api import httpbody_pb2
from google.protobuf import struct_pb2

from api_svc.auth import Authenticator, Service, ServiceType
from api_svc.bulk_enrolment import BulkEnrolment
from api_svc.detection import FaceDetection
from api_svc.face_verification import FaceVerification
from api_svc.faces import Faces
from api_svc.recognition import Recognition
from api_svc.stats import RequestStats
from api_svc.subjects import Subjects
from api_svc.verification import Verification
from facegrid.errors import ServiceError, abort, internal, set_http_status
from facegrid.recognition.v1 import recognition_service_pb2 as pb
from facegrid.recognition.v1 import recognition_service_pb2_grpc

log = structlog.get_logger()

Response = TypeVar("Response")


class RecognitionServicer(recognition_service_pb2_grpc.RecognitionServiceServicer):
    """Serves facegrid.recognition.v1.RecognitionService."""

    def __init__(
        self,
        authenticator: Authenticator,
        stats: RequestStats,
        detection: FaceDetection,
        verification: Verification,
        subjects: Subjects,
        faces: Faces,
        face_verification: FaceVerification,
        recognition: Recognition,
        bulk: BulkEnrolment,
    ) -> None:
        self._authenticator = authenticator
        self._stats = stats
        self._detection = detection
        self._verification = verification
        self._subjects = subjects
        self._faces = faces
        self._face_verification = face_verification
        self._recognizer = recognition
        self._bulk = bulk

    async def _serve(
        self,
        context: grpc.aio.ServicerContext,
        wanted: ServiceType,
        work: Callable[[Service], Awaitable[Response]],
        http_status: int | None = None,
    ) -> Response:
        try:
            service = await self._authenticator.authenticate(context.invocation_metadata(), wanted)
            response = await work(service)
        except ServiceError as error:
            await abort(context, error)
        except Exception:
            log.exception("request_failed")
            await abort(context, internal())
        self._stats.record(service.id)
        if http_status is not None:
            await set_http_status(context, http_status)
        return response

    async def _recognition(
        self,
        context: grpc.aio.ServicerContext,
        work: Callable[[Service], Awaitable[Response]],
        http_status: int | None = None,
    ) -> Response:
        return await self._serve(context, ServiceType.RECOGNITION, work, http_status)

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

    async def CreateSubject(
        self, request: pb.CreateSubjectRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateSubjectResponse:
        """POST /api/v1/recognition/subjects (201)."""
        return await self._recognition(
            context, lambda service: self._subjects.create(service.id, request), 201
        )

    async def ListSubjects(
        self, request: pb.ListSubjectsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSubjectsResponse:
        """GET /api/v1/recognition/subjects."""
        return await self._recognition(context, lambda service: self._subjects.list(service.id))

    async def RenameSubject(
        self, request: pb.RenameSubjectRequest, context: grpc.aio.ServicerContext
    ) -> pb.RenameSubjectResponse:
        """PUT /api/v1/recognition/subjects/{subject}."""
        return await self._recognition(
            context, lambda service: self._subjects.rename(service.id, request)
        )

    async def DeleteSubject(
        self, request: pb.DeleteSubjectRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteSubjectResponse:
        """DELETE /api/v1/recognition/subjects/{subject}."""
        return await self._recognition(
            context, lambda service: self._subjects.delete(service.id, request)
        )

    async def DeleteSubjects(
        self, request: pb.DeleteSubjectsRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteSubjectsResponse:
        """DELETE /api/v1/recognition/subjects."""
        return await self._recognition(
            context, lambda service: self._subjects.delete_all(service.id)
        )

    async def AddFace(
        self, request: pb.AddFaceRequest, context: grpc.aio.ServicerContext
    ) -> pb.AddFaceResponse:
        """POST /api/v1/recognition/faces (201)."""
        return await self._recognition(
            context,
            lambda service: self._faces.add(service.id, service.calculator, request),
            201,
        )

    async def BulkAddFaces(
        self,
        request_iterator: AsyncIterator[pb.BulkAddFacesRequest],
        context: grpc.aio.ServicerContext,
    ) -> None:
        """POST /api/v1/recognition/faces/bulk (REST: JSON arrays in and out). Reads and writes
        through the context (cheaper per message than the iterator and a generator)."""

        async def read() -> pb.BulkAddFacesRequest | None:
            request = await context.read()
            return None if request is grpc.aio.EOF else request

        async def enrol(service: Service) -> None:
            stream = await self._bulk.accept(service)
            # Initial metadata says "accepted": a client may wait for it before sending items,
            # so that a refusal reaches it as the call's status rather than as a failed write.
            await context.send_initial_metadata(())
            await self._bulk.enrol(stream, read, context.write)

        await self._recognition(context, enrol)

    async def ListFaces(
        self, request: pb.ListFacesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListFacesResponse:
        """GET /api/v1/recognition/faces."""
        return await self._recognition(
            context, lambda service: self._faces.list(service.id, request)
        )

    async def DeleteFaces(
        self, request: pb.DeleteFacesRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteFacesResponse:
        """DELETE /api/v1/recognition/faces."""
        return await self._recognition(
            context, lambda service: self._faces.delete_all(service.id, request)
        )

    async def DeleteFace(
        self, request: pb.DeleteFaceRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteFaceResponse:
        """DELETE /api/v1/recognition/faces/{image_id}."""
        return await self._recognition(
            context, lambda service: self._faces.delete(service.id, request)
        )

    async def DeleteFacesByIds(
        self, request: pb.DeleteFacesByIdsRequest, context: grpc.aio.ServicerContext
    ) -> struct_pb2.ListValue:
        """POST /api/v1/recognition/faces/delete."""
        return await self._recognition(
            context, lambda service: self._faces.delete_by_ids(service.id, request)
        )

    async def GetFaceImage(
        self, request: pb.GetFaceImageRequest, context: grpc.aio.ServicerContext
    ) -> httpbody_pb2.HttpBody:
        """GET /api/v1/recognition/faces/{image_id}/img."""
        return await self._recognition(
            context, lambda service: self._faces.image(service.id, request)
        )

    async def VerifyAgainstFace(
        self, request: pb.VerifyAgainstFaceRequest, context: grpc.aio.ServicerContext
    ) -> pb.VerifyAgainstFaceResponse:
        """POST /api/v1/recognition/faces/{image_id}/verify."""
        return await self._recognition(
            context,
            lambda service: self._face_verification.verify_image(
                service.id, service.calculator, request
            ),
        )

    async def VerifyEmbeddingsAgainstFace(
        self, request: pb.VerifyEmbeddingsAgainstFaceRequest, context: grpc.aio.ServicerContext
    ) -> pb.VerifyEmbeddingsAgainstFaceResponse:
        """POST /api/v1/recognition/embeddings/faces/{image_id}/verify."""
        return await self._recognition(
            context,
            lambda service: self._face_verification.verify_embeddings(
                service.id, service.calculator, request
            ),
        )

    async def RecognizeFaces(
        self, request: pb.RecognizeFacesRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecognizeFacesResponse:
        """POST /api/v1/recognition/recognize."""
        return await self._recognition(
            context,
            lambda service: self._recognizer.recognize_faces(
                service.id, service.calculator, request
            ),
        )

    async def RecognizeEmbeddings(
        self, request: pb.RecognizeEmbeddingsRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecognizeEmbeddingsResponse:
        """POST /api/v1/recognition/embeddings/recognize."""
        return await self._recognition(
            context,
            lambda service: self._recognizer.recognize_embeddings(
                service.id, service.calculator, request
            ),
        )

"""Verification against one stored example: VerifyAgainstFace
(``POST /api/v1/recognition/faces/{image_id}/verify``) and VerifyEmbeddingsAgainstFace
(``POST /api/v1/recognition/embeddings/faces/{image_id}/verify``).

Both read the example's embedding from PostgreSQL (no index needed) and score each face or
embedding against it, most similar first. An example made by another calculator than the one in
use cannot be compared: FAILED_PRECONDITION (400, code 26) naming both.
"""

from __future__ import annotations

import uuid

import grpc
import numpy as np

from api_svc.embed_client import EmbedClient
from api_svc.embedding_input import checked_vectors, wrong_count
from api_svc.face_analysis import analyse_image
from api_svc.face_store import PgFaceStore, StoredEmbedding
from api_svc.faces import FILE_FIELD, face_not_found, parse_image_id
from api_svc.image_body import BodyLimits, read_images
from api_svc.similarity import Calculators, similarities
from facegrid.errors import ServiceError
from facegrid.recognition.v1 import recognition_service_pb2 as pb


def calculator_mismatch(image_id: str, stored: str, in_use: str) -> ServiceError:
    """The example's embedding was made by another calculator than the one in use."""
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        "CALCULATOR_MISMATCH",
        f"face {image_id} was embedded by calculator {stored}, but this service uses {in_use};"
        " migrate the collection's embeddings to compare them",
        26,
        {"image_id": image_id, "stored_calculator": stored, "calculator": in_use},
        http_status=400,
    )


def _vector(stored: StoredEmbedding) -> np.ndarray:
    return np.frombuffer(stored.embedding, dtype="<f4")


class FaceVerification:
    """Serves verification against a stored example for a RECOGNITION service."""

    def __init__(
        self,
        store: PgFaceStore,
        embed: EmbedClient,
        calculators: Calculators,
        limits: BodyLimits,
    ) -> None:
        self._store = store
        self._embed = embed
        self._calculators = calculators
        self._limits = limits

    async def _example(self, service_id: uuid.UUID, image_id: str) -> StoredEmbedding:
        stored = await self._store.embedding(service_id, parse_image_id(image_id))
        if stored is None:
            raise face_not_found(image_id)
        return stored

    async def verify_image(
        self,
        service_id: uuid.UUID,
        calculator: str | None,
        request: pb.VerifyAgainstFaceRequest,
    ) -> pb.VerifyAgainstFaceResponse:
        """Scores every face of ``request.image`` against example ``request.image_id``."""
        stored = await self._example(service_id, request.image_id)
        [image] = read_images(request.image, (FILE_FIELD,), self._limits)
        analysed = await analyse_image(self._embed, image, request, calculator, embeddings=True)
        analysis, faces = analysed.analysis, analysed.faces
        if analysis.calculator.name != stored.calculator:
            raise calculator_mismatch(request.image_id, stored.calculator, analysis.calculator.name)
        model = await self._calculators.get(analysis.calculator.name)
        scores = similarities(
            _vector(stored), [list(f.embedding) for f in faces], model.calibration
        )
        response = pb.VerifyAgainstFaceResponse()
        for face, score in sorted(zip(faces, scores, strict=True), key=lambda p: -p[1]):
            analysed.fill(response.result.add(subject=stored.subject, similarity=score), face)
        analysed.add_versions(response.plugins_versions)
        return response

    async def verify_embeddings(
        self,
        service_id: uuid.UUID,
        calculator: str | None,
        request: pb.VerifyEmbeddingsAgainstFaceRequest,
    ) -> pb.VerifyEmbeddingsAgainstFaceResponse:
        """Scores each of ``request.embeddings`` against example ``request.image_id``."""
        stored = await self._example(service_id, request.image_id)
        if not request.embeddings:
            raise wrong_count(
                "at least 1 embedding was expected, but 0 were provided", "embeddings"
            )
        model = await self._calculators.get(calculator)
        if model.name != stored.calculator:
            raise calculator_mismatch(request.image_id, stored.calculator, model.name)
        vectors = checked_vectors(request.embeddings, model.embedding_size, "embeddings")
        scores = similarities(_vector(stored), vectors, model.calibration)
        ranked = sorted(zip(vectors, scores, strict=True), key=lambda p: -p[1])
        return pb.VerifyEmbeddingsAgainstFaceResponse(
            result=[pb.EmbeddingSimilarity(embedding=v, similarity=s) for v, s in ranked]
        )

"""Recognition against a whole collection: RecognizeFaces (``POST /api/v1/recognition/recognize``)
and RecognizeEmbeddings (``POST /api/v1/recognition/embeddings/recognize``).

Each face or embedding is searched in the collection's in-memory index (IndexRegistry) for its
``prediction_count`` most similar examples, most similar first, one entry per example as
CompreFace answers (a subject may repeat). Two Facegrid extensions of RecognizeFaces:
``similarity_threshold`` drops entries below it, and ``rank_by_subject`` keeps each subject's
best example only. A query made by another calculator than the collection's examples is
CALCULATOR_MISMATCH (400, code 26), as verification against a stored face answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import partial

import grpc
import numpy as np
import numpy.typing as npt

from api_svc.embed_client import EmbedClient
from api_svc.embedding_input import checked_vectors, wrong_count
from api_svc.face_analysis import FILE_FIELD, analyse_image
from api_svc.face_index import FaceIndex, Hit
from api_svc.image_body import BodyLimits, read_images
from api_svc.index_registry import IndexRegistry
from api_svc.similarity import Calculators, round5
from facegrid.errors import ServiceError, invalid_argument
from facegrid.recognition.v1 import recognition_service_pb2 as pb
from facegrid.similarity import Calibration

#: CompreFace's code for a prediction_count below 1.
BAD_PREDICTION_COUNT = 12


def prediction_count(request: pb.RecognizeFacesRequest | pb.RecognizeEmbeddingsRequest) -> int:
    """The request's ``prediction_count`` (1 when absent); below 1 is code 12."""
    count = request.prediction_count if request.HasField("prediction_count") else 1
    if count < 1:
        raise invalid_argument(
            "INVALID_PREDICTION_COUNT",
            "prediction_count should be equal or greater than 1",
            BAD_PREDICTION_COUNT,
            field="prediction_count",
        )
    return count


def similarity_threshold(request: pb.RecognizeFacesRequest) -> float | None:
    """The optional ``similarity_threshold``, 0..1 (else code 26)."""
    if not request.HasField("similarity_threshold"):
        return None
    value = request.similarity_threshold
    if not 0.0 <= value <= 1.0:
        raise invalid_argument(
            "INVALID_SIMILARITY_THRESHOLD",
            "similarity_threshold should be between 0 and 1",
            field="similarity_threshold",
        )
    return value


def collection_calculator_mismatch(
    service_id: uuid.UUID, indexed: str, in_use: str
) -> ServiceError:
    """The collection's examples were made by another calculator than the query's: nothing is
    comparable (FAILED_PRECONDITION, 400, code 26, as verification against a stored face)."""
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        "CALCULATOR_MISMATCH",
        f"the faces of service {service_id} were embedded by calculator {indexed}, but this"
        f" request used {in_use}; migrate the collection's embeddings to compare them",
        26,
        {"service_id": str(service_id), "stored_calculator": indexed, "calculator": in_use},
        http_status=400,
    )


def _best_per_subject(hits: list[Hit]) -> list[Hit]:
    best: dict[str, Hit] = {}
    for hit in hits:
        best.setdefault(hit.subject, hit)
    return list(best.values())


def rank(
    index: FaceIndex,
    queries: npt.NDArray[np.float32],
    count: int,
    calibration: Calibration,
    *,
    threshold: float | None = None,
    by_subject: bool = False,
) -> list[list[pb.SubjectSimilarity]]:
    """For each query row, its ``count`` most similar examples (or subjects) as CompreFace's
    ``{subject, similarity}``, most similar first."""
    k = count
    while True:
        found = index.search(queries, k)
        if by_subject:
            found = [_best_per_subject(hits) for hits in found]
        if not by_subject or k >= len(index) or all(len(h) >= count for h in found):
            break
        k = min(len(index), k * 4)
    ranked = []
    for hits in found:
        scores = calibration.similarities([h.distance for h in hits[:count]])
        entries = [
            pb.SubjectSimilarity(subject=h.subject, similarity=round5(float(s)))
            for h, s in zip(hits, scores, strict=False)
        ]
        if threshold is not None:
            entries = [e for e in entries if e.similarity >= threshold]
        ranked.append(entries)
    return ranked


class Recognition:
    """Serves recognition for a RECOGNITION service."""

    def __init__(
        self,
        registry: IndexRegistry,
        embed: EmbedClient,
        calculators: Calculators,
        limits: BodyLimits,
    ) -> None:
        self._registry = registry
        self._embed = embed
        self._calculators = calculators
        self._limits = limits

    async def _ranked(
        self,
        service_id: uuid.UUID,
        calculator: str,
        vectors: Sequence[Sequence[float]],
        count: int,
        threshold: float | None = None,
        by_subject: bool = False,
    ) -> list[list[pb.SubjectSimilarity]]:
        index = await self._registry.get(service_id)
        if index.calculator != calculator:
            raise collection_calculator_mismatch(service_id, index.calculator, calculator)
        model = await self._calculators.get(calculator)
        queries = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), index.dim)
        # The search runs in the index's thread pool, never on the event loop.
        return await self._registry.run(
            partial(rank, threshold=threshold, by_subject=by_subject),
            index,
            queries,
            count,
            model.calibration,
        )

    async def recognize_faces(
        self, service_id: uuid.UUID, calculator: str | None, request: pb.RecognizeFacesRequest
    ) -> pb.RecognizeFacesResponse:
        """Every face of ``request.image`` and its most similar examples; no face is code 28."""
        [image] = read_images(request.image, (FILE_FIELD,), self._limits)
        count = prediction_count(request)
        threshold = similarity_threshold(request)
        whole_image = request.HasField("detect_faces") and not request.detect_faces
        analysed = await analyse_image(
            self._embed, image, request, calculator, embeddings=True, whole_image=whole_image
        )
        ranked = await self._ranked(
            service_id,
            analysed.analysis.calculator.name,
            [list(f.embedding) for f in analysed.faces],
            count,
            threshold,
            request.rank_by_subject,
        )
        response = pb.RecognizeFacesResponse()
        for face, subjects in zip(analysed.faces, ranked, strict=True):
            analysed.fill(response.result.add(subjects=subjects), face)
        analysed.add_versions(response.plugins_versions)
        return response

    async def recognize_embeddings(
        self,
        service_id: uuid.UUID,
        calculator: str | None,
        request: pb.RecognizeEmbeddingsRequest,
    ) -> pb.RecognizeEmbeddingsResponse:
        """Each embedding's most similar examples; a wrong length is code 26."""
        if not request.embeddings:
            raise wrong_count(
                "at least 1 embedding was expected, but 0 were provided", "embeddings"
            )
        count = prediction_count(request)
        model = await self._calculators.get(calculator)
        vectors = checked_vectors(request.embeddings, model.embedding_size, "embeddings")
        ranked = await self._ranked(service_id, model.name, vectors, count)
        return pb.RecognizeEmbeddingsResponse(
            result=[
                pb.EmbeddingSimilarities(embedding=v, similarities=s)
                for v, s in zip(vectors, ranked, strict=True)
            ]
        )

"""Verification: VerifyImages (``POST /api/v1/verification/verify``) and VerifyEmbeddings
(``POST /api/v1/verification/embeddings/verify``).

VerifyImages analyses both images in one embed_svc request; the source must hold exactly one
face (28 none, 31 more), the target at least one (28); ``limit`` keeps the largest target faces.
Matches are sorted by similarity, most similar first, as CompreFace sorts them.
"""

from __future__ import annotations

from api_svc.embed_client import EmbedClient
from api_svc.embedding_input import checked_vector, checked_vectors, wrong_count
from api_svc.face_errors import no_face, too_many_faces
from api_svc.face_plugins import (
    analyze_options,
    check_limit,
    parse_face_plugins,
    threshold_of,
)
from api_svc.image_body import BodyLimits, read_images
from api_svc.render import fill_face, plugins_versions
from api_svc.similarity import Calculators, similarities
from facegrid.recognition.v1 import recognition_service_pb2 as pb

SOURCE_FIELD = "source_image"
TARGET_FIELD = "target_image"


class Verification:
    """Serves the verification RPCs for an authenticated VERIFICATION service."""

    def __init__(self, embed: EmbedClient, calculators: Calculators, limits: BodyLimits) -> None:
        self._embed = embed
        self._calculators = calculators
        self._limits = limits

    async def verify_images(
        self, request: pb.VerifyImagesRequest, calculator: str | None
    ) -> pb.VerifyImagesResponse:
        """Compares the source image's one face with every target face."""
        fields = (SOURCE_FIELD, TARGET_FIELD)
        source, target = read_images(request.images, fields, self._limits)
        names = parse_face_plugins(request.face_plugins)
        limit = check_limit(request.limit)
        options = analyze_options(
            names,
            limit=0,
            det_prob_threshold=threshold_of(request),
            calculator=calculator,
            embeddings=True,
        )
        analysis = await self._embed.analyze({SOURCE_FIELD: source, TARGET_FIELD: target}, options)
        source_faces, target_faces = (list(image.faces) for image in analysis.images)
        if not source_faces:
            raise no_face(SOURCE_FIELD)
        if len(source_faces) > 1:
            raise too_many_faces(SOURCE_FIELD)
        if not target_faces:
            raise no_face(TARGET_FIELD)
        if limit:
            target_faces = target_faces[:limit]
        model = await self._calculators.get(analysis.calculator.name)
        scores = similarities(
            source_faces[0].embedding, [f.embedding for f in target_faces], model.calibration
        )
        wants_embedding = "calculator" in names
        timings = dict(analysis.execution_time_ms) if request.status else None
        result = pb.ImageVerification()
        fill_face(
            result.source_image_face, source_faces[0], embedding=wants_embedding, timings=timings
        )
        for face, score in sorted(zip(target_faces, scores, strict=True), key=lambda p: -p[1]):
            match = result.face_matches.add(similarity=score)
            fill_face(match, face, embedding=wants_embedding, timings=timings)
        if request.status:
            result.plugins_versions.update(plugins_versions(analysis.models))
        return pb.VerifyImagesResponse(result=[result])

    async def verify_embeddings(
        self, request: pb.VerifyEmbeddingsRequest, calculator: str | None
    ) -> pb.VerifyEmbeddingsResponse:
        """Compares the source embedding with each target embedding."""
        if not request.source:
            raise wrong_count("a source embedding was expected, but none was provided", "source")
        if not request.targets:
            raise wrong_count(
                "at least 1 target embedding was expected, but 0 were provided", "targets"
            )
        model = await self._calculators.get(calculator)
        size = model.embedding_size
        source = checked_vector(list(request.source), size, "source")
        targets = checked_vectors(request.targets, size, "targets")
        scores = similarities(source, targets, model.calibration)
        ranked = sorted(zip(targets, scores, strict=True), key=lambda p: -p[1])
        return pb.VerifyEmbeddingsResponse(
            result=[pb.EmbeddingSimilarity(embedding=t, similarity=s) for t, s in ranked]
        )

"""DetectFaces (``POST /api/v1/detection/detect``): the faces of one image and their plugins."""

from __future__ import annotations

from api_svc.embed_client import EmbedClient
from api_svc.face_errors import no_face
from api_svc.face_plugins import analyze_options, parse_face_plugins, threshold_of
from api_svc.image_body import BodyLimits, read_images
from api_svc.render import fill_face, plugins_versions
from facegrid.recognition.v1 import recognition_service_pb2 as pb

FILE_FIELD = "file"


class FaceDetection:
    """Serves DetectFaces for an authenticated DETECTION service."""

    def __init__(self, embed: EmbedClient, limits: BodyLimits) -> None:
        self._embed = embed
        self._limits = limits

    async def detect(
        self, request: pb.DetectFacesRequest, calculator: str | None
    ) -> pb.DetectFacesResponse:
        """Detects the faces of ``request.image``; no face is CompreFace's code 28."""
        [image] = read_images(request.image, (FILE_FIELD,), self._limits)
        names = parse_face_plugins(request.face_plugins)
        wants_embedding = "calculator" in names
        options = analyze_options(
            names,
            limit=request.limit,
            det_prob_threshold=threshold_of(request),
            calculator=calculator,
            embeddings=wants_embedding,
        )
        analysis = await self._embed.analyze({FILE_FIELD: image}, options)
        faces = analysis.images[0].faces
        if not faces:
            raise no_face(FILE_FIELD)
        timings = dict(analysis.execution_time_ms) if request.status else None
        response = pb.DetectFacesResponse()
        for face in faces:
            fill_face(response.result.add(), face, embedding=wants_embedding, timings=timings)
        if request.status:
            response.plugins_versions.update(plugins_versions(analysis.models))
        return response

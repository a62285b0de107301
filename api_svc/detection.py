"""DetectFaces (``POST /api/v1/detection/detect``): the faces of one image and their plugins."""

from __future__ import annotations

from api_svc.embed_client import EmbedClient
from api_svc.face_analysis import FILE_FIELD, analyse_image
from api_svc.image_body import BodyLimits, read_images
from facegrid.recognition.v1 import recognition_service_pb2 as pb

__all__ = ["FILE_FIELD", "FaceDetection"]


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
        analysed = await analyse_image(self._embed, image, request, calculator, embeddings=False)
        response = pb.DetectFacesResponse()
        for face in analysed.faces:
            analysed.fill(response.result.add(), face)
        analysed.add_versions(response.plugins_versions)
        return response

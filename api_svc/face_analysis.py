"""One uploaded image analysed by embed_svc for a face RPC (detection, recognition, verification
against a stored example): the shared query parameters, the call, no face (code 28), and the
rendering options the answer needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from google.protobuf import struct_pb2

from api_svc.embed_client import EmbedClient
from api_svc.face_errors import no_face
from api_svc.face_plugins import HasThreshold, analyze_options, parse_face_plugins, threshold_of
from api_svc.render import FaceFields, fill_face, plugins_versions
from facegrid.embedding.v1 import embedding_service_pb2 as embed_pb

FILE_FIELD = "file"


class FaceRequest(HasThreshold, Protocol):
    """A request with CompreFace's ``limit``, ``face_plugins`` and ``status``."""

    @property
    def limit(self) -> int: ...
    @property
    def face_plugins(self) -> str: ...
    @property
    def status(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class AnalysedImage:
    """embed_svc's answer for one image that holds at least one face."""

    analysis: embed_pb.AnalyzeImagesResponse
    faces: list[embed_pb.Face]
    wants_embedding: bool
    """``face_plugins`` asked for ``calculator``: the answer shows embeddings."""
    timings: dict[str, float] | None
    """embed_svc's milliseconds when ``status=true``, else None."""

    def fill(self, target: FaceFields, face: embed_pb.Face) -> None:
        """Copies ``face`` into a response face, as the request asked."""
        fill_face(target, face, embedding=self.wants_embedding, timings=self.timings)

    def add_versions(self, target: struct_pb2.Struct) -> None:
        """Fills ``plugins_versions`` when ``status=true``."""
        if self.timings is not None:
            target.update(plugins_versions(self.analysis.models))


async def analyse_image(
    embed: EmbedClient,
    image: bytes,
    request: FaceRequest,
    calculator: str | None,
    *,
    embeddings: bool,
    whole_image: bool = False,
) -> AnalysedImage:
    """Detects the faces of ``image`` (embeddings when ``embeddings`` or asked for); no face is
    CompreFace's code 28."""
    names = parse_face_plugins(request.face_plugins)
    wants_embedding = "calculator" in names
    options = analyze_options(
        names,
        limit=request.limit,
        det_prob_threshold=threshold_of(request),
        calculator=calculator,
        embeddings=embeddings or wants_embedding,
    )
    options.whole_image_is_face = whole_image
    analysis = await embed.analyze({FILE_FIELD: image}, options)
    faces = list(analysis.images[0].faces)
    if not faces:
        raise no_face(FILE_FIELD)
    timings = dict(analysis.execution_time_ms) if request.status else None
    return AnalysedImage(analysis, faces, wants_embedding, timings)

"""The face-example RPCs of ``/api/v1/recognition/faces``: enrol, list, delete, download.

AddFace asks embed_svc for at most two faces of the image (as CompreFace does): none is code 28,
two is code 31 (CompreFace's TooManyFacesException for more than MAX_FACES_TO_SAVE = 1). The
embedding (from the service's calculator) is stored L2-normalised as little-endian float32 with
the calculator's name and version, the image bytes and their content type; the subject is created
when new. embed_svc is asked before the transaction opens, so a failure there stores nothing.
"""

from __future__ import annotations

import math
import uuid

import grpc
from google.api import httpbody_pb2
from google.protobuf import struct_pb2

from api_svc.embed_client import EmbedClient
from api_svc.face_errors import no_face, too_many_faces
from api_svc.face_plugins import analyze_options, threshold_of
from api_svc.face_store import FaceRef, NewExample, PgFaceStore
from api_svc.image_body import BodyLimits, read_images
from api_svc.subjects import check_name, subject_not_found
from facegrid.errors import ServiceError, invalid_argument
from facegrid.image_formats import media_type_of
from facegrid.recognition.v1 import recognition_service_pb2 as pb
from facegrid.similarity import normalised

FILE_FIELD = "file"
#: CompreFace's code for an unknown face example ("embedding not found").
FACE_NOT_FOUND = 44
#: CompreFace's default page size of ListFaces.
DEFAULT_PAGE_SIZE = 20
#: Largest page of ListFaces (CompreFace has none; a page is built in memory).
MAX_PAGE_SIZE = 1000
#: Faces asked of embed_svc on enrolment: enough to tell one from several.
_FACES_TO_TELL = 2


def face_not_found(image_id: str) -> ServiceError:
    """No example ``image_id`` in the collection (404, code 44)."""
    return ServiceError(
        grpc.StatusCode.NOT_FOUND,
        "FACE_NOT_FOUND",
        f"Face {image_id} is not found",
        FACE_NOT_FOUND,
        {"image_id": image_id},
        http_status=404,
    )


def parse_image_id(text: str) -> uuid.UUID:
    """``text`` as an example id; one that is not a UUID cannot exist (404, code 44)."""
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        raise face_not_found(text) from None


async def one_face_example(
    embed: EmbedClient,
    image: bytes,
    content_type: str,
    det_prob_threshold: float | None,
    calculator: str | None,
) -> NewExample:
    """The example to store for ``image``, which must hold exactly one face (else code 28 or
    31); its embedding from ``calculator`` (None: embed_svc's default), L2-normalised."""
    options = analyze_options(
        frozenset(),
        limit=_FACES_TO_TELL,
        det_prob_threshold=det_prob_threshold,
        calculator=calculator,
        embeddings=True,
    )
    analysis = await embed.analyze({FILE_FIELD: image}, options)
    faces = analysis.images[0].faces
    if not faces:
        raise no_face(FILE_FIELD)
    if len(faces) > 1:
        raise too_many_faces(FILE_FIELD)
    vector = normalised(list(faces[0].embedding))[0].astype("<f4")
    return NewExample(
        embedding=vector.tobytes(),
        embedding_dim=int(vector.size),
        calculator=analysis.calculator.name,
        calculator_version=analysis.calculator.version,
        image=image,
        image_content_type=content_type,
    )


def _subject_filter(request: pb.ListFacesRequest | pb.DeleteFacesRequest) -> str | None:
    """The optional ``subject`` parameter, checked as a name; None when absent or empty."""
    if not request.HasField("subject") or not request.subject:
        return None
    return check_name(request.subject)


def _ref(face: FaceRef) -> pb.FaceRef:
    return pb.FaceRef(image_id=str(face.image_id), subject=face.subject)


class Faces:
    """Serves the face-example RPCs for an authenticated RECOGNITION service."""

    def __init__(self, store: PgFaceStore, embed: EmbedClient, limits: BodyLimits) -> None:
        self._store = store
        self._embed = embed
        self._limits = limits

    async def add(
        self, service_id: uuid.UUID, calculator: str | None, request: pb.AddFaceRequest
    ) -> pb.AddFaceResponse:
        """Enrols the one face of ``request.image`` under ``request.subject``."""
        subject = check_name(request.subject)
        [image] = read_images(request.image, (FILE_FIELD,), self._limits)
        await self._store.check_writable(service_id)
        example = await one_face_example(
            self._embed, image, media_type_of(image), threshold_of(request), calculator
        )
        image_id = await self._store.add_example(service_id, subject, example)
        return pb.AddFaceResponse(image_id=str(image_id), subject=subject)

    async def list(
        self, service_id: uuid.UUID, request: pb.ListFacesRequest
    ) -> pb.ListFacesResponse:
        """One page of the collection's examples, oldest first."""
        size = request.size if request.HasField("size") else DEFAULT_PAGE_SIZE
        if request.page < 0:
            raise invalid_argument("INVALID_PAGE", "page should be 0 or greater", field="page")
        if size < 1:
            raise invalid_argument("INVALID_PAGE_SIZE", "size should be 1 or greater", field="size")
        if size > MAX_PAGE_SIZE:
            raise invalid_argument(
                "INVALID_PAGE_SIZE", f"size should be at most {MAX_PAGE_SIZE}", field="size"
            )
        subject = _subject_filter(request)
        faces, total = await self._store.list_examples(service_id, subject, request.page, size)
        return pb.ListFacesResponse(
            faces=[_ref(f) for f in faces],
            page_number=request.page,
            page_size=size,
            total_pages=math.ceil(total / size),
            total_elements=total,
        )

    async def delete_all(
        self, service_id: uuid.UUID, request: pb.DeleteFacesRequest
    ) -> pb.DeleteFacesResponse:
        """Deletes every example, or every example of ``subject`` (which must exist; 42)."""
        subject = _subject_filter(request)
        deleted = await self._store.delete_examples(service_id, subject)
        if deleted is None:
            raise subject_not_found(subject or "")
        return pb.DeleteFacesResponse(deleted=deleted)

    async def delete(
        self, service_id: uuid.UUID, request: pb.DeleteFaceRequest
    ) -> pb.DeleteFaceResponse:
        """Deletes one example; unknown is 404 / code 44."""
        deleted = await self._store.delete_examples_by_id(
            service_id, [parse_image_id(request.image_id)]
        )
        if not deleted:
            raise face_not_found(request.image_id)
        return pb.DeleteFaceResponse(image_id=str(deleted[0].image_id), subject=deleted[0].subject)

    async def delete_by_ids(
        self, service_id: uuid.UUID, request: pb.DeleteFacesByIdsRequest
    ) -> struct_pb2.ListValue:
        """Deletes the listed examples that exist (unknown ids are ignored); those deleted."""
        ids = []
        for text in request.image_ids:
            try:
                ids.append(uuid.UUID(text.strip()))
            except ValueError:
                continue  # cannot exist: ignored like any unknown id
        deleted = await self._store.delete_examples_by_id(service_id, ids) if ids else []
        result = struct_pb2.ListValue()
        for face in deleted:
            result.add_struct().update({"image_id": str(face.image_id), "subject": face.subject})
        return result

    async def image(
        self, service_id: uuid.UUID, request: pb.GetFaceImageRequest
    ) -> httpbody_pb2.HttpBody:
        """The stored image of an example, with its content type."""
        stored = await self._store.image(service_id, parse_image_id(request.image_id))
        if stored is None:
            raise face_not_found(request.image_id)
        return httpbody_pb2.HttpBody(content_type=stored.content_type, data=stored.data)

"""The recognition service's unary calls (api_svc; an API key of the right service type):
detection, recognition, verification, subjects and their example faces."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence

from google.api import httpbody_pb2
from google.protobuf import json_format, struct_pb2

from facegrid_client._calls import reply, rpc
from facegrid_client.images import ImageSource, read_image
from facegrid_client.pb import recognition as pb

#: Plugins as a comma-separated string or a sequence of names.
Plugins = str | Sequence[str]
#: An embedding: numbers, e.g. a list, a 1-d numpy array, or a reply's ``embedding`` field
#: (a ``ListValue``).
Embedding = Iterable[float] | struct_pb2.ListValue


def http_body(image: ImageSource) -> httpbody_pb2.HttpBody:
    data, content_type = read_image(image)
    return httpbody_pb2.HttpBody(content_type=content_type, data=data)


def _plugins(face_plugins: Plugins) -> str:
    return face_plugins if isinstance(face_plugins, str) else ",".join(face_plugins)


def floats(values: Embedding) -> list[float]:
    """The numbers of an embedding."""
    if isinstance(values, struct_pb2.ListValue):
        return [v.number_value for v in values.values]
    return [float(v) for v in values]


def _list_value(values: Embedding) -> struct_pb2.ListValue:
    listed = struct_pb2.ListValue()
    listed.extend(floats(values))
    return listed


@rpc("recognition", "DetectFaces", reply(pb.DetectFacesResponse), idempotent=True)
def detect(
    image: ImageSource,
    *,
    limit: int = 0,
    det_prob_threshold: float | None = None,
    face_plugins: Plugins = (),
    status: bool = False,
) -> pb.DetectFacesRequest:
    """Finds the faces of an image, largest first (a DETECTION key). ``face_plugins``: any of
    age, gender, landmarks, mask, pose, calculator (the embedding)."""
    return pb.DetectFacesRequest(
        image=http_body(image),
        limit=limit,
        det_prob_threshold=det_prob_threshold,
        face_plugins=_plugins(face_plugins),
        status=status,
    )


@rpc("recognition", "RecognizeFaces", reply(pb.RecognizeFacesResponse), idempotent=True)
def recognize(
    image: ImageSource,
    *,
    limit: int = 0,
    prediction_count: int | None = None,
    det_prob_threshold: float | None = None,
    face_plugins: Plugins = (),
    status: bool = False,
    detect_faces: bool | None = None,
    similarity_threshold: float | None = None,
    rank_by_subject: bool = False,
) -> pb.RecognizeFacesRequest:
    """Finds the faces of an image and the most similar enrolled subjects of each (a
    RECOGNITION key). ``similarity_threshold`` leaves a face below it with no subjects;
    ``rank_by_subject`` ranks distinct subjects instead of examples."""
    return pb.RecognizeFacesRequest(
        image=http_body(image),
        limit=limit,
        prediction_count=prediction_count,
        det_prob_threshold=det_prob_threshold,
        face_plugins=_plugins(face_plugins),
        status=status,
        detect_faces=detect_faces,
        similarity_threshold=similarity_threshold,
        rank_by_subject=rank_by_subject,
    )


@rpc("recognition", "VerifyImages", reply(pb.VerifyImagesResponse), idempotent=True)
def verify(
    source: ImageSource,
    target: ImageSource,
    *,
    limit: int = 0,
    det_prob_threshold: float | None = None,
    face_plugins: Plugins = (),
    status: bool = False,
) -> pb.VerifyImagesRequest:
    """Compares the one face of ``source`` with every face of ``target`` (a VERIFICATION
    key); ``result[0].face_matches``, most similar first."""
    images = {
        "source_image": base64.b64encode(read_image(source)[0]).decode(),
        "target_image": base64.b64encode(read_image(target)[0]).decode(),
    }
    body = httpbody_pb2.HttpBody(content_type="application/json", data=json.dumps(images).encode())
    return pb.VerifyImagesRequest(
        images=body,
        limit=limit,
        det_prob_threshold=det_prob_threshold,
        face_plugins=_plugins(face_plugins),
        status=status,
    )


@rpc("recognition", "VerifyAgainstFace", reply(pb.VerifyAgainstFaceResponse), idempotent=True)
def verify_face(
    image_id: str,
    image: ImageSource,
    *,
    limit: int = 0,
    det_prob_threshold: float | None = None,
    face_plugins: Plugins = (),
    status: bool = False,
) -> pb.VerifyAgainstFaceRequest:
    """Compares the faces of an image with the stored example face ``image_id`` (a
    RECOGNITION key)."""
    return pb.VerifyAgainstFaceRequest(
        image_id=image_id,
        image=http_body(image),
        limit=limit,
        det_prob_threshold=det_prob_threshold,
        face_plugins=_plugins(face_plugins),
        status=status,
    )


@rpc(
    "recognition",
    "RecognizeEmbeddings",
    reply(pb.RecognizeEmbeddingsResponse),
    idempotent=True,
)
def recognize_embeddings(
    embeddings: Iterable[Embedding], *, prediction_count: int | None = None
) -> pb.RecognizeEmbeddingsRequest:
    """The most similar enrolled subjects of each embedding (a RECOGNITION key)."""
    return pb.RecognizeEmbeddingsRequest(
        embeddings=[_list_value(e) for e in embeddings], prediction_count=prediction_count
    )


@rpc(
    "recognition",
    "VerifyEmbeddingsAgainstFace",
    reply(pb.VerifyEmbeddingsAgainstFaceResponse),
    idempotent=True,
)
def verify_embeddings_against_face(
    image_id: str, embeddings: Iterable[Embedding]
) -> pb.VerifyEmbeddingsAgainstFaceRequest:
    """The similarity of each embedding to the stored example face ``image_id`` (a
    RECOGNITION key)."""
    return pb.VerifyEmbeddingsAgainstFaceRequest(
        image_id=image_id, embeddings=[_list_value(e) for e in embeddings]
    )


@rpc("recognition", "VerifyEmbeddings", reply(pb.VerifyEmbeddingsResponse), idempotent=True)
def verify_embeddings(
    source: Embedding, targets: Iterable[Embedding]
) -> pb.VerifyEmbeddingsRequest:
    """The similarity of each target embedding to ``source`` (a VERIFICATION key)."""
    return pb.VerifyEmbeddingsRequest(
        source=floats(source), targets=[_list_value(t) for t in targets]
    )


@rpc("recognition", "AddFace", reply(pb.AddFaceResponse), idempotent=False)
def add_face(
    subject: str, image: ImageSource, *, det_prob_threshold: float | None = None
) -> pb.AddFaceRequest:
    """Stores the one face of an image as an example of ``subject`` (created when new); the
    reply has its ``image_id``."""
    return pb.AddFaceRequest(
        subject=subject, image=http_body(image), det_prob_threshold=det_prob_threshold
    )


@rpc("recognition", "ListFaces", reply(pb.ListFacesResponse), idempotent=True)
def list_faces(
    *, subject: str | None = None, page: int = 0, size: int | None = None
) -> pb.ListFacesRequest:
    """One page (from 0; ``size`` 1..1000, 20 by default) of the stored example faces, of one
    subject when given."""
    return pb.ListFacesRequest(page=page, size=size, subject=subject)


@rpc("recognition", "GetFaceImage", reply(httpbody_pb2.HttpBody), idempotent=True)
def face_image(image_id: str) -> pb.GetFaceImageRequest:
    """The stored image of an example face: ``.data`` and ``.content_type``."""
    return pb.GetFaceImageRequest(image_id=image_id)


@rpc("recognition", "DeleteFace", reply(pb.DeleteFaceResponse), idempotent=False)
def delete_face(image_id: str) -> pb.DeleteFaceRequest:
    """Deletes one example face; the reply names it and its subject."""
    return pb.DeleteFaceRequest(image_id=image_id)


def _face_refs(listed: struct_pb2.ListValue) -> list[pb.FaceRef]:
    return [
        json_format.ParseDict(json_format.MessageToDict(v.struct_value), pb.FaceRef())
        for v in listed.values
    ]


@rpc("recognition", "DeleteFacesByIds", _face_refs, idempotent=False)
def delete_faces_by_ids(image_ids: Iterable[str]) -> pb.DeleteFacesByIdsRequest:
    """Deletes the example faces with these ids (unknown ids are ignored); those deleted."""
    return pb.DeleteFacesByIdsRequest(image_ids=list(image_ids))


@rpc("recognition", "DeleteFaces", lambda r: int(r.deleted), idempotent=False)
def delete_faces(*, subject: str | None = None) -> pb.DeleteFacesRequest:
    """Deletes every example face of the collection, or of ``subject``; how many."""
    return pb.DeleteFacesRequest(subject=subject)


@rpc("recognition", "CreateSubject", lambda r: str(r.subject), idempotent=False)
def create_subject(subject: str) -> pb.CreateSubjectRequest:
    """Creates a subject with no example faces."""
    return pb.CreateSubjectRequest(subject=subject)


@rpc("recognition", "ListSubjects", lambda r: [str(s) for s in r.subjects], idempotent=True)
def list_subjects() -> pb.ListSubjectsRequest:
    """The subject names of the collection, alphabetical."""
    return pb.ListSubjectsRequest()


@rpc("recognition", "RenameSubject", lambda r: bool(r.updated), idempotent=False)
def rename_subject(subject: str, new_name: str) -> pb.RenameSubjectRequest:
    """Renames a subject (merged into ``new_name`` when that exists); True when done."""
    return pb.RenameSubjectRequest(current_subject=subject, subject=new_name)


@rpc("recognition", "DeleteSubject", lambda r: str(r.subject), idempotent=False)
def delete_subject(subject: str) -> pb.DeleteSubjectRequest:
    """Deletes a subject and all its example faces."""
    return pb.DeleteSubjectRequest(subject=subject)


@rpc("recognition", "DeleteSubjects", lambda r: int(r.deleted), idempotent=False)
def delete_subjects() -> pb.DeleteSubjectsRequest:
    """Deletes every subject of the collection with its example faces; how many."""
    return pb.DeleteSubjectsRequest()

"""The items of BulkAddFaces one by one: checks, precomputed embeddings, results and errors.

Everything here is pure and cheap; what needs embed_svc (the face of an image) or the database
happens in ``bulk_enrolment``. Each bad item gets an error naming the problem, with the reason,
CompreFace code and HTTP status AddFace would answer for it.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

import grpc
import numpy as np
import numpy.typing as npt

from api_svc.face_store import NewExample
from api_svc.similarity import CalculatorModel
from api_svc.subjects import check_name
from facegrid.errors import ServiceError, invalid_argument
from facegrid.image_formats import media_type_of
from facegrid.recognition.v1 import recognition_service_pb2 as pb

#: Longest client key, characters.
MAX_CLIENT_KEY_CHARS = 1000
_MB = 1024 * 1024
#: The HTTP status Envoy gives each gRPC code (PLATFORM.md), for errors that name none.
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


@dataclass(frozen=True, slots=True)
class Item:
    """Where an item came from: what its result carries back."""

    index: int
    """Position in the request stream, from 0."""
    client_key: str
    subject: str


@dataclass(frozen=True, slots=True)
class ImageItem:
    """An item whose face embed_svc has still to find."""

    item: Item
    image: bytes
    content_type: str
    det_prob_threshold: float | None


@dataclass(frozen=True, slots=True)
class ReadyItem:
    """An item ready to be stored under ``image_id``."""

    item: Item
    example: NewExample
    image_id: uuid.UUID

    @property
    def size(self) -> int:
        """Bytes it adds to a batch."""
        return len(self.example.embedding) + len(self.example.image or b"")


@dataclass(frozen=True, slots=True)
class FailedItem:
    """An item that will not be stored, and why."""

    item: Item
    error: ServiceError


def http_status(error: ServiceError) -> int:
    """The HTTP status of ``error`` on the REST surface."""
    if error.http_status is not None:
        return error.http_status
    return _HTTP_STATUS.get(error.code, 500)


def failed(item: Item, error: ServiceError) -> pb.BulkAddFacesResponse:
    """The result of an item that was not stored."""
    return pb.BulkAddFacesResponse(
        index=item.index,
        client_key=item.client_key,
        subject=item.subject,
        error=pb.BulkItemError(
            reason=error.reason,
            code=error.compreface_code or 0,
            message=error.message,
            http_status=http_status(error),
        ),
    )


def stored(ready: ReadyItem) -> pb.BulkAddFacesResponse:
    """The result of an item that was stored."""
    item = ready.item
    return pb.BulkAddFacesResponse(
        index=item.index,
        client_key=item.client_key,
        subject=item.subject,
        image_id=str(ready.image_id),
    )


def _unknown_calculator(name: str, known: list[str]) -> ServiceError:
    return invalid_argument(
        "UNKNOWN_CALCULATOR",
        f"embedding.calculator {name!r} is not a calculator of this deployment;"
        f" known: {', '.join(sorted(known)) or 'none'}",
        field="embedding.calculator",
    )


def _embedding_example(
    embedding: pb.PrecomputedEmbedding,
    collection: CalculatorModel,
    known: dict[str, CalculatorModel],
) -> NewExample:
    name = embedding.calculator.strip()
    if not name:
        raise invalid_argument(
            "MISSING_CALCULATOR",
            "embedding.calculator is required: the name of the calculator that made it",
            field="embedding.calculator",
        )
    model = known.get(name)
    if model is None:
        raise _unknown_calculator(name, list(known))
    if model.name != collection.name:
        raise invalid_argument(
            "CALCULATOR_MISMATCH",
            f"embedding.calculator is {name} but this collection's faces are made by"
            f" {collection.name}; they cannot be compared",
            field="embedding.calculator",
        )
    if len(embedding.values) != model.embedding_size:
        raise invalid_argument(
            "WRONG_EMBEDDING_SIZE",
            f"embedding.values has {len(embedding.values)} values; {name}'s embeddings have"
            f" {model.embedding_size}",
            field="embedding.values",
        )
    vector = _unit(np.fromiter(embedding.values, dtype="<f4", count=model.embedding_size))
    return NewExample(
        embedding=vector.tobytes(),
        embedding_dim=int(vector.size),
        calculator=model.name,
        calculator_version=embedding.calculator_version or model.version,
        image=None,
        image_content_type=None,
    )


def _unit(values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """``values`` scaled to length 1 (in place); ServiceError when not finite or all zero.
    Scaled by the largest magnitude first, so the squares neither overflow nor all vanish."""
    peak = float(np.abs(values).max())  # NaN or inf when any value is
    if not math.isfinite(peak):
        raise invalid_argument(
            "INVALID_EMBEDDING",
            "embedding.values must hold finite numbers only",
            field="embedding.values",
        )
    if peak == 0.0:
        raise invalid_argument(
            "INVALID_EMBEDDING", "embedding.values is all zeros", field="embedding.values"
        )
    values /= np.float32(peak)
    values *= np.float32(1.0 / math.sqrt(float(values @ values)))
    return values


def _content_type(request: pb.BulkAddFacesRequest) -> str:
    given = request.content_type.split(";", 1)[0].strip().lower()
    if not given or given == "application/octet-stream":
        return media_type_of(request.file)
    if not given.startswith("image/"):
        raise invalid_argument(
            "UNSUPPORTED_CONTENT_TYPE",
            f"content_type {given!r} is not an image type; send image/... or leave it empty",
            field="content_type",
        )
    return given


def prepare(
    request: pb.BulkAddFacesRequest,
    index: int,
    max_file_bytes: int,
    collection: CalculatorModel,
    known: dict[str, CalculatorModel],
) -> ImageItem | ReadyItem | FailedItem:
    """Checks item ``index``: an image to embed, an embedding ready to store, or an error."""
    item = Item(index, request.client_key, request.subject)
    try:
        if len(request.client_key) > MAX_CLIENT_KEY_CHARS:
            raise invalid_argument(
                "INVALID_CLIENT_KEY",
                f"client_key is {len(request.client_key)} characters long;"
                f" the limit is {MAX_CLIENT_KEY_CHARS}",
                field="client_key",
            )
        check_name(request.subject)
        kind = request.WhichOneof("face")
        if kind == "embedding":
            example = _embedding_example(request.embedding, collection, known)
            return ReadyItem(item, example, uuid.uuid4())
        if kind is None or not request.file:
            raise invalid_argument(
                "MISSING_FILE",
                "the item has no face: set file (image bytes) or embedding",
                field="file",
            )
        if len(request.file) > max_file_bytes:
            raise invalid_argument(
                "FILE_TOO_LARGE",
                f"file is {len(request.file) / _MB:.1f} MB; the limit is"
                f" {max_file_bytes / _MB:g} MB",
                field="file",
            )
        threshold = request.det_prob_threshold if request.HasField("det_prob_threshold") else None
        return ImageItem(item, request.file, _content_type(request), threshold)
    except ServiceError as error:
        return FailedItem(item, error)

"""Bulk enrolment items: what one message of the ``BulkAddFaces`` stream carries.

An item is a :class:`FaceItem` (an image holding one face), an :class:`EmbeddingItem` (a
precomputed embedding, for imports and migrations) or a ``pb.recognition.BulkAddFacesRequest``
as it is. Each item's result (``pb.recognition.BulkAddFacesResponse``) comes back in completion
order with the item's ``index`` (its position in the stream, from 0) and ``client_key``, and
either an ``image_id`` or an ``error`` (reason, CompreFace code, message): a bad item fails alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from facegrid_client.images import ImageSource, read_image
from facegrid_client.pb import recognition as pb
from facegrid_client.recognition_calls import Embedding, floats


@dataclass(frozen=True)
class FaceItem:
    """An image holding exactly one face, enrolled under ``subject``."""

    subject: str
    image: ImageSource
    client_key: str = ""
    """Echoed in the result; empty means the image's path when it is one."""
    det_prob_threshold: float | None = None


@dataclass(frozen=True)
class EmbeddingItem:
    """A precomputed embedding (no image is stored) of the calculator that made it."""

    subject: str
    values: Embedding
    calculator: str
    """e.g. ``"dlib-resnet-v1"``: one embed_svc offers and the collection uses."""
    calculator_version: str = ""
    client_key: str = ""


BulkItem = FaceItem | EmbeddingItem | pb.BulkAddFacesRequest


def reads_a_file(item: BulkItem) -> bool:
    """True when turning ``item`` into a request reads a file (worth a thread in asyncio)."""
    return isinstance(item, FaceItem) and isinstance(item.image, str | os.PathLike)


def bulk_request(item: BulkItem) -> pb.BulkAddFacesRequest:
    """The stream message of one item."""
    if isinstance(item, pb.BulkAddFacesRequest):
        return item
    if isinstance(item, FaceItem):
        data, content_type = read_image(item.image)
        key = item.client_key
        if not key and isinstance(item.image, str | os.PathLike):
            key = os.fspath(item.image)
        return pb.BulkAddFacesRequest(
            client_key=key,
            subject=item.subject,
            file=data,
            content_type=content_type,
            det_prob_threshold=item.det_prob_threshold,
        )
    if isinstance(item, EmbeddingItem):
        return pb.BulkAddFacesRequest(
            client_key=item.client_key,
            subject=item.subject,
            embedding=pb.PrecomputedEmbedding(
                values=floats(item.values),
                calculator=item.calculator,
                calculator_version=item.calculator_version,
            ),
        )
    raise TypeError(
        f"a bulk item is a FaceItem, an EmbeddingItem or a BulkAddFacesRequest, "
        f"not {type(item).__name__}"
    )

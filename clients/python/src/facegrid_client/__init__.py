"""Facegrid's typed gRPC client.

    from facegrid_client import Facegrid
    with Facegrid("127.0.0.1:8000", api_key=KEY) as fg:
        for face in fg.recognize("photo.jpg").result:
            print(face.box, [(s.subject, s.similarity) for s in face.subjects])

:class:`Facegrid` (sync) and :class:`AsyncFacegrid` (asyncio) hold the channel, the API key or
access token and the deadline; every failed call raises :class:`FacegridError`. The generated
messages are under :mod:`facegrid_client.pb`.
"""

from facegrid_client import pb
from facegrid_client.aio import AsyncAdmin, AsyncFacegrid
from facegrid_client.bulk import BulkItem, EmbeddingItem, FaceItem
from facegrid_client.channel import Retry
from facegrid_client.client import Admin, Facegrid
from facegrid_client.errors import NODE_HEADER, FacegridError
from facegrid_client.images import ImageSource
from facegrid_client.recognition_calls import floats

__version__ = "0.1.0"

__all__ = [
    "NODE_HEADER",
    "Admin",
    "AsyncAdmin",
    "AsyncFacegrid",
    "BulkItem",
    "EmbeddingItem",
    "FaceItem",
    "Facegrid",
    "FacegridError",
    "ImageSource",
    "Retry",
    "floats",
    "pb",
]

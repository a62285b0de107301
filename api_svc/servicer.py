"""RecognitionService servicer: the CompreFace REST API v1 surface.

Every RPC whose capability has not landed yet answers UNIMPLEMENTED with a message naming it;
nothing fakes a result. Implemented RPCs replace the entries of ``_PENDING`` one by one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from facegrid.errors import abort, unimplemented
from facegrid.recognition.v1 import recognition_service_pb2, recognition_service_pb2_grpc

Handler = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[Any]]

#: Where the pending capability is tracked.
_RECOGNITION_ISSUE = "arrives with the recognition capability"


def _pending(method: str) -> Handler:
    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await abort(context, unimplemented(method, _RECOGNITION_ISSUE))

    handler.__name__ = method
    return handler


_SERVICE = recognition_service_pb2.DESCRIPTOR.services_by_name["RecognitionService"]


class RecognitionServicer(recognition_service_pb2_grpc.RecognitionServiceServicer):
    """Serves facegrid.recognition.v1.RecognitionService."""


for _method in _SERVICE.methods:
    setattr(RecognitionServicer, _method.name, _pending(_method.full_name))

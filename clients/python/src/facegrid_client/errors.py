"""One exception type for every failed call: :class:`FacegridError`.

Facegrid answers a refused call with a canonical gRPC code and a ``google.rpc.Status`` whose
details hold a ``google.rpc.ErrorInfo``: a stable UPPER_SNAKE ``reason`` (``NO_FACE_DETECTED``),
and in its metadata CompreFace's numeric code (``compreface_code``) and the field concerned. An
error that never reached a service (nothing listening, a deadline passed, Envoy without a ready
node) has the code and message alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

#: Metadata key naming the api_svc node that answered.
NODE_HEADER = "x-facegrid-node"
#: Trailing metadata key with CompreFace's code (for the REST edge; read when ErrorInfo lacks it).
_COMPREFACE_CODE_KEY = "x-compreface-code"


class FacegridError(Exception):
    """A call failed. ``code`` is the gRPC status code; ``reason`` and ``compreface_code`` are
    set when the service explained the refusal (``None`` for transport failures)."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str | None = None,
        compreface_code: int | None = None,
        http_status: int | None = None,
        metadata: Mapping[str, str] | None = None,
        node: str | None = None,
    ) -> None:
        super().__init__(code, message)
        self.code = code
        """Canonical gRPC status code, e.g. ``grpc.StatusCode.INVALID_ARGUMENT``."""
        self.message = message
        """Short human-readable message naming the problem."""
        self.reason = reason
        """ErrorInfo reason, e.g. ``"NO_FACE_DETECTED"``; None when the service sent none."""
        self.compreface_code = compreface_code
        """CompreFace's numeric error code (28: no face found...), when it has one."""
        self.http_status = http_status
        """HTTP status the REST API answers for the same error, when it differs from the code's
        usual mapping (e.g. 405 for a collection being migrated)."""
        self.metadata: Mapping[str, str] = dict(metadata or {})
        """The ErrorInfo metadata (``compreface_code``, field names, indexes, ...)."""
        self.node = node
        """The api_svc node that answered (``x-facegrid-node``), when one did."""

    def __str__(self) -> str:
        what = self.reason or self.code.name
        code = f" (CompreFace code {self.compreface_code})" if self.compreface_code else ""
        return f"{what}: {self.message}{code}"

    def __repr__(self) -> str:
        return (
            f"FacegridError(code={self.code.name}, reason={self.reason!r}, "
            f"compreface_code={self.compreface_code!r}, message={self.message!r})"
        )


def _pairs(metadata: Any) -> Iterable[tuple[str, str | bytes]]:
    return tuple(metadata or ())


def _error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    try:
        status = rpc_status.from_call(error)
    except (ValueError, AttributeError):  # details disagree with the call's code or message
        return None
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def _int(value: str | bytes | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def from_rpc_error(error: grpc.RpcError) -> FacegridError:
    """The FacegridError of a failed call (a ``grpc.RpcError`` that is also a ``grpc.Call``, as
    the sync and asyncio stubs raise)."""
    call: Any = error
    code = call.code() if callable(getattr(call, "code", None)) else grpc.StatusCode.UNKNOWN
    message = (call.details() if callable(getattr(call, "details", None)) else None) or ""
    trailing = dict(_pairs(call.trailing_metadata()))
    initial = dict(_pairs(call.initial_metadata())) if hasattr(call, "initial_metadata") else {}
    node = trailing.get(NODE_HEADER) or initial.get(NODE_HEADER)
    info = _error_info(error)
    metadata = dict(info.metadata) if info is not None else {}
    compreface = _int(metadata.get("compreface_code")) or _int(trailing.get(_COMPREFACE_CODE_KEY))
    return FacegridError(
        code,
        message or code.name,
        reason=info.reason if info is not None and info.reason else None,
        compreface_code=compreface,
        http_status=_int(metadata.get("http_status")),
        metadata=metadata,
        node=str(node) if node is not None else None,
    )

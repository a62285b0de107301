"""Typed service errors and their rendering as gRPC statuses.

A handler raises :class:`ServiceError` (or aborts with :func:`abort`); the status carries a
canonical gRPC code, a short message naming the problem, a ``google.rpc.ErrorInfo`` detail with a
stable UPPER_SNAKE reason, and - for the REST edge - trailing metadata that Envoy's Lua filter
turns into CompreFace's ``{"message", "code"}`` body and HTTP status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

#: ErrorInfo domain of every Facegrid error.
ERROR_DOMAIN = "facegrid.dev"
#: Trailing-metadata key carrying CompreFace's numeric error code (read by the Lua filter).
COMPREFACE_CODE_KEY = "x-compreface-code"
#: Metadata key carrying the HTTP status the REST edge should answer with (e.g. "201").
HTTP_STATUS_KEY = "x-http-status"


@dataclass(frozen=True)
class ServiceError(Exception):
    """A request failed for a reason the caller can act on."""

    code: grpc.StatusCode
    """Canonical gRPC status code."""
    reason: str
    """Stable UPPER_SNAKE reason, e.g. ``NO_FACE_DETECTED``."""
    message: str
    """Short human-readable message naming the problem."""
    compreface_code: int | None = None
    """CompreFace's numeric error code for the REST surface, when it has one."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """Extra ErrorInfo metadata (field names, indexes)."""
    http_status: int | None = None
    """HTTP status for the REST edge when the gRPC code's default mapping is wrong (e.g. 405
    for CompreFace's code 32); carried in ErrorInfo metadata ``http_status``."""

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


@dataclass(frozen=True, slots=True)
class _Status(grpc.Status):
    """grpc_status's status with the REST-edge keys added to its trailing metadata."""

    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def to_status(error: ServiceError) -> grpc.Status:
    """Renders an error as a gRPC status with ErrorInfo details and REST-edge metadata."""
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN)
    info.metadata.update(error.metadata)
    if error.compreface_code is not None:
        info.metadata["compreface_code"] = str(error.compreface_code)
    if error.http_status is not None:
        info.metadata["http_status"] = str(error.http_status)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = rpc_status.to_status(
        status_pb2.Status(code=error.code.value[0], message=error.message, details=[detail])
    )
    edge: list[tuple[str, str | bytes]] = []
    if error.compreface_code is not None:
        edge.append((COMPREFACE_CODE_KEY, str(error.compreface_code)))
    if error.http_status is not None:
        edge.append((HTTP_STATUS_KEY, str(error.http_status)))
    return _Status(status.code, status.details, (*status.trailing_metadata, *edge))


async def set_http_status(context: grpc.aio.ServicerContext[Any, Any], status: int) -> None:
    """Asks the REST edge to answer a successful call with ``status`` (e.g. 201 Created)."""
    await context.send_initial_metadata(((HTTP_STATUS_KEY, str(status)),))


async def abort(context: grpc.aio.ServicerContext[Any, Any], error: ServiceError) -> NoReturn:
    """Ends the RPC with ``error``."""
    await context.abort_with_status(to_status(error))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


def internal(compreface_code: int | None = None) -> ServiceError:
    """An unexpected failure (500). The message is generic on purpose: what happened goes to the
    service's log under the request id, never into the status (no ``str(e)``)."""
    return ServiceError(
        grpc.StatusCode.INTERNAL,
        "INTERNAL",
        "internal error; the service log has the details under this request's id",
        compreface_code,
    )


def invalid_argument(
    reason: str, message: str, compreface_code: int = 26, **metadata: str
) -> ServiceError:
    """A bad request parameter or body (CompreFace code 26, validation error, by default)."""
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT, reason, message, compreface_code, dict(metadata)
    )


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """Extracts the ErrorInfo detail of a failed call, if the server sent one (and its status
    details agree with the call's code and message)."""
    try:
        status = rpc_status.from_call(error)
    except (ValueError, AttributeError):
        return None
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None

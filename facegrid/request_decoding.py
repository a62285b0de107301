"""Requests that cannot be decoded are a client's mistake, answered as one.

A protobuf string field must hold UTF-8; a REST path or query parameter such as ``%FF`` reaches a
service as such a field, and gRPC's own answer to a message it cannot parse is INTERNAL with the
text ``Unexpected <class 'DecodeError'>: ...``: a 500 naming library internals. This interceptor
gives every unary-request method a deserializer that marks such a message instead, and answers it
INVALID_ARGUMENT (CompreFace's code 26, HTTP 400) before the handler runs. Streamed requests are
left to gRPC (their handlers read messages one by one).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from facegrid.errors import ServiceError, abort, invalid_argument
from facegrid.interceptors import rewrapped


class _Undecodable:
    """Stands for a request message that could not be decoded."""


_UNDECODABLE = _Undecodable()


def undecodable_request() -> ServiceError:
    """The error of a request whose message cannot be read."""
    return invalid_argument(
        "UNDECODABLE_REQUEST",
        "the request cannot be read: a text field (a path or query parameter, or a body field)"
        " is not valid UTF-8, or the message is malformed",
    )


def _lenient(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def decode(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError:
            return _UNDECODABLE

    return decode


def _guarded(inner: Callable[..., Any]) -> Callable[..., Any]:
    async def behaviour(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if request is _UNDECODABLE:
            await abort(context, undecodable_request())
        return await inner(request, context)

    return behaviour


def _guarded_stream(inner: Callable[..., Any]) -> Callable[..., Any]:
    if not inspect.isasyncgenfunction(inner):
        return _guarded(inner)  # a handler that writes with context.write

    async def behaviour(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        if request is _UNDECODABLE:
            await abort(context, undecodable_request())
        async for message in inner(request, context):
            yield message

    return behaviour


class RequestDecodingServerInterceptor(grpc.aio.ServerInterceptor):
    """Answers undecodable unary requests INVALID_ARGUMENT (code 26) instead of INTERNAL."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        return rewrapped(
            handler,
            _guarded,
            _guarded_stream,
            request_deserializer=_lenient(handler.request_deserializer),
        )

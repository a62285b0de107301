"""What the server interceptors share: a method handler rebuilt around new behaviours."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

#: Wraps a handler's behaviour (``async def (request, context)``, or an async generator).
Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]


def rewrapped(
    handler: grpc.RpcMethodHandler[Any, Any],
    unary_response: Wrap,
    stream_response: Wrap,
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with its behaviour wrapped: by ``unary_response`` for methods answering one
    message, by ``stream_response`` for those streaming their answer; its own codec, unless
    ``request_deserializer`` replaces how requests are read."""
    codec = {
        "request_deserializer": request_deserializer or handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(unary_response(handler.unary_unary), **codec)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(unary_response(handler.stream_unary), **codec)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(stream_response(handler.unary_stream), **codec)
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(
            stream_response(handler.stream_stream), **codec
        )
    return handler

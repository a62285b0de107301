"""The ``x-facegrid-node`` header: every answer of a node names the node that served it.

A server interceptor hands each handler a context whose initial metadata always carries the
node's name: merged into the handler's own initial metadata (e.g. the REST edge's
``x-http-status``), sent before an abort (so errors carry it too), and otherwise sent just before
the response. gRPC clients read it as initial metadata; REST clients behind Envoy see it as a
response header. Tests and operators use it to see the balancing.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from facegrid.interceptors import rewrapped

#: Initial-metadata key naming the node that answered.
NODE_HEADER = "x-facegrid-node"

Metadata = tuple[tuple[str, str | bytes], ...]


class NodeContext:
    """A servicer context that adds the node header to the call's initial metadata, once.

    Everything else is the wrapped context's (attribute access is delegated)."""

    def __init__(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        node: Metadata,
        trailers_only_errors: bool = False,
    ) -> None:
        self._context = context
        self._node = node
        self._sent = False
        self._trailers_only_errors = trailers_only_errors
        """A streamed response aborted before anything was sent carries the header in its
        trailers: a trailers-only answer is what Envoy's transcoder turns into an HTTP error
        status (after initial metadata it has answered 200 with the error in the body)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    async def send_initial_metadata(self, metadata: Metadata) -> None:
        """Sends ``metadata`` with the node header."""
        self._sent = True
        await self._context.send_initial_metadata((*self._node, *metadata))

    async def send_node_header(self) -> None:
        """Sends the node header unless initial metadata went out already."""
        if not self._sent and not self._context.done():
            await self.send_initial_metadata(())

    async def abort(
        self,
        code: grpc.StatusCode,
        details: str = "",
        trailing_metadata: Metadata = (),
    ) -> None:
        """Ends the call with an error, after the node header."""
        if self._trailers_only_errors and not self._sent:
            await self._context.abort(code, details, (*trailing_metadata, *self._node))
        await self.send_node_header()
        await self._context.abort(code, details, trailing_metadata)

    async def abort_with_status(self, status: grpc.Status) -> None:
        """Ends the call with ``status``, after the node header."""
        if self._trailers_only_errors and not self._sent:
            await self._context.abort_with_status(_TrailedStatus(status, self._node))
        await self.send_node_header()
        await self._context.abort_with_status(status)

    async def write(self, message: Any) -> None:
        """Writes one message of a streamed response, after the node header."""
        await self.send_node_header()
        await self._context.write(message)


class _TrailedStatus(grpc.Status):
    """``status`` with the node header added to its trailing metadata."""

    def __init__(self, status: grpc.Status, node: Metadata) -> None:
        self.code = status.code
        self.details = status.details
        self.trailing_metadata = (*(status.trailing_metadata or ()), *node)


def _unary_response(
    inner: Callable[..., Awaitable[Any]], node: Metadata, streamed: bool = False
) -> Any:
    async def behaviour(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        wrapped = NodeContext(context, node, trailers_only_errors=streamed)
        try:
            response = await inner(request, wrapped)
        except grpc.aio.AbortError:
            raise
        except Exception:
            await wrapped.send_node_header()  # the UNKNOWN status that follows carries it too
            raise
        await wrapped.send_node_header()
        return response

    return behaviour


def _stream_response(inner: Callable[..., Any], node: Metadata) -> Any:
    if not inspect.isasyncgenfunction(inner):
        # A handler that writes with context.write and returns: the wrapper is a coroutine too.
        return _unary_response(inner, node, streamed=True)

    async def behaviour(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        wrapped = NodeContext(context, node, trailers_only_errors=True)
        try:
            async for message in inner(request, wrapped):
                await wrapped.send_node_header()
                yield message
        except grpc.aio.AbortError:
            raise
        except Exception:
            await wrapped.send_node_header()
            raise
        await wrapped.send_node_header()

    return behaviour


class NodeHeaderServerInterceptor(grpc.aio.ServerInterceptor):
    """Adds ``x-facegrid-node: <name>`` to the initial metadata of every call."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._node: Metadata = ((NODE_HEADER, name),)

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return rewrapped(
            handler,
            lambda inner: _unary_response(inner, self._node),
            lambda inner: _stream_response(inner, self._node),
        )

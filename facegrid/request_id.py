"""Request ids carried across services in gRPC metadata and bound into every log line.

Envoy sets ``x-request-id`` on every request it forwards; the server interceptor binds it (or a
fresh one) with the RPC method into structlog's contextvars for the duration of the call, and
the client interceptor copies it onto outgoing calls so that one id follows a request through
api_svc, embed_svc and admin_svc. Every call but health checks ends with one ``rpc_finished``
log event (status code, milliseconds), so a request can be followed across the services' logs.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import structlog

REQUEST_ID_KEY = "x-request-id"

#: Calls not logged one by one (Envoy checks health every few seconds).
QUIET_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

log = structlog.get_logger()


def current_request_id() -> str | None:
    """The request id bound to the running task, if any."""
    value = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None


def _metadata_value(metadata: Any, key: str) -> str | None:
    for item_key, value in metadata or ():
        if item_key == key:
            return value if isinstance(value, str) else value.decode()
    return None


class RequestIdServerInterceptor(grpc.aio.ServerInterceptor):
    """Binds ``request_id`` and ``rpc`` into structlog's contextvars for each unary call."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        request_id = _metadata_value(handler_call_details.invocation_metadata, REQUEST_ID_KEY)
        inner: Any = handler.unary_unary
        quiet = method.startswith(QUIET_PREFIXES)

        async def behaviour(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            structlog.contextvars.bind_contextvars(
                request_id=request_id or uuid.uuid4().hex, rpc=method
            )
            started = time.perf_counter()
            failed = False
            try:
                return await inner(request, context)
            except BaseException:
                failed = True
                raise
            finally:
                if not quiet:
                    code = context.code() or (
                        grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
                    )
                    log.info(
                        "rpc_finished",
                        code=getattr(code, "name", str(code)),
                        ms=round((time.perf_counter() - started) * 1000, 1),
                    )
                structlog.contextvars.unbind_contextvars("request_id", "rpc")

        return grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class RequestIdClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds the current request id to outgoing unary calls."""

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        request_id = current_request_id()
        if request_id is not None:
            metadata = grpc.aio.Metadata(*(client_call_details.metadata or ()))
            if REQUEST_ID_KEY not in metadata:
                metadata.add(REQUEST_ID_KEY, request_id)
            client_call_details = grpc.aio.ClientCallDetails(
                client_call_details.method,
                client_call_details.timeout,
                metadata,
                client_call_details.credentials,
                client_call_details.wait_for_ready,
            )
        return await continuation(client_call_details, request)

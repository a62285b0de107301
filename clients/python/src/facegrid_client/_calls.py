"""Each unary call is defined once, as a :class:`Call`: the function building its request from
the caller's arguments (its signature and docstring are the client method's), the RPC it
invokes, how the reply is turned into what the method returns, and whether it changes nothing
(then gRPC may retry it). :class:`SyncMethod` and :class:`AsyncMethod` make the sync and the
asyncio client methods of a Call."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, ParamSpec, Protocol, TypeVar, overload

from google.protobuf.message import Message

P = ParamSpec("P")
T = TypeVar("T")
M = TypeVar("M", bound=Message)

#: The two services: api_svc's recognition and admin_svc's administration.
Service = Literal["recognition", "admin"]
SERVICE_NAMES: dict[Service, str] = {
    "recognition": "facegrid.recognition.v1.RecognitionService",
    "admin": "facegrid.admin.v1.AdminService",
}


@dataclass(frozen=True)
class Call(Generic[P, T]):
    """One unary RPC as a client method."""

    service: Service
    method: str
    """RPC name, e.g. ``DetectFaces``."""
    build: Callable[P, Message]
    """Builds the request from the method's arguments."""
    convert: Callable[[Any], T]
    """Turns the reply into the method's result."""
    idempotent: bool
    """True when the call changes nothing, so that gRPC may retry it."""


#: Every Call defined, for the retry policy's method list.
CALLS: list[Call[Any, Any]] = []


def reply(message_type: type[M]) -> Callable[[Any], M]:
    """The reply as it is (typed as ``message_type``)."""

    def same(message: Any) -> M:
        assert isinstance(message, message_type), type(message)
        return message

    return same


def field(name: str, message_type: type[M]) -> Callable[[Any], M]:
    """The reply's message field ``name``."""

    def get(message: Any) -> M:
        value = getattr(message, name)
        assert isinstance(value, message_type), type(value)
        return value

    return get


def repeated(name: str, message_type: type[M]) -> Callable[[Any], list[M]]:
    """The reply's repeated message field ``name``, as a list."""

    def get(message: Any) -> list[M]:
        return [v for v in getattr(message, name) if isinstance(v, message_type)]

    return get


def rpc(
    service: Service, method: str, convert: Callable[[Any], T], *, idempotent: bool
) -> Callable[[Callable[P, Message]], Call[P, T]]:
    """Decorates a request builder into a Call."""

    def define(build: Callable[P, Message]) -> Call[P, T]:
        call = Call(service, method, build, convert, idempotent)
        CALLS.append(call)
        return call

    return define


def idempotent_methods() -> list[tuple[str, str]]:
    """(service, method) of every idempotent Call."""
    return [(SERVICE_NAMES[c.service], c.method) for c in CALLS if c.idempotent]


class SyncInvoker(Protocol):
    def _invoke(self, call: Call[Any, T], request: Message) -> T: ...


class AsyncInvoker(Protocol):
    async def _invoke(self, call: Call[Any, T], request: Message) -> T: ...


class SyncMethod(Generic[P, T]):
    """A sync client method: builds the request and invokes the call."""

    def __init__(self, call: Call[P, T]) -> None:
        self.call = call
        self.__doc__ = call.build.__doc__

    @overload
    def __get__(self, client: None, owner: type) -> SyncMethod[P, T]: ...
    @overload
    def __get__(self, client: SyncInvoker, owner: type) -> Callable[P, T]: ...
    def __get__(self, client: SyncInvoker | None, owner: type) -> Any:
        if client is None:
            return self
        call = self.call

        @functools.wraps(call.build)
        def method(*args: P.args, **kwargs: P.kwargs) -> T:
            return client._invoke(call, call.build(*args, **kwargs))

        return method


class AsyncMethod(Generic[P, T]):
    """An asyncio client method: a coroutine building the request and awaiting the call."""

    def __init__(self, call: Call[P, T]) -> None:
        self.call = call
        self.__doc__ = call.build.__doc__

    @overload
    def __get__(self, client: None, owner: type) -> AsyncMethod[P, T]: ...
    @overload
    def __get__(self, client: AsyncInvoker, owner: type) -> Callable[P, Awaitable[T]]: ...
    def __get__(self, client: AsyncInvoker | None, owner: type) -> Any:
        if client is None:
            return self
        call = self.call

        @functools.wraps(call.build)
        async def method(*args: P.args, **kwargs: P.kwargs) -> T:
            return await client._invoke(call, call.build(*args, **kwargs))

        return method

"""The part of the sync and asyncio clients that does not depend on how calls are made: the
constructor's arguments, the channels they describe, the credentials and deadline of calls."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from facegrid_client._settings import DEFAULT_TIMEOUT_S, KEEP, CallSettings, plan
from facegrid_client.channel import Retry, Target, Tls
from facegrid_client.pb import admin_grpc, recognition_grpc

Channel = TypeVar("Channel")
Client = TypeVar("Client", bound="ClientBase[Any]")


class Connection(Generic[Channel]):
    """The channels and the stubs on them, shared by a client and those made by
    ``with_options``."""

    def __init__(self, channel: Channel, admin_channel: Channel | None) -> None:
        self.channels = [channel] if admin_channel is None else [channel, admin_channel]
        self.recognition = recognition_grpc.RecognitionServiceStub(channel)
        self.admin = admin_grpc.AdminServiceStub(admin_channel or channel)

    def stub(self, service: str) -> Any:
        return self.recognition if service == "recognition" else self.admin


class ClientBase(Generic[Channel]):
    """A Facegrid client. ``target``: Envoy's ``host:port`` (or an ``https://`` URL for TLS),
    or inside a cluster api_svc's address with ``admin_target`` admin_svc's. ``api_key`` is a
    service's key (sent with every call), ``token`` an access token from ``admin.sign_in``;
    ``timeout`` the deadline of each unary call in seconds; ``tls`` (or an ``https://`` target)
    with ``root_certificates``, ``private_key`` and ``certificate_chain`` (PEM) for TLS;
    ``retry`` how gRPC retries the calls that change nothing (None: never);
    ``load_balancing`` e.g. ``"round_robin"`` over every address of a ``dns:///`` target;
    ``options`` more gRPC channel arguments.

    A failed call raises :class:`facegrid_client.FacegridError`."""

    #: Makes a channel (sync or asyncio) to a target.
    _open: Callable[[Target, Tls, Sequence[tuple[str, Any]]], Channel]

    def __init__(
        self,
        target: str = "127.0.0.1:8000",
        *,
        api_key: str | None = None,
        token: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        admin_target: str | None = None,
        tls: bool | None = None,
        root_certificates: bytes | None = None,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
        retry: Retry | None = Retry(),  # noqa: B008  (frozen)
        load_balancing: str | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        channels = plan(
            target,
            admin_target=admin_target,
            tls=tls,
            root_certificates=root_certificates,
            private_key=private_key,
            certificate_chain=certificate_chain,
            retry=retry,
            load_balancing=load_balancing,
            options=options,
        )
        open_channel = type(self)._open
        admin = channels.admin
        self._connection: Connection[Channel] = Connection(
            open_channel(channels.target, channels.tls, channels.options),
            open_channel(admin, channels.tls, channels.options) if admin is not None else None,
        )
        self._settings = CallSettings(api_key, token, timeout)

    def with_options(
        self: Client,
        *,
        api_key: str | None = KEEP,
        token: str | None = KEEP,
        timeout: float | None = KEEP,
    ) -> Client:
        """A client on the same channel with other credentials or deadline (closing either
        closes the channel of both)."""
        other = copy.copy(self)
        other._settings = self._settings.changed(api_key, token, timeout)
        return other

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The credentials metadata this client sends (for calls made with the stubs)."""
        return self._settings.metadata()

    @property
    def recognition_stub(self) -> recognition_grpc.RecognitionServiceStub:
        """The generated stub of the recognition service, on this client's channel."""
        return self._connection.recognition

    @property
    def admin_stub(self) -> admin_grpc.AdminServiceStub:
        """The generated stub of the administration service, on this client's channel."""
        return self._connection.admin

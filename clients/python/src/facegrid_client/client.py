"""The sync client: :class:`Facegrid` (recognition calls) and its :attr:`Facegrid.admin`
(administration calls), over one gRPC channel (two when admin_svc is reached apart)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any

import grpc
from google.protobuf.message import Message

from facegrid_client import admin_calls as ac
from facegrid_client import recognition_calls as rc
from facegrid_client._calls import Call, SyncMethod, T
from facegrid_client._settings import DEFAULT_TIMEOUT_S, KEEP, CallSettings, plan
from facegrid_client.bulk import BulkItem, bulk_request
from facegrid_client.channel import Retry, sync_channel
from facegrid_client.errors import from_rpc_error
from facegrid_client.pb import admin_grpc, recognition_grpc
from facegrid_client.pb import recognition as pb


class _Connection:
    """The channels and stubs, shared by a client and those made by ``with_options``."""

    def __init__(self, channel: grpc.Channel, admin_channel: grpc.Channel | None) -> None:
        self.channels = [channel] if admin_channel is None else [channel, admin_channel]
        self.recognition = recognition_grpc.RecognitionServiceStub(channel)
        self.admin = admin_grpc.AdminServiceStub(admin_channel or channel)

    def stub(self, service: str) -> Any:
        return self.recognition if service == "recognition" else self.admin

    def close(self) -> None:
        for channel in self.channels:
            channel.close()


class Facegrid:
    """A Facegrid client. ``target``: Envoy's ``host:port`` (or an ``https://`` URL for TLS),
    or inside a cluster api_svc's address with ``admin_target`` admin_svc's. ``api_key`` is a
    service's key (sent with every call), ``token`` an access token from ``admin.sign_in``;
    ``timeout`` the deadline of each unary call in seconds; ``retry`` how gRPC retries the
    calls that change nothing (None: never); ``load_balancing`` e.g. ``"round_robin"`` over
    every address of a ``dns:///`` target; ``options`` more gRPC channel arguments.

    A failed call raises :class:`facegrid_client.FacegridError`."""

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
        channel = sync_channel(channels.target, channels.tls, channels.options)
        admin_channel = (
            sync_channel(channels.admin, channels.tls, channels.options)
            if channels.admin is not None
            else None
        )
        self._connection = _Connection(channel, admin_channel)
        self._settings = CallSettings(api_key, token, timeout)
        self._owner = True

    def with_options(
        self, *, api_key: str | None = KEEP, token: str | None = KEEP, timeout: float | None = KEEP
    ) -> Facegrid:
        """A client on the same channel with other credentials or deadline (closing either
        closes the channel of both)."""
        other = object.__new__(Facegrid)
        other._connection = self._connection
        other._settings = self._settings.changed(api_key, token, timeout)
        other._owner = False
        return other

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The credentials metadata sent with each call (for calls through :attr:`stubs`)."""
        return self._settings.metadata()

    @property
    def recognition_stub(self) -> recognition_grpc.RecognitionServiceStub:
        """The generated stub of the recognition service, on this client's channel."""
        return self._connection.recognition

    @property
    def admin_stub(self) -> admin_grpc.AdminServiceStub:
        """The generated stub of the administration service, on this client's channel."""
        return self._connection.admin

    @property
    def admin(self) -> Admin:
        """The administration calls, with this client's token and deadline."""
        return Admin(self)

    def close(self) -> None:
        """Closes the channels (those of clients made by ``with_options`` too)."""
        self._connection.close()

    def __enter__(self) -> Facegrid:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _invoke(self, call: Call[Any, T], request: Message) -> T:
        method = getattr(self._connection.stub(call.service), call.method)
        try:
            answer = method(
                request, timeout=self._settings.timeout, metadata=self._settings.metadata()
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return call.convert(answer)

    detect = SyncMethod(rc.detect)
    recognize = SyncMethod(rc.recognize)
    verify = SyncMethod(rc.verify)
    verify_face = SyncMethod(rc.verify_face)
    recognize_embeddings = SyncMethod(rc.recognize_embeddings)
    verify_embeddings = SyncMethod(rc.verify_embeddings)
    verify_embeddings_against_face = SyncMethod(rc.verify_embeddings_against_face)
    add_face = SyncMethod(rc.add_face)
    list_faces = SyncMethod(rc.list_faces)
    face_image = SyncMethod(rc.face_image)
    delete_face = SyncMethod(rc.delete_face)
    delete_faces = SyncMethod(rc.delete_faces)
    delete_faces_by_ids = SyncMethod(rc.delete_faces_by_ids)
    create_subject = SyncMethod(rc.create_subject)
    list_subjects = SyncMethod(rc.list_subjects)
    rename_subject = SyncMethod(rc.rename_subject)
    delete_subject = SyncMethod(rc.delete_subject)
    delete_subjects = SyncMethod(rc.delete_subjects)

    def add_faces(
        self, items: Iterable[BulkItem], *, timeout: float | None = None
    ) -> Iterator[pb.BulkAddFacesResponse]:
        """Enrols many faces through one ``BulkAddFaces`` stream; yields each item's result as
        it comes (completion order, ``index`` = the item's position). Items are read and sent
        once the service accepted the stream, as the results are consumed. A refused stream (a
        bad key, a collection being migrated) raises FacegridError; so does a stream broken
        off, after the results that came. ``timeout``: the whole stream's deadline (None:
        none). An item that cannot be turned into a message (an unreadable file) ends the
        stream: the results of the items before it come, then its exception is raised."""
        accepted = threading.Event()
        refused = threading.Event()
        failures: list[BaseException] = []

        def messages() -> Iterator[pb.BulkAddFacesRequest]:
            accepted.wait()
            if refused.is_set():
                return
            try:
                for item in items:
                    yield bulk_request(item)
            except Exception as error:  # re-raised in the caller's thread
                failures.append(error)

        call = self._connection.recognition.BulkAddFaces(
            messages(), timeout=timeout, metadata=self._settings.metadata()
        )
        try:
            call.initial_metadata()  # the service's acceptance, or the end of a refused call
            if call.done():
                refused.set()
            accepted.set()
            yield from call
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        finally:
            refused.set()
            accepted.set()
            if not call.done():
                call.cancel()
        if failures:
            raise failures[0]


class Admin:
    """admin_svc's calls, with the token and deadline of the :class:`Facegrid` they came from
    (``client.with_options(token=...).admin``)."""

    def __init__(self, client: Facegrid) -> None:
        self._client = client

    def _invoke(self, call: Call[Any, T], request: Message) -> T:
        return self._client._invoke(call, request)

    sign_up = SyncMethod(ac.sign_up)
    sign_in = SyncMethod(ac.sign_in)
    refresh_token = SyncMethod(ac.refresh_token)
    sign_out = SyncMethod(ac.sign_out)
    current_user = SyncMethod(ac.current_user)
    list_users = SyncMethod(ac.list_users)
    update_user = SyncMethod(ac.update_user)
    update_user_role = SyncMethod(ac.update_user_role)
    change_password = SyncMethod(ac.change_password)
    delete_user = SyncMethod(ac.delete_user)
    create_application = SyncMethod(ac.create_application)
    list_applications = SyncMethod(ac.list_applications)
    get_application = SyncMethod(ac.get_application)
    rename_application = SyncMethod(ac.rename_application)
    delete_application = SyncMethod(ac.delete_application)
    list_members = SyncMethod(ac.list_members)
    add_member = SyncMethod(ac.add_member)
    update_member_role = SyncMethod(ac.update_member_role)
    remove_member = SyncMethod(ac.remove_member)
    create_service = SyncMethod(ac.create_service)
    list_services = SyncMethod(ac.list_services)
    get_service = SyncMethod(ac.get_service)
    rename_service = SyncMethod(ac.rename_service)
    delete_service = SyncMethod(ac.delete_service)
    clone_service = SyncMethod(ac.clone_service)
    rotate_api_key = SyncMethod(ac.rotate_api_key)
    service_statistics = SyncMethod(ac.service_statistics)
    start_embedding_migration = SyncMethod(ac.start_embedding_migration)
    get_embedding_migration = SyncMethod(ac.get_embedding_migration)

"""The sync client: :class:`Facegrid` (recognition calls) and its :attr:`Facegrid.admin`
(administration calls), over one gRPC channel (two when admin_svc is reached apart)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

import grpc
from google.protobuf.message import Message

from facegrid_client import admin_calls as ac
from facegrid_client import recognition_calls as rc
from facegrid_client._base import ClientBase
from facegrid_client._calls import Call, SyncMethod, T
from facegrid_client.bulk import BulkItem, bulk_request
from facegrid_client.channel import sync_channel
from facegrid_client.errors import from_rpc_error
from facegrid_client.pb import recognition as pb


class Facegrid(ClientBase[grpc.Channel]):
    """The sync Facegrid client; constructor arguments as
    :class:`facegrid_client._base.ClientBase`'s (target, credentials, deadline, TLS, retries)."""

    _open = staticmethod(sync_channel)

    @property
    def admin(self) -> Admin:
        """The administration calls, with this client's token and deadline."""
        return Admin(self)

    def close(self) -> None:
        """Closes the channels (those of clients made by ``with_options`` too)."""
        for channel in self._connection.channels:
            channel.close()

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

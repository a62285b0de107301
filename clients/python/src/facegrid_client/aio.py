"""The asyncio client: :class:`AsyncFacegrid` and its :attr:`AsyncFacegrid.admin`, the same
calls as the sync client's, as coroutines (``add_faces`` an async iterator). Create it inside
the event loop that uses it (``async with AsyncFacegrid(...) as fg:``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from contextlib import suppress
from types import TracebackType
from typing import Any

import grpc
from google.protobuf.message import Message

from facegrid_client import admin_calls as ac
from facegrid_client import recognition_calls as rc
from facegrid_client._base import ClientBase
from facegrid_client._calls import AsyncMethod, Call, T
from facegrid_client.bulk import BulkItem, bulk_request, reads_a_file
from facegrid_client.channel import aio_channel
from facegrid_client.errors import from_rpc_error
from facegrid_client.pb import recognition as pb


async def _messages(
    items: Iterable[BulkItem] | AsyncIterable[BulkItem],
) -> AsyncIterator[pb.BulkAddFacesRequest]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield bulk_request(item)
        return
    for item in items:
        if reads_a_file(item):
            yield await asyncio.to_thread(bulk_request, item)
        else:
            yield bulk_request(item)


class AsyncFacegrid(ClientBase[grpc.aio.Channel]):
    __doc__ = (
        ClientBase.__doc__ or ""
    ) + "\n\n    The asyncio client: the same calls as coroutines."

    _open = staticmethod(aio_channel)

    @property
    def admin(self) -> AsyncAdmin:
        """The administration calls, with this client's token and deadline."""
        return AsyncAdmin(self)

    async def close(self) -> None:
        for channel in self._connection.channels:
            await channel.close()

    async def __aenter__(self) -> AsyncFacegrid:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _invoke(self, call: Call[Any, T], request: Message) -> T:
        method = getattr(self._connection.stub(call.service), call.method)
        try:
            answer = await method(
                request, timeout=self._settings.timeout, metadata=self._settings.metadata()
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return call.convert(answer)

    detect = AsyncMethod(rc.detect)
    recognize = AsyncMethod(rc.recognize)
    verify = AsyncMethod(rc.verify)
    verify_face = AsyncMethod(rc.verify_face)
    recognize_embeddings = AsyncMethod(rc.recognize_embeddings)
    verify_embeddings = AsyncMethod(rc.verify_embeddings)
    verify_embeddings_against_face = AsyncMethod(rc.verify_embeddings_against_face)
    add_face = AsyncMethod(rc.add_face)
    list_faces = AsyncMethod(rc.list_faces)
    face_image = AsyncMethod(rc.face_image)
    delete_face = AsyncMethod(rc.delete_face)
    delete_faces = AsyncMethod(rc.delete_faces)
    delete_faces_by_ids = AsyncMethod(rc.delete_faces_by_ids)
    create_subject = AsyncMethod(rc.create_subject)
    list_subjects = AsyncMethod(rc.list_subjects)
    rename_subject = AsyncMethod(rc.rename_subject)
    delete_subject = AsyncMethod(rc.delete_subject)
    delete_subjects = AsyncMethod(rc.delete_subjects)

    async def add_faces(
        self,
        items: Iterable[BulkItem] | AsyncIterable[BulkItem],
        *,
        timeout: float | None = None,
    ) -> AsyncIterator[pb.BulkAddFacesResponse]:
        """Enrols many faces through one ``BulkAddFaces`` stream, as the sync client's
        ``add_faces``; an async iterator of the results (``items`` may be async too)."""
        call = self._connection.recognition.BulkAddFaces(
            timeout=timeout, metadata=self._settings.metadata()
        )

        async def write() -> None:
            try:
                async for message in _messages(items):
                    await call.write(message)
            finally:
                if not call.done():
                    await call.done_writing()

        writer: asyncio.Task[None] | None = None
        try:
            await call.initial_metadata()  # the service's acceptance, or a refused call's end
            if not call.done():
                writer = asyncio.create_task(write())
            async for answer in call:
                yield answer
            if writer is not None:
                await writer
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        finally:
            if writer is not None and not writer.done():
                writer.cancel()
                with suppress(asyncio.CancelledError, grpc.RpcError, asyncio.InvalidStateError):
                    await writer
            if not call.done():
                call.cancel()


class AsyncAdmin:
    """admin_svc's calls as coroutines, with the token and deadline of their client."""

    def __init__(self, client: AsyncFacegrid) -> None:
        self._client = client

    async def _invoke(self, call: Call[Any, T], request: Message) -> T:
        return await self._client._invoke(call, request)

    sign_up = AsyncMethod(ac.sign_up)
    sign_in = AsyncMethod(ac.sign_in)
    refresh_token = AsyncMethod(ac.refresh_token)
    sign_out = AsyncMethod(ac.sign_out)
    current_user = AsyncMethod(ac.current_user)
    list_users = AsyncMethod(ac.list_users)
    update_user = AsyncMethod(ac.update_user)
    update_user_role = AsyncMethod(ac.update_user_role)
    change_password = AsyncMethod(ac.change_password)
    delete_user = AsyncMethod(ac.delete_user)
    create_application = AsyncMethod(ac.create_application)
    list_applications = AsyncMethod(ac.list_applications)
    get_application = AsyncMethod(ac.get_application)
    rename_application = AsyncMethod(ac.rename_application)
    delete_application = AsyncMethod(ac.delete_application)
    list_members = AsyncMethod(ac.list_members)
    add_member = AsyncMethod(ac.add_member)
    update_member_role = AsyncMethod(ac.update_member_role)
    remove_member = AsyncMethod(ac.remove_member)
    create_service = AsyncMethod(ac.create_service)
    list_services = AsyncMethod(ac.list_services)
    get_service = AsyncMethod(ac.get_service)
    rename_service = AsyncMethod(ac.rename_service)
    delete_service = AsyncMethod(ac.delete_service)
    clone_service = AsyncMethod(ac.clone_service)
    rotate_api_key = AsyncMethod(ac.rotate_api_key)
    service_statistics = AsyncMethod(ac.service_statistics)
    start_embedding_migration = AsyncMethod(ac.start_embedding_migration)
    get_embedding_migration = AsyncMethod(ac.get_embedding_migration)

"""Sends photos through one BulkAddFaces stream and collects the result of each.

The stream is opened first and the server's acceptance awaited (its initial metadata), so a bad
key or a blocked collection is reported as such before any photo is sent. At most
``concurrency`` photos are in flight (sent, result not yet back): the window holds the files
read into memory and lets the server batch and embed several at once. Each stored photo is
recorded in the state at once; a photo that failed is reported, not recorded, and tried again
by a rerun. Setting ``stop`` sends no further photo and waits for the results of those in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field

import grpc

from facegrid.recognition.v1 import recognition_service_pb2 as pb
from facegrid.recognition.v1 import recognition_service_pb2_grpc as pb_grpc
from facegrid_import.files import Photo
from facegrid_import.state import ImportState

#: Largest message sent, bytes (the server's own limit is 64 MiB).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FileError:
    """Why one file was not stored."""

    key: str
    reason: str
    code: int
    """CompreFace's error code (0: none)."""
    message: str


@dataclass
class Outcome:
    """What an upload did."""

    stored: int = 0
    errors: list[FileError] = field(default_factory=list)
    stopped: bool = False
    """True when ``stop`` ended it before every photo was sent."""


class CallFailed(Exception):
    """The stream as a whole was refused or broke off (bad key, blocked collection, server
    gone); what was stored before is in the state."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


def target_of(url: str) -> str:
    """``host:port`` of ``url`` (``http://`` and ``grpc://`` prefixes and a trailing '/' are
    dropped)."""
    for prefix in ("http://", "grpc://"):
        if url.startswith(prefix):
            url = url[len(prefix) :]
    return url.rstrip("/")


async def upload(
    photos: Sequence[Photo],
    state: ImportState,
    *,
    target: str,
    api_key: str,
    concurrency: int,
    on_result: Callable[[bool], None],
    stop: asyncio.Event,
) -> Outcome:
    """Sends ``photos`` to the collection of ``api_key`` at ``target``; raises CallFailed."""
    outcome = Outcome()
    by_key = {photo.key: photo for photo in photos}
    window = asyncio.Semaphore(concurrency)
    options = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        call = pb_grpc.RecognitionServiceStub(channel).BulkAddFaces(
            metadata=(("x-api-key", api_key),)
        )

        async def write() -> None:
            for photo in photos:
                await window.acquire()
                if stop.is_set():
                    outcome.stopped = True
                    break
                try:
                    data = await asyncio.to_thread(photo.path.read_bytes)
                except OSError as error:
                    outcome.errors.append(FileError(photo.key, "UNREADABLE_FILE", 0, str(error)))
                    window.release()
                    on_result(False)
                    continue
                item = pb.BulkAddFacesRequest(
                    client_key=photo.key,
                    subject=photo.subject,
                    file=data,
                    content_type=photo.content_type,
                )
                await call.write(item)
            await call.done_writing()

        try:
            await call.initial_metadata()
            if call.done():  # refused before any photo was sent
                code = await call.code()
                raise CallFailed(code, await call.details() or code.name)
            writer = asyncio.create_task(write())
            writer.add_done_callback(lambda task: _cancel_on_failure(task, call))
            try:
                async for result in call:
                    window.release()
                    photo = by_key[result.client_key]
                    if result.HasField("image_id"):
                        state.record(photo.key, result.image_id)
                        outcome.stored += 1
                        on_result(True)
                    else:
                        error = result.error
                        outcome.errors.append(
                            FileError(photo.key, error.reason, error.code, error.message)
                        )
                        on_result(False)
            finally:
                if not writer.done():
                    writer.cancel()
                with suppress(
                    asyncio.CancelledError, grpc.aio.AioRpcError, asyncio.InvalidStateError
                ):
                    await writer
        except grpc.aio.AioRpcError as error:
            raise CallFailed(error.code(), error.details() or "") from None
    return outcome


def _cancel_on_failure(writer: asyncio.Task[None], call: grpc.aio.StreamStreamCall) -> None:
    """Ends the call when the writer failed, which would leave the server waiting."""
    if not writer.cancelled() and writer.exception() is not None:
        call.cancel()

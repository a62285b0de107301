"""BulkAddFaces: many faces enrolled through one stream (a Facegrid extension).

A reader task takes the items in stream order and checks each (``bulk_items``): a bad item's
error goes out at once; a precomputed embedding is ready to store; an image goes to embed_svc, at
most ``embed_concurrency`` at a time (the reader waits for a free slot, so a fast client is held
back by gRPC flow control, not by memory here). The handler itself is the writer: it waits for
the next ready item, takes every other one ready by then (up to ``batch_max_items`` and
``batch_max_bytes``) and stores them in one transaction and one multi-row statement
(``PgFaceStore.add_examples``), then sends their results. Batches thus follow the load: one item
when items trickle in, the maximum when the database is the bottleneck. A batch that fails (a
migration blocks the collection, the database is down) fails every item in it and stores none;
the next batch is tried again. Results go out in completion order, each with its item's index.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Protocol

import grpc
import structlog

from api_svc.auth import Service
from api_svc.bulk_items import (
    FailedItem,
    ImageItem,
    ReadyItem,
    failed,
    prepare,
    stored,
)
from api_svc.embed_client import EmbedClient
from api_svc.face_store import NewFace
from api_svc.faces import one_face_example
from api_svc.similarity import CalculatorModel, Calculators
from facegrid.errors import ServiceError
from facegrid.recognition.v1 import recognition_service_pb2 as pb

log = structlog.get_logger()

_Event = ReadyItem | FailedItem
#: Reads the next item of a stream; None at its end.
Read = Callable[[], Awaitable[pb.BulkAddFacesRequest | None]]
#: Sends one result.
Write = Callable[[pb.BulkAddFacesResponse], Awaitable[None]]


class BulkStore(Protocol):
    """Where bulk enrolment writes (PgFaceStore)."""

    def check_writable(self, service_id: uuid.UUID, /) -> Awaitable[None]:
        """Raises ServiceError (405/32) while a migration blocks the collection's writes."""
        ...

    def add_examples(self, service_id: uuid.UUID, /, faces: Sequence[NewFace]) -> Awaitable[None]:
        """Stores ``faces`` in one transaction and one statement, or none of them."""
        ...


@dataclass(frozen=True, slots=True)
class BulkSettings:
    """How one BulkAddFaces stream is worked through."""

    embed_concurrency: int
    """Images being embedded at once."""
    batch_max_items: int
    """Most items in one transaction and statement."""
    batch_max_bytes: int
    """Most embedding and image bytes in one batch."""


def _internal_item_error() -> ServiceError:
    return ServiceError(grpc.StatusCode.INTERNAL, "INTERNAL", "internal error; try again")


@dataclass(frozen=True, slots=True)
class BulkStream:
    """One accepted BulkAddFaces stream."""

    service_id: uuid.UUID
    """The collection."""
    calculator: str | None
    """The collection's calculator as the service names it (None: embed_svc's default)."""
    collection: CalculatorModel
    known: dict[str, CalculatorModel]
    events: asyncio.Queue[_Event]


class BulkEnrolment:
    """Serves BulkAddFaces for an authenticated RECOGNITION service."""

    def __init__(
        self,
        store: BulkStore,
        embed: EmbedClient,
        calculators: Calculators,
        max_file_bytes: int,
        settings: BulkSettings,
    ) -> None:
        self._store = store
        self._embed = embed
        self._calculators = calculators
        self._max_file_bytes = max_file_bytes
        self._settings = settings

    async def accept(self, service: Service) -> BulkStream:
        """A stream for ``service``'s collection; ServiceError when it refuses writes (405/32)
        or its calculator is unavailable."""
        await self._store.check_writable(service.id)
        return BulkStream(
            service.id,
            service.calculator,
            await self._calculators.get(service.calculator),
            await self._calculators.models(),
            asyncio.Queue(maxsize=2 * self._settings.batch_max_items),
        )

    async def enrol(self, stream: BulkStream, read: Read, write: Write) -> None:
        """Reads items with ``read`` until it returns None and writes one result per item."""
        reader = asyncio.create_task(self._read(read, stream))
        try:
            while True:
                batch, failures, more = await self._take(stream.events, reader)
                for failure in failures:
                    await write(failed(failure.item, failure.error))
                if batch:
                    for result in await self._write(stream.service_id, batch):
                        await write(result)
                if not more:
                    break
            await reader  # its failure, if any, ends the call
        finally:
            if not reader.done():
                reader.cancel()
                with suppress(asyncio.CancelledError):
                    await reader

    async def _read(self, read: Read, stream: BulkStream) -> None:
        slots = asyncio.Semaphore(self._settings.embed_concurrency)
        tasks: set[asyncio.Task[None]] = set()
        try:
            index = 0
            while (request := await read()) is not None:
                item = prepare(
                    request, index, self._max_file_bytes, stream.collection, stream.known
                )
                index += 1
                if isinstance(item, ImageItem):
                    await slots.acquire()
                    task = asyncio.create_task(self._embed_one(item, stream, slots))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                else:
                    await stream.events.put(item)
            while tasks:
                await asyncio.wait(set(tasks))
        finally:
            for task in tasks:
                task.cancel()

    async def _embed_one(
        self, image: ImageItem, stream: BulkStream, slots: asyncio.Semaphore
    ) -> None:
        event: _Event
        try:
            try:
                example = await one_face_example(
                    self._embed,
                    image.image,
                    image.content_type,
                    image.det_prob_threshold,
                    stream.calculator,
                )
                event = ReadyItem(image.item, example, uuid.uuid4())
            except ServiceError as error:
                event = FailedItem(image.item, error)
            except Exception:
                log.exception("bulk_item_failed", index=image.item.index)
                event = FailedItem(image.item, _internal_item_error())
            await stream.events.put(event)
        finally:
            slots.release()

    async def _take(
        self, events: asyncio.Queue[_Event], reader: asyncio.Task[None]
    ) -> tuple[list[ReadyItem], list[FailedItem], bool]:
        """The next batch: the first event to come and every other one already there, within
        the batch limits; False once the reader is done and nothing is left."""
        batch: list[ReadyItem] = []
        failures: list[FailedItem] = []
        event = await _next(events, reader)
        if event is None:
            return batch, failures, False
        size = 0
        while True:
            if isinstance(event, FailedItem):
                failures.append(event)
            else:
                batch.append(event)
                size += event.size
                if (
                    len(batch) >= self._settings.batch_max_items
                    or size >= self._settings.batch_max_bytes
                ):
                    break
            if events.empty():
                break
            event = events.get_nowait()
        return batch, failures, True

    async def _write(
        self, service_id: uuid.UUID, batch: list[ReadyItem]
    ) -> list[pb.BulkAddFacesResponse]:
        faces = [NewFace(ready.image_id, ready.item.subject, ready.example) for ready in batch]
        try:
            await self._store.add_examples(service_id, faces)
        except ServiceError as error:
            log.warning("bulk_batch_failed", reason=error.reason, items=len(batch))
            return [failed(ready.item, error) for ready in batch]
        except Exception:
            log.exception("bulk_batch_failed", items=len(batch))
            return [failed(ready.item, _internal_item_error()) for ready in batch]
        return [stored(ready) for ready in batch]


async def _next(events: asyncio.Queue[_Event], reader: asyncio.Task[None]) -> _Event | None:
    """The next event; None when the reader has ended and left none."""
    if not events.empty():
        return events.get_nowait()
    getter = asyncio.ensure_future(events.get())
    await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
    if not getter.done():
        getter.cancel()
        with suppress(asyncio.CancelledError):
            await getter
    if not getter.cancelled():
        return getter.result()
    return None if events.empty() else events.get_nowait()

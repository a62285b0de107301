"""The in-memory index of every collection in use, kept current from change notifications.

A collection is loaded on first use from one REPEATABLE READ snapshot (sequence number + rows).
Each notification then moves it forward (docs/schema.md "Sequence numbers"):
- ``seq <= last``: already in the index, ignored;
- ``seq == last + 1`` with ids, for an example or subject change: applied in place (rows fetched
  by id, deleted ids dropped, renamed subjects renamed);
- anything else (a gap, no ids, ``collection_update``, ``truncate``), a failed apply, or a
  reconnect of the listening connection: the collection is rebuilt.
A rebuild reads a new snapshot and builds a new index aside (in a worker thread) while the old
one keeps serving, swaps it in, then applies the notifications that arrived meanwhile with a
greater sequence number. A rebuild that fails drops the collection, so the next request loads it
again (and answers 503 while the database is down).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

import structlog

from api_svc.db import database_unavailable
from api_svc.face_index import FaceIndex
from api_svc.index_source import IndexSource, Snapshot
from api_svc.notifications import INCREMENTAL_OPS, Notification
from api_svc.similarity import Calculators
from facegrid.errors import ServiceError

log = structlog.get_logger()


@dataclass(eq=False)
class _Entry:
    """One collection's index and where it stands."""

    loaded: asyncio.Future[None]
    index: FaceIndex | None = None
    seq: int = -1
    building: bool = False
    again: bool = False
    pending: list[Notification] = field(default_factory=list)


class IndexRegistry:
    """Indexes by service id, loaded lazily and moved forward by ``handle``."""

    def __init__(self, source: IndexSource, calculators: Calculators) -> None:
        self._source = source
        self._calculators = calculators
        self._entries: dict[uuid.UUID, _Entry] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.rebuilds = 0
        """Rebuilds completed (first loads included); for logs and tests."""

    def loaded(self) -> dict[uuid.UUID, FaceIndex]:
        """The indexes currently serving, by service id."""
        return {k: e.index for k, e in self._entries.items() if e.index is not None}

    def rebuilding(self) -> bool:
        """Whether a rebuild is running."""
        return bool(self._tasks)

    def seq(self, service_id: uuid.UUID) -> int | None:
        """The last sequence number applied to the collection, if loaded."""
        entry = self._entries.get(service_id)
        return None if entry is None or entry.index is None else entry.seq

    async def get(self, service_id: uuid.UUID) -> FaceIndex:
        """The collection's index, loaded first if needed (ServiceError 503 on failure)."""
        entry = self._entries.get(service_id)
        if entry is None:
            entry = _Entry(asyncio.get_running_loop().create_future())
            self._entries[service_id] = entry
            self.rebuild(service_id, "first use")
        if entry.index is None:
            await asyncio.shield(entry.loaded)
        assert entry.index is not None
        return entry.index

    def rebuild(self, service_id: uuid.UUID, reason: str) -> None:
        """Starts a rebuild of a loaded collection (or marks the running one to go again)."""
        entry = self._entries.get(service_id)
        if entry is None:
            return
        if entry.building:
            entry.again = True
            return
        entry.building = True
        task = asyncio.create_task(self._rebuild(service_id, entry, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def rebuild_all(self, reason: str) -> None:
        """Rebuilds every loaded collection (after a reconnect or a truncate)."""
        for service_id in list(self._entries):
            self.rebuild(service_id, reason)

    async def close(self) -> None:
        """Cancels rebuilds in flight."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def handle(self, note: Notification) -> None:
        """Moves the indexes forward by one notification (called in arrival order)."""
        if note.op == "truncate" or note.collection is None:
            self.rebuild_all(note.op)
            return
        entry = self._entries.get(note.collection)
        if entry is None:
            return  # not loaded here: the first use reads the database
        if note.op == "collection_delete":
            del self._entries[note.collection]
            log.info("index_dropped", collection=str(note.collection))
            return
        if entry.building:
            entry.pending.append(note)
            return
        reason = await self._step(note.collection, entry, note)
        if reason is not None:
            self.rebuild(note.collection, reason)

    async def _step(self, service_id: uuid.UUID, entry: _Entry, note: Notification) -> str | None:
        """Applies ``note`` to the entry's index; returns why a rebuild is needed, if it is."""
        if note.seq is not None and note.seq <= entry.seq:
            return None
        if note.op not in INCREMENTAL_OPS or note.ids is None or note.seq is None:
            return note.op if note.ids is not None else f"{note.op} without ids"
        if note.seq != entry.seq + 1:
            log.warning(
                "index_seq_gap", collection=str(service_id), last=entry.seq, received=note.seq
            )
            return f"gap {entry.seq} -> {note.seq}"
        assert entry.index is not None
        try:
            await self._apply(service_id, entry.index, note)
        except Exception as exc:
            log.warning("index_apply_failed", collection=str(service_id), error=type(exc).__name__)
            return "failed apply"
        entry.seq = note.seq
        return None

    async def _apply(self, service_id: uuid.UUID, index: FaceIndex, note: Notification) -> None:
        ids = list(note.ids or ())
        if note.op in ("example_insert", "example_update"):
            rows = await self._source.examples(service_id, ids, index.calculator)
            index.remove(ids)
            index.add(rows)
        elif note.op == "example_delete":
            index.remove(ids)
        elif note.op == "subject_update":
            index.rename_subjects(await self._source.subject_names(service_id, ids))
        elif note.op == "subject_delete":
            index.remove_subjects(ids)

    async def _rebuild(self, service_id: uuid.UUID, entry: _Entry, reason: str) -> None:
        try:
            while True:
                entry.again = False
                started = time.perf_counter()
                snapshot = await self._source.snapshot(
                    service_id, (await self._calculators.get(None)).name
                )
                index = await asyncio.to_thread(_build, snapshot, await self._dim(snapshot))
                entry.index, entry.seq = index, snapshot.seq
                self.rebuilds += 1
                log.info(
                    "index_rebuilt",
                    collection=str(service_id),
                    reason=reason,
                    seq=snapshot.seq,
                    examples=len(index),
                    calculator=index.calculator,
                    ms=round((time.perf_counter() - started) * 1000, 1),
                )
                while entry.pending and not entry.again:
                    why = await self._step(service_id, entry, entry.pending.pop(0))
                    if why is not None:
                        entry.again, reason = True, why
                if not entry.again:
                    break
            entry.pending.clear()
            if not entry.loaded.done():
                entry.loaded.set_result(None)
        except Exception as exc:
            log.warning(
                "index_rebuild_failed", collection=str(service_id), error=type(exc).__name__
            )
            if self._entries.get(service_id) is entry:
                del self._entries[service_id]
            if not entry.loaded.done():
                error = exc if isinstance(exc, ServiceError) else database_unavailable(exc)
                entry.loaded.set_exception(error)
        finally:
            entry.building = False

    async def _dim(self, snapshot: Snapshot) -> int:
        """Embedding size of the snapshot's calculator (from its rows if embed_svc lacks it)."""
        try:
            return (await self._calculators.get(snapshot.calculator)).embedding_size
        except ServiceError:
            if snapshot.examples:
                return len(snapshot.examples[0].embedding) // 4
            raise


def _build(snapshot: Snapshot, dim: int) -> FaceIndex:
    index = FaceIndex(snapshot.calculator, dim)
    index.add(snapshot.examples)
    return index

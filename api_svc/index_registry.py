"""The in-memory index of every collection in use, kept current from change notifications and
within a memory budget.

A collection is loaded on first use (or at start, ``preload``) from one REPEATABLE READ snapshot
(sequence number + rows). Each notification then moves it forward (docs/schema.md "Sequence
numbers"):
- ``seq <= last``: already in the index, ignored;
- ``seq == last + 1`` with ids, for an example or subject change: applied in place (rows fetched
  by id, deleted ids dropped, renamed subjects renamed);
- anything else (a gap, no ids, ``collection_update``, ``truncate``), a failed apply, or a
  reconnect of the listening connection: the collection is rebuilt.
A rebuild reads a new snapshot and builds a new index aside (in a worker thread) while the old
one keeps serving, swaps it in, then applies the notifications that arrived meanwhile with a
greater sequence number. A rebuild that fails drops the collection, so the next request loads it
again (and answers 503 while the database is down). A first load serves from an exact index as
soon as the rows are in; the approximate part of a large collection is trained after it, while
it serves (``FaceIndex.retrain``), and again whenever the collection's size calls for it.

Searches (``run``) and changes to an index run in a thread pool, never on the event loop. After
every load the registry adds up its indexes' bytes and evicts the least recently used other
collections while the total exceeds the budget; an evicted collection loads again on its next use.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import faiss
import structlog

from api_svc.db import database_unavailable
from api_svc.face_index import FaceIndex, IndexSettings, IndexStatus
from api_svc.face_rows import FaceBatch, empty_faces
from api_svc.index_source import IndexSource, Snapshot
from api_svc.notifications import INCREMENTAL_OPS, Notification
from api_svc.similarity import Calculators
from facegrid.errors import ServiceError

log = structlog.get_logger()

T = TypeVar("T")


def single_threaded_faiss() -> None:
    """Makes FAISS calls of the current thread use one OpenMP thread: searches run side by side
    in the pool's threads, and OpenMP teams on top of them only wait on each other (a 10k exact
    search measured 0.2 ms single-threaded, 15 ms with two OpenMP threads on a busy machine)."""
    faiss.omp_set_num_threads(1)


@dataclass(eq=False)
class _Entry:
    """One collection's index and where it stands."""

    loaded: asyncio.Future[None]
    index: FaceIndex | None = None
    seq: int = -1
    building: bool = False
    again: bool = False
    pending: list[Notification] = field(default_factory=list)
    last_used: float = 0.0
    retraining: asyncio.Task[None] | None = None


@dataclass(frozen=True, slots=True)
class CollectionStatus:
    """One loaded collection as the node status RPC reports it."""

    service_id: uuid.UUID
    """The collection (service) id."""
    seq: int
    """Last sequence number applied."""
    calculator: str
    """Calculator of the indexed examples."""
    dim: int
    """Embedding size."""
    index: IndexStatus
    """Faces, bytes, kind and device."""
    rebuilding: bool
    """Whether a rebuild or retrain is running."""
    idle_s: float
    """Seconds since the collection was last used."""


@dataclass(frozen=True, slots=True)
class RegistrySettings:
    """Memory and threads of the registry."""

    index: IndexSettings = field(default_factory=IndexSettings)
    """How indexes are built."""
    memory_budget_bytes: int = 0
    """Bytes the indexes may hold together before idle ones are evicted (0: no limit)."""
    threads: int = 4
    """Worker threads for searches, changes and builds (FAISS runs single-threaded in each)."""


class IndexRegistry:
    """Indexes by service id, loaded lazily and moved forward by ``handle``."""

    def __init__(
        self,
        source: IndexSource,
        calculators: Calculators,
        settings: RegistrySettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_rebuilt: Callable[[float], None] = lambda _seconds: None,
    ) -> None:
        self._source = source
        self._calculators = calculators
        self.settings = settings or RegistrySettings()
        self._clock = clock
        self._on_rebuilt = on_rebuilt
        """Told how long each rebuild took, seconds (metrics)."""
        self._entries: dict[uuid.UUID, _Entry] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._pool = ThreadPoolExecutor(
            self.settings.threads, thread_name_prefix="index", initializer=single_threaded_faiss
        )
        self.rebuilds = 0
        """Rebuilds completed (first loads included); for logs and tests."""
        self.evictions = 0
        """Collections evicted under the memory budget."""

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` in the index thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

    def loaded(self) -> dict[uuid.UUID, FaceIndex]:
        """The indexes currently serving, by service id."""
        return {k: e.index for k, e in self._entries.items() if e.index is not None}

    def rebuilding(self) -> bool:
        """Whether a rebuild or retrain is running."""
        return bool(self._tasks)

    def seq(self, service_id: uuid.UUID) -> int | None:
        """The last sequence number applied to the collection, if loaded."""
        entry = self._entries.get(service_id)
        return None if entry is None or entry.index is None else entry.seq

    def memory_bytes(self) -> int:
        """Bytes the loaded indexes hold together."""
        return sum(index.nbytes for index in self.loaded().values())

    async def status(self) -> list[CollectionStatus]:
        """Every loaded collection, most recently used first."""
        now = self._clock()
        found = []
        for service_id, entry in list(self._entries.items()):
            index = entry.index
            if index is None:
                continue
            found.append(
                CollectionStatus(
                    service_id,
                    entry.seq,
                    index.calculator,
                    index.dim,
                    index.status(),
                    entry.building or entry.retraining is not None,
                    max(0.0, now - entry.last_used),
                )
            )
        return sorted(found, key=lambda s: s.idle_s)

    async def get(self, service_id: uuid.UUID) -> FaceIndex:
        """The collection's index, loaded first if needed (ServiceError 503 on failure)."""
        entry = self._entries.get(service_id)
        if entry is None:
            entry = _Entry(asyncio.get_running_loop().create_future())
            self._entries[service_id] = entry
            self.rebuild(service_id, "first use")
        entry.last_used = self._clock()
        if entry.index is None:
            await asyncio.shield(entry.loaded)
        assert entry.index is not None
        return entry.index

    async def preload(self, service_ids: Iterable[uuid.UUID]) -> None:
        """Loads the collections one after the other until the memory budget is reached
        (failures are logged, not raised)."""
        budget = self.settings.memory_budget_bytes
        for service_id in service_ids:
            if budget and self.memory_bytes() >= budget:
                log.info("index_preload_stopped_at_budget", budget=budget)
                return
            try:
                await self.get(service_id)
            except ServiceError:
                log.warning("index_preload_failed", collection=str(service_id))

    def rebuild(self, service_id: uuid.UUID, reason: str) -> None:
        """Starts a rebuild of a loaded collection (or marks the running one to go again)."""
        entry = self._entries.get(service_id)
        if entry is None:
            return
        if entry.building:
            entry.again = True
            return
        entry.building = True
        self._spawn(self._rebuild(service_id, entry, reason))

    def rebuild_all(self, reason: str) -> None:
        """Rebuilds every loaded collection (after a reconnect or a truncate)."""
        for service_id in list(self._entries):
            self.rebuild(service_id, reason)

    async def close(self) -> None:
        """Cancels rebuilds in flight and stops the thread pool."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._pool.shutdown(wait=False, cancel_futures=True)

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
        else:
            self._maybe_retrain(note.collection, entry)

    def _spawn(self, coroutine: object) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coroutine)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

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
            batch = await self.run(FaceBatch.of, rows, index.dim)
            await self.run(index.replace, ids, batch)
        elif note.op == "example_delete":
            await self.run(index.remove, ids)
        elif note.op == "subject_update":
            names = await self._source.subject_names(service_id, ids)
            await self.run(index.rename_subjects, names)
        elif note.op == "subject_delete":
            await self.run(index.remove_subjects, ids)

    def _maybe_retrain(self, service_id: uuid.UUID, entry: _Entry) -> None:
        """Starts training the index's approximate part aside, when its size calls for it."""
        index = entry.index
        if index is None or entry.retraining is not None:
            return
        reason = index.wants_retrain()
        if reason is not None:
            entry.retraining = self._spawn(self._retrain(service_id, entry, index, reason))

    async def _retrain(
        self, service_id: uuid.UUID, entry: _Entry, index: FaceIndex, reason: str
    ) -> None:
        started = time.perf_counter()
        try:
            await self.run(index.retrain)
            status = index.status()
            log.info(
                "index_retrained",
                collection=str(service_id),
                reason=reason,
                kind=status.kind,
                detail=status.detail,
                examples=status.faces,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
        except Exception as exc:
            log.warning("index_retrain_failed", collection=str(service_id), error=repr(exc))
        finally:
            entry.retraining = None

    async def _rebuild(self, service_id: uuid.UUID, entry: _Entry, reason: str) -> None:
        try:
            while True:
                entry.again = False
                started = time.perf_counter()
                snapshot = await self._source.snapshot(
                    service_id, (await self._calculators.get(None)).name
                )
                dim = await self._dim(snapshot)
                # A first load serves exact at once; a rebuild replaces a serving index whole.
                approximate = entry.index is not None
                index = await self.run(self._build, snapshot, dim, approximate)
                entry.index, entry.seq = index, snapshot.seq
                self.rebuilds += 1
                self._on_rebuilt(time.perf_counter() - started)
                log.info(
                    "index_rebuilt",
                    collection=str(service_id),
                    reason=reason,
                    seq=snapshot.seq,
                    examples=len(index),
                    kind=index.kind,
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
            entry.last_used = self._clock()
            if not entry.loaded.done():
                entry.loaded.set_result(None)
            self._within_budget(keep=service_id)
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
        if self._entries.get(service_id) is entry:
            self._maybe_retrain(service_id, entry)

    def _build(self, snapshot: Snapshot, dim: int, approximate: bool) -> FaceIndex:
        faces = snapshot.faces if snapshot.faces is not None else empty_faces(dim)
        return FaceIndex.build(
            snapshot.calculator, dim, faces, self.settings.index, approximate=approximate
        )

    async def _dim(self, snapshot: Snapshot) -> int:
        """Embedding size of the snapshot's rows (embed_svc's size for its calculator when the
        collection has none)."""
        if snapshot.dim is not None:
            return snapshot.dim
        return (await self._calculators.get(snapshot.calculator)).embedding_size

    def _within_budget(self, keep: uuid.UUID) -> None:
        """Evicts the least recently used collections but ``keep`` while over the budget."""
        budget = self.settings.memory_budget_bytes
        if budget <= 0:
            return
        sizes = {k: e.index.nbytes for k, e in self._entries.items() if e.index is not None}
        total = sum(sizes.values())
        idle_first = sorted(
            (k for k in sizes if k != keep and not self._entries[k].building),
            key=lambda k: self._entries[k].last_used,
        )
        for service_id in idle_first:
            if total <= budget:
                break
            entry = self._entries.pop(service_id)
            if entry.retraining is not None:
                entry.retraining.cancel()
            total -= sizes[service_id]
            self.evictions += 1
            log.info(
                "index_evicted",
                collection=str(service_id),
                bytes=sizes[service_id],
                total=total,
                budget=budget,
            )
        if total > budget:
            log.warning("index_over_budget", total=total, budget=budget, kept=str(keep))

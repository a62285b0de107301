"""The in-memory index of every collection in use, kept current from change notifications and
within a memory budget.

A collection is loaded on first use (or at start, ``preload``): from its index file when the node
has one (``index_file``; written after a large collection's approximate part is trained, after a
quarter of its rows changed, and at shutdown), caught up with the database by the rows changed
since (``IndexSource.catch_up``), else from one REPEATABLE READ snapshot (sequence number + rows).
Each change notification then moves it forward (docs/schema.md "Sequence numbers"):
- ``seq <= last``: already in the index, ignored;
- ``seq == last + 1`` with ids, for an example or subject change: applied in place (rows fetched
  by id, or taken from the notification when it carried them; deleted ids dropped, renamed
  subjects renamed); example changes that queued up one seq after the other are applied
  together (one fetch, none when each insert or update carried its rows; one write under the
  lock);
- anything else (a gap, no ids, ``collection_update``, ``truncate``), a failed apply, or a
  reconnect of the listening connection: the collection is rebuilt.
A rebuild first tries to catch the index it has up in place (only the rows changed since its seq
are read, then applied as one change); when that cannot be (another calculator, more than
``catch_up_max_fetch`` of the rows changed) it reads a new snapshot and builds a new index aside
(in a worker thread) while the old one keeps serving, and swaps it in. Either way the
notifications that arrived meanwhile with a greater sequence number are applied after it. A
rebuild that fails drops the collection, so the next request loads it again (and answers 503
while the database is down). A first load from a snapshot serves from an exact index as soon as
the rows are in; the approximate part of a large collection is trained after it, while it
serves (``FaceIndex.retrain``), and again whenever the collection's size calls for it.

Searches (``run``) and changes to an index run in a thread pool, never on the event loop. After
every load the registry adds up its indexes' bytes and evicts the least recently used other
collections while the total exceeds the budget; an evicted collection loads again on its next use.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final, TypeVar

import faiss
import structlog

from api_svc.db import database_unavailable
from api_svc.face_index import FaceIndex, IndexSettings, IndexStatus
from api_svc.face_rows import Example, FaceBatch, IdArray, Versions, empty_faces
from api_svc.index_file import CachedIndex, IndexFiles
from api_svc.index_source import IndexSource, Snapshot
from api_svc.notifications import EXAMPLE_OPS, INCREMENTAL_OPS, Notification
from api_svc.similarity import Calculators
from facegrid.errors import ServiceError
from facegrid.heap import release_free_memory

log = structlog.get_logger()

T = TypeVar("T")


#: ``_Entry.file_seq`` after a failed first write: no file, and none tried until rows change.
FAILED_WRITE: Final = -1


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
    persisting: asyncio.Task[None] | None = None
    file_seq: int | None = None
    """Seq of the collection's index file (None: none written or read)."""
    changed: int = 0
    """Rows changed since the file was written."""


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
    """Whether a rebuild, a retrain or a file write (changes wait meanwhile) is running."""
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
    catch_up_max_fetch: float = 0.25
    """Share of a collection's rows changed above which a rebuild reads a snapshot rather than
    fetching the changed rows."""
    persist_after: float = 0.25
    """Rows changed since a collection's index file was written, as a share of its faces,
    after which the file is written again."""


class IndexRegistry:
    """Indexes by service id, loaded lazily and moved forward by ``handle``."""

    def __init__(
        self,
        source: IndexSource,
        calculators: Calculators,
        settings: RegistrySettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_rebuilt: Callable[[float], None] = lambda _seconds: None,
        files: IndexFiles | None = None,
    ) -> None:
        self._source = source
        self._files = files
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
                    entry.building or entry.retraining is not None or entry.persisting is not None,
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

    async def close(self, persist_s: float = 0.0) -> None:
        """Writes the files of the collections changed since theirs (for up to ``persist_s``
        seconds), cancels rebuilds in flight and stops the thread pool."""
        if persist_s > 0 and self._files is not None:
            for service_id, entry in list(self._entries.items()):
                if entry.index is not None and not entry.building:
                    self._maybe_persist(service_id, entry, force=entry.seq != entry.file_seq)
            writing = [e.persisting for e in self._entries.values() if e.persisting is not None]
            if writing:
                await asyncio.wait(writing, timeout=persist_s)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def handle(self, note: Notification) -> None:
        """Moves the indexes forward by one whole change (called in arrival order)."""
        await self.handle_all([note])

    async def handle_all(self, notes: Sequence[Notification]) -> None:
        """Moves the indexes forward by whole changes, in arrival order per collection. A run
        of example changes of one collection with consecutive seqs (notifications that queued
        up while an earlier change was applied) is applied as one: one fetch, one write."""
        by_collection: dict[uuid.UUID, list[Notification]] = {}
        for note in notes:
            if note.op == "truncate" or note.collection is None:
                await self._advance_all(by_collection)
                by_collection = {}
                self.rebuild_all(note.op)
            else:
                by_collection.setdefault(note.collection, []).append(note)
        await self._advance_all(by_collection)

    async def _advance_all(self, by_collection: dict[uuid.UUID, list[Notification]]) -> None:
        for service_id, notes in by_collection.items():
            await self._advance(service_id, notes)

    async def _advance(self, service_id: uuid.UUID, notes: list[Notification]) -> None:
        at = 0
        while at < len(notes):
            entry = self._entries.get(service_id)
            if entry is None:
                return  # not loaded here: the first use reads the database
            if notes[at].op == "collection_delete":
                del self._entries[service_id]
                if self._files is not None:
                    await self.run(self._files.remove, service_id)
                log.info("index_dropped", collection=str(service_id))
                return
            if entry.building:
                entry.pending.extend(notes[at:])
                return
            run = _run_of(notes, at, entry.seq)
            at += len(run)
            reason = await self._step(service_id, entry, run)
            if reason is not None:
                self.rebuild(service_id, reason)
            else:
                self._maybe_retrain(service_id, entry)
                self._maybe_persist(service_id, entry)

    def _spawn(self, coroutine: object) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coroutine)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _step(
        self, service_id: uuid.UUID, entry: _Entry, run: list[Notification]
    ) -> str | None:
        """Applies ``run`` (one change, or consecutive example changes) to the entry's index;
        returns why a rebuild is needed, if it is."""
        note = run[0]
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
            changed = await self._apply(service_id, entry.index, run)
        except Exception as exc:
            log.warning("index_apply_failed", collection=str(service_id), error=type(exc).__name__)
            return "failed apply"
        entry.seq = run[-1].seq or entry.seq
        entry.changed += changed
        return None

    async def _apply(self, service_id: uuid.UUID, index: FaceIndex, run: list[Notification]) -> int:
        """Applies the run; returns how many ids it touched."""
        started = time.perf_counter()
        op = run[0].op
        ids = list(dict.fromkeys(i for note in run for i in note.ids or ()))
        carried: list[Example] | None = None
        if op in EXAMPLE_OPS:
            wanted = list(
                dict.fromkeys(i for n in run if n.op != "example_delete" for i in n.ids or ())
            )
            carried = _carried_rows(run, index.calculator)
            if carried is not None:
                rows = carried
            elif wanted:
                rows = await self._source.examples(service_id, wanted, index.calculator)
            else:
                rows = []
            fetched = time.perf_counter()
            await self.run(_replace_rows, index, ids, rows)
        else:
            fetched = time.perf_counter()
            if op == "subject_update":
                names = await self._source.subject_names(service_id, ids)
                await self.run(index.rename_subjects, names)
            elif op == "subject_delete":
                await self.run(index.remove_subjects, ids)
        log.debug(
            "index_change_applied",
            collection=str(service_id),
            seq=run[-1].seq,
            changes=len(run),
            ids=len(ids),
            fetch_ms=round((fetched - started) * 1000, 2),
            carried=carried is not None,
            apply_ms=round((time.perf_counter() - fetched) * 1000, 2),
        )
        return len(ids)

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
            await self.run(_released, index.retrain)
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
            return
        finally:
            entry.retraining = None
        if self._entries.get(service_id) is entry and entry.index is index:
            self._maybe_persist(service_id, entry, force=True)

    def _maybe_persist(self, service_id: uuid.UUID, entry: _Entry, force: bool = False) -> None:
        """Starts writing the collection's file when it has an approximate part (small
        collections load from the database quickly) and none was written, or when ``force``,
        or when the rows changed since the file exceed ``persist_after`` of the index."""
        index = entry.index
        if (
            self._files is None
            or index is None
            or index.kind != "ivf"
            or entry.persisting is not None
            or entry.retraining is not None
        ):
            return
        stale = entry.file_seq is None or entry.changed > self.settings.persist_after * len(index)
        if force or stale:
            entry.persisting = self._spawn(self._persist(service_id, entry, index))

    async def _persist(self, service_id: uuid.UUID, entry: _Entry, index: FaceIndex) -> None:
        assert self._files is not None
        started = time.perf_counter()
        seq, changed = entry.seq, entry.changed
        try:
            size = await self.run(self._files.write, service_id, seq, index)
        except Exception as exc:
            log.warning("index_persist_failed", collection=str(service_id), error=repr(exc))
            # Not again at every change (a write pauses them): after persist_after of the rows
            # changed, or at shutdown.
            entry.file_seq = FAILED_WRITE if entry.file_seq is None else entry.file_seq
            entry.changed = 0
            return
        finally:
            entry.persisting = None
        entry.file_seq = seq
        entry.changed = max(0, entry.changed - changed)
        log.info(
            "index_persisted",
            collection=str(service_id),
            seq=seq,
            examples=len(index),
            bytes=size,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )

    async def _rebuild(self, service_id: uuid.UUID, entry: _Entry, reason: str) -> None:
        try:
            while True:
                entry.again = False
                started = time.perf_counter()
                default = (await self._calculators.get(None)).name
                how = await self._load(service_id, entry, default)
                assert entry.index is not None
                self.rebuilds += 1
                self._on_rebuilt(time.perf_counter() - started)
                log.info(
                    "index_rebuilt",
                    collection=str(service_id),
                    reason=reason,
                    how=how,
                    seq=entry.seq,
                    examples=len(entry.index),
                    kind=entry.index.kind,
                    calculator=entry.index.calculator,
                    ms=round((time.perf_counter() - started) * 1000, 1),
                )
                while entry.pending and not entry.again:
                    run = _run_of(entry.pending, 0, entry.seq)
                    del entry.pending[: len(run)]
                    why = await self._step(service_id, entry, run)
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
            self._maybe_persist(service_id, entry)

    async def _load(self, service_id: uuid.UUID, entry: _Entry, default: str) -> str:
        """Brings the entry's index to the database's current seq; says how: ``catch_up``
        (the index held, or the one the collection's file holds, moved forward by the rows
        changed since its seq), else ``snapshot`` (every row read, a new index built aside)."""
        if entry.index is not None and await self._catch_up(
            service_id, entry.index, entry, default
        ):
            return "catch_up"
        cached = await self._read_file(service_id) if entry.index is None else None
        if cached is not None:
            entry.file_seq, entry.changed = cached.seq, 0
            if await self._catch_up(service_id, cached.index, entry, default, cached.seq):
                entry.index = cached.index
                return "file"
        snapshot = await self._source.snapshot(service_id, default)
        dim = await self._dim(snapshot)
        # A first load serves exact at once; a rebuild replaces a serving index whole.
        approximate = entry.index is not None
        entry.index = await self.run(self._build, snapshot, dim, approximate)
        entry.seq, entry.changed, entry.file_seq = snapshot.seq, 0, None
        return "snapshot"

    async def _catch_up(
        self,
        service_id: uuid.UUID,
        index: FaceIndex,
        entry: _Entry,
        default: str,
        seq: int | None = None,
    ) -> bool:
        """Moves ``index`` to the database's seq in one change; False when it cannot be
        (another calculator, too many changes). An index read from a file at ``seq`` is taken
        as current when the database is at the same seq; one that was serving (a rebuild after
        a gap, a reconnect, a failed apply) is compared row by row whatever its seq."""

        async def diff(ids: IdArray, versions: Versions) -> tuple[IdArray, IdArray]:
            return await self.run(index.stale, ids, versions)

        held = (index.calculator, index.dim, seq)
        changes = await self._source.catch_up(
            service_id, default, held, diff, self.settings.catch_up_max_fetch
        )
        if changes is None:
            return False
        await self.run(_released, index.replace, changes.gone, changes.faces)
        entry.seq = changes.seq
        entry.changed += len(changes.gone) + len(changes.faces)
        return True

    async def _read_file(self, service_id: uuid.UUID) -> CachedIndex | None:
        if self._files is None:
            return None
        started = time.perf_counter()
        try:
            cached = await self.run(self._files.read, service_id)
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("index_file_unusable", collection=str(service_id), error=repr(exc))
            await self.run(self._files.remove, service_id)
            return None
        if cached is not None:
            log.info(
                "index_file_read",
                collection=str(service_id),
                seq=cached.seq,
                examples=len(cached.index),
                kind=cached.index.kind,
                bytes=cached.nbytes,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
        return cached

    def _build(self, snapshot: Snapshot, dim: int, approximate: bool) -> FaceIndex:
        faces = snapshot.faces if snapshot.faces is not None else empty_faces(dim)
        built = FaceIndex.build(
            snapshot.calculator, dim, faces, self.settings.index, approximate=approximate
        )
        release_free_memory()
        return built

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
            entry.index = None
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
        release_free_memory()


def _run_of(notes: Sequence[Notification], at: int, seq: int) -> list[Notification]:
    """The notes from ``at`` that apply as one: the first, and while it is an example change
    with ids, the example changes with ids that follow it seq after seq."""
    run = [notes[at]]
    first = notes[at]
    if first.op not in EXAMPLE_OPS or first.ids is None or first.seq is None or first.seq <= seq:
        return run
    for note in notes[at + 1 :]:
        previous = run[-1].seq
        if note.op not in EXAMPLE_OPS or note.ids is None or previous is None:
            break
        if note.seq != previous + 1:
            break
        run.append(note)
    return run


def _carried_rows(run: Sequence[Notification], calculator: str) -> list[Example] | None:
    """The rows a run of example changes leaves, of ``calculator``, from the rows its
    notifications carried; None when an insert or update among them carried none (fetch)."""
    rows: dict[uuid.UUID, Example] = {}
    for note in run:
        if note.op == "example_delete":
            for image_id in note.ids or ():
                rows.pop(image_id, None)
            continue
        if note.rows is None:
            return None
        for image_id in note.ids or ():
            rows.pop(image_id, None)  # an id the payload lacks was gone by then
        for row in note.rows:
            if row.calculator == calculator:
                rows[row.example.image_id] = row.example
    return list(rows.values())


def _replace_rows(index: FaceIndex, ids: list[uuid.UUID], rows: list[Example]) -> None:
    """Removes ``ids`` and adds ``rows`` (their current rows) as one change."""
    index.replace(ids, FaceBatch.of(rows, index.dim))


def _released(function: Callable[..., T], *args: object) -> T:
    """``function(*args)``, then the memory it freed handed back to the system."""
    try:
        return function(*args)
    finally:
        release_free_memory()

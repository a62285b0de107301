"""The embedding migration job: re-compute a collection's face examples with another calculator.

Starting a migration blocks writes to the collection (the schema's triggers refuse them with
SQLSTATE FG032 -> HTTP 405, CompreFace code 32) and records it RUNNING. The job then walks the
examples in id order, a batch at a time: it sends their stored images to embed_svc's EmbedFaces
and stages the new embeddings in ``embedding_migration_items`` (never in face_examples, so
recognition keeps working on the old ones). When every example is done, one transaction swaps
the staged embeddings in, switches the service to the new calculator and unblocks writes. A
failure leaves the examples untouched and unblocks writes.

Examples without a stored image cannot be re-computed: they are counted as skipped and keep
their old embedding (api_svc ignores examples made by another calculator than the service's).
Images embed_svc rejects are counted as failed, likewise.

Each running migration holds a lease (``heartbeat_at``, renewed before every embed_svc call and
with every batch's results). A node that dies mid-way leaves it RUNNING; any admin_svc node's
supervisor takes it over once the lease has expired and resumes where the staged results end.

While it runs, the worker logs ``embedding_migration_progress`` (counts, rate, time left) at most
every ``progress_s`` seconds (``admin_svc/migration_progress.py``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence

import asyncpg
import numpy as np
import structlog
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from admin_svc.embed_client import Calculator, EmbedClient, EmbedError
from admin_svc.errors import failed_precondition, invalid, unavailable
from admin_svc.migration_progress import MigrationProgress
from admin_svc.store import embedding_migrations as store
from admin_svc.store.embedding_migrations import MigrationRow
from admin_svc.store.services import ServiceRow
from facegrid.backoff import jittered_backoff
from facegrid.schema import writes_blocked

log = structlog.get_logger()

#: Attempts after the first when embed_svc is unavailable.
DEFAULT_RETRIES = 3
#: First pause and longest pause between those attempts, seconds (jittered, doubling).
DEFAULT_RETRY_WAIT_S = (2.0, 15.0)
#: Least seconds between two progress events of a running migration.
DEFAULT_PROGRESS_S = 10.0
#: What a migration records when embed_svc ends it (never embed_svc's own text).
_EMBED_FAILURES = {
    "unavailable": "embed_svc stayed unavailable; start the migration again later",
    "failed": "embed_svc failed to compute embeddings",
    "rejected": "embed_svc rejected the request",
}


class _Abort(Exception):
    """The migration cannot go on; the message is stored as its error."""


class _Lost(Exception):
    """The migration is no longer this worker's (taken over, ended, or deleted)."""


def embedding_bytes(vector: Sequence[float]) -> tuple[bytes, int] | None:
    """An embedding as stored: L2-normalised little-endian float32 bytes and its length; None
    for an empty, zero or non-finite vector."""
    array = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(array))
    if array.size == 0 or not np.isfinite(norm) or norm == 0.0:
        return None
    return (array / norm).astype("<f4").tobytes(), int(array.size)


def pick_calculator(calculators: Sequence[Calculator], name: str) -> Calculator:
    """The calculator called ``name``, or the default one for an empty name."""
    for calculator in calculators:
        if (name and calculator.name == name) or (not name and calculator.is_default):
            return calculator
    known = ", ".join(sorted(c.name for c in calculators)) or "none"
    if not name:
        raise failed_precondition(
            "NO_DEFAULT_CALCULATOR", "embed_svc reports no default calculator"
        )
    raise invalid("calculator", f"unknown calculator {name!r} (embed_svc offers: {known})")


class EmbeddingMigrator:
    """Starts, runs, and takes over embedding migrations."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        embed: EmbedClient,
        *,
        batch_size: int = 16,
        lease_s: float = 120.0,
        retries: int = DEFAULT_RETRIES,
        retry_wait_s: tuple[float, float] = DEFAULT_RETRY_WAIT_S,
        progress_s: float = DEFAULT_PROGRESS_S,
        clock: Callable[[], float] = time.monotonic,
        worker: str | None = None,
    ) -> None:
        self._pool = pool
        self._embed = embed
        self._batch_size = batch_size
        self._lease_s = lease_s
        self._retries = retries
        self._retry_wait_s = retry_wait_s
        self._progress_s = progress_s
        self._clock = clock
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        """This node's worker id, recorded on the migrations it runs."""
        self._tasks: dict[uuid.UUID, asyncio.Task[MigrationRow | None]] = {}

    async def start(self, service: ServiceRow, calculator_name: str) -> MigrationRow:
        """Checks the target with embed_svc, blocks writes, records the migration and starts
        its job in the background. Raises ServiceError."""
        if service.type != "RECOGNITION":
            raise failed_precondition(
                "NOT_A_RECOGNITION_SERVICE", "only RECOGNITION services store embeddings"
            )
        try:
            calculators = await self._embed.list_calculators()
        except EmbedError:
            raise unavailable(
                "EMBEDDING_SERVICE_UNAVAILABLE",
                "embed_svc cannot list its calculators now; try again",
            ) from None
        target = pick_calculator(calculators, calculator_name.strip())
        async with self._pool.acquire() as conn, conn.transaction():
            migration = await store.begin(
                conn, service.id, target.name, target.version, self.worker
            )
        if migration is None:
            raise writes_blocked(service.id)
        log.info(
            "embedding_migration_started",
            migration_id=str(migration.id),
            service_id=str(service.id),
            calculator=target.name,
            total=migration.total_count,
        )
        self._spawn(migration)
        return migration

    def _spawn(self, migration: MigrationRow) -> None:
        task = asyncio.create_task(self.run(migration), name=f"migration-{migration.id}")
        self._tasks[migration.id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(migration.id, None))

    async def run(self, migration: MigrationRow) -> MigrationRow | None:
        """Runs a migration this worker holds to its end; returns the ended row (None when it
        was taken over or deleted meanwhile)."""
        after = uuid.UUID(int=0)
        progress = MigrationProgress(migration, self._progress_s, self._clock)
        try:
            while True:
                async with self._pool.acquire() as conn:
                    batch = await store.next_batch(conn, migration, after, self._batch_size)
                if not batch:
                    break
                items = await self._embed_batch(batch, migration)
                async with self._pool.acquire() as conn, conn.transaction():
                    if not await store.stage(conn, migration.id, self.worker, items):
                        return None
                migrated = sum(1 for item in items if item[1] is not None)
                progress.staged(migrated, len(items) - migrated)
                after = batch[-1].id
            async with self._pool.acquire() as conn, conn.transaction():
                ended = await store.finish_success(conn, migration, self.worker)
        except _Abort as error:
            return await self._fail(migration, str(error))
        except _Lost:
            return None
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            # The database is unreachable or refused: leave the migration RUNNING; once its
            # lease expires a supervisor (this node's or another's) takes it over.
            log.exception("embedding_migration_interrupted", migration_id=str(migration.id))
            return None
        except Exception as error:
            log.exception("embedding_migration_crashed", migration_id=str(migration.id))
            return await self._fail(migration, f"internal error ({type(error).__name__})")
        if ended is not None:
            log.info(
                "embedding_migration_succeeded",
                migration_id=str(migration.id),
                migrated=ended.migrated_count,
                skipped=ended.skipped_count,
                failed=ended.failed_count,
            )
        return ended

    async def _fail(self, migration: MigrationRow, message: str) -> MigrationRow | None:
        log.warning("embedding_migration_failed", migration_id=str(migration.id), error=message)
        async with self._pool.acquire() as conn, conn.transaction():
            return await store.finish_failure(conn, migration, message)

    async def _embed_batch(
        self, batch: Sequence[store.PendingExample], migration: MigrationRow
    ) -> list[tuple[uuid.UUID, bytes | None, int | None]]:
        """New embeddings of a batch; an image embed_svc rejects yields None for that example
        (the batch is retried one image at a time to find which)."""
        try:
            vectors = await self._embed_with_retries([e.image for e in batch], migration)
        except EmbedError as error:
            if error.problem != "rejected" or len(batch) == 1:
                if error.problem == "rejected":
                    return [(batch[0].id, None, None)]
                raise _Abort(_EMBED_FAILURES[error.problem]) from None
            items: list[tuple[uuid.UUID, bytes | None, int | None]] = []
            for example in batch:
                items.extend(await self._embed_batch([example], migration))
            return items
        items = []
        for example, vector in zip(batch, vectors, strict=True):
            stored = embedding_bytes(vector)
            items.append((example.id, *stored) if stored else (example.id, None, None))
        return items

    async def _embed_with_retries(
        self, images: list[bytes], migration: MigrationRow
    ) -> tuple[tuple[float, ...], ...]:
        """Embeddings of ``images``, retrying while embed_svc is unavailable; the lease is
        renewed before each attempt."""
        first_s, cap_s = self._retry_wait_s
        retrying = AsyncRetrying(
            retry=retry_if_exception(
                lambda e: isinstance(e, EmbedError) and e.problem == "unavailable"
            ),
            stop=stop_after_attempt(self._retries + 1),
            wait=jittered_backoff(first_s, cap_s),
            before_sleep=lambda state: log.warning(
                "embed_svc_unavailable_retrying",
                migration_id=str(migration.id),
                attempt=state.attempt_number,
                delay_s=round(state.upcoming_sleep, 3),
            ),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                async with self._pool.acquire() as conn:
                    if not await store.heartbeat(conn, migration.id, self.worker):
                        raise _Lost
                result = await self._embed.embed_faces(images, migration.target_calculator)
        if result.calculator != migration.target_calculator:
            raise _Abort(
                f"embed_svc answered with calculator {result.calculator!r}, "
                f"not {migration.target_calculator!r}"
            )
        if len(result.vectors) != len(images):
            raise _Abort(
                f"embed_svc returned {len(result.vectors)} embeddings for {len(images)} images"
            )
        return result.vectors

    async def resume_stale(self) -> list[uuid.UUID]:
        """Takes over migrations whose lease expired and runs them here; returns their ids."""
        async with self._pool.acquire() as conn:
            claimed = await store.claim_stale(conn, self.worker, self._lease_s)
        for migration in claimed:
            log.info("embedding_migration_taken_over", migration_id=str(migration.id))
            self._spawn(migration)
        return [m.id for m in claimed]

    async def supervise(self, interval_s: float | None = None) -> None:
        """Resumes stale migrations now and then every ``interval_s`` (half the lease by
        default), until cancelled."""
        while True:
            try:
                await self.resume_stale()
            except Exception:
                # Whatever failed (a refused query, a closed connection, a bug), the next round
                # tries again: a supervisor that ends leaves stale migrations RUNNING for good.
                log.exception("embedding_migration_supervisor_error")
            await asyncio.sleep(interval_s if interval_s is not None else self._lease_s / 2)

    async def wait_idle(self) -> None:
        """Returns once every job started here has ended."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def close(self) -> None:
        """Cancels the jobs running here; their migrations stay RUNNING and are taken over by a
        supervisor once their lease expires."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

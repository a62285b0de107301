"""The SQL that fills and refreshes the in-memory indexes (docs/schema.md).

A snapshot reads the collection's ``collection_state.seq``, its calculator, its subjects and the
examples that calculator made in one REPEATABLE READ transaction, so the rows are exactly those of
that sequence number. Subjects and examples stream in PostgreSQL's binary COPY format straight
into numpy arrays (``pg_copy``): no Python object per face; the event loop only keeps the chunks,
and every few MB a worker thread parses them into the arrays the index then takes over.
Incremental refreshes fetch rows by id. The calculator is the service's (``services.calculator``),
or embed_svc's default when NULL, passed in as ``default``.

A catch-up brings an index held in memory (read from a file, or one that missed notifications)
to the database's current seq without reading every row: in one REPEATABLE READ transaction it
reads the seq, the subjects and every example's id and row version (``xmin``: the transaction
that wrote the row, so an UPDATE changes it), lets the caller compare them with the index
(``FaceIndex.stale``), and fetches only the rows that are new or changed. Every row is the
database's as of that seq: rows the index holds with the same id and version are the same rows.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import asyncpg
import numpy as np

from api_svc.face_rows import (
    UUID_BYTES,
    Example,
    FaceBatch,
    IdArray,
    Versions,
    empty_faces,
    uuids,
)
from api_svc.pg_copy import CopyStream, FaceRows, SubjectRows, VersionRows

#: Bytes of a COPY stream kept before a worker thread parses them.
PARSE_BLOCK_BYTES: Final = 8 << 20

Diff = Callable[[IdArray, Versions], Awaitable[tuple[IdArray, IdArray]]]
"""Compares a collection's (ids, row versions) with an index: (ids to fetch, ids to drop)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A collection's indexed rows as of one sequence number."""

    seq: int
    """``collection_state.seq`` the rows belong to (-1: the service does not exist)."""
    calculator: str
    """Calculator whose examples these are."""
    dim: int | None
    """Embedding size of those examples (None when there are none)."""
    faces: FaceBatch | None
    """The examples made by ``calculator`` and every subject (None when there are none)."""


@dataclass(frozen=True, slots=True)
class CatchUp:
    """What changed in a collection since an index's seq."""

    seq: int
    """``collection_state.seq`` the changes bring the index to."""
    faces: FaceBatch
    """The rows new or changed since (with every subject, current names)."""
    gone: IdArray
    """Ids the index holds that the collection no longer has."""


class IndexSource(Protocol):
    """Where indexes read their rows."""

    async def snapshot(self, service_id: uuid.UUID, default: str) -> Snapshot:
        """Every indexed row of the collection, with its sequence number."""
        ...

    async def examples(
        self, service_id: uuid.UUID, ids: Sequence[uuid.UUID], calculator: str
    ) -> list[Example]:
        """The examples ``ids`` made by ``calculator`` (missing ones left out)."""
        ...

    async def catch_up(
        self,
        service_id: uuid.UUID,
        default: str,
        held: tuple[str, int, int | None],
        diff: Diff,
        max_fetch: float,
    ) -> CatchUp | None:
        """The changes that bring an index holding ``held`` = (calculator, dim, seq) to the
        collection's current seq (``faces`` and ``gone`` empty, without comparing rows, when the
        seq is the same; a seq of None compares them always);
        None when the index cannot be caught up (the collection is gone or uses another
        calculator) or when more than ``max_fetch`` of the collection's rows would be fetched
        (a snapshot is cheaper then)."""
        ...

    async def subject_names(
        self, service_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, str]:
        """Names of the subjects ``ids`` (missing ones left out)."""
        ...


_STATE = """
SELECT c.seq, c.example_count, coalesce(s.calculator, $2) AS calculator
FROM collection_state c JOIN services s ON s.id = c.service_id WHERE c.service_id = $1
"""
_DIM = """
SELECT embedding_dim FROM face_examples WHERE service_id = $1 AND calculator = $2 LIMIT 1
"""
_COPY_SUBJECTS = "SELECT id, name FROM subjects WHERE service_id = $1"
_COPY_EXAMPLES = """
SELECT id, subject_id, embedding, xmin FROM face_examples
WHERE service_id = $1 AND calculator = $2 AND embedding_dim = $3
"""
_COPY_VERSIONS = """
SELECT id, xmin FROM face_examples
WHERE service_id = $1 AND calculator = $2 AND embedding_dim = $3
"""
_COPY_CHANGED = """
SELECT id, subject_id, embedding, xmin FROM face_examples
WHERE service_id = $1 AND calculator = $2 AND embedding_dim = $3 AND id = ANY($4::uuid[])
"""
_SOME_EXAMPLES = """
SELECT e.id, e.subject_id, s.name, e.embedding, e.xmin FROM face_examples e
JOIN subjects s ON s.id = e.subject_id
WHERE e.service_id = $1 AND e.calculator = $2 AND e.id = ANY($3::uuid[])
"""
_COLLECTIONS = """
SELECT s.id FROM services s JOIN collection_state c ON c.service_id = s.id
WHERE s.type = 'RECOGNITION' ORDER BY c.example_count DESC, s.id
"""
_SUBJECT_NAMES = "SELECT id, name FROM subjects WHERE service_id = $1 AND id = ANY($2::uuid[])"


def _example(row: asyncpg.Record) -> Example:
    return Example(
        row["id"], row["subject_id"], row["name"], bytes(row["embedding"]), int(row["xmin"])
    )


class PgIndexSource:
    """IndexSource over the pool, with a deadline on each call (``load_timeout_s`` for the
    whole-collection reads)."""

    def __init__(self, pool: asyncpg.Pool, timeout_s: float, load_timeout_s: float) -> None:
        self._pool = pool
        self._timeout_s = timeout_s
        self._load_timeout_s = load_timeout_s

    async def snapshot(self, service_id: uuid.UUID, default: str) -> Snapshot:
        """One REPEATABLE READ transaction: sequence number, calculator, subjects, examples."""
        async with (
            self._pool.acquire(timeout=self._timeout_s) as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            state = await conn.fetchrow(_STATE, service_id, default, timeout=self._timeout_s)
            if state is None:
                return Snapshot(-1, default, None, None)
            calculator = state["calculator"]
            dim = await conn.fetchval(_DIM, service_id, calculator, timeout=self._timeout_s)
            if dim is None:
                return Snapshot(state["seq"], calculator, None, None)
            subjects = SubjectRows()
            await self._copy(conn, _COPY_SUBJECTS, (service_id,), subjects)
            # example_count counts every calculator's examples: room enough, rarely too much;
            # twice that is room to grow (address space until used).
            faces = FaceRows(dim, 2 * max(0, state["example_count"]))
            await self._copy(conn, _COPY_EXAMPLES, (service_id, calculator, dim), faces)
        return Snapshot(state["seq"], calculator, dim, faces.batch(subjects.batch()))

    async def catch_up(
        self,
        service_id: uuid.UUID,
        default: str,
        held: tuple[str, int, int | None],
        diff: Diff,
        max_fetch: float,
    ) -> CatchUp | None:
        """See IndexSource.catch_up: one REPEATABLE READ transaction."""
        calculator, dim, seq = held
        async with (
            self._pool.acquire(timeout=self._timeout_s) as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            state = await conn.fetchrow(_STATE, service_id, default, timeout=self._timeout_s)
            if state is None or state["calculator"] != calculator:
                return None
            subjects = SubjectRows()
            await self._copy(conn, _COPY_SUBJECTS, (service_id,), subjects)
            if state["seq"] == seq:
                return CatchUp(state["seq"], _no_faces(dim, subjects), _NO_IDS)
            versions = VersionRows()
            await self._copy(conn, _COPY_VERSIONS, (service_id, calculator, dim), versions)
            ids, row_versions = versions.result()
            fetch, gone = await diff(ids, row_versions)
            if len(fetch) > max_fetch * max(len(ids), 1):
                return None
            faces = FaceRows(dim, len(fetch))
            if len(fetch):
                args = (service_id, calculator, dim, uuids(fetch))
                await self._copy(conn, _COPY_CHANGED, args, faces)
        return CatchUp(state["seq"], faces.batch(subjects.batch()), gone)

    async def _copy(
        self,
        conn: asyncpg.Connection,
        query: str,
        args: tuple[object, ...],
        rows: CopyStream,
    ) -> None:
        """Streams the query's rows into ``rows``, parsed in a worker thread every
        ``PARSE_BLOCK_BYTES`` (the COPY waits meanwhile)."""

        async def output(chunk: bytes) -> None:
            rows.feed(chunk)
            if rows.staged >= PARSE_BLOCK_BYTES:
                await asyncio.to_thread(rows.parse)

        await conn.copy_from_query(
            query, *args, output=output, format="binary", timeout=self._load_timeout_s
        )
        await asyncio.to_thread(rows.finish)

    async def collections(self) -> list[uuid.UUID]:
        """Every recognition collection, most examples first (what ``start`` loading loads)."""
        async with self._pool.acquire(timeout=self._timeout_s) as conn:
            rows = await conn.fetch(_COLLECTIONS, timeout=self._timeout_s)
        return [r["id"] for r in rows]

    async def examples(
        self, service_id: uuid.UUID, ids: Sequence[uuid.UUID], calculator: str
    ) -> list[Example]:
        """The current rows of ``ids``."""
        async with self._pool.acquire(timeout=self._timeout_s) as conn:
            rows = await conn.fetch(
                _SOME_EXAMPLES, service_id, calculator, list(ids), timeout=self._load_timeout_s
            )
        return [_example(r) for r in rows]

    async def subject_names(
        self, service_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, str]:
        """The current names of ``ids``."""
        async with self._pool.acquire(timeout=self._timeout_s) as conn:
            rows = await conn.fetch(_SUBJECT_NAMES, service_id, list(ids), timeout=self._timeout_s)
        return {r["id"]: r["name"] for r in rows}


_NO_IDS: Final = np.empty((0, UUID_BYTES), np.uint8)


def _no_faces(dim: int, subjects: SubjectRows) -> FaceBatch:
    batch = empty_faces(dim)
    return FaceBatch(batch.image_ids, batch.subject_ids, batch.vectors, subjects.batch())

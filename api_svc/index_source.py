"""The SQL that fills and refreshes the in-memory indexes (docs/schema.md).

A snapshot reads the collection's ``collection_state.seq``, its calculator, its subjects and the
examples that calculator made in one REPEATABLE READ transaction, so the rows are exactly those of
that sequence number. Subjects and examples stream in PostgreSQL's binary COPY format straight
into numpy arrays (``pg_copy``): no Python object per face, and the event loop only copies bytes
between chunks. Incremental refreshes fetch rows by id. The calculator is the service's
(``services.calculator``), or embed_svc's default when NULL, passed in as ``default``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from api_svc.face_rows import Example, FaceBatch
from api_svc.pg_copy import FaceRows, SubjectRows


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
SELECT id, subject_id, embedding FROM face_examples
WHERE service_id = $1 AND calculator = $2 AND embedding_dim = $3
"""
_SOME_EXAMPLES = """
SELECT e.id, e.subject_id, s.name, e.embedding FROM face_examples e
JOIN subjects s ON s.id = e.subject_id
WHERE e.service_id = $1 AND e.calculator = $2 AND e.id = ANY($3::uuid[])
"""
_COLLECTIONS = """
SELECT s.id FROM services s JOIN collection_state c ON c.service_id = s.id
WHERE s.type = 'RECOGNITION' ORDER BY c.example_count DESC, s.id
"""
_SUBJECT_NAMES = "SELECT id, name FROM subjects WHERE service_id = $1 AND id = ANY($2::uuid[])"


def _example(row: asyncpg.Record) -> Example:
    return Example(row["id"], row["subject_id"], row["name"], bytes(row["embedding"]))


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
            await self._copy(conn, _COPY_SUBJECTS, (service_id,), subjects.feed)
            subjects.finish()
            # example_count counts every calculator's examples: room enough, rarely too much.
            faces = FaceRows(dim, max(0, state["example_count"]))
            await self._copy(conn, _COPY_EXAMPLES, (service_id, calculator, dim), faces.feed)
            faces.finish()
        return Snapshot(state["seq"], calculator, dim, faces.batch(subjects.batch()))

    async def _copy(
        self,
        conn: asyncpg.Connection,
        query: str,
        args: tuple[object, ...],
        sink: Callable[[bytes], None],
    ) -> None:
        async def output(chunk: bytes) -> None:
            sink(chunk)

        await conn.copy_from_query(
            query, *args, output=output, format="binary", timeout=self._load_timeout_s
        )

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

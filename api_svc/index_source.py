"""The SQL that fills and refreshes the in-memory indexes (docs/schema.md).

A snapshot reads the collection's ``collection_state.seq``, its calculator and the examples that
calculator made in one REPEATABLE READ transaction, so the rows are exactly those of that
sequence number. Incremental refreshes fetch rows by id. The calculator is the service's
(``services.calculator``), or embed_svc's default when NULL, passed in as ``default``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from api_svc.face_index import Example


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A collection's indexed rows as of one sequence number."""

    seq: int
    """``collection_state.seq`` the rows belong to (-1: the service does not exist)."""
    calculator: str
    """Calculator whose examples these are."""
    examples: list[Example]
    """The examples made by ``calculator``."""


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
SELECT c.seq, coalesce(s.calculator, $2) AS calculator
FROM collection_state c JOIN services s ON s.id = c.service_id WHERE c.service_id = $1
"""
_ALL_EXAMPLES = """
SELECT e.id, e.subject_id, s.name, e.embedding FROM face_examples e
JOIN subjects s ON s.id = e.subject_id
WHERE e.service_id = $1 AND e.calculator = $2
"""
_SOME_EXAMPLES = """
SELECT e.id, e.subject_id, s.name, e.embedding FROM face_examples e
JOIN subjects s ON s.id = e.subject_id
WHERE e.service_id = $1 AND e.calculator = $2 AND e.id = ANY($3::uuid[])
"""
_SUBJECT_NAMES = "SELECT id, name FROM subjects WHERE service_id = $1 AND id = ANY($2::uuid[])"


def _example(row: asyncpg.Record) -> Example:
    return Example(row["id"], row["subject_id"], row["name"], bytes(row["embedding"]))


class PgIndexSource:
    """IndexSource over the pool, with a deadline on each call."""

    def __init__(self, pool: asyncpg.Pool, timeout_s: float) -> None:
        self._pool = pool
        self._timeout_s = timeout_s

    async def snapshot(self, service_id: uuid.UUID, default: str) -> Snapshot:
        """One REPEATABLE READ transaction: sequence number, calculator, examples."""
        async with (
            self._pool.acquire(timeout=self._timeout_s) as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            state = await conn.fetchrow(_STATE, service_id, default, timeout=self._timeout_s)
            if state is None:
                return Snapshot(-1, default, [])
            rows = await conn.fetch(
                _ALL_EXAMPLES, service_id, state["calculator"], timeout=self._timeout_s
            )
        return Snapshot(state["seq"], state["calculator"], [_example(r) for r in rows])

    async def examples(
        self, service_id: uuid.UUID, ids: Sequence[uuid.UUID], calculator: str
    ) -> list[Example]:
        """The current rows of ``ids``."""
        async with self._pool.acquire(timeout=self._timeout_s) as conn:
            rows = await conn.fetch(
                _SOME_EXAMPLES, service_id, calculator, list(ids), timeout=self._timeout_s
            )
        return [_example(r) for r in rows]

    async def subject_names(
        self, service_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, str]:
        """The current names of ``ids``."""
        async with self._pool.acquire(timeout=self._timeout_s) as conn:
            rows = await conn.fetch(_SUBJECT_NAMES, service_id, list(ids), timeout=self._timeout_s)
        return {r["id"]: r["name"] for r in rows}

"""The SQL of a collection's subjects and face examples (docs/schema.md).

Every change runs in one transaction that first locks the collection's ``collection_state`` row
(``FOR UPDATE``: a collection's writers queue there, so two of them never deadlock) and reads
``writes_blocked`` under that lock: a migration in progress refuses the write (405, code 32)
before anything is written; the schema's triggers refuse it too (SQLSTATE FG032). The triggers
send the NOTIFY of every change; nothing here sends one. Query texts are constant, so asyncpg
prepares each once per connection, and every call has a deadline (pool wait included).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Concatenate, ParamSpec, TypeVar

import asyncpg

from api_svc.db import database_unavailable, is_outage
from facegrid.schema import WRITES_BLOCKED_SQLSTATE, writes_blocked

_LOCK = "SELECT writes_blocked FROM collection_state WHERE service_id = $1 FOR UPDATE"
_IS_BLOCKED = "SELECT writes_blocked FROM collection_state WHERE service_id = $1"
_SUBJECT_ID = "SELECT id FROM subjects WHERE service_id = $1 AND name = $2"
_INSERT_SUBJECT = "INSERT INTO subjects (service_id, name) VALUES ($1, $2) RETURNING id"
_LIST_SUBJECTS = "SELECT name FROM subjects WHERE service_id = $1 ORDER BY name"
_RENAME_SUBJECT = "UPDATE subjects SET name = $3 WHERE service_id = $1 AND id = $2"
_MOVE_EXAMPLES = (
    "UPDATE face_examples SET subject_id = $3 WHERE service_id = $1 AND subject_id = $2"
)
_DELETE_SUBJECT = "DELETE FROM subjects WHERE service_id = $1 AND id = $2"
_DELETE_ALL_EXAMPLES = "DELETE FROM face_examples WHERE service_id = $1"
_DELETE_ALL_SUBJECTS = "DELETE FROM subjects WHERE service_id = $1"
_DELETE_SUBJECT_EXAMPLES = "DELETE FROM face_examples WHERE service_id = $1 AND subject_id = $2"
_INSERT_EXAMPLE = """
INSERT INTO face_examples (service_id, subject_id, embedding, embedding_dim, calculator,
                           calculator_version, image, image_content_type)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id
"""
_SUBJECT_IDS = "SELECT name, id FROM subjects WHERE service_id = $1 AND name = ANY($2::text[])"
_INSERT_SUBJECTS = (
    "INSERT INTO subjects (service_id, name) SELECT $1, unnest($2::text[]) RETURNING name, id"
)
_INSERT_EXAMPLES = """
INSERT INTO face_examples (id, service_id, subject_id, embedding, embedding_dim, calculator,
                           calculator_version, image, image_content_type)
SELECT n.id, $1, n.subject_id, n.embedding, n.dim, n.calculator, n.version, n.image, n.ctype
FROM unnest($2::uuid[], $3::uuid[], $4::bytea[], $5::int2[], $6::text[], $7::text[], $8::bytea[],
            $9::text[]) AS n(id, subject_id, embedding, dim, calculator, version, image, ctype)
"""
_COUNT_EXAMPLES = """
SELECT count(*) FROM face_examples e JOIN subjects s ON s.id = e.subject_id
WHERE e.service_id = $1 AND ($2::text IS NULL OR s.name = $2)
"""
_PAGE_EXAMPLES = """
SELECT e.id, s.name FROM face_examples e JOIN subjects s ON s.id = e.subject_id
WHERE e.service_id = $1 AND ($2::text IS NULL OR s.name = $2)
ORDER BY e.created_at, e.id LIMIT $3 OFFSET $4
"""
_DELETE_EXAMPLES = """
DELETE FROM face_examples e USING subjects s
WHERE e.service_id = $1 AND e.id = ANY($2::uuid[]) AND s.id = e.subject_id
RETURNING e.id, s.name
"""
_IMAGE = "SELECT image, image_content_type FROM face_examples WHERE service_id = $1 AND id = $2"
_EMBEDDING = """
SELECT s.name, e.embedding, e.calculator FROM face_examples e JOIN subjects s ON s.id = e.subject_id
WHERE e.service_id = $1 AND e.id = $2
"""


class SubjectExists(Exception):
    """A subject of that name is already in the collection."""


class _Blocked(Exception):
    """A migration blocks the collection's writes (ServiceError is frozen: contextlib cannot
    pass it through a generator, so the store raises this and ``_translated`` converts it)."""


_P = ParamSpec("_P")
_R = TypeVar("_R")
_Method = Callable[Concatenate["PgFaceStore", uuid.UUID, _P], Awaitable[_R]]


def _translated(method: _Method[_P, _R]) -> _Method[_P, _R]:
    """The store method with the schema's refusals and database outages as ServiceError."""

    @functools.wraps(method)
    async def call(
        self: PgFaceStore, service_id: uuid.UUID, *args: _P.args, **kwargs: _P.kwargs
    ) -> _R:
        try:
            return await method(self, service_id, *args, **kwargs)
        except _Blocked:
            raise writes_blocked(service_id) from None
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "subjects_service_name_key":
                raise SubjectExists from None
            raise
        except asyncpg.PostgresError as exc:
            if exc.sqlstate == WRITES_BLOCKED_SQLSTATE:
                raise writes_blocked(service_id) from None
            if is_outage(exc):
                raise database_unavailable(exc) from None
            raise
        except (TimeoutError, OSError, asyncpg.InterfaceError) as exc:
            raise database_unavailable(exc) from None

    return call


@dataclass(frozen=True, slots=True)
class NewExample:
    """A face example to store."""

    embedding: bytes
    """L2-normalised little-endian float32 vector."""
    embedding_dim: int
    calculator: str
    calculator_version: str
    image: bytes | None
    """The image it came from; None for an embedding computed elsewhere."""
    image_content_type: str | None


@dataclass(frozen=True, slots=True)
class NewFace:
    """A face example of a batch, with the id it is stored under."""

    image_id: uuid.UUID
    subject: str
    example: NewExample


@dataclass(frozen=True, slots=True)
class FaceRef:
    """A stored example and its subject."""

    image_id: uuid.UUID
    subject: str


@dataclass(frozen=True, slots=True)
class StoredEmbedding:
    """A stored example's embedding and the calculator that made it."""

    subject: str
    embedding: bytes
    calculator: str


@dataclass(frozen=True, slots=True)
class StoredImage:
    """A stored example's image bytes and content type."""

    data: bytes
    content_type: str


class PgFaceStore:
    """Subjects and face examples of collections in PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool, timeout_s: float) -> None:
        self._pool = pool
        self._timeout_s = timeout_s

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._pool.acquire(timeout=self._timeout_s) as conn:
            yield conn

    @asynccontextmanager
    async def _writing(self, service_id: uuid.UUID) -> AsyncIterator[asyncpg.Connection]:
        """A transaction holding the collection's counter row; refuses a blocked collection."""
        async with self._connection() as conn, conn.transaction():
            blocked = await conn.fetchval(_LOCK, service_id, timeout=self._timeout_s)
            if blocked:
                raise _Blocked
            yield conn

    @_translated
    async def check_writable(self, service_id: uuid.UUID) -> None:
        """Refuses early (405/32) when a migration blocks the collection's writes."""
        async with self._connection() as conn:
            if await conn.fetchval(_IS_BLOCKED, service_id, timeout=self._timeout_s):
                raise _Blocked

    @_translated
    async def create_subject(self, service_id: uuid.UUID, name: str) -> None:
        """Adds subject ``name``; SubjectExists when it is there already."""
        async with self._writing(service_id) as conn:
            if await conn.fetchval(_SUBJECT_ID, service_id, name, timeout=self._timeout_s):
                raise SubjectExists
            await conn.fetchval(_INSERT_SUBJECT, service_id, name, timeout=self._timeout_s)

    @_translated
    async def list_subjects(self, service_id: uuid.UUID) -> list[str]:
        """The collection's subject names, sorted."""
        async with self._connection() as conn:
            rows = await conn.fetch(_LIST_SUBJECTS, service_id, timeout=self._timeout_s)
        return [row["name"] for row in rows]

    @_translated
    async def rename_subject(self, service_id: uuid.UUID, current: str, new: str) -> bool:
        """Renames ``current`` to ``new``, or moves its examples into ``new`` when that exists
        and deletes ``current``. False when ``current`` does not exist."""
        async with self._writing(service_id) as conn:
            old_id = await conn.fetchval(_SUBJECT_ID, service_id, current, timeout=self._timeout_s)
            if old_id is None:
                return False
            if current == new:
                return True
            target = await conn.fetchval(_SUBJECT_ID, service_id, new, timeout=self._timeout_s)
            if target is None:
                await conn.execute(
                    _RENAME_SUBJECT, service_id, old_id, new, timeout=self._timeout_s
                )
            else:
                await conn.execute(
                    _MOVE_EXAMPLES, service_id, old_id, target, timeout=self._timeout_s
                )
                await conn.execute(_DELETE_SUBJECT, service_id, old_id, timeout=self._timeout_s)
        return True

    @_translated
    async def delete_subject(self, service_id: uuid.UUID, name: str) -> bool:
        """Deletes subject ``name`` and its examples; False when it does not exist."""
        async with self._writing(service_id) as conn:
            subject_id = await conn.fetchval(_SUBJECT_ID, service_id, name, timeout=self._timeout_s)
            if subject_id is None:
                return False
            await conn.execute(_DELETE_SUBJECT, service_id, subject_id, timeout=self._timeout_s)
        return True

    @_translated
    async def delete_subjects(self, service_id: uuid.UUID) -> int:
        """Deletes every subject and example of the collection; the number of subjects."""
        async with self._writing(service_id) as conn:
            await conn.execute(_DELETE_ALL_EXAMPLES, service_id, timeout=self._timeout_s)
            status = await conn.execute(_DELETE_ALL_SUBJECTS, service_id, timeout=self._timeout_s)
        return _row_count(status)

    @_translated
    async def add_example(
        self, service_id: uuid.UUID, subject: str, example: NewExample
    ) -> uuid.UUID:
        """Stores ``example`` under ``subject`` (created when new); its image id."""
        async with self._writing(service_id) as conn:
            subject_id = await conn.fetchval(
                _SUBJECT_ID, service_id, subject, timeout=self._timeout_s
            )
            if subject_id is None:
                subject_id = await conn.fetchval(
                    _INSERT_SUBJECT, service_id, subject, timeout=self._timeout_s
                )
            image_id: uuid.UUID = await conn.fetchval(
                _INSERT_EXAMPLE,
                service_id,
                subject_id,
                example.embedding,
                example.embedding_dim,
                example.calculator,
                example.calculator_version,
                example.image,
                example.image_content_type,
                timeout=self._timeout_s,
            )
        return image_id

    @_translated
    async def add_examples(self, service_id: uuid.UUID, faces: Sequence[NewFace]) -> None:
        """Stores ``faces`` in one transaction: their new subjects in one statement, then the
        examples in one multi-row statement (so the schema's statement-level trigger sends one
        notification for the whole batch). All or nothing."""
        names = sorted({face.subject for face in faces})
        async with self._writing(service_id) as conn:
            rows = await conn.fetch(_SUBJECT_IDS, service_id, names, timeout=self._timeout_s)
            subject_ids = {row["name"]: row["id"] for row in rows}
            new = [name for name in names if name not in subject_ids]
            if new:
                rows = await conn.fetch(_INSERT_SUBJECTS, service_id, new, timeout=self._timeout_s)
                subject_ids.update((row["name"], row["id"]) for row in rows)
            examples = [face.example for face in faces]
            await conn.execute(
                _INSERT_EXAMPLES,
                service_id,
                [face.image_id for face in faces],
                [subject_ids[face.subject] for face in faces],
                [e.embedding for e in examples],
                [e.embedding_dim for e in examples],
                [e.calculator for e in examples],
                [e.calculator_version for e in examples],
                [e.image for e in examples],
                [e.image_content_type for e in examples],
                timeout=self._timeout_s,
            )

    @_translated
    async def list_examples(
        self, service_id: uuid.UUID, subject: str | None, page: int, size: int
    ) -> tuple[list[FaceRef], int]:
        """One page of examples (oldest first) and the number of examples in all."""
        async with (
            self._connection() as conn,
            conn.transaction(isolation="repeatable_read"),
        ):
            total = await conn.fetchval(
                _COUNT_EXAMPLES, service_id, subject, timeout=self._timeout_s
            )
            rows = await conn.fetch(
                _PAGE_EXAMPLES, service_id, subject, size, page * size, timeout=self._timeout_s
            )
        return [FaceRef(row["id"], row["name"]) for row in rows], int(total)

    @_translated
    async def delete_examples(self, service_id: uuid.UUID, subject: str | None) -> int | None:
        """Deletes every example of the collection, or of ``subject``; how many (None when
        ``subject`` does not exist)."""
        async with self._writing(service_id) as conn:
            if subject is None:
                status = await conn.execute(
                    _DELETE_ALL_EXAMPLES, service_id, timeout=self._timeout_s
                )
                return _row_count(status)
            subject_id = await conn.fetchval(
                _SUBJECT_ID, service_id, subject, timeout=self._timeout_s
            )
            if subject_id is None:
                return None
            status = await conn.execute(
                _DELETE_SUBJECT_EXAMPLES, service_id, subject_id, timeout=self._timeout_s
            )
        return _row_count(status)

    @_translated
    async def delete_examples_by_id(
        self, service_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> list[FaceRef]:
        """Deletes the examples of ``ids`` that exist; those deleted."""
        async with self._writing(service_id) as conn:
            rows = await conn.fetch(
                _DELETE_EXAMPLES, service_id, list(ids), timeout=self._timeout_s
            )
        return [FaceRef(row["id"], row["name"]) for row in rows]

    @_translated
    async def image(self, service_id: uuid.UUID, image_id: uuid.UUID) -> StoredImage | None:
        """The stored image of an example; None when the example or its image is absent."""
        async with self._connection() as conn:
            row = await conn.fetchrow(_IMAGE, service_id, image_id, timeout=self._timeout_s)
        if row is None or row["image"] is None:
            return None
        return StoredImage(row["image"], row["image_content_type"] or "application/octet-stream")

    @_translated
    async def embedding(self, service_id: uuid.UUID, image_id: uuid.UUID) -> StoredEmbedding | None:
        """An example's embedding and subject; None when it does not exist."""
        async with self._connection() as conn:
            row = await conn.fetchrow(_EMBEDDING, service_id, image_id, timeout=self._timeout_s)
        if row is None:
            return None
        return StoredEmbedding(row["name"], row["embedding"], row["calculator"])


def _row_count(status: str) -> int:
    """The row count of a command status such as ``DELETE 3``."""
    return int(status.rsplit(" ", 1)[-1])

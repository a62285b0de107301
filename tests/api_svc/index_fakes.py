"""In-memory stand-ins of the database an IndexRegistry reads: one collection (FakeSource) or
several (ManySources), with row versions, snapshots that can be held back or made to fail, and
catch-ups computed from the rows."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from api_svc.face_rows import Example, FaceBatch, SubjectBatch, empty_faces, id_array, uuids
from api_svc.index_source import CatchUp, Diff, Snapshot
from api_svc.notifications import Notification

SERVICE = uuid.uuid4()
SUBJECT = uuid.uuid4()


def row(vector: list[float], name: str = "alice", subject: uuid.UUID = SUBJECT) -> Example:
    return Example(uuid.uuid4(), subject, name, np.asarray(vector, dtype="<f4").tobytes())


@dataclass
class FakeSource:
    """A collection held in memory; ``snapshot`` can be held back or made to fail."""

    seq: int = 0
    rows: dict[uuid.UUID, Example] = field(default_factory=dict)
    snapshots: int = 0
    catch_ups: int = 0
    fetches: int = 0
    """Calls of ``examples`` (one per applied run of notifications)."""
    caught_up_rows: int = 0
    """Rows catch-ups fetched."""
    gate: asyncio.Event | None = None
    broken: bool = False
    read: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once a snapshot has been read (before it waits on ``gate``)."""

    def write(self, *examples: Example) -> Notification:
        """Writes the rows (their version: the new seq); their notification."""
        self.seq += 1
        for e in examples:
            self.rows[e.image_id] = replace(e, version=self.seq)
        ids = tuple(e.image_id for e in examples)
        return Notification("example_insert", SERVICE, self.seq, ids)

    def delete(self, *ids: uuid.UUID) -> Notification:
        self.seq += 1
        for i in ids:
            del self.rows[i]
        return Notification("example_delete", SERVICE, self.seq, ids)

    async def snapshot(self, service_id: uuid.UUID, default: str) -> Snapshot:
        self.snapshots += 1
        seq, rows = self.seq, list(self.rows.values())
        self.read.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.broken:
            raise OSError("database down")
        if not rows:
            return Snapshot(seq, default, None, None)
        dim = len(rows[0].embedding) // 4
        return Snapshot(seq, default, dim, FaceBatch.of(rows, dim))

    async def catch_up(
        self,
        service_id: uuid.UUID,
        default: str,
        held: tuple[str, int, int | None],
        diff: Diff,
        max_fetch: float,
    ) -> CatchUp | None:
        self.catch_ups += 1
        seq, rows = self.seq, list(self.rows.values())
        self.read.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.broken:
            raise OSError("database down")
        calculator, dim, since = held
        if calculator != default:
            return None
        subjects = SubjectBatch.of({e.subject_id: e.subject for e in rows}.items())
        if seq == since:
            return CatchUp(seq, replace(empty_faces(dim), subjects=subjects), id_array([]))
        ids = id_array(e.image_id for e in rows)
        versions = np.array([e.version for e in rows], dtype=np.uint32)
        fetch, gone = await diff(ids, versions)
        if len(fetch) > max_fetch * max(len(rows), 1):
            return None
        wanted = set(uuids(fetch))
        batch = FaceBatch.of([e for e in rows if e.image_id in wanted], dim)
        self.caught_up_rows += len(batch)
        return CatchUp(seq, replace(batch, subjects=subjects), gone)

    async def examples(
        self, service_id: uuid.UUID, ids: Sequence[uuid.UUID], calculator: str
    ) -> list[Example]:
        if self.broken:
            raise OSError("database down")
        self.fetches += 1
        return [self.rows[i] for i in ids if i in self.rows]

    async def subject_names(
        self, service_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, str]:
        return {e.subject_id: e.subject for e in self.rows.values() if e.subject_id in ids}


@dataclass
class ManySources:
    """Several collections, each a FakeSource."""

    by_service: dict[uuid.UUID, FakeSource] = field(default_factory=dict)
    loads: list[uuid.UUID] = field(default_factory=list)

    async def snapshot(self, service_id: uuid.UUID, default: str) -> Snapshot:
        self.loads.append(service_id)
        return await self.by_service[service_id].snapshot(service_id, default)

    async def catch_up(
        self,
        service_id: uuid.UUID,
        default: str,
        held: tuple[str, int, int | None],
        diff: Diff,
        max_fetch: float,
    ) -> CatchUp | None:
        return await self.by_service[service_id].catch_up(
            service_id, default, held, diff, max_fetch
        )

    async def examples(
        self, service_id: uuid.UUID, ids: Sequence[uuid.UUID], calculator: str
    ) -> list[Example]:
        return await self.by_service[service_id].examples(service_id, ids, calculator)

    async def subject_names(
        self, service_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, str]:
        return await self.by_service[service_id].subject_names(service_id, ids)


def random_rows(count: int, dim: int, seed: int) -> list[Example]:
    rng = np.random.default_rng(seed)
    return [
        row(list(rng.normal(size=dim)), f"s{i % 7}", uuid.UUID(int=i % 7 + 1)) for i in range(count)
    ]

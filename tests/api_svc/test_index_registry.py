"""IndexRegistry with an in-memory source: first load, incremental applies, gaps, stale and
failed notifications, rebuilds that keep serving, deletes and truncates."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from api_svc.face_index import Example
from api_svc.index_registry import IndexRegistry
from api_svc.index_source import Snapshot
from api_svc.notifications import Notification, parse
from api_svc.similarity import Calculators
from facegrid.errors import ServiceError
from tests.api_svc.fakes import DLIB, FakeEmbed
from tests.helpers.wait import wait_until_async

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
    gate: asyncio.Event | None = None
    broken: bool = False
    read: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once a snapshot has been read (before it waits on ``gate``)."""

    def write(self, *examples: Example) -> Notification:
        self.seq += 1
        for e in examples:
            self.rows[e.image_id] = e
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
        return Snapshot(seq, default, rows)

    async def examples(
        self, service_id: uuid.UUID, ids: Sequence[uuid.UUID], calculator: str
    ) -> list[Example]:
        if self.broken:
            raise OSError("database down")
        return [self.rows[i] for i in ids if i in self.rows]

    async def subject_names(
        self, service_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, str]:
        return {e.subject_id: e.subject for e in self.rows.values() if e.subject_id in ids}


async def settle(registry: IndexRegistry) -> None:
    """Waits (bounded) until no rebuild is running."""

    async def idle() -> bool:
        return not registry.rebuilding()

    await wait_until_async(idle, 2, "the rebuild to finish", interval_s=0.005)


def registry_over(source: FakeSource) -> IndexRegistry:
    return IndexRegistry(source, Calculators(FakeEmbed()))


async def test_first_use_loads_the_snapshot_with_its_seq() -> None:
    source = FakeSource()
    kept = row([1.0, 0.0, 0.0])
    source.write(kept)
    registry = registry_over(source)
    index = await registry.get(SERVICE)
    assert index.calculator == DLIB and index.dim == 3
    assert index.image_ids() == {kept.image_id}
    assert registry.seq(SERVICE) == 1 and registry.rebuilds == 1
    assert await registry.get(SERVICE) is index and source.snapshots == 1


async def test_consecutive_notifications_apply_in_place() -> None:
    source = FakeSource()
    registry = registry_over(source)
    index = await registry.get(SERVICE)
    first, second = row([1.0, 0.0, 0.0]), row([0.0, 1.0, 0.0], "bob", uuid.uuid4())
    await registry.handle(source.write(first, second))
    await registry.handle(source.delete(first.image_id))
    assert index.image_ids() == {second.image_id}
    assert registry.seq(SERVICE) == 2
    assert registry.rebuilds == 1  # no rebuild needed
    await registry.handle(Notification("example_insert", SERVICE, 1, (uuid.uuid4(),)))
    assert registry.seq(SERVICE) == 2 and registry.rebuilds == 1  # already applied: ignored


async def test_a_gap_rebuilds_from_the_database() -> None:
    source = FakeSource()
    registry = registry_over(source)
    await registry.get(SERVICE)
    missed = source.write(row([1.0, 0.0, 0.0]))  # its notification never arrives
    seen = source.write(row([0.0, 1.0, 0.0]))
    await registry.handle(seen)
    await settle(registry)
    assert registry.rebuilds == 2
    assert registry.loaded()[SERVICE].image_ids() == set(source.rows)
    assert registry.seq(SERVICE) == seen.seq == (missed.seq or 0) + 1


async def test_notifications_during_a_rebuild_are_applied_after_it() -> None:
    source = FakeSource()
    registry = registry_over(source)
    old = await registry.get(SERVICE)
    source.gate = asyncio.Event()
    source.read.clear()
    registry.rebuild(SERVICE, "test")
    await asyncio.wait_for(source.read.wait(), 2)  # the rebuild now waits on the gate
    late = row([0.0, 0.0, 1.0])
    await registry.handle(source.write(late))
    assert registry.loaded()[SERVICE] is old  # the old index keeps serving meanwhile
    source.gate.set()
    await settle(registry)
    assert registry.loaded()[SERVICE] is not old
    assert registry.loaded()[SERVICE].image_ids() == {late.image_id}
    assert registry.seq(SERVICE) == 1


async def test_a_failed_apply_rebuilds_and_a_failed_rebuild_drops_the_collection() -> None:
    source = FakeSource()
    registry = registry_over(source)
    await registry.get(SERVICE)
    source.broken = True
    await registry.handle(source.write(row([1.0, 0.0, 0.0])))
    await settle(registry)
    assert registry.loaded() == {}
    with pytest.raises(ServiceError) as raised:
        await registry.get(SERVICE)
    assert raised.value.reason == "DATABASE_UNAVAILABLE"
    source.broken = False
    assert (await registry.get(SERVICE)).image_ids() == set(source.rows)


async def test_updates_without_ids_rebuild_and_deletes_drop() -> None:
    source = FakeSource()
    registry = registry_over(source)
    await registry.get(SERVICE)
    source.rows[uuid.uuid4()] = row([1.0, 0.0, 0.0])
    source.seq += 1
    await registry.handle(Notification("example_insert", SERVICE, source.seq, None))
    await settle(registry)
    assert len(registry.loaded()[SERVICE]) == 1 and registry.rebuilds == 2
    await registry.handle(parse('{"v": 1, "collection": null, "seq": null, "op": "truncate"}'))
    await settle(registry)
    assert registry.rebuilds == 3
    await registry.handle(Notification("collection_delete", SERVICE, None, (SERVICE,)))
    assert registry.loaded() == {}


async def test_subject_rename_and_delete_apply_in_place() -> None:
    source = FakeSource()
    registry = registry_over(source)
    index = await registry.get(SERVICE)
    kept = row([1.0, 0.0, 0.0])
    await registry.handle(source.write(kept))
    source.rows[kept.image_id] = row([1.0, 0.0, 0.0], "alicia")
    source.seq += 1
    await registry.handle(Notification("subject_update", SERVICE, source.seq, (SUBJECT,)))
    assert index.subject_of(kept.image_id) == "alicia"
    source.seq += 1
    await registry.handle(Notification("subject_delete", SERVICE, source.seq, (SUBJECT,)))
    assert len(index) == 0 and registry.rebuilds == 1


def test_payloads_parse_as_the_schema_sends_them() -> None:
    note = parse(
        f'{{"v": 1, "collection": "{SERVICE}", "seq": 42, "op": "example_insert",'
        f' "count": 1, "ids": ["{SUBJECT}"]}}'
    )
    assert note == Notification("example_insert", SERVICE, 42, (SUBJECT,))
    assert parse(f'{{"collection": "{SERVICE}", "seq": 3, "op": "x", "ids": null}}').ids is None

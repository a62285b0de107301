"""IndexRegistry with an in-memory source: first load, incremental applies, gaps, stale and
failed notifications, rebuilds that keep serving, deletes and truncates, retraining as a
collection grows, eviction under a memory budget, searches in threads during changes."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from api_svc.ann import IvfSearch
from api_svc.face_index import IndexSettings
from api_svc.face_rows import Example, FaceBatch
from api_svc.index_registry import IndexRegistry, RegistrySettings
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
        if not rows:
            return Snapshot(seq, default, None, None)
        dim = len(rows[0].embedding) // 4
        return Snapshot(seq, default, dim, FaceBatch.of(rows, dim))

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


def registry_over(source: FakeSource, settings: RegistrySettings | None = None) -> IndexRegistry:
    return IndexRegistry(source, Calculators(FakeEmbed()), settings)


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


@dataclass
class ManySources:
    """Several collections, each a FakeSource."""

    by_service: dict[uuid.UUID, FakeSource] = field(default_factory=dict)
    loads: list[uuid.UUID] = field(default_factory=list)

    async def snapshot(self, service_id: uuid.UUID, default: str) -> Snapshot:
        self.loads.append(service_id)
        return await self.by_service[service_id].snapshot(service_id, default)

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


async def test_a_first_load_serves_exact_then_trains_its_approximate_part_aside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = FakeSource()
    source.write(*random_rows(1500, 8, seed=1))
    settings = RegistrySettings(index=IndexSettings(exact_max=1000))
    registry = registry_over(source, settings)
    training = threading.Event()
    trained = IvfSearch.trained

    def held_back(*args: Any, **kwargs: Any) -> IvfSearch:
        assert training.wait(10)
        return trained(*args, **kwargs)

    monkeypatch.setattr(IvfSearch, "trained", held_back)
    index = await registry.get(SERVICE)
    assert index.kind == "exact"  # served at once, while the approximate part trains
    [hits] = await registry.run(
        index.search, [np.frombuffer(next(iter(source.rows.values())).embedding, "<f4")], 1
    )
    assert hits[0].distance == pytest.approx(0.0, abs=1e-3)
    training.set()
    await settle(registry)
    assert index.kind == "ivf" and registry.loaded()[SERVICE] is index
    [status] = await registry.status()
    assert (status.index.kind, status.index.faces, status.seq) == ("ivf", 1500, 1)
    # A rebuild (here: a gap) builds the approximate part before swapping in.
    source.write(*random_rows(10, 8, seed=2))
    await registry.handle(source.write(*random_rows(10, 8, seed=3)))
    await settle(registry)
    assert registry.loaded()[SERVICE] is not index
    assert registry.loaded()[SERVICE].kind == "ivf" and len(registry.loaded()[SERVICE]) == 1520


async def test_a_tiny_budget_over_three_collections_evicts_the_least_recently_used() -> None:
    services = [uuid.uuid4() for _ in range(3)]
    sources = ManySources({s: FakeSource() for s in services})
    for i, service in enumerate(services):
        sources.by_service[service].write(*random_rows(200, 16, seed=i))
    one_collection = None
    registry = IndexRegistry(sources, Calculators(FakeEmbed()))
    one_collection = (await registry.get(services[0])).nbytes
    # Room for two collections, not three.
    budget = int(one_collection * 2.5)
    registry = IndexRegistry(
        sources, Calculators(FakeEmbed()), RegistrySettings(memory_budget_bytes=budget)
    )
    sources.loads.clear()
    first = await registry.get(services[0])
    await registry.get(services[1])
    await registry.get(services[0])  # used again: services[1] is now the least recent
    await registry.get(services[2])
    await settle(registry)
    assert set(registry.loaded()) == {services[0], services[2]}
    assert registry.evictions == 1 and registry.memory_bytes() <= budget
    assert registry.loaded()[services[0]] is first
    # The evicted collection loads again, whole and current.
    sources.by_service[services[1]].rows.pop(next(iter(sources.by_service[services[1]].rows)))
    sources.by_service[services[1]].seq += 1
    again = await registry.get(services[1])
    assert again.image_ids() == set(sources.by_service[services[1]].rows)
    assert sources.loads == [services[0], services[1], services[2], services[1]]
    assert registry.evictions == 2 and services[0] not in registry.loaded()


async def test_searches_in_threads_never_see_half_a_change() -> None:
    """Each change moves a group of 20 examples from one spot to the other in one
    notification (remove + add in the index); every search of both spots sees the whole group
    at one of them, while changes, a retrain and a rebuild go on."""
    source = FakeSource()
    settings = RegistrySettings(index=IndexSettings(exact_max=300), threads=4)
    source.write(*random_rows(400, 8, seed=5))
    spots = [[3.0] + [0.0] * 7, [0.0, 3.0] + [0.0] * 6]
    group = [row(spots[0], "spot", uuid.UUID(int=99)) for _ in range(20)]
    source.write(*group)
    ids = frozenset(e.image_id for e in group)
    registry = registry_over(source, settings)
    await registry.get(SERVICE)
    stop = asyncio.Event()

    async def searcher() -> int:
        seen = 0
        while not stop.is_set():
            index = await registry.get(SERVICE)
            found = await registry.run(index.search, spots, 20)
            at = [frozenset(h.image_id for h in hits) & ids for hits in found]
            assert sorted(len(a) for a in at) == [0, 20], "a search saw part of a change"
            seen += 1
        return seen

    async def writer() -> None:
        for step in range(40):
            spot = spots[(step + 1) % 2]
            source.seq += 1
            for image_id in ids:
                source.rows[image_id] = Example(
                    image_id, uuid.UUID(int=99), "spot", np.asarray(spot, "<f4").tobytes()
                )
            await registry.handle(Notification("example_update", SERVICE, source.seq, tuple(ids)))
            if step == 10:
                registry.rebuild(SERVICE, "test")
            await asyncio.sleep(0)
        await settle(registry)
        stop.set()

    *counts, _ = await asyncio.gather(searcher(), searcher(), searcher(), writer())
    assert all(seen > 0 for seen in counts)
    assert registry.loaded()[SERVICE].image_ids() == set(source.rows)

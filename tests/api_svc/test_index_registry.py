"""IndexRegistry with an in-memory source: first load, incremental applies, gaps, stale and
failed notifications, rebuilds that keep serving, deletes and truncates, retraining as a
collection grows, eviction under a memory budget, searches in threads during changes."""

from __future__ import annotations

import asyncio
import threading
import uuid
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from api_svc.ann import IvfSearch
from api_svc.face_index import IndexSettings
from api_svc.face_rows import Example
from api_svc.index_registry import IndexRegistry, RegistrySettings
from api_svc.notifications import Notification, NotifiedRow, parse
from api_svc.similarity import Calculators
from facegrid.errors import ServiceError
from tests.api_svc.fakes import DLIB, FakeEmbed
from tests.api_svc.index_fakes import (
    SERVICE,
    SUBJECT,
    FakeSource,
    ManySources,
    random_rows,
    row,
)
from tests.helpers.wait import wait_until_async


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


@pytest.mark.parametrize("in_place", [True, False])
async def test_notifications_during_a_rebuild_are_applied_after_it(in_place: bool) -> None:
    """A rebuild catches the index up in place when it can, else (here: any row to fetch is
    too many) reads a snapshot and swaps a new index in; either way the old one serves
    meanwhile and notifications that arrive during the rebuild apply after it."""
    source = FakeSource()
    source.write(*random_rows(10, 3, seed=0))
    settings = RegistrySettings(catch_up_max_fetch=0.25 if in_place else -1.0)
    registry = registry_over(source, settings)
    old = await registry.get(SERVICE)
    missed = row([0.0, 1.0, 0.0])
    source.write(missed)  # its notification never arrives
    source.gate = asyncio.Event()
    source.read.clear()
    registry.rebuild(SERVICE, "test")
    await asyncio.wait_for(source.read.wait(), 2)  # the rebuild now waits on the gate
    late = row([0.0, 0.0, 1.0])
    await registry.handle(source.write(late))
    assert registry.loaded()[SERVICE] is old  # the old index keeps serving meanwhile
    source.gate.set()
    await settle(registry)
    assert (registry.loaded()[SERVICE] is old) == in_place
    assert registry.loaded()[SERVICE].image_ids() == set(source.rows)
    assert registry.seq(SERVICE) == 3 and len(old) == (12 if in_place else 10)
    assert (source.catch_ups, source.snapshots) == ((1, 1) if in_place else (1, 2))


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
    # A rebuild (here: a gap) catches the approximate index up in place...
    source.write(*random_rows(10, 8, seed=2))
    await registry.handle(source.write(*random_rows(10, 8, seed=3)))
    await settle(registry)
    assert registry.loaded()[SERVICE] is index and source.catch_ups == 1
    assert index.kind == "ivf" and len(index) == 1520
    # ...and one that must read a snapshot (too many rows changed) builds the approximate
    # part before swapping in.
    source.write(*random_rows(600, 8, seed=4))
    await registry.handle(source.write(*random_rows(10, 8, seed=5)))
    await settle(registry)
    assert registry.loaded()[SERVICE] is not index and source.snapshots == 2
    assert registry.loaded()[SERVICE].kind == "ivf" and len(registry.loaded()[SERVICE]) == 2130


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


def carrying(note: Notification, calculator: str, *examples: Example) -> Notification:
    """``note`` with the rows a schema from migration 0004 on carries in its payload."""
    return replace(note, rows=tuple(NotifiedRow(calculator, e) for e in examples))


async def test_carried_rows_apply_without_a_fetch() -> None:
    source = FakeSource()
    registry = registry_over(source)
    index = await registry.get(SERVICE)
    alice, bob = row([1.0, 0.0, 0.0]), row([0.0, 1.0, 0.0], "bob", uuid.uuid4())
    await registry.handle(source.write(alice))
    assert source.fetches == 1  # a notification without rows: fetched, as before
    note = source.write(bob, alice)
    # alice's row is not carried: it was gone by the statement's end (the payload omits it).
    del source.rows[alice.image_id]
    await registry.handle(carrying(note, index.calculator, source.rows[bob.image_id]))
    assert source.fetches == 1
    assert index.image_ids() == {bob.image_id}
    assert registry.seq(SERVICE) == 2 and registry.rebuilds == 1


async def test_carried_rows_of_another_calculator_are_left_out() -> None:
    source = FakeSource()
    registry = registry_over(source)
    index = await registry.get(SERVICE)
    mine, theirs = row([1.0, 0.0, 0.0]), row([0.0, 1.0, 0.0], "bob", uuid.uuid4())
    note = source.write(mine, theirs)
    await registry.handle(
        replace(
            note,
            rows=(
                NotifiedRow(index.calculator, source.rows[mine.image_id]),
                NotifiedRow("another-calculator", source.rows[theirs.image_id]),
            ),
        )
    )
    assert source.fetches == 0
    assert index.image_ids() == {mine.image_id}


async def test_a_run_with_one_change_not_carrying_rows_fetches_them_all() -> None:
    source = FakeSource()
    registry = registry_over(source)
    index = await registry.get(SERVICE)
    first, second = row([1.0, 0.0, 0.0]), row([0.0, 1.0, 0.0], "bob", uuid.uuid4())
    one = carrying(source.write(first), index.calculator, replace(first, version=1))
    two = source.write(second)  # too big to carry, say
    gone = source.delete(first.image_id)
    await registry.handle_all([one, two, gone])
    assert source.fetches == 1
    assert index.image_ids() == {second.image_id}
    # The same run with every insert carried: nothing fetched, the delete still applies.
    third, fourth = row([0.0, 0.0, 1.0]), row([0.6, 0.8, 0.0], "eve", uuid.uuid4())
    three = carrying(source.write(third), index.calculator, replace(third, version=4))
    four = carrying(source.write(fourth), index.calculator, replace(fourth, version=5))
    await registry.handle_all([three, four, source.delete(third.image_id)])
    assert source.fetches == 1
    assert index.image_ids() == {second.image_id, fourth.image_id}
    assert registry.seq(SERVICE) == 6 and registry.rebuilds == 1

"""IndexRegistry with index files and catch-ups (in-memory source): a restarted registry reads
its file and fetches only the rows changed since; a file it cannot use (another calculator,
damaged) gives way to a snapshot; files are written after training and at shutdown and removed
with their collection; notifications that queued up apply as one; a write that failed is tried
again only after a quarter of the rows changed."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np

from api_svc.face_index import FaceIndex, IndexSettings
from api_svc.face_rows import FaceBatch
from api_svc.index_file import IndexFiles
from api_svc.index_registry import IndexRegistry, RegistrySettings
from api_svc.notifications import Notification
from api_svc.similarity import Calculators
from tests.api_svc.fakes import DLIB, FakeEmbed
from tests.api_svc.index_fakes import SERVICE, FakeSource, random_rows, row
from tests.helpers.wait import wait_until_async

SETTINGS = RegistrySettings(index=IndexSettings(exact_max=1000))


def registry_with_files(source: FakeSource, directory: Path) -> IndexRegistry:
    return IndexRegistry(
        source, Calculators(FakeEmbed()), SETTINGS, files=IndexFiles(directory, SETTINGS.index)
    )


async def settled(registry: IndexRegistry, files: Path, seq: int) -> None:
    """Waits (bounded) until nothing runs and the collection's file holds ``seq``."""

    async def done() -> bool:
        if registry.rebuilding():
            return False
        cached = IndexFiles(files).read(SERVICE)
        return cached is not None and cached.seq == seq

    await wait_until_async(done, 30, f"the file at seq {seq}", interval_s=0.01)


async def test_a_restarted_registry_reads_its_file_and_fetches_only_changed_rows(
    tmp_path: Path,
) -> None:
    source = FakeSource()
    source.write(*random_rows(1500, 8, seed=1))
    first = registry_with_files(source, tmp_path)
    await first.get(SERVICE)  # a snapshot, then trained aside, then written
    await settled(first, tmp_path, source.seq)
    await first.close()
    assert source.snapshots == 1
    # While no node runs: new rows, deletes, and changed rows (a new version each).
    source.write(*random_rows(10, 8, seed=2))
    doomed = list(source.rows)[:5]
    source.delete(*doomed)
    updated = [
        replace(e, embedding=np.ones(8, "<f4").tobytes()) for e in list(source.rows.values())[5:8]
    ]
    source.write(*updated)
    again = registry_with_files(source, tmp_path)
    index = await again.get(SERVICE)
    assert source.snapshots == 1 and source.caught_up_rows == 13  # 10 new + 3 changed
    assert index.kind == "ivf" and index.wants_retrain() is None  # no training again
    assert index.image_ids() == set(source.rows)
    assert again.seq(SERVICE) == source.seq
    [hits] = await again.run(index.search, [np.ones(8)], 3)
    assert {h.image_id for h in hits} == {e.image_id for e in updated}
    await again.close()


async def test_a_file_of_another_calculator_or_damaged_gives_way_to_a_snapshot(
    tmp_path: Path,
) -> None:
    source = FakeSource()
    rows = random_rows(50, 8, seed=3)
    source.write(*rows)
    files = IndexFiles(tmp_path)
    other = FaceIndex.build("another-calculator", 8, FaceBatch.of(rows, 8))
    files.write(SERVICE, source.seq, other)
    registry = registry_with_files(source, tmp_path)
    index = await registry.get(SERVICE)
    assert index.calculator == DLIB and source.snapshots == 1
    await registry.close()
    files.path(SERVICE).write_bytes(b"FGINDEX\n not an index")
    registry = registry_with_files(source, tmp_path)
    assert (await registry.get(SERVICE)).image_ids() == set(source.rows)
    assert source.snapshots == 2 and not files.path(SERVICE).exists()  # removed
    await registry.close()


async def test_files_are_written_at_shutdown_and_removed_with_their_collection(
    tmp_path: Path,
) -> None:
    source = FakeSource()
    source.write(*random_rows(1200, 8, seed=4))
    registry = registry_with_files(source, tmp_path)
    await registry.get(SERVICE)
    await settled(registry, tmp_path, source.seq)
    await registry.handle(source.write(row([1.0] * 8)))  # too few changes to write again
    assert IndexFiles(tmp_path).read(SERVICE).seq == source.seq - 1  # type: ignore[union-attr]
    await registry.close(persist_s=30)
    cached = IndexFiles(tmp_path).read(SERVICE)
    assert cached is not None and cached.seq == source.seq and len(cached.index) == 1201
    registry = registry_with_files(source, tmp_path)
    await registry.get(SERVICE)
    await registry.handle(Notification("collection_delete", SERVICE, None, (SERVICE,)))
    assert registry.loaded() == {} and not IndexFiles(tmp_path).path(SERVICE).exists()
    await registry.close()


async def test_notifications_that_queued_up_apply_as_one_fetch() -> None:
    source = FakeSource()
    registry = IndexRegistry(source, Calculators(FakeEmbed()))
    index = await registry.get(SERVICE)
    first, second, third = (row([float(i), 1.0, 0.0]) for i in range(3))
    notes = [source.write(first), source.write(second), source.delete(first.image_id)]
    notes.append(source.write(third))
    other = Notification("example_insert", uuid.uuid4(), 1, (uuid.uuid4(),))  # not loaded
    await registry.handle_all([notes[0], other, *notes[1:]])
    assert source.fetches == 1
    assert index.image_ids() == {second.image_id, third.image_id}
    assert registry.seq(SERVICE) == source.seq and registry.rebuilds == 1
    # A gap inside a run: what precedes it applies, then the collection catches up.
    missed = source.write(row([0.0, 0.0, 1.0]))
    late = source.write(row([0.0, 1.0, 1.0]))
    await registry.handle_all([late])
    await wait_until_async(
        lambda: _idle(registry), 5, "the catch-up after the gap", interval_s=0.01
    )
    assert registry.loaded()[SERVICE].image_ids() == set(source.rows)
    assert registry.seq(SERVICE) == source.seq == (missed.seq or 0) + 1
    await registry.close()


async def _idle(registry: IndexRegistry) -> bool:
    return not registry.rebuilding()


class FailingFiles(IndexFiles):
    """Index files on a disk that refuses every write."""

    writes = 0

    def write(self, service_id: uuid.UUID, seq: int, index: FaceIndex) -> int:
        self.writes += 1
        raise OSError(28, "No space left on device")


async def test_a_failed_write_is_not_retried_at_every_change(tmp_path: Path) -> None:
    source = FakeSource()
    source.write(*random_rows(1200, 8, seed=6))
    files = FailingFiles(tmp_path, SETTINGS.index)
    registry = IndexRegistry(source, Calculators(FakeEmbed()), SETTINGS, files=files)
    index = await registry.get(SERVICE)

    async def tried() -> bool:
        return files.writes == 1 and not registry.rebuilding()

    await wait_until_async(tried, 30, "the first write", interval_s=0.01)
    assert index.kind == "ivf"
    for value in range(5):  # changes go on being applied, without another write
        await registry.handle(source.write(row([float(value)] * 8)))
    assert files.writes == 1 and len(index) == 1205 and not registry.rebuilding()
    await registry.handle(source.write(*random_rows(500, 8, seed=7)))  # over a quarter changed

    async def tried_again() -> bool:
        return files.writes == 2

    await wait_until_async(tried_again, 30, "the next write", interval_s=0.01)
    await registry.close()

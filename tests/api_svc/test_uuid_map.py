"""UuidMap: sorted arrays plus recent entries, against a dict, through merges and removals."""

from __future__ import annotations

import uuid

import numpy as np

from api_svc import uuid_map
from api_svc.face_rows import id_array
from api_svc.uuid_map import UuidMap


def test_lookups_match_a_dict_through_puts_removals_and_merges(monkeypatch) -> None:
    monkeypatch.setattr(uuid_map, "_MERGE_MIN", 16)  # merge often
    rng = np.random.default_rng(0)
    reference: dict[uuid.UUID, int] = {}
    first = [uuid.uuid4() for _ in range(50)]
    table = UuidMap.of(id_array(first), np.arange(50, dtype=np.int64))
    reference.update({u: i for i, u in enumerate(first)})
    for step in range(40):
        fresh = [uuid.uuid4() for _ in range(int(rng.integers(1, 20)))]
        again = list(reference)[: int(rng.integers(0, 3))]  # replaced values
        keys = fresh + again
        values = np.arange(1000 * step, 1000 * step + len(keys), dtype=np.int64)
        table.put(id_array(keys), values)
        reference.update(dict(zip(keys, values.tolist(), strict=True)))
        doomed = list(reference)[:: int(rng.integers(3, 9))]
        gone = table.remove(id_array([*doomed, uuid.uuid4()]))
        assert gone.tolist() == [reference.pop(d) for d in doomed] + [-1]
        assert len(table) == len(reference)
    probe = [*reference, uuid.uuid4()]
    assert table.get(id_array(probe)).tolist() == [*reference.values(), -1]
    ids, values = table.items()
    assert dict(zip((uuid.UUID(bytes=r.tobytes()) for r in ids), values.tolist(), strict=True)) == (
        reference
    )


def test_later_duplicates_win_when_built_at_once() -> None:
    key = uuid.uuid4()
    table = UuidMap.of(id_array([key, uuid.uuid4(), key]), np.array([1, 2, 3], dtype=np.int64))
    assert table.get(id_array([key])).tolist() == [3]
    assert len(table) == 2


def test_a_copy_is_independent() -> None:
    key = uuid.uuid4()
    table = UuidMap.of(id_array([key]), np.array([7], dtype=np.int64))
    copy = table.copy()
    table.remove(id_array([key]))
    assert copy.get(id_array([key])).tolist() == [7]
    assert table.get(id_array([key])).tolist() == [-1]


def shared_halves(count: int, groups: int, rng: np.random.Generator) -> list[uuid.UUID]:
    """UUIDs in ``groups`` groups whose first 8 bytes are the same within a group."""
    prefixes = [rng.bytes(8) for _ in range(groups)]
    return [uuid.UUID(bytes=prefixes[i % groups] + rng.bytes(8)) for i in range(count)]


def test_bulk_lookups_removals_and_merges_with_keys_that_share_a_half(monkeypatch) -> None:
    """Lookups of many keys at once (sorted first, recent entries searched as arrays) agree with
    a dict, also for keys whose first halves collide, through merges and a parts round trip."""
    monkeypatch.setattr(uuid_map, "_MERGE_MIN", 300)
    rng = np.random.default_rng(1)
    keys = shared_halves(2000, 50, rng) + [uuid.uuid4() for _ in range(2000)]
    reference = {k: i for i, k in enumerate(keys[:3000])}
    table = UuidMap.of(id_array(keys[:3000]), np.arange(3000, dtype=np.int64))
    late = keys[3000:] + shared_halves(200, 7, rng)
    table.put(id_array(late[:250]), np.arange(10_000, 10_250, dtype=np.int64))  # recent
    reference.update({k: 10_000 + i for i, k in enumerate(late[:250])})
    probe = keys + late + [uuid.uuid4() for _ in range(100)]
    assert table.get(id_array(probe)).tolist() == [reference.get(k, -1) for k in probe]
    doomed = probe[::3]
    assert table.remove(id_array(doomed)).tolist() == [reference.pop(k, -1) for k in doomed]
    table.put(id_array(late[250:]), np.arange(20_000, 20_000 + len(late) - 250, dtype=np.int64))
    reference.update({k: 20_000 + i for i, k in enumerate(late[250:])})
    assert len(table.parts().recent_keys) == 0  # merged into the sorted arrays
    assert table.get(id_array(probe)).tolist() == [reference.get(k, -1) for k in probe]
    assert len(table) == len(reference)
    again = UuidMap.from_parts(table.parts())
    assert again.get(id_array(probe)).tolist() == [reference.get(k, -1) for k in probe]
    assert len(again) == len(reference)

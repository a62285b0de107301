"""Notification payloads (versions 1 and 2, rows carried since migration 0004) and the joining
of split changes."""

from __future__ import annotations

import base64
import json
import uuid

import numpy as np
import pytest

from api_svc.notifications import Notification, PartAssembler, parse

SERVICE, OTHER = uuid.uuid4(), uuid.uuid4()


def part(
    seq: int, index: int, parts: int, ids: list[uuid.UUID], collection=SERVICE
) -> Notification:
    return Notification("example_insert", collection, seq, tuple(ids), index, parts)


def test_payloads_parse_as_the_schema_sends_them() -> None:
    one = uuid.uuid4()
    note = parse(
        json.dumps(
            {
                "v": 2,
                "collection": str(SERVICE),
                "seq": 42,
                "op": "example_insert",
                "count": 300,
                "part": 2,
                "parts": 2,
                "ids": [str(one)],
            }
        )
    )
    assert note == Notification("example_insert", SERVICE, 42, (one,), 2, 2)
    old = parse(f'{{"v": 1, "collection": "{SERVICE}", "seq": 3, "op": "x", "ids": null}}')
    assert (old.ids, old.part, old.parts) == (None, 1, 1)
    future = parse(
        f'{{"v": 3, "collection": "{SERVICE}", "seq": 4, "op": "example_insert",'
        f' "part": 1, "parts": 9, "ids": ["{one}"]}}'
    )
    assert (future.ids, future.parts) == (None, 1)  # unknown version: reload, never guess


def test_parts_are_joined_into_one_change() -> None:
    ids = [uuid.uuid4() for _ in range(5)]
    assembler = PartAssembler()
    assert assembler.feed(part(7, 1, 3, ids[:2])) == []
    other = Notification("subject_update", OTHER, 2, (uuid.uuid4(),))
    assert assembler.feed(other) == [other]  # another collection's change passes through
    assert assembler.feed(part(7, 2, 3, ids[2:4])) == []
    [whole] = assembler.feed(part(7, 3, 3, ids[4:]))
    assert whole == Notification("example_insert", SERVICE, 7, tuple(ids))
    single = part(8, 1, 1, ids[:1])
    assert assembler.feed(single) == [single]
    assert assembler.incomplete == 0


def test_a_missing_part_makes_a_change_without_ids() -> None:
    ids = [uuid.uuid4() for _ in range(4)]
    assembler = PartAssembler()
    assembler.feed(part(7, 1, 4, ids[:1]))
    # Part 2 never came; part 3 is not its successor, and part 4 adds nothing more.
    [broken] = assembler.feed(part(7, 3, 4, ids[2:3]))
    assert (broken.seq, broken.ids) == (7, None)
    assert assembler.feed(part(7, 4, 4, ids[3:])) == []
    # The next change starts clean; one cut off by a newer seq gives up too.
    assembler.feed(part(8, 1, 2, ids[:1]))
    cut, later = assembler.feed(part(9, 1, 1, ids[3:]))
    assert (cut.seq, cut.ids, later.seq, later.ids) == (8, None, 9, (ids[3],))
    assembler.feed(part(10, 1, 2, ids[:1]))
    [lost] = assembler.clear()
    assert (lost.seq, lost.ids) == (10, None)
    assert assembler.incomplete == 3


def carried_payload(rows: list[dict[str, object]], **extra: object) -> str:
    """An example insert as migration 0004 sends it: ids and, when they fit, their rows."""
    return json.dumps(
        {
            "v": 2,
            "collection": str(SERVICE),
            "seq": 5,
            "op": "example_insert",
            "count": len(rows),
            "part": 1,
            "parts": 1,
            "ids": [r["id"] for r in rows],
            "rows": rows,
            **extra,
        }
    )


def payload_row(vector: list[float], calculator: str = "calc-a") -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "subject_id": str(uuid.uuid4()),
        "subject": "alice",
        "calculator": calculator,
        "embedding": base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode(),
        "version": 812,
    }


def test_carried_rows_decode_to_examples() -> None:
    rows = [payload_row([0.6, 0.8]), payload_row([1.0, 0.0], "calc-b")]
    note = parse(carried_payload(rows))
    assert note.ids == tuple(uuid.UUID(str(r["id"])) for r in rows)
    assert note.rows is not None
    first, second = note.rows
    assert first.calculator == "calc-a" and second.calculator == "calc-b"
    assert first.example.image_id == uuid.UUID(str(rows[0]["id"]))
    assert first.example.subject_id == uuid.UUID(str(rows[0]["subject_id"]))
    assert (first.example.subject, first.example.version) == ("alice", 812)
    assert np.frombuffer(first.example.embedding, "<f4").tolist() == pytest.approx([0.6, 0.8])


def test_a_payload_without_rows_is_fetched_as_before() -> None:
    # What a schema before 0004 sends, and what 0004 sends for a change too big to carry.
    one = uuid.uuid4()
    note = parse(
        f'{{"v": 2, "collection": "{SERVICE}", "seq": 4, "op": "example_insert",'
        f' "count": 1, "part": 1, "parts": 1, "ids": ["{one}"]}}'
    )
    assert (note.ids, note.rows) == ((one,), None)
    # Rows under an unknown version or without ids are not trusted either.
    future = parse(carried_payload([payload_row([1.0])], v=3))
    assert (future.ids, future.rows) == (None, None)
    unlisted = parse(carried_payload([payload_row([1.0])], ids=None))
    assert unlisted.rows is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("embedding", "not base64!"), ("version", "812"), ("id", "nope"), ("subject", None)],
)
def test_a_malformed_carried_row_rejects_the_payload(field: str, value: object) -> None:
    row = payload_row([1.0, 0.0])
    if value is None:
        del row[field]
    else:
        row[field] = value
    with pytest.raises((ValueError, KeyError, TypeError)):
        parse(carried_payload([row]))


def test_joined_parts_never_carry_rows() -> None:
    ids = [uuid.uuid4() for _ in range(2)]
    assembler = PartAssembler()
    assembler.feed(part(7, 1, 2, ids[:1]))
    [whole] = assembler.feed(part(7, 2, 2, ids[1:]))
    assert (whole.ids, whole.rows) == (tuple(ids), None)

"""Change notifications from the schema's triggers, for changes made directly in the database
(as api_svc makes them): payloads, per-collection sequence numbers, bulk statements split into
parts of one seq, the rows a small example change carries, clone, rollbacks, concurrent
writers, and the subject-name unique constraint under concurrency."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from admin_svc.store import services as service_store
from tests.admin_svc.helpers import (
    Listener,
    add_example,
    add_subject,
    make_service,
    unit_vector,
)
from tests.helpers.wait import wait_until_async

pytestmark = pytest.mark.integration


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(db_url)
    yield conn
    await conn.close()


async def _state(conn: asyncpg.Connection, service_id: uuid.UUID) -> asyncpg.Record:
    return await conn.fetchrow(
        "SELECT seq, subject_count, example_count, writes_blocked FROM collection_state"
        " WHERE service_id = $1",
        service_id,
    )


async def waits_on_a_lock(pool: asyncpg.Pool, pid: int) -> bool:
    """Whether backend ``pid`` is waiting for a lock."""
    wait = await pool.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid)
    return bool(wait == "Lock")


def _ops(events: list[dict[str, Any]]) -> list[tuple[str, int | None, int]]:
    return [(e["op"], e["seq"], e["count"]) for e in events]


def _whole(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The changes the events carry, the parts of each joined (checking their numbering)."""
    changes: list[dict[str, Any]] = []
    for event in events:
        if event["part"] == 1:
            changes.append({**event, "ids": None if event["ids"] is None else list(event["ids"])})
            continue
        last = changes[-1]
        assert (event["seq"], event["op"], event["parts"]) == (
            last["seq"],
            last["op"],
            last["parts"],
        )
        assert event["part"] == last["part"] + 1
        last["part"] = event["part"]
        last["ids"].extend(event["ids"])
    assert all(c["part"] == c["parts"] for c in changes)
    return changes


async def test_creating_a_service_adds_its_counter_row_and_notifies_seq_0(
    conn: asyncpg.Connection, listener: Listener
) -> None:
    service_id = await make_service(conn)
    [event] = await listener.take(1)
    assert event == {
        "v": 2,
        "collection": str(service_id),
        "seq": 0,
        "op": "collection_create",
        "count": 1,
        "part": 1,
        "parts": 1,
        "ids": [str(service_id)],
    }
    state = await _state(conn, service_id)
    assert tuple(state) == (0, 0, 0, False)


async def test_single_row_changes_each_notify_with_the_next_seq(
    conn: asyncpg.Connection, listener: Listener
) -> None:
    service_id = await make_service(conn)
    await listener.take(1)
    alice = await add_subject(conn, service_id, "alice")
    bob = await add_subject(conn, service_id, "bob")
    example = await add_example(conn, service_id, alice)
    await conn.execute("UPDATE subjects SET name = 'alicia' WHERE id = $1", alice)
    await conn.execute("UPDATE face_examples SET subject_id = $2 WHERE id = $1", example, bob)
    await conn.execute("DELETE FROM face_examples WHERE id = $1", example)
    await conn.execute("DELETE FROM subjects WHERE id = $1", alice)
    events = await listener.take(7)
    assert [(e["op"], e["seq"], e["ids"]) for e in events] == [
        ("subject_insert", 1, [str(alice)]),
        ("subject_insert", 2, [str(bob)]),
        ("example_insert", 3, [str(example)]),
        ("subject_update", 4, [str(alice)]),
        ("example_update", 5, [str(example)]),
        ("example_delete", 6, [str(example)]),
        ("subject_delete", 7, [str(alice)]),
    ]
    assert all(e["collection"] == str(service_id) and e["count"] == 1 for e in events)
    assert tuple(await _state(conn, service_id)) == (7, 1, 0, False)


async def test_deleting_a_subject_cascades_to_its_examples_in_one_more_notification(
    conn: asyncpg.Connection, listener: Listener
) -> None:
    service_id = await make_service(conn)
    subject = await add_subject(conn, service_id, "carol")
    examples = sorted([await add_example(conn, service_id, subject, seed=i) for i in range(3)])
    await listener.take(5)
    await conn.execute("DELETE FROM subjects WHERE id = $1", subject)
    events = await listener.take(2)
    assert _ops(events) == [("subject_delete", 5, 1), ("example_delete", 6, 3)]
    assert events[1]["ids"] == [str(e) for e in examples]
    assert tuple(await _state(conn, service_id)) == (6, 0, 0, False)


async def test_bulk_statements_send_their_ids_in_parts_of_one_seq(
    conn: asyncpg.Connection, listener: Listener
) -> None:
    service_id = await make_service(conn)
    await conn.execute(
        "INSERT INTO subjects (service_id, name)"
        " SELECT $1, 's' || g FROM generate_series(1, 400) g",
        service_id,
    )
    subjects = await conn.fetch("SELECT id FROM subjects WHERE service_id = $1", service_id)
    # COPY, the bulk enrolment path: one change (in parts) for the whole COPY.
    records = [
        (uuid.uuid4(), service_id, r["id"], unit_vector(i, 128), 128, "calc-a", "1")
        for i, r in enumerate(subjects)
    ]
    await conn.copy_records_to_table(
        "face_examples",
        records=records,
        columns=[
            "id",
            "service_id",
            "subject_id",
            "embedding",
            "embedding_dim",
            "calculator",
            "calculator_version",
        ],
    )
    await conn.execute("DELETE FROM subjects WHERE service_id = $1", service_id)
    events = await listener.take(1 + 4 * 3)
    assert [(e["op"], e["part"], e["parts"]) for e in events[1:4]] == [
        ("subject_insert", 1, 3),
        ("subject_insert", 2, 3),
        ("subject_insert", 3, 3),
    ]
    assert [len(e["ids"]) for e in events[1:4]] == [150, 150, 100]
    changes = _whole(events)
    assert _ops(changes) == [
        ("collection_create", 0, 1),
        ("subject_insert", 1, 400),
        ("example_insert", 2, 400),
        ("subject_delete", 3, 400),
        ("example_delete", 4, 400),
    ]
    subject_ids = sorted(str(r["id"]) for r in subjects)
    example_ids = sorted(str(r[0]) for r in records)
    assert [c["ids"] for c in changes[1:]] == [subject_ids, example_ids, subject_ids, example_ids]
    assert max(listener.sizes) < 8000
    assert tuple(await _state(conn, service_id)) == (4, 0, 0, False)


async def test_a_statement_over_the_id_limit_sends_one_part_without_ids(
    conn: asyncpg.Connection, listener: Listener
) -> None:
    # This test's own database: lower the limit instead of writing 100,001 rows.
    await conn.execute(
        "CREATE OR REPLACE FUNCTION fg_notify_max_ids() RETURNS integer"
        " LANGUAGE sql IMMUTABLE AS 'SELECT 200'"
    )
    service_id = await make_service(conn)
    await conn.execute(
        "INSERT INTO subjects (service_id, name)"
        " SELECT $1, 's' || g FROM generate_series(1, 201) g",
        service_id,
    )
    events = await listener.take(2)
    assert {k: events[1][k] for k in ("op", "seq", "count", "part", "parts", "ids")} == {
        "op": "subject_insert",
        "seq": 1,
        "count": 201,
        "part": 1,
        "parts": 1,
        "ids": None,
    }


async def test_up_to_150_ids_are_listed_sorted_in_one_part_and_the_payload_stays_small(
    conn: asyncpg.Connection, listener: Listener
) -> None:
    service_id = await make_service(conn)
    ids = await conn.fetch(
        "INSERT INTO subjects (service_id, name)"
        " SELECT $1, repeat('x', 40) || g FROM generate_series(1, 150) g RETURNING id",
        service_id,
    )
    events = await listener.take(2)
    assert (events[1]["count"], events[1]["part"], events[1]["parts"]) == (150, 1, 1)
    assert events[1]["ids"] == sorted(str(r["id"]) for r in ids)
    assert max(listener.sizes) < 8000


async def test_a_rolled_back_change_notifies_nothing_and_leaves_no_gap(
    conn: asyncpg.Connection, listener: Listener
) -> None:
    service_id = await make_service(conn)
    await add_subject(conn, service_id, "kept")
    tx = conn.transaction()
    await tx.start()
    await add_subject(conn, service_id, "rolled-back")
    await tx.rollback()
    later = await add_subject(conn, service_id, "later")
    events = await listener.take(3)
    assert _ops(events) == [
        ("collection_create", 0, 1),
        ("subject_insert", 1, 1),
        ("subject_insert", 2, 1),
    ]
    assert events[2]["ids"] == [str(later)]


async def test_clone_notifies_create_then_one_insert_per_table(
    pool: asyncpg.Pool, listener: Listener
) -> None:
    async with pool.acquire() as conn:
        source_id = await make_service(conn)
        for i in range(120):
            subject = await add_subject(conn, source_id, f"person-{i}")
            await add_example(conn, source_id, subject, seed=i)
            await add_example(conn, source_id, subject, seed=1000 + i, image=None)
        source_seq = (await _state(conn, source_id))["seq"]
        app_id = await conn.fetchval("SELECT application_id FROM services WHERE id = $1", source_id)
        source = await service_store.get_service(conn, app_id, source_id)
        assert source is not None
        await listener.take(1 + 360)
        async with conn.transaction():
            assert await service_store.lock_collection_shared(conn, source_id) is False
            clone = await service_store.clone_service(conn, source, "copy")
        events = await listener.take(1 + 1 + 2)  # 240 example ids come in two parts
        assert [e["collection"] for e in events] == [str(clone.id)] * 4
        assert _ops(_whole(events)) == [
            ("collection_create", 0, 1),
            ("subject_insert", 1, 120),
            ("example_insert", 2, 240),
        ]
        assert (clone.subject_count, clone.example_count) == (120, 240)
        assert (await _state(conn, source_id))["seq"] == source_seq
        pairs = await conn.fetch(
            "SELECT s.service_id, s.name, e.embedding, e.image FROM face_examples e"
            " JOIN subjects s ON s.id = e.subject_id WHERE e.service_id = ANY($1::uuid[])",
            [source_id, clone.id],
        )
        by_service: dict[uuid.UUID, set[tuple[str, bytes, bytes | None]]] = {}
        for r in pairs:
            by_service.setdefault(r["service_id"], set()).add(
                (r["name"], r["embedding"], r["image"])
            )
        assert by_service[source_id] == by_service[clone.id]
        shared_ids = await conn.fetchval(
            "SELECT count(*) FROM face_examples a JOIN face_examples b ON a.id = b.id"
            " WHERE a.service_id = $1 AND b.service_id = $2",
            source_id,
            clone.id,
        )
        assert shared_ids == 0


async def test_service_updates_and_deletes_notify_for_the_collection(
    conn: asyncpg.Connection, listener: Listener
) -> None:
    service_id = await make_service(conn)
    await add_subject(conn, service_id, "dave")
    await conn.execute("UPDATE services SET api_key = $2 WHERE id = $1", service_id, uuid.uuid4())
    app_id = await conn.fetchval("SELECT application_id FROM services WHERE id = $1", service_id)
    await conn.execute("DELETE FROM applications WHERE id = $1", app_id)
    events = await listener.take(4)
    assert _ops(events) == [
        ("collection_create", 0, 1),
        ("subject_insert", 1, 1),
        ("collection_update", 2, 1),
        ("collection_delete", None, 1),
    ]
    assert await conn.fetchval("SELECT count(*) FROM collection_state") == 0
    # The cascade deleted the subject without a separate notification: a later change to
    # another collection is the very next notification.
    other = await make_service(conn)
    [event] = await listener.take(1)
    assert (event["collection"], event["op"]) == (str(other), "collection_create")


async def test_concurrent_writers_get_contiguous_sequence_numbers_in_commit_order(
    pool: asyncpg.Pool, listener: Listener
) -> None:
    async with pool.acquire() as conn:
        first = await make_service(conn, name="first")
        second = await make_service(conn, name="second")
    await listener.take(2)
    committed: dict[uuid.UUID, int] = {first: 0, second: 0}

    async def writer(index: int) -> None:
        for round_ in range(8):
            collection = first if (index + round_) % 2 else second
            async with pool.acquire() as conn:
                tx = conn.transaction()
                await tx.start()
                subject = await add_subject(conn, collection, f"w{index}-r{round_}")
                await add_example(conn, collection, subject, seed=index * 100 + round_)
                if (index * 7 + round_) % 3 == 0:
                    await tx.rollback()
                else:
                    await tx.commit()
                    committed[collection] += 2

    await asyncio.gather(*(writer(i) for i in range(5)))
    total = committed[first] + committed[second]
    events = await listener.take(total)
    for collection in (first, second):
        seqs = [e["seq"] for e in events if e["collection"] == str(collection)]
        assert seqs == list(range(1, committed[collection] + 1))
    async with pool.acquire() as conn:
        assert (await _state(conn, first))["seq"] == committed[first]
        assert (await _state(conn, second))["seq"] == committed[second]
        assert (await _state(conn, first))["example_count"] == committed[first] // 2


async def test_writes_are_refused_while_a_migration_blocks_them(
    conn: asyncpg.Connection, listener: Listener
) -> None:
    service_id = await make_service(conn)
    subject = await add_subject(conn, service_id, "erin")
    await conn.execute(
        "UPDATE collection_state SET writes_blocked = true WHERE service_id = $1", service_id
    )
    with pytest.raises(asyncpg.PostgresError) as info:
        await add_subject(conn, service_id, "frank")
    assert info.value.sqlstate == "FG032"
    with pytest.raises(asyncpg.PostgresError) as info:
        await conn.execute("DELETE FROM subjects WHERE id = $1", subject)
    assert info.value.sqlstate == "FG032"
    # The migration itself may write.
    async with conn.transaction():
        await conn.execute(
            "SELECT set_config('facegrid.migration_writer', $1, true)", str(service_id)
        )
        await add_example(conn, service_id, subject)
    events = await listener.take(3)
    assert _ops(events) == [
        ("collection_create", 0, 1),
        ("subject_insert", 1, 1),
        ("example_insert", 2, 1),
    ]


async def test_rows_cannot_move_to_another_collection(conn: asyncpg.Connection) -> None:
    first, second = await make_service(conn, name="a"), await make_service(conn, name="b")
    subject = await add_subject(conn, first, "gina")
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute("UPDATE subjects SET service_id = $2 WHERE id = $1", subject, second)


async def test_truncate_tells_every_node_to_reload(
    conn: asyncpg.Connection, listener: Listener
) -> None:
    service_id = await make_service(conn)
    subject = await add_subject(conn, service_id, "hank")
    await add_example(conn, service_id, subject)
    await listener.take(3)
    await conn.execute("TRUNCATE face_examples CASCADE")
    [event] = await listener.take(1)
    assert (event["op"], event["collection"]) == ("truncate", None)
    assert (await _state(conn, service_id))["example_count"] == 0


async def test_two_writers_creating_the_same_subject_exactly_one_wins(
    pool: asyncpg.Pool, listener: Listener
) -> None:
    async with pool.acquire() as conn:
        service_id = await make_service(conn)
    await listener.take(1)
    first = await pool.acquire()
    second = await pool.acquire()
    try:
        tx1, tx2 = first.transaction(), second.transaction()
        await tx1.start()
        await tx2.start()
        await add_subject(first, service_id, "same name")
        # The second insert waits on the first transaction's index entry.
        blocked = asyncio.create_task(add_subject(second, service_id, "same name"))
        await wait_until_async(
            lambda: waits_on_a_lock(pool, second.get_server_pid()), 10, "the second insert to block"
        )
        assert not blocked.done()
        await tx1.commit()
        with pytest.raises(asyncpg.UniqueViolationError) as info:
            await blocked
        assert info.value.constraint_name == "subjects_service_name_key"
        await tx2.rollback()
    finally:
        await pool.release(first)
        await pool.release(second)
    [event] = await listener.take(1)
    assert (event["op"], event["seq"]) == ("subject_insert", 1)


async def test_many_concurrent_creates_of_one_name_leave_one_subject(
    pool: asyncpg.Pool, listener: Listener
) -> None:
    async with pool.acquire() as conn:
        service_id = await make_service(conn)
    await listener.take(1)

    async def create() -> bool:
        async with pool.acquire() as conn:
            try:
                await add_subject(conn, service_id, "contested")
            except asyncpg.UniqueViolationError:
                return False
            return True

    results = await asyncio.gather(*(create() for _ in range(6)))
    assert results.count(True) == 1
    async with pool.acquire() as conn:
        state = await _state(conn, service_id)
        assert (state["seq"], state["subject_count"]) == (1, 1)
        names = await conn.fetch("SELECT name FROM subjects WHERE service_id = $1", service_id)
        assert [r["name"] for r in names] == ["contested"]
    # The same name in another collection is fine.
    async with pool.acquire() as conn:
        other = await make_service(conn, name="other")
        await add_subject(conn, other, "contested")


async def _insert_examples(
    conn: asyncpg.Connection, service_id: uuid.UUID, subject: uuid.UUID, count: int, dim: int
) -> list[uuid.UUID]:
    """Inserts ``count`` examples in one statement; their ids."""
    ids = [uuid.uuid4() for _ in range(count)]
    await conn.execute(
        "INSERT INTO face_examples (id, service_id, subject_id, embedding, embedding_dim,"
        " calculator, calculator_version) SELECT i, $2, $3, $4, $5, 'calc-a', '1'"
        " FROM unnest($1::uuid[]) AS i",
        ids,
        service_id,
        subject,
        unit_vector(7, dim),
        dim,
    )
    return ids


async def test_a_small_example_change_carries_its_rows_and_a_big_one_only_ids(
    conn: asyncpg.Connection, listener: Listener
) -> None:
    service_id = await make_service(conn)
    subject = await add_subject(conn, service_id, "dora")
    await listener.take(2)
    small = await _insert_examples(conn, service_id, subject, 8, 128)
    many = await _insert_examples(conn, service_id, subject, 9, 128)  # over fg_notify_max_rows
    wide = await _insert_examples(conn, service_id, subject, 1, 2048)  # 8 kB: does not fit
    await conn.execute("UPDATE face_examples SET calculator_version = '2' WHERE id = $1", small[0])
    await conn.execute("DELETE FROM face_examples WHERE id = $1", small[1])
    events = await listener.take(5)
    assert [(e["op"], "rows" in e) for e in events] == [
        ("example_insert", True),
        ("example_insert", False),
        ("example_insert", False),
        ("example_update", True),
        ("example_delete", False),
    ]
    assert max(listener.sizes) < 8000
    rows = await conn.fetch(
        "SELECT id, embedding, xmin::text::bigint AS version FROM face_examples WHERE id = ANY($1)",
        small,
    )
    stored = {str(r["id"]): (bytes(r["embedding"]), r["version"]) for r in rows}
    carried = events[0]["rows"]
    assert sorted(r["id"] for r in carried) == events[0]["ids"] == sorted(map(str, small))
    assert all(
        r["subject_id"] == str(subject) and r["subject"] == "dora" and r["calculator"] == "calc-a"
        for r in carried
    )
    assert all(
        base64.b64decode(r["embedding"], validate=True) == unit_vector(7, 128) for r in carried
    )
    untouched = [r for r in carried if r["id"] not in (str(small[0]), str(small[1]))]
    assert len(untouched) == 6
    assert all((r["version"] == stored[r["id"]][1]) for r in untouched)
    [updated] = events[3]["rows"]
    assert (updated["id"], updated["version"]) == (str(small[0]), stored[str(small[0])][1])
    assert (events[1]["ids"], events[2]["ids"]) == (sorted(map(str, many)), [str(wide[0])])

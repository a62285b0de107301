"""The schema's change notifications (channel ``facegrid_changes``, docs/schema.md), parsed, and
the parts of a split notification joined again.

A statement that changes more rows than one payload can list sends several notifications with
the same ``seq``: ``part`` 1..``parts``, each with a slice of the ids, one after the other (one
transaction's notifications are queued together at commit, and a collection's writers are
serialised by its counter row). ``PartAssembler`` gathers them and hands on one notification
with every id; a part that does not follow the previous one (lost, out of order) turns the
change into one without ids, which makes the node rebuild the collection.

A small example insert or update also carries its rows (``rows``, migration 0004: ids, subject,
calculator, embedding and version of each) when they fit the payload, so the node applies it
without fetching them; a notification without ``rows`` (a big change, or a schema before 0004)
is applied by fetching its ids, as before.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, field, replace
from typing import Final

from api_svc.face_rows import Example
from facegrid.schema import CHANGES_CHANNEL

#: The NOTIFY channel the schema's triggers send on.
CHANNEL: Final = CHANGES_CHANNEL

#: Payload versions this build understands (1: migration 0001, 2: split notifications).
KNOWN_VERSIONS: Final = frozenset({1, 2})

#: Changes of examples: applied by fetching (insert, update) or dropping (delete) their ids.
EXAMPLE_OPS: Final = frozenset({"example_insert", "example_update", "example_delete"})

#: Operations applied from their ids; every other one rebuilds the collection.
INCREMENTAL_OPS: Final = frozenset(
    {
        "example_insert",
        "example_update",
        "example_delete",
        "subject_insert",
        "subject_update",
        "subject_delete",
    }
)


@dataclass(frozen=True, slots=True)
class NotifiedRow:
    """A row a notification carries: the example and the calculator that made it."""

    calculator: str
    example: Example


@dataclass(frozen=True, slots=True)
class Notification:
    """One change notification (or one part of a split one)."""

    op: str
    """``example_insert``, ``subject_delete``, ``collection_update``, ``truncate``, ..."""
    collection: uuid.UUID | None
    """The service the change belongs to; None only for ``truncate``."""
    seq: int | None
    """The collection's sequence number after the change; None for deletes and truncate."""
    ids: tuple[uuid.UUID, ...] | None
    """The changed rows' ids (of this part), or None when too many rows changed (reload)."""
    part: int = 1
    """Which part of the change this is, 1..parts."""
    parts: int = 1
    """How many notifications carry the change's ids."""
    rows: tuple[NotifiedRow, ...] | None = None
    """The rows of an example insert or update as the statement left them (those of ``ids``
    still there, any calculator), when the payload carried them; None: fetch ``ids``."""


def parse(payload: str) -> Notification:
    """``payload`` as a Notification; raises ValueError (or KeyError) when malformed.

    A payload of an unknown version keeps its collection and seq but loses its ids, so the
    collection is rebuilt rather than changed by a guess."""
    data = json.loads(payload)
    collection = data.get("collection")
    ids = data.get("ids")
    seq = data.get("seq")
    known = int(data.get("v", 1)) in KNOWN_VERSIONS
    rows = data.get("rows")
    return Notification(
        op=str(data["op"]),
        collection=None if collection is None else uuid.UUID(collection),
        seq=None if seq is None else int(seq),
        ids=None if ids is None or not known else tuple(uuid.UUID(i) for i in ids),
        part=int(data.get("part", 1)) if known else 1,
        parts=int(data.get("parts", 1)) if known else 1,
        rows=None if rows is None or ids is None or not known else tuple(map(_row, rows)),
    )


def _row(data: dict[str, object]) -> NotifiedRow:
    """One row of a payload's ``rows``; raises ValueError (KeyError, TypeError) when malformed."""
    try:
        embedding = base64.b64decode(str(data["embedding"]), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"row embedding is not base64: {exc}") from exc
    version = data["version"]
    if not isinstance(version, int):
        raise TypeError(f"row version is not an integer: {version!r}")
    example = Example(
        image_id=uuid.UUID(str(data["id"])),
        subject_id=uuid.UUID(str(data["subject_id"])),
        subject=str(data["subject"]),
        embedding=embedding,
        version=version,
    )
    return NotifiedRow(str(data["calculator"]), example)


@dataclass
class _Gathering:
    first: Notification
    ids: list[uuid.UUID] = field(default_factory=list)
    received: int = 0
    without_ids: bool = False


class PartAssembler:
    """Turns a stream of notifications and parts into a stream of whole changes."""

    def __init__(self) -> None:
        self._open: dict[uuid.UUID, _Gathering] = {}
        self._given_up: dict[uuid.UUID, int | None] = {}
        self.incomplete = 0
        """Split changes given up on (a part missing); each made its collection reload."""

    def feed(self, note: Notification) -> list[Notification]:
        """The whole changes ``note`` completes, in order (none while parts are missing)."""
        if note.collection is None:
            return [*self._flush_all(), note]
        done: list[Notification] = []
        gathering = self._open.get(note.collection)
        if gathering is not None and not _continues(gathering, note):
            done.append(self._give_up(note.collection))
            gathering = None
        if note.part > 1 and self._given_up.get(note.collection) == note.seq:
            return done  # the rest of a change already given up on
        if note.parts <= 1 and gathering is None:
            return [*done, note]
        if gathering is None:
            if note.part != 1:
                self.incomplete += 1
                self._given_up[note.collection] = note.seq
                return [*done, replace(note, ids=None, part=1, parts=1, rows=None)]
            gathering = self._open[note.collection] = _Gathering(note)
        gathering.received += 1
        if note.ids is None:
            gathering.without_ids = True
        else:
            gathering.ids.extend(note.ids)
        if gathering.received == note.parts:
            del self._open[note.collection]
            whole = None if gathering.without_ids else tuple(gathering.ids)
            done.append(replace(gathering.first, ids=whole, part=1, parts=1, rows=None))
        return done

    def clear(self) -> list[Notification]:
        """Forgets the changes still gathering (e.g. the connection dropped); returns them
        without ids."""
        flushed = self._flush_all()
        self._given_up.clear()
        return flushed

    def _flush_all(self) -> list[Notification]:
        return [self._give_up(collection) for collection in list(self._open)]

    def _give_up(self, collection: uuid.UUID) -> Notification:
        gathering = self._open.pop(collection)
        self.incomplete += 1
        self._given_up[collection] = gathering.first.seq
        return replace(gathering.first, ids=None, part=1, parts=1, rows=None)


def _continues(gathering: _Gathering, note: Notification) -> bool:
    first = gathering.first
    return (
        note.seq == first.seq
        and note.op == first.op
        and note.parts == first.parts
        and note.part == gathering.received + 1
    )

"""The schema's change notifications (channel ``facegrid_changes``, docs/schema.md), parsed."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from facegrid.schema import CHANGES_CHANNEL

#: The NOTIFY channel the schema's triggers send on.
CHANNEL = CHANGES_CHANNEL

#: Operations applied from their ids; every other one rebuilds the collection.
INCREMENTAL_OPS = frozenset(
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
class Notification:
    """One change notification."""

    op: str
    """``example_insert``, ``subject_delete``, ``collection_update``, ``truncate``, ..."""
    collection: uuid.UUID | None
    """The service the change belongs to; None only for ``truncate``."""
    seq: int | None
    """The collection's sequence number after the change; None for deletes and truncate."""
    ids: tuple[uuid.UUID, ...] | None
    """The changed rows' ids, or None when more than 100 rows changed (reload)."""


def parse(payload: str) -> Notification:
    """``payload`` as a Notification; raises ValueError (or KeyError) when malformed."""
    data = json.loads(payload)
    collection = data.get("collection")
    ids = data.get("ids")
    seq = data.get("seq")
    return Notification(
        op=str(data["op"]),
        collection=None if collection is None else uuid.UUID(collection),
        seq=None if seq is None else int(seq),
        ids=None if ids is None else tuple(uuid.UUID(i) for i in ids),
    )

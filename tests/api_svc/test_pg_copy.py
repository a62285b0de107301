"""Binary COPY parsers fed a stream cut at every possible place and parsed at any point between
chunks; malformed streams refused; the rows land in arrays with room to spare."""

from __future__ import annotations

import struct
import uuid

import numpy as np
import pytest

from api_svc.face_rows import uuids
from api_svc.pg_copy import (
    SIGNATURE,
    CopyFormatError,
    CopyStream,
    FaceRows,
    SubjectRows,
    VersionRows,
)


def header() -> bytes:
    return SIGNATURE + struct.pack(">II", 0, 0)


def face_row(
    image_id: uuid.UUID, subject_id: uuid.UUID, vector: list[float], version: int = 7
) -> bytes:
    embedding = np.asarray(vector, dtype="<f4").tobytes()
    return (
        struct.pack(">hi", 4, 16)
        + image_id.bytes
        + struct.pack(">i", 16)
        + subject_id.bytes
        + struct.pack(">i", len(embedding))
        + embedding
        + struct.pack(">iI", 4, version)
    )


def version_row(image_id: uuid.UUID, version: int) -> bytes:
    return struct.pack(">hi", 2, 16) + image_id.bytes + struct.pack(">iI", 4, version)


def subject_row(subject_id: uuid.UUID, name: str) -> bytes:
    encoded = name.encode()
    return struct.pack(">hi", 2, 16) + subject_id.bytes + struct.pack(">i", len(encoded)) + encoded


def feed_in_pieces(parser: CopyStream, stream: bytes, cut: int) -> None:
    for number, start in enumerate(range(0, len(stream), cut)):
        parser.feed(stream[start : start + cut])
        if number % 3 == 1:
            parser.parse()  # as a worker thread does every few MB
    parser.finish()


@pytest.mark.parametrize("cut", [1, 2, 7, 45, 64, 1000])
def test_face_rows_parse_across_any_chunk_boundary(cut: int) -> None:
    rows = [(uuid.uuid4(), uuid.uuid4(), [float(i), 0.5, -1.0], 2**32 - 1 - i) for i in range(5)]
    stream = header() + b"".join(face_row(*r) for r in rows) + b"\xff\xff"
    parser = FaceRows(3, capacity=2)  # too small: it grows
    feed_in_pieces(parser, stream, cut)
    subjects = SubjectRows()
    feed_in_pieces(subjects, header() + b"\xff\xff", cut)
    batch = parser.batch(subjects.batch())
    assert uuids(batch.image_ids) == [r[0] for r in rows]
    assert uuids(batch.subject_ids) == [r[1] for r in rows]
    assert batch.vectors.tolist() == [r[2] for r in rows]
    assert batch.row_versions().tolist() == [r[3] for r in rows]
    assert len(batch.subjects) == 0


def test_face_rows_land_in_arrays_with_room_the_batch_is_a_view_of() -> None:
    rows = [(uuid.uuid4(), uuid.uuid4(), [1.0, 0.0, 0.0]) for _ in range(3)]
    parser = FaceRows(3, capacity=10)
    feed_in_pieces(parser, header() + b"".join(face_row(*r) for r in rows) + b"\xff\xff", 64)
    batch = parser.batch(SubjectRows().batch())
    assert len(batch) == 3
    assert batch.vectors.base is not None and len(batch.vectors.base) == 10


@pytest.mark.parametrize("cut", [1, 5, 26, 1000])
def test_version_rows_give_ids_and_versions(cut: int) -> None:
    rows = [(uuid.uuid4(), v) for v in (1, 2**31, 2**32 - 1, 3)]
    parser = VersionRows()
    feed_in_pieces(parser, header() + b"".join(version_row(*r) for r in rows) + b"\xff\xff", cut)
    ids, versions = parser.result()
    assert uuids(ids) == [r[0] for r in rows]
    assert versions.tolist() == [r[1] for r in rows]
    empty = VersionRows()
    feed_in_pieces(empty, header() + b"\xff\xff", cut)
    assert len(empty.result()[0]) == 0


@pytest.mark.parametrize("cut", [1, 3, 26, 100])
def test_subject_rows_parse_names_of_any_length(cut: int) -> None:
    rows = [(uuid.uuid4(), name) for name in ("a", "Zoë Ångström", "x" * 50, "李")]
    stream = header() + b"".join(subject_row(*r) for r in rows) + b"\xff\xff"
    parser = SubjectRows()
    feed_in_pieces(parser, stream, cut)
    batch = parser.batch()
    assert uuids(batch.ids) == [r[0] for r in rows]
    assert [batch.name(i) for i in range(len(rows))] == [r[1] for r in rows]


def test_malformed_streams_are_refused() -> None:
    garbage = FaceRows(3, 1)
    garbage.feed(b"not a copy stream at all")
    with pytest.raises(CopyFormatError, match="not a binary COPY stream"):
        garbage.parse()
    wrong_size = header() + face_row(uuid.uuid4(), uuid.uuid4(), [1.0, 2.0, 3.0])
    four = FaceRows(4, 1)
    four.feed(wrong_size + b"\x00" * 40)
    with pytest.raises(CopyFormatError, match="not \\(uuid, uuid, 16-byte bytea, xid\\)"):
        four.parse()
    cut_short = FaceRows(3, 1)
    cut_short.feed(wrong_size[:-3])
    with pytest.raises(CopyFormatError, match="ended early"):
        cut_short.finish()

"""Binary COPY parsers fed a stream cut at every possible place; malformed streams refused."""

from __future__ import annotations

import struct
import uuid

import numpy as np
import pytest

from api_svc.face_rows import uuids
from api_svc.pg_copy import SIGNATURE, CopyFormatError, FaceRows, SubjectRows


def header() -> bytes:
    return SIGNATURE + struct.pack(">II", 0, 0)


def face_row(image_id: uuid.UUID, subject_id: uuid.UUID, vector: list[float]) -> bytes:
    embedding = np.asarray(vector, dtype="<f4").tobytes()
    return (
        struct.pack(">hi", 3, 16)
        + image_id.bytes
        + struct.pack(">i", 16)
        + subject_id.bytes
        + struct.pack(">i", len(embedding))
        + embedding
    )


def subject_row(subject_id: uuid.UUID, name: str) -> bytes:
    encoded = name.encode()
    return struct.pack(">hi", 2, 16) + subject_id.bytes + struct.pack(">i", len(encoded)) + encoded


def feed_in_pieces(parser: FaceRows | SubjectRows, stream: bytes, cut: int) -> None:
    for start in range(0, len(stream), cut):
        parser.feed(stream[start : start + cut])
    parser.finish()


@pytest.mark.parametrize("cut", [1, 2, 7, 45, 64, 1000])
def test_face_rows_parse_across_any_chunk_boundary(cut: int) -> None:
    rows = [(uuid.uuid4(), uuid.uuid4(), [float(i), 0.5, -1.0]) for i in range(5)]
    stream = header() + b"".join(face_row(*r) for r in rows) + b"\xff\xff"
    parser = FaceRows(3, expected=2)  # too small: it grows
    feed_in_pieces(parser, stream, cut)
    subjects = SubjectRows()
    feed_in_pieces(subjects, header() + b"\xff\xff", cut)
    batch = parser.batch(subjects.batch())
    assert uuids(batch.image_ids) == [r[0] for r in rows]
    assert uuids(batch.subject_ids) == [r[1] for r in rows]
    assert batch.vectors.tolist() == [r[2] for r in rows]
    assert len(batch.subjects) == 0


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
    with pytest.raises(CopyFormatError):
        FaceRows(3, 1).feed(b"not a copy stream at all")
    wrong_size = header() + face_row(uuid.uuid4(), uuid.uuid4(), [1.0, 2.0, 3.0])
    with pytest.raises(CopyFormatError):
        FaceRows(4, 1).feed(wrong_size + b"\x00" * 40)
    cut_short = FaceRows(3, 1)
    cut_short.feed(wrong_size[:-3])
    with pytest.raises(CopyFormatError):
        cut_short.finish()

"""Parsers of PostgreSQL's binary COPY format, straight into numpy arrays.

``COPY (query) TO STDOUT (FORMAT binary)`` sends an 11-byte signature, a flags word and a
header extension, then each row as a 16-bit field count followed by each field as a 32-bit
length (-1 for NULL) and its bytes (big-endian integers; a ``uuid`` is its 16 bytes, a ``bytea``
its bytes, an ``xid`` 4 bytes), and a 16-bit -1 at the end.

Feeding and parsing are separate steps: ``feed`` only keeps the chunk (cheap enough for the event
loop, which receives the stream), ``parse`` turns what was fed into rows and may run in a worker
thread (never at the same time as ``feed``). Rows whose fields all have a fixed size are parsed a
block at a time through one numpy record type (no Python object per row) and copied into arrays
that can hold ``capacity`` rows, which the index then takes over as they are; rows with a text
field are parsed one at a time.
"""

from __future__ import annotations

import struct
from typing import Final

import numpy as np
import numpy.typing as npt

from api_svc.face_rows import UUID_BYTES, FaceBatch, IdArray, SubjectBatch, Versions

SIGNATURE: Final = b"PGCOPY\n\xff\r\n\x00"
_HEADER: Final = len(SIGNATURE) + 8
_TRAILER: Final = b"\xff\xff"


class CopyFormatError(ValueError):
    """The COPY stream is not what the query should send."""


class CopyStream:
    """Keeps fed chunks; ``parse`` strips the header and trailer and hands whole rows to
    ``_rows``."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._pending = b""
        self._header_done = False
        self._ended = False
        self.staged = 0
        """Bytes fed and not parsed yet."""

    def feed(self, chunk: bytes) -> None:
        """Keeps the next chunk of the stream (parsed by the next ``parse``)."""
        self._chunks.append(bytes(chunk))
        self.staged += len(chunk)

    def parse(self) -> None:
        """Parses the rows fed so far (a row cut by a chunk's end waits for the next)."""
        data = b"".join([self._pending, *self._chunks])
        self._chunks, self.staged = [], 0
        if not self._header_done:
            if len(data) < _HEADER:
                self._pending = data
                return
            if data[: len(SIGNATURE)] != SIGNATURE:
                raise CopyFormatError("not a binary COPY stream")
            (extension,) = struct.unpack_from(">I", data, len(SIGNATURE) + 4)
            if len(data) < _HEADER + extension:
                self._pending = data
                return
            data = data[_HEADER + extension :]
            self._header_done = True
        used = self._rows(data)
        rest = data[used:]
        if rest == _TRAILER:
            self._ended, rest = True, b""
        self._pending = rest

    def finish(self) -> None:
        """Parses what is left and checks that the stream ended where it should."""
        self.parse()
        if not self._ended or self._pending:
            raise CopyFormatError("binary COPY stream ended early")

    def _rows(self, data: bytes) -> int:
        raise NotImplementedError


def _face_dtype(dim: int) -> np.dtype:
    return np.dtype(
        [
            ("fields", ">i2"),
            ("id_size", ">i4"),
            ("id", np.uint8, UUID_BYTES),
            ("subject_size", ">i4"),
            ("subject", np.uint8, UUID_BYTES),
            ("embedding_size", ">i4"),
            ("embedding", "<f4", dim),
            ("version_size", ">i4"),
            ("version", ">u4"),
        ]
    )


class FaceRows(CopyStream):
    """Rows of ``(id uuid, subject_id uuid, embedding bytea, xmin xid)`` with ``dim`` floats
    each, into arrays with room for ``capacity`` rows (grown when more come). Room that is never
    written costs address space, not memory: the pages of a large array are only backed once
    touched."""

    def __init__(self, dim: int, capacity: int) -> None:
        super().__init__()
        self.dim = dim
        self._dtype = _face_dtype(dim)
        self._count = 0
        capacity = max(capacity, 1)
        self._ids: IdArray = np.empty((capacity, UUID_BYTES), np.uint8)
        self._subjects: IdArray = np.empty((capacity, UUID_BYTES), np.uint8)
        self._vectors: npt.NDArray[np.float32] = np.empty((capacity, dim), np.float32)
        self._versions: Versions = np.empty(capacity, np.uint32)

    def __len__(self) -> int:
        return self._count

    def _rows(self, data: bytes) -> int:
        size = self._dtype.itemsize
        count = len(data) // size  # the 2-byte trailer never completes a row
        if not count:
            return 0
        rows = np.frombuffer(data, self._dtype, count)
        wrong = (
            (rows["fields"] != 4)
            | (rows["id_size"] != UUID_BYTES)
            | (rows["subject_size"] != UUID_BYTES)
            | (rows["embedding_size"] != 4 * self.dim)
            | (rows["version_size"] != 4)
        )
        if wrong.any():
            raise CopyFormatError(f"a face row is not (uuid, uuid, {4 * self.dim}-byte bytea, xid)")
        self._reserve(self._count + count)
        end = self._count + count
        self._ids[self._count : end] = rows["id"]
        self._subjects[self._count : end] = rows["subject"]
        self._vectors[self._count : end] = rows["embedding"]
        self._versions[self._count : end] = rows["version"]
        self._count = end
        return count * size

    def _reserve(self, size: int) -> None:
        if size <= len(self._ids):
            return
        capacity = max(size, len(self._ids) * 5 // 4 + 1024)
        for name in ("_ids", "_subjects", "_vectors", "_versions"):
            old = getattr(self, name)
            new = np.empty((capacity, *old.shape[1:]), old.dtype)
            new[: self._count] = old[: self._count]
            setattr(self, name, new)

    def batch(self, subjects: SubjectBatch) -> FaceBatch:
        """The rows read, with ``subjects``: views of the first rows of the arrays, whose spare
        room an index built from them keeps (``FaceIndex.build``)."""
        count = self._count
        return FaceBatch(
            self._ids[:count],
            self._subjects[:count],
            self._vectors[:count],
            subjects,
            self._versions[:count],
        )


def _version_dtype() -> np.dtype:
    return np.dtype(
        [
            ("fields", ">i2"),
            ("id_size", ">i4"),
            ("id", np.uint8, UUID_BYTES),
            ("version_size", ">i4"),
            ("version", ">u4"),
        ]
    )


class VersionRows(CopyStream):
    """Rows of ``(id uuid, xmin xid)``: which rows a collection holds, and their versions."""

    def __init__(self) -> None:
        super().__init__()
        self._dtype = _version_dtype()
        self._ids: list[IdArray] = []
        self._versions: list[Versions] = []

    def _rows(self, data: bytes) -> int:
        size = self._dtype.itemsize
        count = len(data) // size
        if not count:
            return 0
        rows = np.frombuffer(data, self._dtype, count)
        wrong = (
            (rows["fields"] != 2) | (rows["id_size"] != UUID_BYTES) | (rows["version_size"] != 4)
        )
        if wrong.any():
            raise CopyFormatError("a version row is not (uuid, xid)")
        self._ids.append(np.ascontiguousarray(rows["id"]))
        self._versions.append(rows["version"].astype(np.uint32))
        return count * size

    def result(self) -> tuple[IdArray, Versions]:
        """The ids read and their versions."""
        if not self._ids:
            return np.empty((0, UUID_BYTES), np.uint8), np.empty(0, np.uint32)
        return np.concatenate(self._ids), np.concatenate(self._versions)


class SubjectRows(CopyStream):
    """Rows of ``(id uuid, name text)``."""

    def __init__(self) -> None:
        super().__init__()
        self._ids: list[bytes] = []
        self._names: list[bytes] = []

    def _rows(self, data: bytes) -> int:
        at, end = 0, len(data)
        unpack = struct.unpack_from
        while at + 26 <= end:
            fields, id_size = unpack(">hi", data, at)
            if fields == -1:
                break
            if fields != 2 or id_size != UUID_BYTES:
                raise CopyFormatError("a subject row is not (uuid, text)")
            (name_size,) = unpack(">i", data, at + 22)
            if at + 26 + name_size > end:
                break
            self._ids.append(data[at + 6 : at + 22])
            self._names.append(data[at + 26 : at + 26 + name_size])
            at += 26 + name_size
        return at

    def batch(self) -> SubjectBatch:
        """The subjects read."""
        offsets = np.zeros(len(self._names) + 1, dtype=np.int64)
        np.cumsum([len(n) for n in self._names], out=offsets[1:])
        ids = np.frombuffer(b"".join(self._ids), np.uint8).reshape(-1, UUID_BYTES).copy()
        return SubjectBatch(ids, b"".join(self._names), offsets)

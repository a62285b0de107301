"""A collection's index on the node's local disk, so that a restarted node serves a large
collection at once instead of reading every row from PostgreSQL and training its approximate
part again (``FACEGRID_INDEX_CACHE_DIR``; docs/api_svc.md "Index files").

One file per collection, ``<service id>.index``: its rows (unit vectors, image ids, subject rows,
labels and row versions), the image id map, the subjects and the trained IVF index in FAISS's own
format, then a JSON header saying where each part lies, with the sequence number and calculator
the rows belong to. Each section carries its CRC-32, checked as it is read (a damaged file is
refused, not served: about 0.1 s a 256 MB section here). It is written to a temporary name,
flushed to disk and renamed over the old one, so a reader finds a whole file or none. Reading
allocates each row array with room to grow and reads the file straight into it (no intermediate
copy). The registry trusts a file only as a starting point: it asks the database what changed
since (``IndexSource.catch_up``: the row versions tell new and changed rows apart from those the
file holds).
"""

from __future__ import annotations

import json
import os
import struct
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
import numpy.typing as npt

from api_svc.ann import IvfSearch
from api_svc.face_index import FaceIndex, IndexParts, IndexSettings
from api_svc.face_rows import SubjectBatch
from api_svc.uuid_map import UuidMapParts

MAGIC: Final = b"FGINDEX\n"
#: Version of the layout below; a file of another is not read.
FORMAT: Final = 2
_TRAILER: Final = struct.Struct("<Q8s")
_ALIGN: Final = 64
#: Rows of room a row array read from a file gets, as a multiple of its rows.
ROOM: Final = 2
#: Largest single read or write (Linux moves at most about 2 GiB per call).
_IO_CHUNK: Final = 1 << 30


class IndexFileError(ValueError):
    """A file that is not a whole index file of this format for this collection."""


@dataclass(frozen=True, slots=True)
class CachedIndex:
    """An index read from a file, and the seq its rows belong to."""

    seq: int
    index: FaceIndex
    nbytes: int
    """Size of the file, bytes."""


def _write_all(out: IO[bytes], data: memoryview) -> int:
    """Writes ``data``; returns its CRC-32."""
    view = data.cast("B")
    crc = 0
    for start in range(0, len(view), _IO_CHUNK):
        chunk = view[start : start + _IO_CHUNK]
        out.write(chunk)
        crc = zlib.crc32(chunk, crc)
    return crc


def _read_into(source: IO[bytes], target: memoryview) -> int:
    """Fills ``target`` from ``source``; returns the CRC-32 of what it read."""
    view = target.cast("B")
    done = crc = 0
    while done < len(view):
        got = source.readinto(view[done : done + _IO_CHUNK])  # type: ignore[attr-defined]
        if not got:
            raise IndexFileError("index file ended early")
        crc = zlib.crc32(view[done : done + got], crc)
        done += got
    return crc


def _check(name: str, section: dict[str, Any], crc: int) -> None:
    if int(section["crc32"]) != crc:
        raise IndexFileError(f"section {name} is damaged (CRC-32 differs)")


class _Writer:
    """Appends aligned sections to a file and records where they lie."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self.sections: dict[str, dict[str, Any]] = {}

    def _align(self) -> None:
        pad = -self._out.tell() % _ALIGN
        if pad:
            self._out.write(b"\0" * pad)

    def array(self, name: str, array: npt.NDArray[Any]) -> None:
        self._align()
        contiguous = np.ascontiguousarray(array)
        section = {
            "offset": self._out.tell(),
            "dtype": contiguous.dtype.str,
            "shape": list(contiguous.shape),
            "crc32": 0,
        }
        if contiguous.nbytes:
            section["crc32"] = _write_all(self._out, memoryview(contiguous))  # type: ignore[arg-type]
        self.sections[name] = section

    def blob(self, name: str, write: Any) -> bool:
        self._align()
        start = self._out.tell()
        crc = 0

        def checked(data: bytes) -> None:
            nonlocal crc
            crc = zlib.crc32(data, crc)
            self._out.write(data)

        written = bool(write(checked))
        self.sections[name] = {"offset": start, "nbytes": self._out.tell() - start, "crc32": crc}
        return written


class IndexFiles:
    """Index files of the collections in one directory."""

    def __init__(self, directory: Path, settings: IndexSettings | None = None) -> None:
        self.directory = directory
        self.settings = settings or IndexSettings()

    def path(self, service_id: uuid.UUID) -> Path:
        """Where the collection's file lives."""
        return self.directory / f"{service_id}.index"

    def remove(self, service_id: uuid.UUID) -> None:
        """Removes the collection's file, if any."""
        self.path(service_id).unlink(missing_ok=True)

    def write(self, service_id: uuid.UUID, seq: int, index: FaceIndex) -> int:
        """Writes the index (changes to it wait meanwhile, searches do not) as of ``seq``;
        returns the file's size in bytes. Blocking: run it in a worker thread."""
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.path(service_id)
        for stale in self.directory.glob(f"{service_id}.index.tmp*"):
            stale.unlink(missing_ok=True)
        temporary = final.with_name(f"{final.name}.tmp{os.getpid()}")
        try:
            with temporary.open("wb", buffering=1 << 20) as out:
                out.write(MAGIC)
                with index.paused() as parts:
                    header = self._write_parts(out, service_id, seq, parts)
                encoded = json.dumps(header).encode()
                out.write(encoded)
                out.write(_TRAILER.pack(len(encoded), MAGIC))
                out.flush()
                os.fsync(out.fileno())
                size = out.tell()
            os.replace(temporary, final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return size

    @staticmethod
    def _write_parts(
        out: IO[bytes], service_id: uuid.UUID, seq: int, parts: IndexParts
    ) -> dict[str, Any]:
        writer = _Writer(out)
        for name in ("vectors", "image_ids", "subject_rows", "labels", "versions"):
            writer.array(name, getattr(parts, name))
        writer.array("id_hi", parts.ids.hi)
        writer.array("id_lo", parts.ids.lo)
        writer.array("id_values", parts.ids.values)
        writer.array("recent_keys", parts.ids.recent_keys)
        writer.array("recent_values", parts.ids.recent_values)
        writer.array("subject_ids", parts.subjects.ids)
        writer.array("subject_names", np.frombuffer(parts.subjects.names, np.uint8))
        writer.array("subject_offsets", parts.subjects.offsets)
        ann = parts.ann
        has_ann = ann is not None and writer.blob("ann", ann.write)
        return {
            "format": FORMAT,
            "service": str(service_id),
            "seq": seq,
            "calculator": parts.calculator,
            "dim": parts.dim,
            "count": parts.count,
            "next_label": parts.next_label,
            "ann_trained_on": ann.trained_on if has_ann and ann is not None else None,
            "sections": writer.sections,
        }

    def read(self, service_id: uuid.UUID) -> CachedIndex | None:
        """The collection's index as its file holds it, None without a file; raises
        IndexFileError for a file that is not a whole one of this format for it. Blocking."""
        path = self.path(service_id)
        try:
            source = path.open("rb", buffering=0)
        except FileNotFoundError:
            return None
        with source:
            size = os.fstat(source.fileno()).st_size
            header = _header(source, size)
            if header.get("format") != FORMAT or header.get("service") != str(service_id):
                raise IndexFileError(f"{path} is not a format {FORMAT} file of {service_id}")
            try:
                parts = self._parts(source, header)
            except (KeyError, TypeError, ValueError) as exc:
                raise IndexFileError(f"{path} is damaged: {exc}") from exc
        return CachedIndex(int(header["seq"]), FaceIndex.from_parts(parts, self.settings), size)

    def _parts(self, source: IO[bytes], header: dict[str, Any]) -> IndexParts:
        sections = header["sections"]
        count, dim = int(header["count"]), int(header["dim"])

        def array(name: str, rows: int | None = None, room: int = 1) -> npt.NDArray[Any]:
            section = sections[name]
            shape = tuple(int(n) for n in section["shape"])
            if rows is not None and (not shape or shape[0] != rows):
                raise IndexFileError(f"section {name} has shape {shape}, not {rows} rows")
            made = np.empty((max(shape[0] * room, 1), *shape[1:]), np.dtype(section["dtype"]))
            target = made[: shape[0]]
            source.seek(int(section["offset"]))
            crc = _read_into(source, memoryview(target)) if target.nbytes else 0  # type: ignore[arg-type]
            _check(name, section, crc)
            return target

        vectors = array("vectors", count, ROOM)
        if vectors.shape[1:] != (dim,) or vectors.dtype != np.float32:
            raise IndexFileError(f"vectors are {vectors.shape} {vectors.dtype}, not {dim} floats")
        ids = UuidMapParts(
            array("id_hi"),
            array("id_lo"),
            array("id_values"),
            array("recent_keys"),
            array("recent_values"),
        )
        subjects = SubjectBatch(
            array("subject_ids"),
            array("subject_names").tobytes(),
            array("subject_offsets"),
        )
        ann = None
        if header.get("ann_trained_on") is not None:
            section = sections["ann"]
            source.seek(int(section["offset"]))
            blob = bytearray(int(section["nbytes"]))
            _check("ann", section, _read_into(source, memoryview(blob)))  # before FAISS parses it
            done = 0

            def read(wanted: int) -> bytes:
                nonlocal done
                got = bytes(blob[done : done + wanted])
                done += len(got)
                return got

            ann = IvfSearch.read(read, int(header["ann_trained_on"]), self.settings.device)
            del blob
        return IndexParts(
            calculator=str(header["calculator"]),
            dim=dim,
            count=count,
            next_label=int(header["next_label"]),
            vectors=vectors,
            image_ids=array("image_ids", count, ROOM),
            subject_rows=array("subject_rows", count, ROOM),
            labels=array("labels", count, ROOM),
            versions=array("versions", count, ROOM),
            subjects=subjects,
            ids=ids,
            ann=ann,
        )


def _header(source: IO[bytes], size: int) -> dict[str, Any]:
    if size < len(MAGIC) + _TRAILER.size:
        raise IndexFileError("index file too short")
    source.seek(0)
    start = source.read(len(MAGIC))
    source.seek(size - _TRAILER.size)
    length, end = _TRAILER.unpack(source.read(_TRAILER.size))
    if start != MAGIC or end != MAGIC or length > size - _TRAILER.size - len(MAGIC):
        raise IndexFileError("not a whole index file")
    source.seek(size - _TRAILER.size - length)
    try:
        header = json.loads(source.read(length))
    except ValueError as exc:
        raise IndexFileError(f"index file header unreadable: {exc}") from exc
    if not isinstance(header, dict):
        raise IndexFileError("index file header is not an object")
    return header

"""Embeddings sent by clients (verification and recognition embedding endpoints):
checked against the calculator's size before any distance is taken."""

from __future__ import annotations

import math
from collections.abc import Sequence

from google.protobuf import struct_pb2

from facegrid.errors import ServiceError, invalid_argument

#: CompreFace's code for a wrong number of embeddings.
WRONG_EMBEDDING_COUNT = 37


def wrong_count(message: str, field: str) -> ServiceError:
    """Too few embeddings in ``field`` (CompreFace's code 37)."""
    return invalid_argument("WRONG_EMBEDDING_COUNT", message, WRONG_EMBEDDING_COUNT, field=field)


def checked_vector(values: Sequence[object], size: int, field: str) -> list[float]:
    """``values`` as floats: ``size`` finite numbers, not all zero; else ServiceError (26)."""
    if len(values) != size:
        raise invalid_argument(
            "WRONG_EMBEDDING_SIZE",
            f"{field} has {len(values)} values; the calculator's embeddings have {size}",
            field=field,
        )
    if not all(isinstance(v, float | int) and math.isfinite(v) for v in values):
        raise invalid_argument(
            "INVALID_EMBEDDING", f"{field} must hold finite numbers only", field=field
        )
    vector = [float(v) for v in values]  # type: ignore[arg-type]
    if not any(vector):
        raise invalid_argument("INVALID_EMBEDDING", f"{field} is all zeros", field=field)
    return vector


def list_values(value: struct_pb2.ListValue) -> list[object]:
    """The items of a JSON array: numbers as floats, anything else as None."""
    return [
        item.number_value if item.WhichOneof("kind") == "number_value" else None
        for item in value.values
    ]


def checked_vectors(
    values: Sequence[struct_pb2.ListValue], size: int, field: str
) -> list[list[float]]:
    """Each array of ``values`` checked as an embedding named ``field[i]``."""
    return [checked_vector(list_values(v), size, f"{field}[{i}]") for i, v in enumerate(values)]

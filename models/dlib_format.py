"""Reader for dlib's serialization format (``dlib/serialize.h``, ``dlib/cuda/tensor.h``).

Only what dlib's DNN ``.dat`` files use: integers in dlib's variable-length encoding (one control
byte holding the byte count, or'ed with 0x80 for negatives, then little-endian bytes), floats as a
mantissa/exponent integer pair, strings as a length and bytes, booleans as the characters
``'0'``/``'1'``, and tensors as a version (2), four dimensions and raw little-endian float32.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

#: float_details exponents that mark special values (dlib/float_details.h).
_EXPONENT_INF = 32000
_EXPONENT_NINF = 32001
_EXPONENT_NAN = 32002


class DlibFormatError(ValueError):
    """The bytes do not follow dlib's serialization format where the reader expected them to."""


class DlibReader:
    """Sequential reader over the bytes of a dlib-serialized object."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def position(self) -> int:
        """Offset of the next unread byte."""
        return self._pos

    @property
    def remaining(self) -> int:
        """Number of unread bytes."""
        return len(self._data) - self._pos

    def _take(self, size: int) -> bytes:
        if size > self.remaining:
            raise DlibFormatError(f"need {size} bytes at offset {self._pos}, {self.remaining} left")
        chunk = self._data[self._pos : self._pos + size]
        self._pos += size
        return chunk

    def integer(self) -> int:
        """A signed or unsigned integer (dlib's ``pack_int``)."""
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise DlibFormatError(f"bad integer control byte {control:#x} at {self._pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def expect_integer(self, expected: int, what: str) -> None:
        """Reads an integer that must equal ``expected`` (a version number, a fixed size)."""
        at = self._pos
        value = self.integer()
        if value != expected:
            raise DlibFormatError(f"{what}: expected {expected}, found {value} at {at}")

    def floating(self) -> float:
        """A float or double (dlib's ``float_details``: mantissa x 2**exponent)."""
        mantissa = self.integer()
        exponent = self.integer()
        if exponent == _EXPONENT_INF:
            return math.inf
        if exponent == _EXPONENT_NINF:
            return -math.inf
        if exponent == _EXPONENT_NAN:
            return math.nan
        return math.ldexp(float(mantissa), exponent)

    def string(self) -> str:
        """A std::string."""
        return self._take(self.integer()).decode("latin-1")

    def expect_string(self, *allowed: str) -> str:
        """Reads a string that must be one of ``allowed`` (a layer's version tag)."""
        at = self._pos
        value = self.string()
        if value not in allowed:
            raise DlibFormatError(f"expected one of {allowed}, found {value!r} at {at}")
        return value

    def boolean(self) -> bool:
        """A bool, stored as the character '0' or '1'."""
        char = self._take(1)
        if char not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool {char!r} at {self._pos - 1}")
        return char == b"1"

    def tensor(self) -> NDArray[np.float32]:
        """A resizable_tensor: float32 array of shape (num_samples, k, nr, nc)."""
        self.expect_integer(2, "tensor version")
        shape = tuple(self.integer() for _ in range(4))
        count = math.prod(shape)
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        """An alias_tensor: only its shape (num_samples, k, nr, nc) is stored."""
        self.expect_integer(1, "alias_tensor version")
        n, k, nr, nc = (self.integer() for _ in range(4))
        return (n, k, nr, nc)

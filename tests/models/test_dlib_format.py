"""dlib's serialization format: integers, floats, strings, bools and tensors as dlib writes them."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from models.dlib_format import DlibFormatError, DlibReader


def test_integers_use_a_control_byte_with_size_and_sign() -> None:
    reader = DlibReader(bytes([0x01, 0x00, 0x01, 0x96, 0x02, 0x10, 0x27, 0x81, 0x04]))
    assert [reader.integer() for _ in range(4)] == [0, 150, 10000, -4]
    assert reader.remaining == 0


def test_floats_are_mantissa_times_two_to_the_exponent() -> None:
    # 122.782 as dlib stores the input layer's mean: mantissa 16093282, exponent -17.
    reader = DlibReader(bytes([0x03, 0x62, 0x90, 0xF5, 0x81, 0x11, 0x01, 0x10, 0x81, 0x04]))
    assert reader.floating() == pytest.approx(122.782, abs=1e-5)
    assert reader.floating() == 1.0


def test_special_float_exponents() -> None:
    inf = bytes([0x01, 0x00, 0x02]) + (32000).to_bytes(2, "little")
    nan = bytes([0x01, 0x00, 0x02]) + (32002).to_bytes(2, "little")
    reader = DlibReader(inf + nan)
    assert reader.floating() == math.inf
    assert math.isnan(reader.floating())


def test_strings_bools_and_tensors() -> None:
    values = np.array([1.5, -2.0, 0.25, 3.0, 4.0, 5.0], dtype="<f4")
    data = (
        bytes([0x01, 0x05])
        + b"relu_"
        + b"10"
        + bytes([0x01, 0x02, 0x01, 0x01, 0x01, 0x02, 0x01, 0x03, 0x01, 0x01])
        + values.tobytes()
    )
    reader = DlibReader(data)
    assert reader.expect_string("relu_") == "relu_"
    assert (reader.boolean(), reader.boolean()) == (True, False)
    tensor = reader.tensor()
    assert tensor.shape == (1, 2, 3, 1)
    np.testing.assert_array_equal(tensor.reshape(-1), values)


def test_malformed_input_is_refused() -> None:
    with pytest.raises(DlibFormatError):
        DlibReader(bytes([0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0])).integer()  # 9-byte integer
    with pytest.raises(DlibFormatError):
        DlibReader(bytes([0x01, 0x04]) + b"con_").expect_string("relu_")
    with pytest.raises(DlibFormatError):
        DlibReader(b"x").boolean()
    with pytest.raises(DlibFormatError):
        DlibReader(
            bytes([0x01, 0x02, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x02])
            + struct.pack("<f", 1.0)
        ).tensor()
    with pytest.raises(DlibFormatError):
        DlibReader(bytes([0x01, 0x03])).expect_integer(2, "version")

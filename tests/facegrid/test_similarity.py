"""CompreFace's similarity scale: 0.5 at c0, falling with distance, the same for one distance or
many."""

from __future__ import annotations

import numpy as np
import pytest

from facegrid.similarity import Calibration

DLIB = Calibration(c0=0.3761, c1=18.67)


def test_half_at_the_equal_error_distance_and_falling_with_distance() -> None:
    assert DLIB.similarity(0.3761) == pytest.approx(0.5)
    values = DLIB.similarities([0.0, 0.2, 0.3761, 0.6, 1.2])
    assert np.all(np.diff(values) < 0)
    assert values[0] > 0.999 and values[-1] < 0.001


def test_one_distance_or_many_give_the_same_numbers() -> None:
    distances = np.linspace(0.0, 2.0, 9)
    assert [DLIB.similarity(float(d)) for d in distances] == pytest.approx(
        list(DLIB.similarities(distances))
    )

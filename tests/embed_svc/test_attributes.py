"""Age and gender decoding: CompreFace's age ranges with their probability mass."""

from __future__ import annotations

import numpy as np
import pytest

from embed_svc.attributes import AGE_RANGES, age_from_distribution, gender_from_probability


def test_age_range_holds_the_most_mass() -> None:
    distribution = np.zeros(100, dtype=np.float32)
    distribution[27:31] = 0.2  # 0.8 in 25-32
    distribution[40] = 0.2
    age = age_from_distribution(distribution)
    assert (age.low, age.high) == (25, 32)
    assert age.probability == pytest.approx(0.8)
    assert age.years == pytest.approx(0.2 * (27 + 28 + 29 + 30) + 0.2 * 40)


@pytest.mark.parametrize(
    ("years", "expected"),
    [(22, (15, 20)), (23, (25, 32)), (34, (25, 32)), (36, (38, 43)), (99, (60, 100))],
)
def test_ages_between_ranges_go_to_the_nearer_range(years: int, expected: tuple[int, int]) -> None:
    distribution = np.zeros(100, dtype=np.float32)
    distribution[years] = 1.0
    age = age_from_distribution(distribution)
    assert (age.low, age.high, age.probability) == (*expected, pytest.approx(1.0))


def test_unnormalised_scores_are_normalised() -> None:
    distribution = np.zeros(100, dtype=np.float32)
    distribution[70:80] = 5.0
    age = age_from_distribution(distribution)
    assert (age.low, age.high) == AGE_RANGES[-1]
    assert age.probability == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("male", "value", "probability"),
    [(0.9, "male", 0.9), (0.2, "female", 0.8), (0.5, "male", 0.5), (1.3, "male", 1.0)],
)
def test_gender(male: float, value: str, probability: float) -> None:
    gender = gender_from_probability(male)
    assert (gender.value, gender.probability) == (value, pytest.approx(probability))

"""CompreFace's similarity formula, rounding, and the calibration cache."""

from __future__ import annotations

import math

import numpy as np
import pytest

from api_svc.similarity import Calculators, round5, similarities
from facegrid.errors import ServiceError
from facegrid.similarity import Calibration
from tests.api_svc.fakes import DLIB, FakeEmbed


def test_similarity_is_the_calibrated_tanh_of_the_normalised_distance() -> None:
    calibration = Calibration(c0=1.1817961, c1=5.291995557)
    source = [3.0, 4.0]  # normalised: (0.6, 0.8)
    targets = [[6.0, 8.0], [0.0, 2.0], [-3.0, -4.0]]
    expected = []
    for target in targets:
        t = np.asarray(target) / np.linalg.norm(target)
        d = float(np.linalg.norm(t - np.array([0.6, 0.8])))
        expected.append(round5((math.tanh((1.1817961 - d) * 5.291995557) + 1) / 2))
    assert similarities(source, targets, calibration) == expected
    assert expected[0] > 0.99 and expected[2] < 0.01


def test_round5_rounds_halves_up() -> None:
    assert round5(0.123455) == 0.12346
    assert round5(0.999996) == 1.0
    assert round5(0.5) == 0.5


async def test_calculators_are_fetched_once_then_again_for_an_unknown_name() -> None:
    embed = FakeEmbed(embedding_size=128, calibration=(0.38, 18.7))
    calculators = Calculators(embed, max_age_s=60)
    default = await calculators.get(None)
    assert (default.name, default.embedding_size) == (DLIB, 128)
    assert default.calibration == Calibration(0.38, 18.7)
    assert (await calculators.get(DLIB)) == default
    assert embed.status_calls == 1
    with pytest.raises(ServiceError) as raised:
        await calculators.get("mobileface")
    assert raised.value.reason == "CALCULATOR_UNAVAILABLE"
    assert embed.status_calls == 2


async def test_calculators_are_refreshed_after_max_age() -> None:
    now = [0.0]
    embed = FakeEmbed()
    calculators = Calculators(embed, max_age_s=60, clock=lambda: now[0])
    await calculators.get(None)
    embed.calibration = (0.4, 12.0)
    now[0] = 59.0
    assert (await calculators.get(None)).calibration.c1 == 10.0
    now[0] = 61.0
    assert (await calculators.get(None)).calibration.c1 == 12.0
    assert embed.status_calls == 2

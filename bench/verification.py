"""Verification statistics: 10-fold accuracy, equal-error point, similarity calibration.

Distances are Euclidean between L2-normalised embeddings; a pair with a photo in which the
pipeline found no face has distance NaN and counts as an error at every threshold.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from facegrid.similarity import Calibration


@dataclass(frozen=True)
class Folds:
    """Distances and labels of a protocol's pairs, by fold."""

    distances: list[np.ndarray]
    """Per fold: distance of each pair (NaN: a face was not found)."""
    same: list[np.ndarray]
    """Per fold: True for a genuine pair."""

    def all(self) -> tuple[np.ndarray, np.ndarray]:
        """(distances, same) over every fold."""
        return np.concatenate(self.distances), np.concatenate(self.same)


def accuracy_at(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Share of pairs decided right at a distance threshold (genuine when d <= threshold)."""
    with np.errstate(invalid="ignore"):
        accepted = distances <= threshold
    right = np.where(np.isnan(distances), False, accepted == same)
    return float(right.mean())


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The distance threshold of highest accuracy (middle of the best run of candidates)."""
    found = ~np.isnan(distances)
    order = np.argsort(distances[found], kind="stable")
    d = distances[found][order]
    labels = same[found][order]
    # Accepting the k closest pairs (k = 0..n): genuine among them + impostors after them.
    genuine_before = np.concatenate([[0], np.cumsum(labels)])
    impostor_after = (~labels).sum() - np.concatenate([[0], np.cumsum(~labels)])
    right = genuine_before + impostor_after
    candidates = np.concatenate([[d[0] - 1e-6], (d[:-1] + d[1:]) / 2, [d[-1] + 1e-6]])
    best = np.flatnonzero(right == right.max())
    return float((candidates[best[0]] + candidates[best[-1]]) / 2)


def ten_fold(folds: Folds) -> tuple[float, float, list[float]]:
    """(mean accuracy, standard deviation, per-fold accuracies): each fold is scored at the
    threshold that is best on the other folds (the usual 10-fold verification protocol)."""
    scores = []
    for k in range(len(folds.distances)):
        train_d = np.concatenate([d for i, d in enumerate(folds.distances) if i != k])
        train_s = np.concatenate([s for i, s in enumerate(folds.same) if i != k])
        threshold = best_threshold(train_d, train_s)
        scores.append(accuracy_at(folds.distances[k], folds.same[k], threshold))
    return float(np.mean(scores)), float(np.std(scores)), scores


def equal_error(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(equal-error rate, distance threshold) over pairs with both faces found: the threshold
    where false accepts and false rejects are closest (middle of a tied range)."""
    found = ~np.isnan(distances)
    genuine = np.sort(distances[found & same])
    impostor = np.sort(distances[found & ~same])
    values = np.unique(np.concatenate([genuine, impostor]))
    candidates = (values[:-1] + values[1:]) / 2
    far = np.searchsorted(impostor, candidates, side="right") / len(impostor)
    frr = 1.0 - np.searchsorted(genuine, candidates, side="right") / len(genuine)
    gap = np.abs(far - frr)
    best = np.flatnonzero(gap <= gap.min() + 1e-12)
    rate = float(((far + frr) / 2)[best].mean())
    return rate, float((candidates[best[0]] + candidates[best[-1]]) / 2)


def fit_slope(distances: np.ndarray, same: np.ndarray, c0: float) -> float:
    """c1 maximising the class-balanced likelihood of P(same | d) = (tanh((c0 - d) c1) + 1) / 2
    over pairs with both faces found (golden-section search on a unimodal loss)."""
    found = ~np.isnan(distances)
    genuine = distances[found & same]
    impostor = distances[found & ~same]

    def loss(c1: float) -> float:
        def nll(d: np.ndarray, sign: float) -> float:
            return float(np.logaddexp(0.0, -2.0 * c1 * (c0 - d) * sign).mean())

        return nll(genuine, 1.0) + nll(impostor, -1.0)

    low, high = 0.1, 1000.0
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(100):
        a = high - (high - low) * ratio
        b = low + (high - low) * ratio
        if loss(a) < loss(b):
            high = b
        else:
            low = a
    return (low + high) / 2


def calibrate(folds: Folds) -> Calibration:
    """c0 = the equal-error distance, c1 = the balanced maximum-likelihood slope."""
    distances, same = folds.all()
    _, c0 = equal_error(distances, same)
    return Calibration(c0, fit_slope(distances, same, c0))


def reliability(
    distances: np.ndarray, same: np.ndarray, scale: Calibration, edges: tuple[float, ...]
) -> list[tuple[float, float, int, float, float]]:
    """Per similarity bucket [low, high): (low, high, pairs, mean predicted similarity,
    observed share of genuine pairs), with genuine and impostor pairs weighted equally (the
    similarity reads as a probability at even odds)."""
    found = ~np.isnan(distances)
    similarity = scale.similarities(distances[found])
    labels = same[found]
    weights = np.where(labels, 0.5 / labels.sum(), 0.5 / (~labels).sum())
    rows = []
    for low, high in itertools.pairwise(edges):
        inside = (similarity >= low) & ((similarity < high) | (high >= 1.0))
        if not inside.any():
            rows.append((low, high, 0, math.nan, math.nan))
            continue
        w = weights[inside]
        predicted = float((similarity[inside] * w).sum() / w.sum())
        observed = float((labels[inside] * w).sum() / w.sum())
        rows.append((low, high, int(inside.sum()), predicted, observed))
    return rows

"""CompreFace's similarity scale, one definition for every service, bench and test.

``similarity = (tanh((c0 - d) * c1) + 1) / 2``, where d is the Euclidean distance between
L2-normalised embeddings and (c0, c1) belong to the calculator that made them: 0.5 at d = c0
(the equal-error distance measured by bench/accuracy.py), towards 1 for closer faces.
embed_svc publishes each calculator's pair in GetStatus.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


def normalised(vectors: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Rows scaled to unit length (float64); a zero row stays zero."""
    array = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return np.divide(array, norms, out=np.zeros_like(array), where=norms > 0)


@dataclass(frozen=True, slots=True)
class Calibration:
    """Distance-to-similarity mapping of one calculator."""

    c0: float
    """Distance at which similarity is 0.5 (the equal-error threshold)."""
    c1: float
    """Steepness, per unit of distance."""

    def similarities(self, distances: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Similarity 0..1 for each distance."""
        d = np.asarray(distances, dtype=np.float64)
        return (np.tanh((self.c0 - d) * self.c1) + 1.0) / 2.0

    def similarity(self, distance: float) -> float:
        """Similarity 0..1 of two faces at ``distance``."""
        return float(self.similarities(distance))

"""CompreFace's similarity of two faces, with the calibration embed_svc publishes.

``similarity = (tanh((c0 - d) * c1) + 1) / 2`` where d is the Euclidean distance of the
L2-normalised embeddings and (c0, c1) belong to the calculator that made them (GetStatus). The
calculators are fetched once, and again when a name not seen before comes up (embed_svc switched
calculator) or when the copy is older than ``max_age_s``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import numpy as np
import numpy.typing as npt

from api_svc.embed_client import EmbedClient
from facegrid.errors import ServiceError
from facegrid.similarity import Calibration, normalised


@dataclass(frozen=True, slots=True)
class CalculatorModel:
    """A calculator embed_svc offers."""

    name: str
    embedding_size: int
    calibration: Calibration
    is_default: bool
    version: str = ""
    """The version embed_svc serves, stored with the embeddings it makes."""


def round5(value: float) -> float:
    """``value`` rounded to 5 decimals, halves up (CompreFace's BigDecimal HALF_UP)."""
    return math.floor(value * 100_000 + 0.5) / 100_000


def similarities(
    source: npt.ArrayLike, targets: npt.ArrayLike, calibration: Calibration
) -> list[float]:
    """Similarity of ``source`` to each row of ``targets``, rounded to 5 decimals."""
    distances = np.linalg.norm(normalised(targets) - normalised(source)[0], axis=1)
    return [round5(float(v)) for v in calibration.similarities(distances)]


def _unavailable(name: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        "CALCULATOR_UNAVAILABLE",
        f"calculator {name} is not available in the embedding service",
        26,
        {"calculator": name},
    )


class Calculators:
    """embed_svc's calculators and calibrations, kept current."""

    def __init__(
        self,
        embed: EmbedClient,
        max_age_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._embed = embed
        self._max_age_s = max_age_s
        self._clock = clock
        self._models: dict[str, CalculatorModel] = {}
        self._fetched_at = -math.inf
        self._lock = asyncio.Lock()

    async def get(self, name: str | None) -> CalculatorModel:
        """The calculator ``name``, or embed_svc's default when None."""
        model = self._find(name) if self._fresh() else None
        if model is None:
            await self._refresh()
            model = self._find(name)
        if model is None:
            raise _unavailable(name or "default")
        return model

    async def models(self) -> dict[str, CalculatorModel]:
        """Every calculator embed_svc offers, by name (fetched again when the copy is old)."""
        if not self._fresh():
            await self._refresh()
        return dict(self._models)

    def _fresh(self) -> bool:
        return self._clock() - self._fetched_at < self._max_age_s

    def _find(self, name: str | None) -> CalculatorModel | None:
        if name is None:
            return next((m for m in self._models.values() if m.is_default), None)
        return self._models.get(name)

    async def _refresh(self) -> None:
        fetched_before = self._fetched_at
        async with self._lock:
            if self._fetched_at != fetched_before:
                return  # another request refreshed meanwhile
            status = await self._embed.status()
            self._models = {
                c.model.name: CalculatorModel(
                    c.model.name,
                    c.embedding_size,
                    Calibration(c.calibration.c0, c.calibration.c1),
                    c.is_default,
                    c.model.version,
                )
                for c in status.calculators
            }
            self._fetched_at = self._clock()

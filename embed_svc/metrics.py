"""embed_svc's own Prometheus metrics: the batches it sends to the inference backend.

:class:`MeasuredBackend` wraps the backend (Triton or onnxruntime) and observes, per model,

| metric | type | meaning |
|---|---|---|
| ``facegrid_embed_batch_size`` | histogram | inputs per inference call (first dimension) |
| ``facegrid_embed_inference_seconds`` | histogram | time of one inference call |
| ``facegrid_embed_inference_failures_total`` | counter | calls that raised |

Triton's own metrics (queue time, its dynamic batches) are on Triton's metrics port.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram

from embed_svc.backends import InferenceBackend
from embed_svc.types import FloatArray, InputArray

#: Batch sizes: one face, a group photo, a migration batch and its mirror images.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
#: Seconds: a small network on a GPU to a large batch on a busy CPU.
INFERENCE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class MeasuredBackend:
    """An InferenceBackend that records every inference call; everything else is delegated."""

    def __init__(self, backend: InferenceBackend, registry: CollectorRegistry) -> None:
        self._backend = backend
        self._batch = Histogram(
            "facegrid_embed_batch_size",
            "Inputs per inference call.",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self._seconds = Histogram(
            "facegrid_embed_inference_seconds",
            "Time of one inference call, seconds.",
            ["model"],
            buckets=INFERENCE_BUCKETS,
            registry=registry,
        )
        self._failures = Counter(
            "facegrid_embed_inference_failures",
            "Inference calls that raised.",
            ["model"],
            registry=registry,
        )

    @property
    def name(self) -> str:
        """The wrapped backend's name."""
        return self._backend.name

    async def infer(
        self, model: str, inputs: Mapping[str, InputArray], outputs: Sequence[str]
    ) -> dict[str, FloatArray]:
        """Runs ``model`` on the wrapped backend, recording the batch and its time."""
        batch = next(iter(inputs.values())).shape[0] if inputs else 0
        self._batch.labels(model).observe(batch)
        started = time.perf_counter()
        try:
            return await self._backend.infer(model, inputs, outputs)
        except Exception:
            self._failures.labels(model).inc()
            raise
        finally:
            self._seconds.labels(model).observe(time.perf_counter() - started)

    async def ready_models(self) -> frozenset[str]:
        """The wrapped backend's ready models."""
        return await self._backend.ready_models()

    async def max_batch_size(self, model: str) -> int:
        """The wrapped backend's batch limit of ``model``."""
        return await self._backend.max_batch_size(model)

    async def close(self) -> None:
        """Closes the wrapped backend."""
        await self._backend.close()

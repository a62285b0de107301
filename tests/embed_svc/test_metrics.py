"""embed_svc's batch metrics: every inference call's batch size and time, per model."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from embed_svc import catalog
from embed_svc.backends.base import BackendUnavailable
from embed_svc.metrics import MeasuredBackend
from tests.embed_svc.fakes import FakeBackend


async def test_batches_are_observed_per_model_and_failures_counted() -> None:
    registry = CollectorRegistry()
    fake = FakeBackend()
    backend = MeasuredBackend(fake, registry)
    model = catalog.DLIB_RESNET.model
    for size in (1, 3, 40):
        chips = np.zeros((size, 150, 150, 3), dtype=np.float32)
        await backend.infer(model, {"input": chips}, ["output"])
    fake.up = False
    with pytest.raises(BackendUnavailable):
        await backend.infer(
            model, {"input": np.zeros((2, 150, 150, 3), dtype=np.float32)}, ["output"]
        )

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"model": model, **labels})

    assert value("facegrid_embed_batch_size_count") == 4
    assert value("facegrid_embed_batch_size_sum") == 1 + 3 + 40 + 2
    assert value("facegrid_embed_batch_size_bucket", le="4.0") == 3  # 1, 3 and 2
    assert value("facegrid_embed_inference_seconds_count") == 4
    assert value("facegrid_embed_inference_failures_total") == 1
    assert backend.name == "fake" and [size for _, size in fake.calls] == [1, 3, 40]

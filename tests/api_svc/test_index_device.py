"""Where approximate indexes go: the selection between CPU and GPU, with a stand-in for
faiss-gpu's module (no GPU here)."""

from __future__ import annotations

import types

import faiss
import numpy as np
import pytest

from api_svc.ann import AnnSettings, IvfSearch
from api_svc.index_device import CPU, choose_device, gpu_count
from facegrid.config import ConfigError


def gpu_faiss(gpus: int) -> types.ModuleType:
    """A faiss-like module with GPU symbols: 'placing' wraps the index and records it."""
    module = types.ModuleType("faiss_gpu_standin")
    placed: list[tuple[str, int]] = []

    class StandardGpuResources:
        pass

    def index_cpu_to_gpu(resources: object, device: int, index: object) -> object:
        placed.append((type(resources).__name__, device))
        return index

    for name, value in {
        "placed": placed,
        "StandardGpuResources": StandardGpuResources,
        "get_num_gpus": lambda: gpus,
        "index_cpu_to_gpu": index_cpu_to_gpu,
    }.items():
        setattr(module, name, value)
    return module


def test_this_faiss_has_no_gpu_and_auto_means_cpu() -> None:
    assert gpu_count(faiss) == 0
    assert choose_device("auto") is CPU
    assert choose_device("cpu", gpu_faiss(1)) is CPU
    with pytest.raises(ConfigError, match="FACEGRID_INDEX_DEVICE=gpu"):
        choose_device("gpu")
    with pytest.raises(ConfigError, match="must be one of"):
        choose_device("tpu")


def test_with_gpu_symbols_and_a_gpu_indexes_go_to_gpu_0() -> None:
    module = gpu_faiss(2)
    device = choose_device("auto", module)
    assert (device.name, device.removes) == ("gpu:0", False)
    assert choose_device("gpu", module).name == "gpu:0"
    assert choose_device("auto", gpu_faiss(0)) is CPU  # faiss-gpu on a machine without a GPU
    vectors = np.random.default_rng(0).normal(size=(500, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ann = IvfSearch.build(vectors, np.arange(500, dtype=np.int64), AnnSettings(), device)
    assert module.placed == [("StandardGpuResources", 0)]
    ann.remove(np.array([3, 4], dtype=np.int64))
    assert ann.tombstones == 2  # kept in the device copy, skipped by searches
    labels = ann.candidates(vectors[3:4], 5)
    assert labels.shape == (1, 7)  # over-fetched by the tombstones

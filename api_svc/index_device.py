"""Where the approximate indexes live: the CPU, or a GPU when FAISS has GPU support and sees one.

``faiss-cpu`` (this project's pin) has no GPU symbols; a deployment that installs ``faiss-gpu``
instead gets ``StandardGpuResources`` and ``get_num_gpus() > 0``, and the same code then clones
each trained approximate index onto GPU 0 (``index_cpu_to_gpu``). FAISS's GPU indexes cannot
remove vectors: on a GPU, removed faces stay in the device copy as tombstones that searches
skip (their labels no longer map to a row) until the index is rebuilt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final

import faiss

from facegrid.config import ConfigError

#: ``FACEGRID_INDEX_DEVICE`` values.
DEVICE_SETTINGS: Final = ("auto", "cpu", "gpu")


@dataclass(frozen=True, slots=True)
class IndexDevice:
    """A place for FAISS indexes."""

    name: str
    """``cpu`` or ``gpu:<n>`` (reported by the node status RPC)."""
    removes: bool
    """Whether indexes placed here support ``remove_ids`` (no on FAISS's GPU indexes)."""
    _place: Callable[[Any], Any]

    def place(self, index: Any) -> Any:
        """``index`` (a trained CPU index) where it is searched."""
        return self._place(index)


CPU: Final = IndexDevice("cpu", True, lambda index: index)


def gpu_count(module: ModuleType) -> int:
    """GPUs the FAISS build can use (0 for a build without GPU support)."""
    if not hasattr(module, "StandardGpuResources") or not hasattr(module, "get_num_gpus"):
        return 0
    return int(module.get_num_gpus())


def choose_device(setting: str, module: ModuleType = faiss) -> IndexDevice:
    """The device for ``setting`` (``auto``: GPU 0 when there is one, else the CPU).

    Raises ConfigError for ``gpu`` without a usable GPU, or an unknown setting."""
    if setting not in DEVICE_SETTINGS:
        raise ConfigError(
            f"FACEGRID_INDEX_DEVICE must be one of {', '.join(DEVICE_SETTINGS)}, got {setting!r}"
        )
    gpus = gpu_count(module) if setting != "cpu" else 0
    if gpus == 0:
        if setting == "gpu":
            raise ConfigError(
                "FACEGRID_INDEX_DEVICE=gpu, but FAISS has no GPU support or sees no GPU "
                "(install faiss-gpu on a machine with a CUDA GPU, or use auto/cpu)"
            )
        return CPU
    resources = module.StandardGpuResources()

    def to_gpu(index: Any) -> Any:
        return module.index_cpu_to_gpu(resources, 0, index)

    return IndexDevice("gpu:0", False, to_gpu)

"""The inference backend interface shared by Triton and in-process onnxruntime, and its errors.

A backend runs one named network on a batch of inputs (uint8 pixels for every model of the
repository) and returns its float32 outputs. The
network names are Triton model names (folders of ``triton_models/``); tensor names are those of
the model's ``config.pbtxt``, which are also the ONNX graph's names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from embed_svc.types import FloatArray, InputArray


class BackendError(RuntimeError):
    """Inference failed for a reason other than the backend being unreachable."""


class BackendUnavailable(BackendError):
    """The backend cannot be reached or did not answer in time; retrying later may work."""


class ModelUnavailable(BackendError):
    """The backend is up but the named model is not loaded or not ready."""

    def __init__(self, model: str) -> None:
        super().__init__(f"model {model!r} is not available")
        self.model = model
        """Name of the missing model."""


class InferenceBackend(Protocol):
    """Runs networks of the model repository on batches of inputs."""

    @property
    def name(self) -> str:
        """Backend name as configured and published in GetStatus (``triton``, ...)."""
        ...

    async def infer(
        self, model: str, inputs: Mapping[str, InputArray], outputs: Sequence[str]
    ) -> dict[str, FloatArray]:
        """Runs ``model`` on one batch (first dimension) and returns the named outputs.

        Raises BackendUnavailable, ModelUnavailable or BackendError.
        """
        ...

    async def ready_models(self) -> frozenset[str]:
        """Names of the models ready to run; raises BackendUnavailable when unreachable."""
        ...

    async def max_batch_size(self, model: str) -> int:
        """Largest batch ``model`` accepts in one call (0 means no limit)."""
        ...

    async def close(self) -> None:
        """Releases connections or sessions; the backend is unusable afterwards."""
        ...

"""Inference backends, chosen by name (FACEGRID_EMBED_BACKEND) from ``BACKENDS``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from embed_svc.backends.base import (
    BackendError,
    BackendUnavailable,
    InferenceBackend,
    ModelUnavailable,
)
from embed_svc.backends.onnx import OnnxBackend
from embed_svc.backends.triton import TritonBackend
from embed_svc.catalog import all_models
from embed_svc.config import EmbedConfig

__all__ = [
    "BACKENDS",
    "BackendError",
    "BackendUnavailable",
    "InferenceBackend",
    "ModelUnavailable",
    "connect_backend",
]


async def _triton(config: EmbedConfig) -> InferenceBackend:
    return await TritonBackend.connect(config.triton_url, config.triton_timeout_s)


async def _onnxruntime(config: EmbedConfig) -> InferenceBackend:
    return await OnnxBackend.connect(
        config.model_repository, all_models(), config.onnx_threads, config.cpu_workers
    )


#: Backend factories by configured name.
BACKENDS: dict[str, Callable[[EmbedConfig], Awaitable[InferenceBackend]]] = {
    "triton": _triton,
    "onnxruntime": _onnxruntime,
}


async def connect_backend(config: EmbedConfig) -> InferenceBackend:
    """The backend named by ``config.backend``."""
    return await BACKENDS[config.backend](config)

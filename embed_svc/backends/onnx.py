"""In-process inference with onnxruntime on the ONNX files of the Triton model repository.

For development without Triton, and as the baseline that benchmarks compare Triton against.
Sessions run in a small thread pool (onnxruntime releases the GIL) so the event loop stays free.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]

from embed_svc.backends.base import BackendError, ModelUnavailable
from embed_svc.types import FloatArray

#: File of a model inside the repository: ``<repository>/<model>/1/model.onnx``.
MODEL_FILE = Path("1") / "model.onnx"


class OnnxBackend:
    """An InferenceBackend running ONNX sessions in this process."""

    def __init__(self, sessions: Mapping[str, ort.InferenceSession], workers: int) -> None:
        self._sessions = dict(sessions)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="onnx")

    @classmethod
    async def connect(
        cls, repository: Path, models: Sequence[str], threads: int, workers: int = 2
    ) -> OnnxBackend:
        """Loads those of ``models`` that ``repository`` holds (others stay unavailable)."""

        def load() -> dict[str, ort.InferenceSession]:
            sessions = {}
            for model in models:
                path = repository / model / MODEL_FILE
                if not path.is_file():
                    continue
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                sessions[model] = ort.InferenceSession(
                    str(path), options, providers=["CPUExecutionProvider"]
                )
            return sessions

        return cls(await asyncio.to_thread(load), workers)

    @property
    def name(self) -> str:
        """``onnxruntime``."""
        return "onnxruntime"

    async def infer(
        self, model: str, inputs: Mapping[str, FloatArray], outputs: Sequence[str]
    ) -> dict[str, FloatArray]:
        """Runs ``model`` on the whole batch in the worker pool."""
        session = self._sessions.get(model)
        if session is None:
            raise ModelUnavailable(model)
        feed = {name: np.ascontiguousarray(value) for name, value in inputs.items()}

        def run() -> list[FloatArray]:
            return session.run(list(outputs), feed)

        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._executor, run)
        except Exception as exc:
            raise BackendError(f"onnxruntime failed to run {model!r}") from exc
        return {
            name: np.asarray(value, dtype=np.float32)
            for name, value in zip(outputs, results, strict=True)
        }

    async def ready_models(self) -> frozenset[str]:
        """Models with a session."""
        return frozenset(self._sessions)

    async def max_batch_size(self, model: str) -> int:
        """0: a session takes any batch."""
        return 0

    async def close(self) -> None:
        """Stops the worker pool."""
        self._executor.shutdown(wait=False, cancel_futures=True)

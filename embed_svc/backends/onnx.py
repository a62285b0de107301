"""In-process inference with onnxruntime on the ONNX files of the Triton model repository.

For development without Triton, and as the baseline that benchmarks compare Triton against.
A model runs from ``<repository>/<model>/1/model.onnx``. Calls run in a small thread pool
(onnxruntime releases the GIL) so the event loop stays free.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort  # type: ignore[import-untyped]

from embed_svc.backends.base import BackendError, ModelUnavailable
from embed_svc.types import FloatArray, InputArray

#: File of an ONNX model inside the repository: ``<repository>/<model>/1/model.onnx``.
MODEL_FILE = Path("1") / "model.onnx"

#: Session options that stop onnxruntime's pool threads from spinning after each operator
#: while they wait for work: with 2 intra-op threads on this 2-core machine, spinning doubled
#: the embedder's time per call (30 ms wall, 16-24 ms CPU, plus 20 ms of CPU burned per 0.3 s
#: idle, against 12-16 ms and 9 ms without; docs/benchmarks.md). With 1 thread (the default)
#: there is no pool and nothing changes. Results are identical either way.
NO_SPINNING = {
    "session.intra_op.allow_spinning": "0",
    "session.inter_op.allow_spinning": "0",
}


class OnnxRunner:
    """An onnxruntime session on one model file."""

    def __init__(self, path: Path, threads: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        for key, value in NO_SPINNING.items():
            options.add_session_config_entry(key, value)
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(
        self, outputs: Sequence[str], feed: Mapping[str, npt.NDArray[np.generic]]
    ) -> list[FloatArray]:
        """The named outputs, in order (inputs of the graph's types: uint8 pixels here)."""
        return list(self._session.run(list(outputs), dict(feed)))


class OnnxBackend:
    """An InferenceBackend running the repository's models in this process."""

    def __init__(self, runners: Mapping[str, OnnxRunner], workers: int) -> None:
        self._runners = dict(runners)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="onnx")

    @classmethod
    async def connect(
        cls, repository: Path, models: Sequence[str], threads: int, workers: int = 2
    ) -> OnnxBackend:
        """Loads those of ``models`` that ``repository`` holds (others stay unavailable)."""

        def load() -> dict[str, OnnxRunner]:
            return {
                model: OnnxRunner(repository / model / MODEL_FILE, threads)
                for model in models
                if (repository / model / MODEL_FILE).is_file()
            }

        return cls(await asyncio.to_thread(load), workers)

    @property
    def name(self) -> str:
        """``onnxruntime``."""
        return "onnxruntime"

    async def infer(
        self, model: str, inputs: Mapping[str, InputArray], outputs: Sequence[str]
    ) -> dict[str, FloatArray]:
        """Runs ``model`` on the whole batch in the worker pool."""
        runner = self._runners.get(model)
        if runner is None:
            raise ModelUnavailable(model)
        feed = {name: np.ascontiguousarray(value) for name, value in inputs.items()}
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._executor, runner.run, outputs, feed)
        except Exception as exc:  # onnxruntime's errors share no base class
            raise BackendError(f"onnxruntime failed to run {model!r}") from exc
        return {
            name: np.asarray(value, dtype=np.float32)
            for name, value in zip(outputs, results, strict=True)
        }

    async def ready_models(self) -> frozenset[str]:
        """Models with a session."""
        return frozenset(self._runners)

    async def max_batch_size(self, model: str) -> int:
        """0: any batch."""
        return 0

    async def close(self) -> None:
        """Stops the worker pool."""
        self._executor.shutdown(wait=False, cancel_futures=True)

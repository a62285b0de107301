"""In-process inference on the files of the Triton model repository.

For development without Triton, and as the baseline that benchmarks compare Triton against.
A model runs from ``<repository>/<model>/1/model.onnx`` with onnxruntime; a model whose
repository entry holds no ONNX file but a weights file with a known in-process runner
(``IN_PROCESS_RUNNERS``: dlib's ResNet ``.dat``, run by dlib itself exactly as Triton's python
backend runs it) uses that runner. Calls run in a small thread pool (onnxruntime and dlib
release the GIL) so the event loop stays free.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import dlib
import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]

from embed_svc.backends.base import BackendError, ModelUnavailable
from embed_svc.types import FloatArray

#: File of an ONNX model inside the repository: ``<repository>/<model>/1/model.onnx``.
MODEL_FILE = Path("1") / "model.onnx"


class Runner(Protocol):
    """Runs one network on a feed of named inputs."""

    def run(self, outputs: Sequence[str], feed: Mapping[str, FloatArray]) -> list[FloatArray]:
        """The named outputs, in order."""
        ...


class OnnxRunner:
    """An onnxruntime session."""

    def __init__(self, path: Path, threads: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(self, outputs: Sequence[str], feed: Mapping[str, FloatArray]) -> list[FloatArray]:
        """Runs the session."""
        return list(self._session.run(list(outputs), dict(feed)))


class DlibResnetRunner:
    """dlib's face recognition ResNet run by dlib: float32 [N, 150, 150, 3] chips, RGB 0..255,
    to raw 128-d descriptors (the same computation as ``triton_models/dlib_resnet``)."""

    def __init__(self, path: Path, threads: int) -> None:
        self._net = dlib.face_recognition_model_v1(str(path))

    def run(self, outputs: Sequence[str], feed: Mapping[str, FloatArray]) -> list[FloatArray]:
        """Computes the descriptors of every chip of the single input."""
        (batch,) = feed.values()
        chips = [np.ascontiguousarray(np.clip(chip, 0, 255).astype(np.uint8)) for chip in batch]
        descriptors = self._net.compute_face_descriptor(chips)
        values = np.asarray([np.asarray(d) for d in descriptors], dtype=np.float32)
        return [values.reshape(len(chips), 128)]


#: In-process runners for repository entries without an ONNX file, by weights file name.
IN_PROCESS_RUNNERS: dict[str, Callable[[Path, int], Runner]] = {
    "dlib_face_recognition_resnet_model_v1.dat": DlibResnetRunner,
}


def load_runner(folder: Path, threads: int) -> Runner | None:
    """The runner for a model's version folder, or None when it holds nothing runnable."""
    onnx = folder / MODEL_FILE.name
    if onnx.is_file():
        return OnnxRunner(onnx, threads)
    for filename, runner in IN_PROCESS_RUNNERS.items():
        if (folder / filename).is_file():
            return runner(folder / filename, threads)
    return None


class OnnxBackend:
    """An InferenceBackend running the repository's models in this process."""

    def __init__(self, runners: Mapping[str, Runner], workers: int) -> None:
        self._runners = dict(runners)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="onnx")

    @classmethod
    async def connect(
        cls, repository: Path, models: Sequence[str], threads: int, workers: int = 2
    ) -> OnnxBackend:
        """Loads those of ``models`` that ``repository`` holds (others stay unavailable)."""

        def load() -> dict[str, Runner]:
            runners = {}
            for model in models:
                runner = load_runner(repository / model / "1", threads)
                if runner is not None:
                    runners[model] = runner
            return runners

        return cls(await asyncio.to_thread(load), workers)

    @property
    def name(self) -> str:
        """``onnxruntime``."""
        return "onnxruntime"

    async def infer(
        self, model: str, inputs: Mapping[str, FloatArray], outputs: Sequence[str]
    ) -> dict[str, FloatArray]:
        """Runs ``model`` on the whole batch in the worker pool."""
        runner = self._runners.get(model)
        if runner is None:
            raise ModelUnavailable(model)
        feed = {name: np.ascontiguousarray(value) for name, value in inputs.items()}
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._executor, runner.run, outputs, feed)
        except Exception as exc:  # onnxruntime's and dlib's errors share no base class
            raise BackendError(f"in-process inference of {model!r} failed") from exc
        return {
            name: np.asarray(value, dtype=np.float32)
            for name, value in zip(outputs, results, strict=True)
        }

    async def ready_models(self) -> frozenset[str]:
        """Models that were loaded."""
        return frozenset(self._runners)

    async def max_batch_size(self, model: str) -> int:
        """0: any batch."""
        return 0

    async def close(self) -> None:
        """Stops the worker pool."""
        self._executor.shutdown(wait=False, cancel_futures=True)

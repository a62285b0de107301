"""Per-photo work of the accuracy benchmarks, run in worker processes by ``bench.cache``.

- ``Detect``: BlazeFace's detections (box, score, keypoints) at a low threshold and the second
  look of ``embed_svc/confirm.py`` on each box (HOG score and HOG box on the crop around it);
- ``WholeHog``: dlib's HOG detector on the whole photo (the reference pipeline's box).
- ``Embed``: one face's embedding (with and without mirror averaging) and its 68 points, cut
  the way a calculator wants from a given 68-point box, BlazeFace keypoints or box.
- ``Service``: embed_svc's whole pipeline (``FaceAnalyzer``, in process on onnxruntime) on a
  photo, as a request without options gets it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlib
import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]

from embed_svc import align, attributes, catalog, detector, landmarks
from embed_svc.confirm import FaceConfirmer
from embed_svc.images import ImageLimits, decode_image
from embed_svc.types import Box, RgbImage

REPO = Path(__file__).resolve().parents[1]
REPOSITORY = REPO / "triton_models"
LIMITS = ImageLimits(max_bytes=64 * 1024 * 1024, max_pixels=100_000_000, max_detect_size=1920)
#: Lowest BlazeFace score kept by ``Detect``.
DETECT_FLOOR = 0.3
#: Upsampling of dlib's HOG detector on whole photos (dlib's examples use 1).
HOG_UPSAMPLE = 1


def session(model: str) -> ort.InferenceSession:
    """onnxruntime on one model of the repository, one thread."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    path = REPOSITORY / model / "1" / "model.onnx"
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load(root: Path, relative: str) -> RgbImage:
    """The working copy embed_svc would make of a photo."""
    return decode_image((root / relative).read_bytes(), LIMITS).work


def rect_tuple(rect: dlib.rectangle) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a dlib rectangle (inclusive edges)."""
    return (rect.left(), rect.top(), rect.right(), rect.bottom())


def blazeface(
    runner: ort.InferenceSession,
    image: RgbImage,
    threshold: float,
    passes: tuple[float, ...],
    zoomed_min: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes (n, 4), scores (n,), keypoints (n, 6, 2)) of BlazeFace on ``image``, merged over
    the passes (embed_svc/detector.py ``PASSES``), boxes of a zoomed-out pass at least
    ``zoomed_min`` of the input wide."""
    found = []
    for shrink in passes:
        tensor, fit = detector.letterbox(image, shrink)
        regressors, classificators = runner.run(
            [catalog.DETECTOR.regressors, catalog.DETECTOR.classificators],
            {catalog.DETECTOR.input: tensor[None]},
        )
        least = zoomed_min if shrink < 1.0 else 0.0
        found.append(detector.candidates(regressors[0], classificators[0], fit, threshold, least))
    merged = detector.merge(found)
    boxes = np.array([[d.box.x_min, d.box.y_min, d.box.x_max, d.box.y_max] for d in merged])
    scores = np.array([d.score for d in merged])
    points = np.array([d.keypoints for d in merged])
    return boxes.reshape(-1, 4), scores, points.reshape(-1, 6, 2)


@dataclass
class Detect:
    """BlazeFace's detections of one photo (work-image pixels) and the second look at them."""

    root: Path
    passes: tuple[float, ...]
    threshold: float = DETECT_FLOOR
    look_from: float = DETECT_FLOOR
    look_below: float = 2.0
    zoomed_min: float = 0.0
    _runner: Any = field(default=None, init=False, repr=False)

    def __call__(self, relative: str) -> dict[str, Any]:
        if self._runner is None:
            self._runner = session(catalog.DETECTOR.model)
            self._confirmer = FaceConfirmer()
        image = load(self.root, relative)
        boxes, scores, points = blazeface(
            self._runner, image, self.threshold, self.passes, self.zoomed_min
        )
        # The second look (HOG on the box's surroundings, threshold lowered by 1) at boxes
        # scoring from ``look_from`` to under ``look_below``; NaN: not looked at, or no HOG face.
        looks = [
            self._confirmer.look(image, Box(*box), adjust=-1.0)
            if self.look_from <= score < self.look_below
            else None
            for box, score in zip(boxes, scores, strict=True)
        ]
        return {
            "hw": image.shape[:2],
            "boxes": boxes.astype(np.float32),
            "scores": scores,
            "keypoints": points.astype(np.float32),
            "look_score": np.array([np.nan if k is None else k.score for k in looks]),
            "look_rect": np.array(
                [(-1, -1, -1, -1) if k is None else rect_tuple(k.rect) for k in looks]
            ).reshape(-1, 4),
        }


@dataclass
class Look:
    """The second look (embed_svc/confirm.py, HOG threshold lowered by 1) at given boxes of a
    photo: the best centred HOG face's score, NaN where there is none."""

    root: Path
    _confirmer: Any = field(default=None, init=False, repr=False)

    def __call__(self, item: tuple[str, tuple[tuple[float, ...], ...]]) -> np.ndarray:
        if self._confirmer is None:
            self._confirmer = FaceConfirmer()
        relative, boxes = item
        image = load(self.root, relative)
        looks = [self._confirmer.look(image, Box(*box), adjust=-1.0) for box in boxes]
        return np.array([np.nan if k is None else k.score for k in looks])


@dataclass
class WholeHog:
    """dlib's HOG detector on a whole photo (the reference pipeline's box)."""

    root: Path
    _hog: Any = field(default=None, init=False, repr=False)

    def __call__(self, relative: str) -> dict[str, Any]:
        if self._hog is None:
            self._hog = dlib.get_frontal_face_detector()
        rects, scores, _ = self._hog.run(load(self.root, relative), HOG_UPSAMPLE, 0.0)
        return {
            "hog_rects": np.array([rect_tuple(r) for r in rects]).reshape(-1, 4),
            "hog_scores": np.array(scores),
        }


@dataclass(frozen=True)
class Face:
    """Which face of a photo to embed and how to cut it (work-image pixels)."""

    relative: str
    """Photo, relative to the set's folder."""
    calculator: str
    """Calculator name."""
    rect: tuple[int, int, int, int] | None
    """The 68-point predictor's box; None: cut from ``keypoints`` (template) or ``box``."""
    keypoints: tuple[tuple[float, float], ...] | None = None
    """BlazeFace's keypoints, for template alignment."""
    box: tuple[float, float, float, float] | None = None
    """BlazeFace's box, for box crops."""


@dataclass
class Embed:
    """Embeddings (plain and mirror-averaged) and 68 points of one face."""

    root: Path
    _state: Any = field(default=None, init=False, repr=False)

    def __call__(self, face: Face) -> dict[str, Any]:
        if self._state is None:
            self._predictor = landmarks.LandmarkPredictor.load(
                landmarks.package_model_path(landmarks.PREDICTOR_FILE)
            )
            self._state = {}
        spec = catalog.CALCULATORS[face.calculator]
        if spec.model not in self._state:
            self._state[spec.model] = session(spec.model)
        image = load(self.root, face.relative)
        points = None
        if face.rect is not None:
            shape = self._predictor.shape_in(image, dlib.rectangle(*face.rect))
            points = landmarks.shape_points(shape)
            if spec.crop == "chip":
                chip = align.dlib_chip(image, shape)
            else:
                chip = align.arcface_crop(image, landmarks.five_from_68(points), spec.input_size)
        elif spec.crop == "box":
            assert face.box is not None
            chip = align.box_crop(image, Box(*face.box), spec.input_size)
        else:
            assert face.keypoints is not None
            keypoints = np.array(face.keypoints)
            if spec.crop == "chip":
                chip = align.template_chip(image, keypoints)
            else:
                five = landmarks.five_from_blazeface(keypoints)
                chip = align.arcface_crop(image, five, spec.input_size)
        batch = spec.encode([chip, np.ascontiguousarray(chip[:, ::-1])])
        (vectors,) = self._state[spec.model].run([spec.output], {spec.input: batch})
        vectors = vectors.reshape(2, -1).astype(np.float64)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        mirrored = vectors.sum(axis=0)
        return {
            "plain": vectors[0].astype(np.float32),
            "mirror": (mirrored / np.linalg.norm(mirrored)).astype(np.float32),
            "points": None if points is None else points.astype(np.float32),
        }


@dataclass
class Attributes:
    """faceres-deep's age (mean, CompreFace range) and probability of male for a box of a
    photo, the box enlarged by a margin (fraction of its side on each side)."""

    root: Path
    _runner: Any = field(default=None, init=False, repr=False)

    def __call__(
        self, item: tuple[str, tuple[float, float, float, float], float]
    ) -> dict[str, Any]:
        spec = catalog.ATTRIBUTES
        assert spec is not None
        if self._runner is None:
            self._runner = session(spec.model)
        relative, box, margin = item
        image = load(self.root, relative)
        crop = align.box_crop(image, Box(*box), spec.input_size, margin)
        ages, genders = self._runner.run(
            [spec.age, spec.gender], {spec.input: attributes.encode([crop])}
        )
        estimate = attributes.age_from_distribution(ages[0])
        return {
            "years": estimate.years,
            "range": (estimate.low, estimate.high),
            "male": float(genders.reshape(-1)[0]),
        }


@dataclass
class Service:
    """embed_svc's pipeline on one photo with the calculator plugin: the largest face's
    embedding and detection score, or None when it finds no face."""

    root: Path
    threshold: float
    confirm_below: float
    limit: int = 1
    _state: Any = field(default=None, init=False, repr=False)

    def faces(self, relative: str) -> list[dict[str, Any]]:
        """Every face found (up to ``limit``), largest first."""
        from concurrent.futures import ThreadPoolExecutor

        from embed_svc.analyzer import AnalyzerSettings, FaceAnalyzer
        from embed_svc.backends.onnx import OnnxBackend
        from embed_svc.types import AnalyzeParams

        if self._state is None:
            loop = asyncio.new_event_loop()
            backend = loop.run_until_complete(
                OnnxBackend.connect(REPOSITORY, catalog.all_models(), threads=1, workers=1)
            )
            predictor = landmarks.LandmarkPredictor.load(
                landmarks.package_model_path(landmarks.PREDICTOR_FILE)
            )
            settings = AnalyzerSettings(LIMITS, "dlib68", True, self.confirm_below)
            analyzer = FaceAnalyzer(backend, predictor, ThreadPoolExecutor(1), settings, None)
            self._state = (loop, analyzer)
        loop, analyzer = self._state
        params = AnalyzeParams(
            self.threshold, self.limit, False, catalog.DLIB_RESNET, False, False, False, False
        )
        results, _ = loop.run_until_complete(
            analyzer.analyze([(self.root / relative).read_bytes()], params)
        )
        return [
            {
                "embedding": face.embedding,
                "score": face.score,
                "detector_score": face.detector_score,
                "box": (face.box.x_min, face.box.y_min, face.box.x_max, face.box.y_max),
            }
            for face in results[0].faces
        ]

    def __call__(self, relative: str) -> dict[str, Any] | None:
        found = self.faces(relative)
        return found[0] if found else None

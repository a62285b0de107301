"""The analysis pipeline: decode -> detect -> landmarks/align -> embed and attributes.

All images of a request are detected in one batch and all their faces embedded in one batch
(Triton's dynamic batching then merges concurrent requests). CPU stages (decoding, the dlib
predictor, warping) run in a thread pool so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import dlib
import numpy as np

from embed_svc import align, attributes, detector, landmarks
from embed_svc.backends.base import InferenceBackend
from embed_svc.catalog import DETECTOR, AttributeSpec, CalculatorSpec
from embed_svc.confirm import FaceConfirmer
from embed_svc.images import ImageError, ImageLimits, decode_for_detection, face_view
from embed_svc.landmarks import LandmarkPredictor
from embed_svc.pose import estimate_pose
from embed_svc.types import (
    AgeEstimate,
    AnalyzeParams,
    Box,
    DecodedImage,
    Detection,
    FaceResult,
    FloatArray,
    GenderEstimate,
    HeadPose,
    ImageResult,
    Points,
    RgbImage,
)

T = TypeVar("T")


class BadImage(ValueError):
    """Image ``index`` of the request was refused."""

    def __init__(self, index: int, error: ImageError) -> None:
        super().__init__(f"image {index}: {error.message}")
        self.index = index
        """Position of the image in the request."""
        self.error = error
        """Why it was refused."""


@dataclass(frozen=True, slots=True)
class AnalyzerSettings:
    """Service-wide settings of the pipeline."""

    limits: ImageLimits
    """Byte, pixel and detection-size limits."""
    alignment: str
    """``dlib68`` or ``blazeface`` (chip alignment of chip-based calculators)."""
    mirror_average: bool
    """Average each embedding with that of the mirrored chip."""
    confirm_below: float = 0.7
    """Detections whose face probability is under this must be confirmed by dlib's HOG
    detector (embed_svc/confirm.py); 0 keeps every detection above the request's threshold."""


@dataclass(slots=True)
class Stopwatch:
    """Milliseconds per stage, accumulated."""

    ms: dict[str, float] = field(default_factory=dict)
    """Time per stage name."""

    def add(self, stage: str, started: float) -> None:
        """Adds the time since ``started`` (a perf_counter value) to ``stage``."""
        self.ms[stage] = self.ms.get(stage, 0.0) + (time.perf_counter() - started) * 1000.0


@dataclass(slots=True)
class _Prepared:
    """CPU-side results for the faces of one image (work-image pixels)."""

    points68: list[Points | None]
    chips: list[RgbImage]
    crops: list[RgbImage]
    poses: list[HeadPose | None]
    ms: dict[str, float]


class FaceAnalyzer:
    """Runs the pipeline on one backend."""

    def __init__(
        self,
        backend: InferenceBackend,
        predictor: LandmarkPredictor,
        executor: Executor,
        settings: AnalyzerSettings,
        attribute_spec: AttributeSpec | None,
    ) -> None:
        self._backend = backend
        self._predictor = predictor
        self._executor = executor
        self._settings = settings
        self._attributes = attribute_spec
        self._confirmer = FaceConfirmer() if settings.confirm_below > 0 else None

    async def _cpu(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    async def analyze(
        self, images: Sequence[bytes], params: AnalyzeParams
    ) -> tuple[list[ImageResult], dict[str, float]]:
        """Analyses every image; raises BadImage for the first refused image."""
        watch = Stopwatch()
        started = time.perf_counter()
        decoded = await self._decode_all(images)
        watch.add("decode", started)

        started = time.perf_counter()
        if params.whole_image_is_face:
            per_image = await self._whole_image_faces(decoded, params)
        else:
            raw = DETECTOR.calibration.raw_at(params.det_prob_threshold)
            per_image = await self._detect(decoded, raw)
        watch.add("detector", started)

        started = time.perf_counter()
        decoded, per_image = await self._face_views(decoded, per_image)
        watch.add("decode", started)

        if not params.whole_image_is_face:
            started = time.perf_counter()
            per_image = await self._confirm(decoded, per_image)
            per_image = [_largest(found, params.limit) for found in per_image]
            watch.add("detector", started)

        need_68 = (
            params.landmarks
            or params.pose
            or (
                params.calculator is not None
                and params.calculator.crop in ("chip", "arcface")
                and self._settings.alignment == "dlib68"
            )
        )
        prepared = await asyncio.gather(
            *(
                self._cpu(partial(self._prepare, image, faces, params, need_68))
                for image, faces in zip(decoded, per_image, strict=True)
            )
        )
        for item in prepared:
            for stage, ms in item.ms.items():
                watch.ms[stage] = watch.ms.get(stage, 0.0) + ms

        embeddings, attrs = await asyncio.gather(
            self._embed([c for p in prepared for c in p.chips], params.calculator, watch),
            self._estimate([c for p in prepared for c in p.crops], params, watch),
        )
        results = []
        face_index = 0
        for image, faces, item in zip(decoded, per_image, prepared, strict=True):
            out = []
            for i, detection in enumerate(faces):
                out.append(
                    self._face_result(
                        image,
                        detection,
                        item,
                        i,
                        params,
                        embeddings[face_index] if embeddings is not None else None,
                        attrs[face_index] if attrs is not None else None,
                    )
                )
                face_index += 1
            results.append(ImageResult(image.width, image.height, tuple(out)))
        return results, watch.ms

    async def _decode_all(self, images: Sequence[bytes]) -> list[DecodedImage]:
        limits = self._settings.limits
        outcomes = await asyncio.gather(
            *(self._cpu(partial(decode_for_detection, data, limits)) for data in images),
            return_exceptions=True,
        )
        decoded = []
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, ImageError):
                raise BadImage(index, outcome)
            if isinstance(outcome, BaseException):
                raise outcome
            decoded.append(outcome)
        return decoded

    async def _face_views(
        self, images: list[DecodedImage], per_image: list[list[Detection]]
    ) -> tuple[list[DecodedImage], list[list[Detection]]]:
        """Each image's view to cut its faces from (``images.face_view``: decoded again, finer,
        where the smallest face needs it) and its detections in that view's pixels."""
        limits = self._settings.limits

        def view(image: DecodedImage, found: list[Detection]) -> DecodedImage:
            if not found:
                return image
            smallest = min(max(d.box.width, d.box.height) for d in found) * image.work_scale
            return face_view(image, smallest, limits)

        views = await asyncio.gather(
            *(
                self._cpu(partial(view, image, found))
                for image, found in zip(images, per_image, strict=True)
            )
        )
        moved = [
            found
            if target is image
            else [d.scaled(image.work_scale / target.work_scale) for d in found]
            for image, target, found in zip(images, views, per_image, strict=True)
        ]
        return list(views), moved

    async def _detect(self, images: list[DecodedImage], threshold: float) -> list[list[Detection]]:
        """Detections per image scoring at least ``threshold`` (raw score), in work-image
        pixels."""
        if not images:
            return []
        passes = detector.PASSES
        boxed = await self._cpu(
            lambda: [detector.letterbox(im.work, shrink) for im in images for shrink in passes]
        )
        batch = np.stack([tensor for tensor, _ in boxed])
        outputs = await self._backend.infer(
            DETECTOR.model,
            {DETECTOR.input: batch},
            [DETECTOR.regressors, DETECTOR.classificators],
        )
        regressors, classificators = outputs[DETECTOR.regressors], outputs[DETECTOR.classificators]
        return [
            detector.merge(
                [
                    detector.candidates(
                        regressors[k],
                        classificators[k],
                        boxed[k][1],
                        threshold,
                        detector.min_width(passes[k % len(passes)]),
                    )
                    for k in range(i * len(passes), (i + 1) * len(passes))
                ]
            )
            for i in range(len(images))
        ]

    async def _confirm(
        self, images: list[DecodedImage], per_image: list[list[Detection]]
    ) -> list[list[Detection]]:
        """Drops low-scoring detections that dlib's HOG detector does not confirm."""
        confirmer = self._confirmer
        below = DETECTOR.calibration.raw_at(self._settings.confirm_below)
        if confirmer is None or not any(d.score < below for found in per_image for d in found):
            return per_image
        return list(
            await asyncio.gather(
                *(
                    self._cpu(partial(confirmer.keep, image.work, found, below))
                    for image, found in zip(images, per_image, strict=True)
                )
            )
        )

    async def _whole_image_faces(
        self, images: list[DecodedImage], params: AnalyzeParams
    ) -> list[list[Detection]]:
        """One face per image covering it all; the detector (at a low threshold) only places
        the keypoints that alignment uses, falling back to a typical face layout."""
        needs_geometry = params.calculator is not None or params.landmarks or params.pose
        found = await self._detect(images, 0.3) if needs_geometry else [[] for _ in images]
        faces = []
        for image, candidates in zip(images, found, strict=True):
            height, width = image.work.shape[:2]
            whole = Box(0.0, 0.0, float(width), float(height))
            best = max(candidates, key=lambda d: d.score, default=None)
            if best is None:
                faces.append([Detection(whole, 1.0, landmarks.keypoints_in_box(whole))])
            else:
                faces.append([Detection(best.box, 1.0, best.keypoints)])
        return faces

    def _prepare(
        self,
        image: DecodedImage,
        faces: list[Detection],
        params: AnalyzeParams,
        need_68: bool,
    ) -> _Prepared:
        """Landmarks, chips, attribute crops and poses of one image (runs in a worker)."""
        prepared = _Prepared([], [], [], [], {})
        watch = Stopwatch(prepared.ms)
        calculator = params.calculator
        for detection in faces:
            started = time.perf_counter()
            shape = self._predictor.shape(image.work, detection) if need_68 else None
            points = landmarks.shape_points(shape) if shape is not None else None
            prepared.points68.append(points)
            watch.add("landmarks", started)
            if calculator is not None:
                started = time.perf_counter()
                chip = self._cut(image, detection, shape, points, calculator)
                prepared.chips.append(chip)
                watch.add("align", started)
            if self._attributes is not None and (params.age or params.gender):
                started = time.perf_counter()
                prepared.crops.append(attributes.crop(image.work, detection.box, self._attributes))
                watch.add("align", started)
            pose = None
            if params.pose and points is not None:
                started = time.perf_counter()
                pose = estimate_pose(points)
                watch.add("pose", started)
            prepared.poses.append(pose)
        return prepared

    def _cut(
        self,
        image: DecodedImage,
        detection: Detection,
        shape: dlib.full_object_detection | None,
        points: Points | None,
        calculator: CalculatorSpec,
    ) -> RgbImage:
        """The calculator's view of one face (work-image pixels in, crop out)."""
        use_68 = points is not None and self._settings.alignment == "dlib68"
        if calculator.crop == "box":
            return align.box_crop(image.work, detection.box, calculator.input_size)
        if calculator.crop == "arcface":
            five = (
                landmarks.five_from_68(points)
                if use_68 and points is not None
                else landmarks.five_from_blazeface(detection.keypoints)
            )
            return align.arcface_crop(image.work, five, calculator.input_size)
        if use_68 and shape is not None:
            return align.dlib_chip(image.work, shape)
        return align.template_chip(image.work, detection.keypoints)

    async def _embed(
        self, chips: list[RgbImage], calculator: CalculatorSpec | None, watch: Stopwatch
    ) -> list[FloatArray] | None:
        if calculator is None:
            return None
        if not chips:
            return []
        started = time.perf_counter()
        mirror = self._settings.mirror_average
        batch_chips = chips + [chip[:, ::-1] for chip in chips] if mirror else chips
        batch = await self._cpu(lambda: calculator.encode(batch_chips))
        output = await self._backend.infer(
            calculator.model, {calculator.input: batch}, [calculator.output]
        )
        vectors = output[calculator.output].reshape(len(batch_chips), -1)
        vectors = _normalise(vectors)
        if mirror:
            vectors = _normalise(vectors[: len(chips)] + vectors[len(chips) :])
        watch.add("calculator", started)
        return list(vectors)

    async def _estimate(
        self, crops: list[RgbImage], params: AnalyzeParams, watch: Stopwatch
    ) -> list[tuple[AgeEstimate, GenderEstimate]] | None:
        spec = self._attributes
        if spec is None or not (params.age or params.gender):
            return None
        if not crops:
            return []
        started = time.perf_counter()
        estimates = await attributes.estimate(self._backend, spec, crops)
        for stage, wanted in (("age", params.age), ("gender", params.gender)):
            if wanted:
                watch.add(stage, started)
        return estimates

    def _face_result(
        self,
        image: DecodedImage,
        detection: Detection,
        prepared: _Prepared,
        index: int,
        params: AnalyzeParams,
        embedding: FloatArray | None,
        attrs: tuple[AgeEstimate, GenderEstimate] | None,
    ) -> FaceResult:
        scale = image.work_scale
        points = prepared.points68[index]
        five = None
        if params.landmarks:
            five = (
                landmarks.five_from_68(points)
                if points is not None
                else landmarks.five_from_blazeface(detection.keypoints)
            ) * scale
        if params.whole_image_is_face:
            box = Box(0.0, 0.0, float(image.width), float(image.height))
        else:
            box = detection.box.scaled(scale).clipped(image.width, image.height)
        whole = params.whole_image_is_face
        return FaceResult(
            box=box,
            score=1.0 if whole else DETECTOR.calibration.calibrated(detection.score),
            detector_score=None if whole else detection.score,
            landmarks=five,
            embedding=embedding,
            age=attrs[0] if attrs is not None and params.age else None,
            gender=attrs[1] if attrs is not None and params.gender else None,
            pose=prepared.poses[index],
        )


def _largest(detections: list[Detection], limit: int) -> list[Detection]:
    ordered = sorted(detections, key=lambda d: d.box.area, reverse=True)
    return ordered[:limit] if limit > 0 else ordered


def _normalise(vectors: FloatArray) -> FloatArray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)

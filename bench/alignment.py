"""Which face of a photo each pipeline embeds, and the box each hands to dlib's 68-point
predictor, from the cached detections of ``bench.stages.Detect``.

- The reference pipeline: dlib's HOG detector on the whole photo (largest box); where it finds
  none, the service's BlazeFace face with the box mapping the service had before issue 8
  (``ORIGINAL_CENTRE``), so the reference stays fixed while the service changes.
- The service: the largest BlazeFace detection at the request's threshold that survives the
  second look (embed_svc/confirm.py), with one of the box options measured here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from embed_svc import confirm, landmarks
from embed_svc.types import Box, Detection

#: The box mapping of embed_svc before issue 8: centre shift (x, y) and side in box widths.
ORIGINAL_CENTRE = (0.0043, -0.0180, 0.9741)

Rect = tuple[int, int, int, int]

#: The keypoint mapping embed_svc uses (landmarks.DLIB_RECT_*): (a, ox, oy, side).
SERVICE_KEYPOINTS = (
    landmarks.DLIB_RECT_A,
    landmarks.DLIB_RECT_OX,
    landmarks.DLIB_RECT_OY,
    landmarks.DLIB_RECT_SIDE,
)


def detection(found: dict[str, Any], index: int) -> Detection:
    """The cached detection ``index`` of a photo as embed_svc's Detection."""
    return Detection(
        Box(*(float(v) for v in found["boxes"][index])),
        float(found["scores"][index]),
        found["keypoints"][index].astype(np.float64),
    )


def service_choice(found: dict[str, Any], threshold: float, confirm_below: float) -> int | None:
    """Index of the face embed_svc embeds (largest kept detection), or None."""
    scores = found["scores"]
    looks = found["look_score"]
    kept = [
        i
        for i in range(len(scores))
        if scores[i] >= threshold
        and (
            scores[i] >= confirm_below
            or (not np.isnan(looks[i]) and looks[i] >= confirm.HOG_ADJUST)
        )
    ]
    if not kept:
        return None
    boxes = found["boxes"]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return max(kept, key=lambda i: areas[i])


def largest_hog(found: dict[str, Any]) -> Rect | None:
    """The largest box of dlib's HOG detector on the whole photo, or None."""
    rects = found["hog_rects"]
    if not len(rects):
        return None
    areas = (rects[:, 2] - rects[:, 0]) * (rects[:, 3] - rects[:, 1])
    return tuple(int(v) for v in rects[int(np.argmax(areas))])  # type: ignore[return-value]


def centre_rect(det: Detection, dx: float, dy: float, side: float) -> Rect:
    """A square box centred on the detection box's centre shifted by (dx, dy) box widths."""
    box = det.box
    cx = (box.x_min + box.x_max) / 2 + dx * box.width
    cy = (box.y_min + box.y_max) / 2 + dy * box.width
    return _square(cx, cy, side * box.width)


def _square(cx: float, cy: float, side: float) -> Rect:
    size = max(1, round(side))
    left = round(cx - size / 2)
    top = round(cy - size / 2)
    return (left, top, left + size - 1, top + size - 1)


def reference_rect(found: dict[str, Any], threshold: float, confirm_below: float) -> Rect | None:
    """The reference pipeline's box, or None when neither detector finds a face."""
    hog = largest_hog(found)
    if hog is not None:
        return hog
    chosen = service_choice(found, threshold, confirm_below)
    if chosen is None:
        return None
    return centre_rect(detection(found, chosen), *ORIGINAL_CENTRE)


def keypoint_rect(det: Detection, a: float, ox: float, oy: float, side: float) -> Rect:
    """A square box centred on the eye midpoint + a (mouth - eye midpoint) + (ox, oy) box
    widths, ``side`` box widths wide."""
    eyes = (det.keypoints[0] + det.keypoints[1]) / 2
    centre = eyes + a * (det.keypoints[3] - eyes)
    width = det.box.width
    return _square(centre[0] + ox * width, centre[1] + oy * width, side * width)


@dataclass(frozen=True)
class Option:
    """One way of placing the predictor's box on a BlazeFace detection."""

    name: str
    """Short name printed in the results."""
    describe: str
    """What it does."""
    rect: Callable[[dict[str, Any], int], Rect]
    """The predictor's box for detection ``index`` of a photo's cached detections."""


def options(
    centre: tuple[float, float, float], keypoints: tuple[float, float, float, float]
) -> dict[str, Option]:
    """The options compared, with constants fitted by bench/fit_dlib_rect.py."""

    def hog_crop(found: dict[str, Any], index: int, bar: float) -> Rect:
        if found["look_score"][index] >= bar:
            return tuple(int(v) for v in found["look_rect"][index])  # type: ignore[return-value]
        return keypoint_rect(detection(found, index), *keypoints)

    listed = [
        Option(
            "before",
            "box centre + offsets fitted on ../shared/faces (before issue 8)",
            lambda found, i: centre_rect(detection(found, i), *ORIGINAL_CENTRE),
        ),
        Option(
            "centre",
            "box centre + offsets refitted on CelebA + CFP",
            lambda found, i: centre_rect(detection(found, i), *centre),
        ),
        Option(
            "keypoints",
            "centre on the eyes-mouth line, side from the box (embed_svc's constants)",
            lambda found, i: keypoint_rect(detection(found, i), *keypoints),
        ),
        Option(
            "service-68",
            "embed_svc's landmarks.dlib_rect as it is now",
            lambda found, i: rect_tuple(landmarks.dlib_rect(detection(found, i))),
        ),
    ]
    for bar in (-1.0, -0.5, 0.0):
        listed.append(
            Option(
                f"hog-crop{bar:+.1f}",
                f"HOG on the crop around the box (score >= {bar}), else keypoints",
                lambda found, i, bar=bar: hog_crop(found, i, bar),  # type: ignore[misc]
            )
        )
    return {option.name: option for option in listed}


def rect_tuple(rect: Any) -> Rect:
    """(left, top, right, bottom) of a dlib rectangle."""
    return (rect.left(), rect.top(), rect.right(), rect.bottom())


def iou(a: Rect | tuple[float, ...], b: Rect | tuple[float, ...]) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0

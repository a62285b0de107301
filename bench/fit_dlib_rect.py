"""Fits the constants that place dlib's 68-point predictor box on a BlazeFace detection
(``embed_svc/landmarks.py``), on CelebA and CFP (docs/benchmarks.md).

    python -m bench.fit_dlib_rect [--celeba DIR] [--cfp DIR]

dlib's shape predictor was trained on boxes of dlib's HOG face detector. On every photo where
HOG (whole photo) and the service (BlazeFace, largest kept face) find the same face (IoU >=
0.3), this fits two mappings of the BlazeFace detection onto the HOG box:

- centre: HOG centre = BlazeFace box centre + (dx, dy) box widths, side = s box widths (medians);
- keypoints: HOG centre = eye midpoint + a (mouth - eye midpoint) + (ox, oy) box widths,
  side = s box widths (least squares, trimmed of the worst 10%).

and prints each one's spread of the centre (robust standard deviation in HOG box sides) and
the typical keypoints as fractions of the box (``landmarks.KEYPOINTS_IN_BOX``). Uses the cached
detections of bench/accuracy.py (computed here if missing).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import alignment, pipelines
from bench.pipelines import photos_by_key, protocols, service_thresholds

#: Least IoU of the HOG and BlazeFace boxes for them to be one face.
MATCH_IOU = 0.3


@dataclass(frozen=True)
class Matched:
    """Faces found by both detectors: HOG centres and sides, BlazeFace boxes and keypoints."""

    hog_centre: np.ndarray
    hog_side: np.ndarray
    boxes: np.ndarray
    keypoints: np.ndarray

    @property
    def box_centre(self) -> np.ndarray:
        return (self.boxes[:, :2] + self.boxes[:, 2:]) / 2

    @property
    def width(self) -> np.ndarray:
        return self.boxes[:, 2] - self.boxes[:, 0]


def matched(found: list[dict[str, Any]]) -> Matched:
    """The faces of ``found`` (cached detections) that both detectors find."""
    rows = []
    for photo in found:
        chosen = alignment.service_choice(photo, *service_thresholds(""))
        hog = alignment.largest_hog(photo)
        if chosen is None or hog is None:
            continue
        box = photo["boxes"][chosen]
        if alignment.iou(hog, tuple(box)) < MATCH_IOU:
            continue
        rows.append((hog, box, photo["keypoints"][chosen]))
    rects = np.array([r[0] for r in rows], dtype=np.float64)
    return Matched(
        hog_centre=np.c_[(rects[:, 0] + rects[:, 2] + 1) / 2, (rects[:, 1] + rects[:, 3] + 1) / 2],
        hog_side=((rects[:, 2] - rects[:, 0] + 1) + (rects[:, 3] - rects[:, 1] + 1)) / 2,
        boxes=np.array([r[1] for r in rows], dtype=np.float64),
        keypoints=np.array([r[2] for r in rows], dtype=np.float64),
    )


def fit_centre(m: Matched) -> tuple[float, float, float]:
    """(dx, dy, side) of the centre mapping."""
    shift = np.median((m.hog_centre - m.box_centre) / m.width[:, None], axis=0)
    side = float(np.median(m.hog_side / m.width))
    return float(shift[0]), float(shift[1]), side


def fit_keypoints(m: Matched) -> tuple[float, float, float, float]:
    """(a, ox, oy, side) of the keypoint mapping."""
    eyes = (m.keypoints[:, 0] + m.keypoints[:, 1]) / 2
    down = m.keypoints[:, 3] - eyes
    n = len(eyes)
    design = np.zeros((2 * n, 3))
    design[:, 0] = down.reshape(-1)
    design[0::2, 1] = m.width
    design[1::2, 2] = m.width
    target = (m.hog_centre - eyes).reshape(-1)
    keep = np.ones(2 * n, dtype=bool)
    for _ in range(5):
        coef = np.linalg.lstsq(design[keep], target[keep], rcond=None)[0]
        error = np.abs(design @ coef - target).reshape(-1, 2).max(axis=1)
        keep = np.repeat(error <= np.quantile(error, 0.9), 2)
    side = float(np.median(m.hog_side / m.width))
    return float(coef[0]), float(coef[1]), float(coef[2]), side


def centre_error(m: Matched, predicted: np.ndarray) -> np.ndarray:
    """Robust standard deviation (x, y) of the predicted centre's error, in HOG box sides."""
    error = (m.hog_centre - predicted) / m.hog_side[:, None]
    median = np.median(error, axis=0)
    return np.asarray(1.4826 * np.median(np.abs(error - median), axis=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--celeba", type=Path, help="CelebA folder (FACEGRID_BENCH_CELEBA)")
    parser.add_argument("--cfp", type=Path, help="cfp-dataset folder (FACEGRID_BENCH_CFP)")
    args = parser.parse_args()
    found: list[dict[str, Any]] = []
    for key, (root, photos) in photos_by_key(protocols(args)).items():
        found.extend(pipelines.detections(key, root, photos).values())
    if not found:
        raise SystemExit("no data set given: --celeba and/or --cfp (bench/data.py)")
    m = matched(found)
    print(f"{len(m.boxes)} faces found by both detectors in {len(found)} photos")
    dx, dy, side = fit_centre(m)
    print(f"centre:    DX = {dx:.4f}, DY = {dy:.4f}, SIDE = {side:.4f}")
    a, ox, oy, side_k = fit_keypoints(m)
    print(f"keypoints: A = {a:.4f}, OX = {ox:.4f}, OY = {oy:.4f}, SIDE = {side_k:.4f}")
    eyes = (m.keypoints[:, 0] + m.keypoints[:, 1]) / 2
    w = m.width[:, None]
    for name, predicted in (
        ("centre, before", m.box_centre + np.array(alignment.ORIGINAL_CENTRE[:2]) * w),
        ("centre, refitted", m.box_centre + np.array([dx, dy]) * w),
        ("keypoints", eyes + a * (m.keypoints[:, 3] - eyes) + np.array([ox, oy]) * w),
    ):
        sd = centre_error(m, predicted)
        print(f"  {name:34s} centre error, robust sd (x, y) in HOG sides: {sd[0]:.4f} {sd[1]:.4f}")
    spread = np.quantile(m.hog_side / m.width, [0.1, 0.9])
    print(f"  side / box width 10th-90th percentile: {spread[0]:.3f} - {spread[1]:.3f}")
    origin = m.boxes[:, :2]
    size = m.boxes[:, 2:] - origin
    typical = np.median((m.keypoints - origin[:, None]) / size[:, None], axis=0)
    print("KEYPOINTS_IN_BOX =", [tuple(round(float(v), 3) for v in p) for p in typical])


if __name__ == "__main__":
    main()

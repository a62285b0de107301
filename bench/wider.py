"""WIDER FACE validation: the standard average precision on the easy, medium and hard
settings, and the data for calibrating detection scores.

The protocol (WIDER FACE's evaluation, as re-implemented in Python by the RetinaFace
repositories): scores are min-max normalised over the whole set; at 1000 thresholds a
prediction counts towards precision unless its best-overlapping ground-truth box (IoU >= 0.5,
pixel-inclusive areas) is outside the setting's list of faces, and a ground-truth face of the
list is recalled by the first prediction that overlaps it that much, predictions taken in
descending score per image; AP is the area under the interpolated precision-recall curve over
the faces of the setting. Written here from the protocol's description.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.io import loadmat  # type: ignore[import-untyped]

#: IoU at which a prediction finds a ground-truth face.
IOU = 0.5
#: Thresholds of the precision-recall curve.
THRESHOLDS = 1000
#: WIDER's attribute labels kept per face.
ATTRIBUTES = ("blur", "occlusion", "pose", "invalid")


@dataclass(frozen=True)
class GroundTruth:
    """The annotated faces of one validation photo."""

    relative: str
    """Photo path under ``WIDER_val/images``."""
    boxes: np.ndarray
    """(n, 4) x, y, width, height, pixels."""
    attributes: dict[str, np.ndarray]
    """Per face: blur (0 clear, 1 normal, 2 heavy), occlusion (0 none, 1 partial, 2 heavy),
    pose (0 typical, 1 atypical), invalid (1: not to be used)."""
    settings: dict[str, np.ndarray]
    """Per setting (easy, medium, hard): boolean mask of the faces it counts."""


def ground_truth(root: Path) -> list[GroundTruth]:
    """Every photo of the validation set with its faces, in the order of the .mat files."""
    folder = root / "widerface_evaluate" / "ground_truth"
    full = loadmat(str(folder / "wider_face_val.mat"))
    lists = {s: loadmat(str(folder / f"wider_{s}_val.mat"))["gt_list"] for s in SETTINGS}
    out = []
    for i, event in enumerate(full["event_list"]):
        event_name = str(event[0][0])
        for j, file in enumerate(full["file_list"][i][0]):
            boxes = full["face_bbx_list"][i][0][j][0].astype(np.float64).reshape(-1, 4)
            attrs = {
                name: full[f"{name}_label_list"][i][0][j][0].reshape(-1).astype(int)
                for name in ATTRIBUTES
            }
            settings = {}
            for setting, gt_list in lists.items():
                mask = np.zeros(len(boxes), dtype=bool)
                keep = gt_list[i][0][j][0].reshape(-1).astype(int)
                mask[keep - 1] = True
                settings[setting] = mask
            relative = f"{event_name}/{file[0][0]}.jpg"
            out.append(GroundTruth(relative, boxes, attrs, settings))
    return out


SETTINGS = ("easy", "medium", "hard")


def overlaps(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """IoU matrix (pixel-inclusive areas, as the protocol) of (n, 4) and (m, 4) corner boxes."""
    if not len(predicted) or not len(truth):
        return np.zeros((len(predicted), len(truth)))
    x1 = np.maximum(predicted[:, None, 0], truth[None, :, 0])
    y1 = np.maximum(predicted[:, None, 1], truth[None, :, 1])
    x2 = np.minimum(predicted[:, None, 2], truth[None, :, 2])
    y2 = np.minimum(predicted[:, None, 3], truth[None, :, 3])
    inter = np.clip(x2 - x1 + 1, 0, None) * np.clip(y2 - y1 + 1, 0, None)
    area_p = (predicted[:, 2] - predicted[:, 0] + 1) * (predicted[:, 3] - predicted[:, 1] + 1)
    area_t = (truth[:, 2] - truth[:, 0] + 1) * (truth[:, 3] - truth[:, 1] + 1)
    return inter / (area_p[:, None] + area_t[None, :] - inter)


def corners(xywh: np.ndarray) -> np.ndarray:
    """x, y, width, height -> x_min, y_min, x_max, y_max (the protocol's x + w)."""
    out = xywh.astype(np.float64).copy()
    out[:, 2] += out[:, 0]
    out[:, 3] += out[:, 1]
    return out


def average_precision(
    truth: list[GroundTruth], boxes: list[np.ndarray], scores: list[np.ndarray]
) -> dict[str, float]:
    """AP per setting; ``boxes[i]`` (corner boxes) and ``scores[i]`` are the predictions for
    photo ``truth[i]``."""
    present = [s for s in scores if len(s)]
    low = min(float(s.min()) for s in present)
    high = max(float(s.max()) for s in present)
    span = high - low if high > low else 1.0
    cuts = 1.0 - (np.arange(THRESHOLDS) + 1) / THRESHOLDS
    result = {}
    for setting in SETTINGS:
        proposals = np.zeros(THRESHOLDS)
        recalled = np.zeros(THRESHOLDS)
        faces = 0
        for gt, predicted, raw in zip(truth, boxes, scores, strict=True):
            counted = gt.settings[setting]
            faces += int(counted.sum())
            if not len(gt.boxes) or not len(raw):
                continue
            order = np.argsort(-raw, kind="stable")
            normalised = (raw[order] - low) / span
            iou = overlaps(predicted[order], corners(gt.boxes))
            best = iou.argmax(axis=1)
            hit = iou[np.arange(len(order)), best] >= IOU
            is_proposal = ~(hit & ~counted[best])
            found = np.zeros(len(gt.boxes), dtype=bool)
            recall_after = np.zeros(len(order))
            for k in range(len(order)):
                if hit[k] and counted[best[k]]:
                    found[best[k]] = True
                recall_after[k] = found.sum()
            # Predictions scoring >= each cut: the last such index in descending order.
            last = np.searchsorted(-normalised, -cuts, side="right") - 1
            valid = last >= 0
            cumulative = np.cumsum(is_proposal)
            proposals[valid] += cumulative[last[valid]]
            recalled[valid] += recall_after[last[valid]]
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(proposals > 0, recalled / proposals, 0.0)
        recall = recalled / max(faces, 1)
        result[setting] = _voc_ap(recall, precision)
    return result


def _voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope (precision made non-increasing in recall)."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def best_overlap(truth: GroundTruth, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each predicted corner box: (best IoU with any annotated face, that face's index)."""
    if not len(boxes):
        return np.zeros(0), np.zeros(0, dtype=int)
    if not len(truth.boxes):
        return np.zeros(len(boxes)), np.zeros(len(boxes), dtype=int)
    iou = overlaps(boxes, corners(truth.boxes))
    best = iou.argmax(axis=1)
    return iou[np.arange(len(boxes)), best], best


def clearly_visible(truth: GroundTruth, min_height: float) -> np.ndarray:
    """Faces at least ``min_height`` px tall, valid, not heavily blurred or occluded."""
    a = truth.attributes
    return (
        (truth.boxes[:, 3] >= min_height)
        & (a["invalid"] == 0)
        & (a["blur"] < 2)
        & (a["occlusion"] < 2)
    )


def found_and_false(
    truth: list[GroundTruth], boxes: list[np.ndarray], min_height: float
) -> tuple[int, int, int]:
    """(clearly visible faces found, clearly visible faces, false detections) of the corner
    boxes kept in each photo: a face is found by a box overlapping it at IoU >= ``IOU``, a box
    is false when it overlaps every annotated face at IoU < 0.3."""
    hit = clear = false = 0
    for gt, kept in zip(truth, boxes, strict=True):
        visible = clearly_visible(gt, min_height)
        clear += int(visible.sum())
        if len(gt.boxes) and len(kept):
            iou = overlaps(kept.astype(np.float64), corners(gt.boxes))
            hit += int(((iou >= IOU).any(axis=0) & visible).sum())
            false += int((iou.max(axis=1) < 0.3).sum())
        else:
            false += len(kept)
    return hit, clear, false

"""Fits the constants that place dlib's 68-point predictor inside a BlazeFace detection.

    python -m bench.fit_dlib_rect [--faces /work/shared/faces] [--repository triton_models]

dlib's shape predictor was trained on boxes from dlib's HOG face detector, which sit
differently on the face than BlazeFace's. On every photo of the set this runs both detectors,
pairs their boxes, and prints the median offset of the HOG box's centre and its side, in
BlazeFace box widths (``landmarks.DLIB_RECT_*``), and the median BlazeFace keypoints as
fractions of its box (``landmarks.KEYPOINTS_IN_BOX``). It then reports how far the 68 points
found from the mapped box are from those found from dlib's own box (mean, in inter-ocular
distances).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import dlib
import numpy as np

from embed_svc import catalog, detector, landmarks
from embed_svc.backends.onnx import OnnxBackend
from embed_svc.images import ImageLimits, decode_image
from embed_svc.types import Detection

LIMITS = ImageLimits(max_bytes=64 * 1024 * 1024, max_pixels=100_000_000, max_detect_size=1920)


def _photos(faces: Path) -> list[Path]:
    manifest = json.loads((faces / "manifest.json").read_text())
    paths = [faces / e["file"] for entries in manifest["identities"].values() for e in entries]
    return paths + [faces / e["file"] for e in manifest["group_photos"]]


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


async def main_async(args: argparse.Namespace) -> None:
    backend = await OnnxBackend.connect(args.repository, [catalog.DETECTOR.model], threads=2)
    hog = dlib.get_frontal_face_detector()
    predictor = landmarks.LandmarkPredictor.load(
        landmarks.package_model_path(landmarks.PREDICTOR_FILE)
    )
    offsets, keypoints, pairs = [], [], []
    for path in _photos(args.faces):
        image = decode_image(path.read_bytes(), LIMITS)
        tensor, fit = detector.letterbox(image.work)
        out = await backend.infer(
            catalog.DETECTOR.model,
            {catalog.DETECTOR.input: tensor[None]},
            [catalog.DETECTOR.regressors, catalog.DETECTOR.classificators],
        )
        found = detector.decode(
            out[catalog.DETECTOR.regressors][0], out[catalog.DETECTOR.classificators][0], fit, 0.5
        )
        for rect in hog(image.work, 1):
            hog_box = (rect.left(), rect.top(), rect.right(), rect.bottom())
            best = max(
                found,
                key=lambda d: _iou(hog_box, (d.box.x_min, d.box.y_min, d.box.x_max, d.box.y_max)),
                default=None,
            )
            if best is None:
                continue
            box = best.box
            if _iou(hog_box, (box.x_min, box.y_min, box.x_max, box.y_max)) < 0.3:
                continue
            width = box.width
            offsets.append(
                (
                    ((rect.left() + rect.right()) / 2 - (box.x_min + box.x_max) / 2) / width,
                    ((rect.top() + rect.bottom()) / 2 - (box.y_min + box.y_max) / 2) / width,
                    (rect.width() + rect.height()) / 2 / width,
                )
            )
            origin = np.array([box.x_min, box.y_min])
            keypoints.append((best.keypoints - origin) / np.array([box.width, box.height]))
            pairs.append((image.work, rect, best))
    await backend.close()
    dx, dy, side = np.median(np.array(offsets), axis=0)
    print(f"{len(offsets)} faces found by both detectors")
    print(f"DLIB_RECT_DX = {dx:.4f}\nDLIB_RECT_DY = {dy:.4f}\nDLIB_RECT_SIDE = {side:.4f}")
    spread = np.percentile(np.array(offsets), [10, 90], axis=0)
    print(f"  10th/90th percentiles dx {spread[:, 0]}, dy {spread[:, 1]}, side {spread[:, 2]}")
    typical = np.median(np.array(keypoints), axis=0)
    print("KEYPOINTS_IN_BOX =", [tuple(round(float(v), 3) for v in p) for p in typical])
    fitted, configured = [], []
    for work, rect, detection in pairs:
        reference = landmarks.shape_points(predictor.shape_in(work, rect))
        inter_ocular = np.linalg.norm(reference[36:42].mean(0) - reference[42:48].mean(0))
        mapped = landmarks.shape_points(predictor.shape_in(work, _rect(detection, dx, dy, side)))
        fitted.append(np.linalg.norm(mapped - reference, axis=1).mean() / inter_ocular)
        current = predictor.predict(work, detection)
        configured.append(np.linalg.norm(current - reference, axis=1).mean() / inter_ocular)
    print(
        f"68-point difference to dlib's own box, mean over faces, inter-ocular units: "
        f"fitted {np.mean(fitted):.4f}, as configured now {np.mean(configured):.4f}"
    )


def _rect(detection: Detection, dx: float, dy: float, side: float) -> dlib.rectangle:
    box = detection.box
    cx = (box.x_min + box.x_max) / 2 + dx * box.width
    cy = (box.y_min + box.y_max) / 2 + dy * box.width
    half = side * box.width / 2
    return dlib.rectangle(round(cx - half), round(cy - half), round(cx + half), round(cy + half))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, default=Path("/work/shared/faces"))
    parser.add_argument("--repository", type=Path, default=Path("triton_models"))
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()

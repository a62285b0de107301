"""BlazeFace: tflite2onnx's graph with a dynamic batch dimension."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from models import build
from models.verify import session
from tests.models.face_chips import Face

pytestmark = pytest.mark.integration


def _letterbox(image: np.ndarray) -> np.ndarray:
    """256 x 256 RGB uint8 HWC (the network input), the image scaled to fit and centred."""
    scale = 256 / max(image.shape[:2])
    resized = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))
    canvas = np.zeros((256, 256, 3), np.uint8)
    top, left = (256 - resized.shape[0]) // 2, (256 - resized.shape[1]) // 2
    canvas[top : top + resized.shape[0], left : left + resized.shape[1]] = resized
    return canvas


def test_uint8_dynamic_batch_equals_the_float32_fixed_batch_graph(
    repository: Path, faces: list[Face]
) -> None:
    """The installed graph (uint8 NHWC input, dynamic batch) on a batch equals tflite2onnx's
    graph (float32 NCHW in [-1, 1], batch 1) on numpy's preprocessing, image by image."""
    photos = {id(face.image): face.image for face in faces}
    batch = np.stack([_letterbox(image) for image in photos.values()])
    fixed = session(build.WORK / "blazeface_batch1.onnx")
    names = ["regressors", "classificators"]
    floats = build.UINT8_INPUTS["blazeface"].reference(batch)
    alone = [fixed.run(names, {"input": image[None]}) for image in floats]
    together = session(build.onnx_file(repository, "blazeface")).run(names, {"input": batch})
    for index, name in enumerate(names):
        want = np.concatenate([out[index] for out in alone])
        assert together[index].shape == want.shape
        np.testing.assert_array_equal(together[index], want, err_msg=name)


def test_scores_faces_in_photos_and_none_in_a_blank_image(
    repository: Path, faces: list[Face]
) -> None:
    astronaut = next(face.image for face in faces if face.source == "astronaut.png")
    blank = np.full((256, 256, 3), 128, np.uint8)
    batch = np.stack([_letterbox(astronaut), _letterbox(blank)])
    _, logits = session(build.onnx_file(repository, "blazeface")).run(
        ["regressors", "classificators"], {"input": batch}
    )
    scores = 1 / (1 + np.exp(-np.clip(logits[..., 0], -50, 50)))
    assert scores[0].max() > 0.75 and scores[1].max() < 0.5

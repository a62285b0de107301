"""Alignment, landmark conversion and head pose on synthetic geometry."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from embed_svc import align, landmarks, pose
from embed_svc.types import Box


def test_similarity_transform_recovers_a_known_transform() -> None:
    angle = math.radians(17)
    scale = 1.7
    matrix = np.array(
        [
            [scale * math.cos(angle), -scale * math.sin(angle), 12.0],
            [scale * math.sin(angle), scale * math.cos(angle), -5.0],
        ]
    )
    source = np.array([(10.0, 20.0), (50.0, 22.0), (31.0, 45.0), (30.0, 70.0)])
    target = source @ matrix[:, :2].T + matrix[:, 2]
    assert align.similarity_transform(source, target) == pytest.approx(matrix, abs=1e-9)


def test_template_chip_puts_the_keypoints_on_the_template() -> None:
    # Draw four dots, rotate and shrink the scene, and check the chip undoes it.
    image = np.zeros((400, 400, 3), dtype=np.uint8)
    truth = np.array([(150.0, 150.0), (250.0, 150.0), (200.0, 207.0), (200.0, 257.0)])
    rotation = cv2.getRotationMatrix2D((200, 200), 20, 0.8)
    moved = truth @ rotation[:, :2].T + rotation[:, 2]
    for x, y in moved:
        cv2.circle(image, (round(x), round(y)), 4, (255, 255, 255), -1)
    chip = align.template_chip(image, moved)
    assert chip.shape == (align.CHIP_SIZE, align.CHIP_SIZE, 3)
    for x, y in align.CHIP_TEMPLATE:
        assert chip[round(y), round(x)].max() > 100


def test_box_crop_is_square_and_centred_with_black_outside() -> None:
    image = np.full((100, 200, 3), 200, dtype=np.uint8)
    crop = align.box_crop(image, Box(150, 0, 250, 100), 64)  # half outside on the right
    assert crop.shape == (64, 64, 3)
    assert crop[32, 10].max() == 200
    assert crop[32, 60].max() == 0


def test_strong_downscale_averages_instead_of_aliasing() -> None:
    stripes = np.zeros((1000, 1000, 3), dtype=np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: bilinear sampling alone would alias
    crop = align.box_crop(stripes, Box(0, 0, 1000, 1000), 50)
    assert 100 < crop[10:40, 10:40].mean() < 155


def test_five_landmarks_from_68_follow_compreface_order() -> None:
    points = np.zeros((68, 2))
    points[36:42] = (30.0, 40.0)
    points[42:48] = (70.0, 40.0)
    points[30] = (50.0, 60.0)
    points[48] = (35.0, 80.0)
    points[54] = (65.0, 80.0)
    five = landmarks.five_from_68(points)
    assert five.tolist() == [[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]]


def test_five_landmarks_from_blazeface_place_mouth_corners_beside_the_centre() -> None:
    keypoints = np.array([(30.0, 40.0), (70.0, 40.0), (50, 60), (50, 80), (10, 50), (90, 50)])
    five = landmarks.five_from_blazeface(keypoints)
    assert five[3].tolist() == [34.0, 80.0]
    assert five[4].tolist() == [66.0, 80.0]


def test_dlib_rect_is_square_around_the_keypoints() -> None:
    from embed_svc.types import Detection

    box = Box(100, 100, 200, 200)
    detection = Detection(box, 0.9, landmarks.keypoints_in_box(box))
    rect = landmarks.dlib_rect(detection)
    assert rect.width() == rect.height() == round(landmarks.DLIB_RECT_SIDE * 100)
    centre = ((rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2)
    assert abs(centre[0] - 150) < 0.1 * 100 and abs(centre[1] - 150) < 0.1 * 100


def test_dlib_rect_follows_the_keypoints_of_a_turned_face() -> None:
    """A face turned to one side keeps its box but moves its eyes and mouth: the predictor's
    box moves with them (issue 8), not with the box centre."""
    from embed_svc.types import Detection

    box = Box(100, 100, 200, 200)
    frontal = landmarks.keypoints_in_box(box)
    turned = frontal + np.array([20.0, 0.0])
    a = landmarks.dlib_rect(Detection(box, 0.9, frontal))
    b = landmarks.dlib_rect(Detection(box, 0.9, turned))
    assert b.left() - a.left() == 20 and b.top() == a.top()
    assert b.width() == a.width()


def _rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """Nose up for positive pitch, towards the image's right for positive yaw, clockwise
    for positive roll."""
    p, y, r = (math.radians(v) for v in (pitch, yaw, roll))
    rx = np.array([[1, 0, 0], [0, math.cos(p), math.sin(p)], [0, -math.sin(p), math.cos(p)]])
    ry = np.array([[math.cos(y), 0, -math.sin(y)], [0, 1, 0], [math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _project(pitch: float, yaw: float, roll: float) -> np.ndarray:
    # The face 3600 units in front of a camera with a focal length of 3600 px.
    points3 = pose.FACE_MODEL @ _rotation(pitch, yaw, roll).T + np.array([0.0, 0.0, 3600.0])
    camera = pose.camera_matrix(3600.0, 320.0, 240.0)
    projected = points3 @ camera.T
    points68 = np.zeros((68, 2))
    points68[list(pose.POSE_POINT_INDEXES)] = projected[:, :2] / projected[:, 2:]
    return points68


@pytest.mark.parametrize(
    "angles", [(0.0, 0.0, 0.0), (15.0, 0.0, 0.0), (0.0, -30.0, 0.0), (0.0, 0.0, 20.0), (-10, 25, 8)]
)
def test_pose_recovers_the_angles_of_a_projected_face(angles: tuple[float, float, float]) -> None:
    pitch, yaw, roll = angles
    estimated = pose.estimate_pose(_project(pitch, yaw, roll))
    expected = pose.rotation_angles(_rotation(pitch, yaw, roll))
    assert estimated.pitch == pytest.approx(expected.pitch, abs=2.0)
    assert estimated.yaw == pytest.approx(expected.yaw, abs=2.0)
    assert estimated.roll == pytest.approx(expected.roll, abs=2.0)


def test_pose_signs_follow_the_contract() -> None:
    # Nose turned towards the image's right: positive yaw; nose up: positive pitch;
    # clockwise tilt in the image: positive roll.
    assert pose.estimate_pose(_project(0, 20, 0)).yaw > 15
    assert pose.estimate_pose(_project(12, 0, 0)).pitch > 8
    assert pose.estimate_pose(_project(0, 0, 10)).roll > 8
    assert pose.rotation_angles(_rotation(0, 20, 0)).yaw == pytest.approx(20)
    assert pose.rotation_angles(_rotation(12, 0, 0)).pitch == pytest.approx(12)

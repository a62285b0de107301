"""Head pose (pitch, roll, yaw in degrees) from dlib's 68 landmarks with a generic 3-D face.

``cv2.solvePnP`` fits six points of a mean face (nose tip, chin, outer eye corners, mouth
corners) to the landmarks under a pinhole camera looking straight at the face (principal
point on the face, focal length ``FOCAL_IN_EYE_SPANS`` outer-eye-corner distances), so the
pose is relative to the line of sight and does not change when the photo is cropped or
scaled. The angles are read from where the fitted head points, so their signs follow
``facegrid.common.v1.Pose``: pitch positive looking up, yaw positive looking towards the
image's right, roll positive for a clockwise tilt in the image.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from embed_svc.types import HeadPose, Points

#: Indexes in dlib's 68 points: nose tip, chin, image-left eye outer corner, image-right eye
#: outer corner, image-left mouth corner, image-right mouth corner.
POSE_POINT_INDEXES = (30, 8, 36, 45, 48, 54)
#: A mean face in millimetre-like units, camera-aligned axes (x to the image's right, y down,
#: z away from the camera); a frontal face has the identity rotation.
FACE_MODEL = np.array(
    [
        (0.0, 0.0, 0.0),
        (0.0, 330.0, 65.0),
        (-225.0, -170.0, 135.0),
        (225.0, -170.0, 135.0),
        (-150.0, 150.0, 125.0),
        (150.0, 150.0, 125.0),
    ],
    dtype=np.float64,
)


#: Focal length of the assumed camera in outer-eye-corner distances: a face filling about a
#: quarter of the frame width of a normal lens.
FOCAL_IN_EYE_SPANS = 8.0


def camera_matrix(focal: float, centre_x: float, centre_y: float) -> np.ndarray:
    """A pinhole camera with that focal length (pixels) and principal point."""
    return np.array(
        [[focal, 0.0, centre_x], [0.0, focal, centre_y], [0.0, 0.0, 1.0]], dtype=np.float64
    )


def rotation_angles(rotation: np.ndarray) -> HeadPose:
    """Pitch, roll and yaw of a head rotation (model to camera), degrees."""
    facing = rotation @ np.array([0.0, 0.0, -1.0])  # where the nose points
    right = rotation @ np.array([1.0, 0.0, 0.0])  # the head's image-rightward axis
    yaw = math.degrees(math.atan2(facing[0], -facing[2]))
    pitch = math.degrees(math.atan2(-facing[1], math.hypot(facing[0], facing[2])))
    roll = math.degrees(math.atan2(right[1], right[0]))
    return HeadPose(pitch=pitch, roll=roll, yaw=yaw)


def estimate_pose(points68: Points) -> HeadPose:
    """Head pose from dlib's 68 landmarks (any pixel frame)."""
    image_points = points68[list(POSE_POINT_INDEXES)].astype(np.float64)
    eye_span = float(np.linalg.norm(image_points[3] - image_points[2]))
    centre = image_points.mean(axis=0)
    camera = camera_matrix(max(eye_span, 1.0) * FOCAL_IN_EYE_SPANS, centre[0], centre[1])
    ok, rvec, _tvec = cv2.solvePnP(
        FACE_MODEL,
        image_points,
        camera,
        np.zeros(4),
        rvec=np.zeros((3, 1)),
        tvec=np.array([[0.0], [0.0], [450.0 * FOCAL_IN_EYE_SPANS]]),
        useExtrinsicGuess=True,
        flags=cv2.SOLVEPNP_ITERATIVE,
    )
    if not ok:
        return HeadPose(pitch=0.0, roll=0.0, yaw=0.0)
    rotation, _ = cv2.Rodrigues(rvec)
    return rotation_angles(rotation)

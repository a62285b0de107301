"""Face alignment: cutting the normalised face crop ("chip") a calculator was trained on.

Two methods, both giving dlib's 150 px chip geometry:
- ``dlib68``: dlib's own ``get_face_chip`` from the 68 landmarks (padding 0.25), exactly what
  dlib's ResNet was trained on;
- ``blazeface``: a similarity transform taking BlazeFace's eye centres, nose tip and mouth
  centre onto template points of that chip (PLATFORM.md), for when landmarks are skipped.
Plus ``arcface_crop`` (five landmarks onto ArcFace's 112 px template, for MobileFace) and
``box_crop``, the square crop of the detector box (for faceres-deep).
"""

from __future__ import annotations

import cv2
import dlib
import numpy as np

from embed_svc.types import Affine, Box, Points, RgbImage

#: Side of dlib's face chip, pixels.
CHIP_SIZE = 150
#: dlib's chip padding (fraction of the face added on each side).
CHIP_PADDING = 0.25
#: Where the image-left eye, image-right eye, nose tip and mouth centre land on a 150 px
#: dlib chip (measured over dlib-aligned chips).
CHIP_TEMPLATE = np.array(
    [(47.549, 46.599), (100.476, 46.599), (74.013, 76.562), (74.013, 103.023)], dtype=np.float64
)


#: ArcFace's five-point template for 112 px crops: image-left eye, image-right eye, nose tip,
#: image-left and image-right mouth corners (the MobileFace input).
ARCFACE_TEMPLATE = np.array(
    [
        (38.2946, 51.6963),
        (73.5318, 51.5014),
        (56.0252, 71.7366),
        (41.5493, 92.3655),
        (70.7299, 92.2041),
    ],
    dtype=np.float64,
)
#: Side of the ArcFace template's crop, pixels.
ARCFACE_SIZE = 112


def arcface_crop(image: RgbImage, five: Points, size: int = ARCFACE_SIZE) -> RgbImage:
    """The crop that puts CompreFace's five landmarks on ArcFace's template, ``size`` px."""
    template = ARCFACE_TEMPLATE * (size / ARCFACE_SIZE)
    return warp(image, similarity_transform(five, template), size)


def dlib_chip(image: RgbImage, shape: dlib.full_object_detection) -> RgbImage:
    """dlib's 150 px face chip (padding 0.25) for a 68-point shape found in ``image``."""
    chip = dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
    return np.ascontiguousarray(chip, dtype=np.uint8)


def similarity_transform(source: Points, target: Points) -> Affine:
    """Least-squares rotation + uniform scale + translation taking ``source`` onto ``target``
    (Umeyama, without reflection); a 2x3 matrix."""
    src_mean = source.mean(axis=0)
    dst_mean = target.mean(axis=0)
    src = source - src_mean
    dst = target - dst_mean
    covariance = dst.T @ src / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    variance = (src**2).sum() / len(source)
    scale = float((singular * sign).sum() / variance) if variance > 0 else 1.0
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def template_chip(image: RgbImage, keypoints: Points) -> RgbImage:
    """The 150 px chip from BlazeFace keypoints (eyes, nose tip, mouth centre: rows 0-3)."""
    return warp(image, similarity_transform(keypoints[:4], CHIP_TEMPLATE), CHIP_SIZE)


def box_crop(image: RgbImage, box: Box, size: int, margin: float = 0.0) -> RgbImage:
    """The square crop around ``box`` (side = box's longer side x (1 + 2 margin)), resized to
    ``size`` pixels; parts outside the image are black."""
    side = max(box.width, box.height) * (1.0 + 2.0 * margin)
    if side <= 0:
        return np.zeros((size, size, 3), dtype=np.uint8)
    scale = size / side
    cx = (box.x_min + box.x_max) / 2
    cy = (box.y_min + box.y_max) / 2
    matrix = np.array(
        [[scale, 0.0, size / 2 - scale * cx], [0.0, scale, size / 2 - scale * cy]],
        dtype=np.float64,
    )
    return warp(image, matrix, size)


def warp(image: RgbImage, matrix: Affine, size: int) -> RgbImage:
    """``cv2.warpAffine`` into a ``size`` px square, area-averaging first when the transform
    shrinks by more than 2x (bilinear sampling alone would alias); outside is black."""
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.5:
        # Cut the source region the output covers, shrink it by area, then warp the rest.
        inverse = cv2.invertAffineTransform(matrix)
        corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], float)
        mapped = corners @ inverse.T
        height, width = image.shape[:2]
        x0 = int(max(0, np.floor(mapped[:, 0].min()) - 2))
        y0 = int(max(0, np.floor(mapped[:, 1].min()) - 2))
        x1 = int(min(width, np.ceil(mapped[:, 0].max()) + 2))
        y1 = int(min(height, np.ceil(mapped[:, 1].max()) + 2))
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            shrink = scale * 2.0
            region = image[y0:y1, x0:x1]
            small_w = max(1, round((x1 - x0) * shrink))
            small_h = max(1, round((y1 - y0) * shrink))
            small = cv2.resize(region, (small_w, small_h), interpolation=cv2.INTER_AREA)
            fx = small_w / (x1 - x0)
            fy = small_h / (y1 - y0)
            # source = small / f + offset, so matrix' = matrix o (that map).
            pre = np.array([[1 / fx, 0.0, x0], [0.0, 1 / fy, y0], [0.0, 0.0, 1.0]])
            matrix = matrix @ pre
            image = np.ascontiguousarray(small)
    out = cv2.warpAffine(
        image,
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    return np.ascontiguousarray(out)

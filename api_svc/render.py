"""embed_svc's faces rendered as CompreFace's response fields.

- ``box.probability`` rounded to 5 decimals; ``landmarks`` always, five whole-pixel ``[x, y]``
  pairs (CompreFace answers integers); ``age``, ``gender``, ``pose`` when asked for;
  ``embedding`` only with ``face_plugins=calculator``.
- ``execution_time`` (per face; embed_svc measures the request, so every face of it shows the
  same numbers) and ``plugins_versions`` only with ``status=true``, restricted to CompreFace's
  keys so that strict clients see no unknown field; versions read ``name (package==version)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from google.protobuf import struct_pb2

from api_svc.similarity import round5
from facegrid.common.v1 import common_pb2
from facegrid.embedding.v1 import embedding_service_pb2 as embed_pb

#: Keys of CompreFace's ``execution_time`` and ``plugins_versions``.
COMPREFACE_PLUGIN_KEYS = ("age", "gender", "pose", "detector", "calculator", "mask")


class FaceFields(Protocol):
    """The face fields shared by DetectedFace, FaceMatch, RecognizedFace and VerifiedFace."""

    @property
    def box(self) -> common_pb2.Box: ...
    @property
    def landmarks(self) -> struct_pb2.ListValue: ...
    @property
    def age(self) -> common_pb2.Age: ...
    @property
    def gender(self) -> common_pb2.Gender: ...
    @property
    def pose(self) -> common_pb2.Pose: ...
    @property
    def embedding(self) -> struct_pb2.ListValue: ...
    @property
    def execution_time(self) -> struct_pb2.Struct: ...

    detector_score: float


def execution_time(timings: Mapping[str, float]) -> dict[str, float]:
    """CompreFace's ``execution_time``: milliseconds by plugin, whole numbers."""
    return {key: float(round(timings[key])) for key in COMPREFACE_PLUGIN_KEYS if key in timings}


def plugins_versions(models: Mapping[str, embed_pb.ModelVersion]) -> dict[str, str]:
    """CompreFace's ``plugins_versions``: model by plugin."""
    return {
        key: f"{models[key].name} ({models[key].version})"
        for key in COMPREFACE_PLUGIN_KEYS
        if key in models
    }


def fill_face(
    target: FaceFields,
    face: embed_pb.Face,
    *,
    embedding: bool,
    timings: Mapping[str, float] | None,
) -> None:
    """Copies ``face`` into a response face message."""
    box = face.box
    target.box.CopyFrom(
        common_pb2.Box(
            probability=round5(box.probability),
            x_min=box.x_min,
            y_min=box.y_min,
            x_max=box.x_max,
            y_max=box.y_max,
        )
    )
    for point in face.landmarks:
        target.landmarks.add_list().extend([float(round(point.x)), float(round(point.y))])
    if face.HasField("age"):
        target.age.CopyFrom(face.age)
    if face.HasField("gender"):
        target.gender.CopyFrom(face.gender)
    if face.HasField("pose"):
        target.pose.CopyFrom(face.pose)
    if face.HasField("detector_score"):
        target.detector_score = round5(face.detector_score)
    if embedding:
        target.embedding.extend([float(v) for v in face.embedding])
    if timings is not None:
        target.execution_time.update(execution_time(timings))

"""Rendering of pipeline results as protobuf messages (rounding as CompreFace does)."""

from __future__ import annotations

from embed_svc.types import FaceResult, ModelInfo
from facegrid.common.v1 import common_pb2
from facegrid.embedding.v1 import embedding_service_pb2 as pb


def version(info: ModelInfo) -> pb.ModelVersion:
    return pb.ModelVersion(name=info.name, version=info.version)


def embedding_values(face: FaceResult) -> list[float]:
    return [] if face.embedding is None else face.embedding.tolist()


def face(face: FaceResult) -> pb.Face:
    box = face.box
    message = pb.Face(
        box=common_pb2.Box(
            probability=round(face.score, 5),
            x_min=round(box.x_min),
            y_min=round(box.y_min),
            x_max=round(box.x_max),
            y_max=round(box.y_max),
        ),
        embedding=embedding_values(face),
    )
    if face.detector_score is not None:
        message.detector_score = round(face.detector_score, 5)
    if face.landmarks is not None:
        message.landmarks.extend(
            common_pb2.Point(x=float(x), y=float(y)) for x, y in face.landmarks
        )
    if face.age is not None:
        message.age.CopyFrom(
            common_pb2.Age(
                probability=round(face.age.probability, 5),
                low=face.age.low,
                high=face.age.high,
            )
        )
    if face.gender is not None:
        message.gender.CopyFrom(
            common_pb2.Gender(
                probability=round(face.gender.probability, 5), value=face.gender.value
            )
        )
    if face.pose is not None:
        message.pose.CopyFrom(
            common_pb2.Pose(pitch=face.pose.pitch, roll=face.pose.roll, yaw=face.pose.yaw)
        )
    return message

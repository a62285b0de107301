"""Test doubles of api_svc's dependencies: key store, request counter and embed_svc."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from api_svc.auth import KeyRecord, Service, ServiceType
from api_svc.stats import CountKey
from facegrid.common.v1 import common_pb2
from facegrid.embedding.v1 import embedding_service_pb2 as embed_pb
from facegrid.errors import ServiceError
from facegrid.schema import api_key_digest

DLIB = "dlib-resnet-v1"


@dataclass
class FakeKeyStore:
    """Services by key; counts lookups."""

    records: dict[bytes, KeyRecord] = field(default_factory=dict)
    lookups: int = 0

    def add(self, service_type: ServiceType, calculator: str | None = None) -> uuid.UUID:
        key = uuid.uuid4()
        service = Service(uuid.uuid4(), service_type, calculator)
        self.records[api_key_digest(key)] = KeyRecord(service, key)
        return key

    async def find(self, digest: bytes) -> KeyRecord | None:
        self.lookups += 1
        return self.records.get(digest)


@dataclass
class FakeCounter:
    """Records counted service ids (one per request) and each batch; fails when ``broken``."""

    counted: list[uuid.UUID] = field(default_factory=list)
    batches: list[dict[CountKey, int]] = field(default_factory=list)
    broken: bool = False
    written: asyncio.Event = field(default_factory=asyncio.Event)
    """Set after each batch written."""

    async def add_counts(self, counts: Mapping[CountKey, int]) -> None:
        if self.broken:
            raise OSError("database down")
        self.batches.append(dict(counts))
        for (service_id, _day), n in counts.items():
            self.counted.extend([service_id] * n)
        self.written.set()


def face(
    x: int,
    size: int,
    embedding: list[float] | None = None,
    probability: float = 0.987654321,
) -> embed_pb.Face:
    """A face whose box starts at (x, 10) with five landmarks inside it."""
    message = embed_pb.Face(
        box=common_pb2.Box(
            probability=probability, x_min=x, y_min=10, x_max=x + size, y_max=10 + size
        ),
        embedding=embedding or [],
        detector_score=0.912345678,
    )
    for dx, dy in ((0.3, 0.4), (0.7, 0.4), (0.5, 0.6), (0.35, 0.8), (0.65, 0.8)):
        message.landmarks.add(x=x + dx * size + 0.4, y=10 + dy * size)
    return message


@dataclass
class FakeEmbed:
    """embed_svc answering from a table: image bytes -> faces."""

    faces: dict[bytes, list[embed_pb.Face]] = field(default_factory=dict)
    error: ServiceError | None = None
    embedding_size: int = 3
    calibration: tuple[float, float] = (0.5, 10.0)
    calls: list[tuple[list[str], embed_pb.AnalyzeOptions]] = field(default_factory=list)
    status_calls: int = 0

    async def analyze(
        self, images: Mapping[str, bytes], options: embed_pb.AnalyzeOptions
    ) -> embed_pb.AnalyzeImagesResponse:
        self.calls.append((list(images), options))
        if self.error is not None:
            raise self.error
        plugins = set(options.plugins)
        response = embed_pb.AnalyzeImagesResponse(
            execution_time_ms={"decode": 1.2, "detector": 10.4, "calculator": 5.6}
        )
        response.models["detector"].CopyFrom(embed_pb.ModelVersion(name="blazeface", version="1"))
        response.models["landmarks"].CopyFrom(embed_pb.ModelVersion(name="dlib68", version="1"))
        if embed_pb.FACE_PLUGIN_CALCULATOR in plugins:
            response.calculator.CopyFrom(embed_pb.ModelVersion(name=DLIB, version="0.3.0"))
            response.models["calculator"].CopyFrom(response.calculator)
        for data in images.values():
            found = self.faces.get(data, [])
            if options.limit:
                found = found[: options.limit]
            image = response.images.add(width=640, height=480)
            for item in found:
                copy = image.faces.add()
                copy.CopyFrom(item)
                if embed_pb.FACE_PLUGIN_CALCULATOR not in plugins:
                    del copy.embedding[:]
                if embed_pb.FACE_PLUGIN_AGE in plugins:
                    copy.age.CopyFrom(common_pb2.Age(probability=0.9, low=25, high=32))
        return response

    async def status(self) -> embed_pb.GetStatusResponse:
        self.status_calls += 1
        c0, c1 = self.calibration
        return embed_pb.GetStatusResponse(
            calculators=[
                embed_pb.CalculatorInfo(
                    model=embed_pb.ModelVersion(name=DLIB, version="0.3.0"),
                    embedding_size=self.embedding_size,
                    calibration=embed_pb.SimilarityCalibration(c0=c0, c1=c1),
                    is_default=True,
                )
            ]
        )

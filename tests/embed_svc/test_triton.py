"""embed_svc on a real tritonserver: detection, landmarks, pose, identity under
transformations, backend parity, and recovery when Triton restarts.

Photos come from registry packages (scikit-image's astronaut; npm @vladmandic/face-api's demo
group photos, from ``make models``' cache) and from transformations the tests make. Fails until
``make models`` has filled ``triton_models/``.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from PIL import Image

from embed_svc import catalog
from embed_svc.backends.onnx import OnnxBackend
from embed_svc.backends.triton import TritonBackend
from embed_svc.config import load_config
from embed_svc.server import EmbedServer, create_server
from facegrid.embedding.v1 import embedding_service_pb2 as pb
from facegrid.embedding.v1 import embedding_service_pb2_grpc as pb_grpc
from facegrid.errors import error_info
from facegrid.server import channel_options
from facegrid.similarity import Calibration
from tests.helpers.health import health_becomes
from tests.helpers.photos import FACE_API_COUNTS, astronaut_png, face_api_samples
from tests.helpers.triton import REPOSITORY, TritonProcess, missing_models

pytestmark = pytest.mark.integration

REQUIRED = catalog.all_models()
SERVING = health_pb2.HealthCheckResponse.SERVING
CALCULATOR_PLUGINS = [pb.FACE_PLUGIN_CALCULATOR, pb.FACE_PLUGIN_LANDMARKS, pb.FACE_PLUGIN_POSE]


@pytest.fixture(scope="module")
def triton(short_tmp: Path, free_port: Callable[[], int]) -> Iterator[TritonProcess]:
    missing = missing_models(REQUIRED)
    if missing:
        pytest.fail(f"models {missing} not in {REPOSITORY}: run `make models`")
    work = short_tmp / "triton-embed"
    work.mkdir(exist_ok=True)
    process = TritonProcess(work, free_port(), free_port())
    process.start()
    yield process
    process.stop()


@dataclass
class Served:
    server: EmbedServer
    stub: pb_grpc.EmbeddingServiceStub
    channel: grpc.aio.Channel
    calibration: pb.SimilarityCalibration

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        distance = float(np.linalg.norm(a - b))
        return Calibration(self.calibration.c0, self.calibration.c1).similarity(distance)


@pytest.fixture(scope="module")
async def served(triton: TritonProcess) -> AsyncIterator[Served]:
    config = load_config({"FACEGRID_EMBED_PORT": "0", "FACEGRID_TRITON_URL": triton.grpc_url})
    backend = await TritonBackend.connect(config.triton_url, config.triton_timeout_s)
    server = await create_server(config, backend)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", options=channel_options())
    await health_becomes(channel, SERVING, timeout_s=60)
    stub = pb_grpc.EmbeddingServiceStub(channel)
    status = await stub.GetStatus(pb.GetStatusRequest())
    (default,) = [c for c in status.calculators if c.is_default]
    yield Served(server, stub, channel, default.calibration)
    await channel.close()
    await server.close(1.0)


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(pixels: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _astronaut() -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(astronaut_png())).convert("RGB"))


def _rotate(pixels: np.ndarray, degrees: float) -> np.ndarray:
    """Rotated counter-clockwise by ``degrees`` about the centre (OpenCV's convention)."""
    height, width = pixels.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(pixels, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)


async def _faces(served: Served, data: bytes) -> list[pb.Face]:
    response = await served.stub.AnalyzeImages(
        pb.AnalyzeImagesRequest(
            images=[data], options=pb.AnalyzeOptions(plugins=CALCULATOR_PLUGINS)
        )
    )
    return list(response.images[0].faces)


async def test_astronaut_has_one_face_with_landmarks_inside(served: Served) -> None:
    (face,) = await _faces(served, astronaut_png())
    box = face.box
    # Eileen Collins' face in the 512 x 512 photo.
    assert 150 < box.x_min < 200 and 250 < box.x_max < 300
    assert 50 < box.y_min < 100 and 150 < box.y_max < 200
    assert box.probability > 0.7
    points = [(p.x, p.y) for p in face.landmarks]
    assert len(points) == 5
    for x, y in points:
        assert box.x_min <= x <= box.x_max and box.y_min <= y <= box.y_max
    left_eye, right_eye, nose, mouth_left, mouth_right = points
    assert left_eye[0] < nose[0] < right_eye[0]
    assert mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    assert len(face.embedding) == 128
    assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-5)


async def test_group_photos_have_every_face(served: Served) -> None:
    samples = face_api_samples()
    response = await served.stub.AnalyzeImages(
        pb.AnalyzeImagesRequest(images=list(samples.values()))
    )
    counts = {name: len(image.faces) for name, image in zip(samples, response.images, strict=True)}
    assert counts == FACE_API_COUNTS


async def test_blank_and_noise_have_no_face(served: Served) -> None:
    rng = np.random.default_rng(7)
    images = [
        _png(np.zeros((480, 640, 3), dtype=np.uint8)),
        _png(np.full((300, 300, 3), 255, dtype=np.uint8)),
        _png(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)),
        _jpeg(rng.normal(128, 40, (600, 800, 3)).clip(0, 255).astype(np.uint8), 90),
    ]
    response = await served.stub.AnalyzeImages(pb.AnalyzeImagesRequest(images=images))
    assert [len(image.faces) for image in response.images] == [0, 0, 0, 0]


async def test_the_same_face_stays_similar_under_transformations(served: Served) -> None:
    pixels = _astronaut()
    (reference,) = await _faces(served, _png(pixels))
    variants = {
        "mirrored": _png(pixels[:, ::-1].copy()),
        "cropped": _png(pixels[20:320, 100:340].copy()),
        "half size": _png(cv2.resize(pixels, (256, 256), interpolation=cv2.INTER_AREA)),
        "double size": _png(cv2.resize(pixels, (1024, 1024), interpolation=cv2.INTER_CUBIC)),
        "rotated +10": _png(_rotate(pixels, 10)),
        "rotated -10": _png(_rotate(pixels, -10)),
        "jpeg quality 20": _jpeg(pixels, 20),
        "brighter": _png(np.clip(pixels.astype(int) + 40, 0, 255).astype(np.uint8)),
    }
    base = np.array(reference.embedding)
    for name, data in variants.items():
        faces = await _faces(served, data)
        assert len(faces) == 1, name
        similarity = served.similarity(base, np.array(faces[0].embedding))
        assert similarity > 0.5, (name, similarity)


async def test_pose_follows_mirroring_and_rotation(served: Served) -> None:
    pixels = _astronaut()
    (upright,) = await _faces(served, _png(pixels))
    (mirrored,) = await _faces(served, _png(pixels[:, ::-1].copy()))
    (tilted,) = await _faces(served, _png(_rotate(pixels, -10)))  # clockwise
    assert mirrored.pose.yaw == pytest.approx(-upright.pose.yaw, abs=2.0)
    assert mirrored.pose.roll == pytest.approx(-upright.pose.roll, abs=2.0)
    assert tilted.pose.roll - upright.pose.roll == pytest.approx(10.0, abs=3.0)


async def test_different_people_are_below_half(served: Served) -> None:
    samples = face_api_samples()
    (astronaut,) = await _faces(served, astronaut_png())
    reference = np.array(astronaut.embedding)
    by_photo = {name: await _faces(served, data) for name, data in samples.items()}
    others = [np.array(f.embedding) for faces in by_photo.values() for f in faces]
    assert len(others) == sum(FACE_API_COUNTS.values())
    assert max(served.similarity(reference, other) for other in others) < 0.5
    # Faces in the same photo are different people. dlib's model is weaker on these faces (see
    # docs/benchmarks.md): at the scale fitted on CelebA (issue 8: 0.5 at its equal-error
    # distance 0.4445) 23 of the 31 pairs fall below 0.5, median 0.29 (at the earlier scale,
    # fitted on ../shared/faces with 0.5 at 0.3761: 30 of 31).
    same_photo = [
        served.similarity(np.array(a.embedding), np.array(b.embedding))
        for faces in by_photo.values()
        for a, b in itertools.combinations(faces, 2)
    ]
    assert len(same_photo) == 31
    assert sum(s < 0.5 for s in same_photo) >= 0.7 * len(same_photo)
    assert float(np.median(same_photo)) < 0.35


async def test_age_and_gender_of_women(served: Served) -> None:
    """Every face of the test photos is a woman's, adult, photographed at 20-50."""
    samples = face_api_samples()
    plugins = [pb.FACE_PLUGIN_AGE, pb.FACE_PLUGIN_GENDER]
    response = await served.stub.AnalyzeImages(
        pb.AnalyzeImagesRequest(
            images=[astronaut_png(), *samples.values()],
            options=pb.AnalyzeOptions(plugins=plugins),
        )
    )
    faces = [face for image in response.images for face in image.faces]
    astronaut = response.images[0].faces[0]
    assert astronaut.gender.value == "female" and astronaut.gender.probability > 0.8
    assert sum(face.gender.value == "female" for face in faces) >= 0.8 * len(faces)
    for face in faces:
        assert 15 <= face.age.low < face.age.high <= 60
        assert 0 < face.age.probability <= 1
    assert response.models["age"].name == "faceres-deep"
    assert {"age", "gender"} <= set(response.execution_time_ms)


@pytest.mark.parametrize("calculator", ["mobileface", "faceres-deep"])
async def test_other_calculators_tell_the_astronaut_from_others(
    served: Served, calculator: str
) -> None:
    samples = face_api_samples()
    status = await served.stub.GetStatus(pb.GetStatusRequest())
    (info,) = [c for c in status.calculators if c.model.name == calculator]
    options = pb.AnalyzeOptions(plugins=[pb.FACE_PLUGIN_CALCULATOR], calculator=calculator)
    pixels = _astronaut()
    response = await served.stub.AnalyzeImages(
        pb.AnalyzeImagesRequest(
            images=[_png(pixels), _png(pixels[:, ::-1].copy()), *samples.values()],
            options=options,
        )
    )
    assert response.calculator.name == calculator
    vectors = [[np.array(face.embedding) for face in image.faces] for image in response.images]
    assert all(len(v) == info.embedding_size for image in vectors for v in image)

    def similarity(a: np.ndarray, b: np.ndarray) -> float:
        distance = float(np.linalg.norm(a - b))
        return Calibration(info.calibration.c0, info.calibration.c1).similarity(distance)

    reference = vectors[0][0]
    assert similarity(reference, vectors[1][0]) > 0.5  # mirrored
    others = [v for image in vectors[2:] for v in image]
    # At the scale fitted on CelebA (issue 8: 0.5 at the equal-error distance, where these two
    # calculators err on 11-13% of CelebA's pairs) some of the 22 women score above 0.5
    # (measured: mobileface 3, highest 0.62; faceres-deep at most 2, highest 0.52).
    below = [similarity(reference, other) < 0.5 for other in others]
    assert sum(below) >= 0.8 * len(others)


async def test_onnxruntime_and_triton_give_the_same_numbers(
    served: Served, triton: TritonProcess
) -> None:
    data = astronaut_png()
    onnx = await OnnxBackend.connect(REPOSITORY, REQUIRED, threads=1)
    try:
        config = load_config({"FACEGRID_EMBED_PORT": "0", "FACEGRID_EMBED_BACKEND": "onnxruntime"})
        local = await create_server(config, onnx)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{local.port}", options=channel_options())
        try:
            await health_becomes(channel, SERVING, timeout_s=60)
            stub = pb_grpc.EmbeddingServiceStub(channel)
            plugins = [*CALCULATOR_PLUGINS, pb.FACE_PLUGIN_AGE, pb.FACE_PLUGIN_GENDER]
            request = pb.AnalyzeImagesRequest(
                images=[data], options=pb.AnalyzeOptions(plugins=plugins)
            )
            via_onnx = (await stub.AnalyzeImages(request)).images[0].faces
            via_triton = (await served.stub.AnalyzeImages(request)).images[0].faces
        finally:
            await channel.close()
            await local.close(0.5)
    finally:
        await onnx.close()
    assert len(via_onnx) == len(via_triton) == 1
    a, b = via_onnx[0], via_triton[0]
    assert (a.box.x_min, a.box.y_min, a.box.x_max, a.box.y_max) == (
        b.box.x_min,
        b.box.y_min,
        b.box.x_max,
        b.box.y_max,
    )
    assert a.box.probability == pytest.approx(b.box.probability, abs=1e-4)
    cosine = float(np.dot(a.embedding, b.embedding))
    assert cosine > 0.99999
    assert [(p.x, p.y) for p in a.landmarks] == [(p.x, p.y) for p in b.landmarks]
    assert (a.age.low, a.age.high, a.gender.value) == (b.age.low, b.age.high, b.gender.value)
    assert a.age.probability == pytest.approx(b.age.probability, abs=1e-4)
    assert a.gender.probability == pytest.approx(b.gender.probability, abs=1e-4)


async def test_triton_outage_is_unavailable_then_recovers(
    served: Served, triton: TritonProcess
) -> None:
    triton.stop()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _faces(served, astronaut_png())
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    info = error_info(caught.value)
    assert info is not None and info.reason in {"INFERENCE_UNAVAILABLE", "MODEL_UNAVAILABLE"}
    triton.start()
    await health_becomes(served.channel, SERVING, timeout_s=60)
    faces = await _faces(served, astronaut_png())
    assert len(faces) == 1

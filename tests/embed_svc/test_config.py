"""embed_svc configuration: defaults, parsing, refusals; the backend registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from embed_svc.backends import BACKENDS
from embed_svc.config import load_config
from facegrid.config import ConfigError


def test_defaults() -> None:
    config = load_config({})
    assert (config.host, config.port) == ("127.0.0.1", 50052)
    assert config.backend == "triton"
    assert config.triton_url == "127.0.0.1:8101"
    assert config.model_repository == Path("triton_models")
    assert config.calculator == "dlib-resnet-v1"
    assert config.alignment == "dlib68" and config.mirror_average is True
    assert config.max_image_bytes == 5 * 1024 * 1024
    assert config.det_prob_threshold == 0.8 and config.confirm_below == 0.88


def test_values_are_read() -> None:
    config = load_config(
        {
            "FACEGRID_EMBED_PORT": "6000",
            "FACEGRID_EMBED_BACKEND": "onnxruntime",
            "FACEGRID_TRITON_TIMEOUT_S": "2.5",
            "FACEGRID_ALIGNMENT": "blazeface",
            "FACEGRID_MIRROR_AVERAGE": "false",
            "FACEGRID_MAX_IMAGE_PIXELS": "1000",
            "FACEGRID_MAX_DETECT_SIZE": "640",
            "FACEGRID_CONFIRM_BELOW": "0",
        }
    )
    assert config.port == 6000 and config.backend == "onnxruntime"
    assert config.triton_timeout_s == 2.5
    assert config.alignment == "blazeface" and config.mirror_average is False
    assert config.max_image_pixels == 1000 and config.max_detect_size == 640
    assert config.confirm_below == 0.0


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("FACEGRID_EMBED_BACKEND", "tensorrt", "FACEGRID_EMBED_BACKEND must be one of"),
        ("FACEGRID_ALIGNMENT", "mtcnn", "FACEGRID_ALIGNMENT must be one of"),
        ("FACEGRID_DET_PROB_THRESHOLD", "1.5", "in 0..1"),
        ("FACEGRID_CONFIRM_BELOW", "-0.1", "FACEGRID_CONFIRM_BELOW must be in 0..1"),
        ("FACEGRID_TRITON_TIMEOUT_S", "0", "must be > 0"),
        ("FACEGRID_MAX_IMAGE_BYTES", "0", "must be >= 1"),
        ("FACEGRID_EMBED_PORT", "abc", "must be an integer"),
    ],
)
def test_bad_values_fail_at_start(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({key: value})


def test_every_configurable_backend_is_registered() -> None:
    assert set(BACKENDS) == {"triton", "onnxruntime"}

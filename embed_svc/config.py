"""embed_svc configuration, read once at start from a mapping (the environment)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from facegrid.config import (
    ConfigError,
    get_bool,
    get_float,
    get_int,
    get_log_format,
    get_metrics_port,
    get_str,
)
from facegrid.logs import LogFormat

#: Backend names accepted in FACEGRID_EMBED_BACKEND.
BACKEND_NAMES = ("triton", "onnxruntime")
#: Alignment methods accepted in FACEGRID_ALIGNMENT.
ALIGNMENT_NAMES = ("dlib68", "blazeface")


@dataclass(frozen=True, slots=True)
class EmbedConfig:
    """Settings of one embed_svc process."""

    host: str
    """Interface to bind (FACEGRID_EMBED_HOST, default 127.0.0.1)."""
    port: int
    """gRPC port (FACEGRID_EMBED_PORT, default 50052; 0 picks a free port)."""
    metrics_port: int
    """Prometheus metrics over HTTP (FACEGRID_EMBED_METRICS_PORT, default the gRPC port + 1000;
    0 turns them off)."""
    backend: str
    """Inference backend, ``triton`` or ``onnxruntime`` (FACEGRID_EMBED_BACKEND, triton)."""
    triton_url: str
    """Triton's gRPC address host:port (FACEGRID_TRITON_URL, default 127.0.0.1:8101)."""
    triton_timeout_s: float
    """Deadline of every call to Triton, seconds (FACEGRID_TRITON_TIMEOUT_S, default 10)."""
    model_repository: Path
    """Triton model repository; the onnxruntime backend loads ``<name>/1/model.onnx`` from it
    (FACEGRID_MODEL_REPOSITORY, default triton_models)."""
    calculator: str
    """Default calculator (embedding model) name (FACEGRID_CALCULATOR, default
    dlib-resnet-v1)."""
    alignment: str
    """Face alignment for dlib's calculator: ``dlib68`` (68 landmarks, dlib's chip) or
    ``blazeface`` (detector keypoints onto a template) (FACEGRID_ALIGNMENT, default dlib68)."""
    mirror_average: bool
    """Average each embedding with that of the mirrored face (FACEGRID_MIRROR_AVERAGE, true)."""
    max_image_bytes: int
    """Largest encoded image, bytes (FACEGRID_MAX_IMAGE_BYTES, default 5 MiB)."""
    max_image_pixels: int
    """Largest decoded image, width x height (FACEGRID_MAX_IMAGE_PIXELS, default 40,000,000)."""
    max_detect_size: int
    """Images are downscaled so their longer side is at most this many pixels before
    detection and alignment (FACEGRID_MAX_DETECT_SIZE, default 1920)."""
    det_prob_threshold: float
    """Detection probability used when a request sets none, 0..1
    (FACEGRID_DET_PROB_THRESHOLD, default 0.8: BlazeFace's raw score 0.5 through
    ``catalog.DETECTOR.calibration``)."""
    confirm_below: float
    """Detections scoring under this are kept only when dlib's HOG detector confirms a face
    there (embed_svc/confirm.py), 0..1; 0 turns the check off (FACEGRID_CONFIRM_BELOW,
    default 0.88: raw score 0.7)."""
    max_images_per_request: int
    """Most images in one request (FACEGRID_MAX_IMAGES_PER_REQUEST, default 32)."""
    cpu_workers: int
    """Threads for decoding, landmarks and alignment (FACEGRID_EMBED_CPU_WORKERS, default 2)."""
    onnx_threads: int
    """onnxruntime intra-op threads per session, onnxruntime backend only
    (FACEGRID_ONNX_THREADS, default 1)."""
    shutdown_grace_s: float
    """Seconds calls in flight may take to finish on SIGTERM (FACEGRID_SHUTDOWN_GRACE_S, 5)."""
    grpc_max_connection_age_s: float
    """Each client connection is closed after about this many seconds (calls in flight finish
    first), so clients balancing over DNS re-resolve and reach new replicas
    (FACEGRID_GRPC_MAX_CONNECTION_AGE_S, default 300; 0 keeps connections forever)."""
    malloc_trim_s: float
    """Seconds between returns of malloc's free pages to the system (``malloc_trim``,
    facegrid/heap.py; docs/operations.md "Memory") (FACEGRID_MALLOC_TRIM_S, default 30; 0: never).
    """
    memory_report_s: float
    """Seconds between ``memory_report`` log events (facegrid/memory_report.py: tracemalloc's
    top growth against RSS and malloc's free bytes), a diagnostic that slows allocation
    (FACEGRID_MEMORY_REPORT_S, default 0: off)."""
    log_format: LogFormat
    """``console`` (key=value, default) or ``json`` (FACEGRID_LOG_FORMAT)."""


def _choice(env: Mapping[str, str], key: str, default: str, choices: tuple[str, ...]) -> str:
    value = get_str(env, key, default)
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def load_config(env: Mapping[str, str]) -> EmbedConfig:
    """Builds the configuration from ``env``; raises ConfigError on a bad value."""
    port = get_int(env, "FACEGRID_EMBED_PORT", 50052, minimum=0)
    threshold = get_float(env, "FACEGRID_DET_PROB_THRESHOLD", 0.8)
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"FACEGRID_DET_PROB_THRESHOLD must be in 0..1, got {threshold}")
    confirm_below = get_float(env, "FACEGRID_CONFIRM_BELOW", 0.88)
    if not 0.0 <= confirm_below <= 1.0:
        raise ConfigError(f"FACEGRID_CONFIRM_BELOW must be in 0..1, got {confirm_below}")
    timeout_s = get_float(env, "FACEGRID_TRITON_TIMEOUT_S", 10.0)
    if timeout_s <= 0:
        raise ConfigError(f"FACEGRID_TRITON_TIMEOUT_S must be > 0, got {timeout_s}")
    return EmbedConfig(
        host=get_str(env, "FACEGRID_EMBED_HOST", "127.0.0.1"),
        port=port,
        metrics_port=get_metrics_port(env, "FACEGRID_EMBED_METRICS_PORT", port),
        backend=_choice(env, "FACEGRID_EMBED_BACKEND", "triton", BACKEND_NAMES),
        triton_url=get_str(env, "FACEGRID_TRITON_URL", "127.0.0.1:8101"),
        triton_timeout_s=timeout_s,
        model_repository=Path(get_str(env, "FACEGRID_MODEL_REPOSITORY", "triton_models")),
        calculator=get_str(env, "FACEGRID_CALCULATOR", "dlib-resnet-v1"),
        alignment=_choice(env, "FACEGRID_ALIGNMENT", "dlib68", ALIGNMENT_NAMES),
        mirror_average=get_bool(env, "FACEGRID_MIRROR_AVERAGE", True),
        max_image_bytes=get_int(env, "FACEGRID_MAX_IMAGE_BYTES", 5 * 1024 * 1024, minimum=1),
        max_image_pixels=get_int(env, "FACEGRID_MAX_IMAGE_PIXELS", 40_000_000, minimum=1),
        max_detect_size=get_int(env, "FACEGRID_MAX_DETECT_SIZE", 1920, minimum=64),
        det_prob_threshold=threshold,
        confirm_below=confirm_below,
        max_images_per_request=get_int(env, "FACEGRID_MAX_IMAGES_PER_REQUEST", 32, minimum=1),
        cpu_workers=get_int(env, "FACEGRID_EMBED_CPU_WORKERS", 2, minimum=1),
        onnx_threads=get_int(env, "FACEGRID_ONNX_THREADS", 1, minimum=1),
        shutdown_grace_s=get_float(env, "FACEGRID_SHUTDOWN_GRACE_S", 5.0),
        grpc_max_connection_age_s=get_float(env, "FACEGRID_GRPC_MAX_CONNECTION_AGE_S", 300.0),
        malloc_trim_s=get_float(env, "FACEGRID_MALLOC_TRIM_S", 30.0),
        memory_report_s=get_float(env, "FACEGRID_MEMORY_REPORT_S", 0.0),
        log_format=get_log_format(env),
    )

"""Builds and runs an embed_svc process."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import structlog

from embed_svc import catalog
from embed_svc.analyzer import AnalyzerSettings, FaceAnalyzer
from embed_svc.backends import InferenceBackend, connect_backend
from embed_svc.catalog import AttributeSpec
from embed_svc.config import EmbedConfig
from embed_svc.images import ImageLimits
from embed_svc.landmarks import PREDICTOR_FILE, LandmarkPredictor, package_model_path
from embed_svc.metrics import MeasuredBackend
from embed_svc.readiness import ModelWatch
from embed_svc.servicer import EmbeddingServicer
from facegrid.config import ConfigError
from facegrid.embedding.v1 import embedding_service_pb2_grpc
from facegrid.metrics import ServiceMetrics
from facegrid.server import RunningServer, start_server, stop_server, wait_for_signal

log = structlog.get_logger()

SERVICE_NAME = "facegrid.embedding.v1.EmbeddingService"
#: Seconds between readiness checks of the backend.
WATCH_INTERVAL_S = 1.0


@dataclass(frozen=True, slots=True)
class EmbedServer:
    """A running embed_svc and what it must close."""

    running: RunningServer
    """The gRPC server."""
    backend: InferenceBackend
    """The inference backend."""
    executor: ThreadPoolExecutor
    """CPU worker threads."""

    @property
    def port(self) -> int:
        """Bound port."""
        return self.running.port

    async def close(self, grace_s: float) -> None:
        """Stops serving (letting calls finish) and the readiness check, then the backend and
        workers."""
        await stop_server(self.running, grace_s)
        await self.backend.close()
        self.executor.shutdown(wait=False, cancel_futures=True)


async def create_server(
    config: EmbedConfig,
    backend: InferenceBackend,
    attribute_spec: AttributeSpec | None = catalog.ATTRIBUTES,
) -> EmbedServer:
    """Loads the landmark model and starts serving on ``backend`` (which the server then owns
    and closes); health turns SERVING once the backend has the detector and the default
    calculator ready (``facegrid.ready``, re-checked every second; ``""`` is SERVING from the
    start). ``attribute_spec`` is the age/gender network (the catalog's)."""
    calculator = catalog.CALCULATORS.get(config.calculator)
    if calculator is None:
        raise ConfigError(
            f"FACEGRID_CALCULATOR must be one of {', '.join(sorted(catalog.CALCULATORS))}, "
            f"got {config.calculator!r}"
        )
    metrics = ServiceMetrics()
    backend = MeasuredBackend(backend, metrics.registry)
    executor = ThreadPoolExecutor(max_workers=config.cpu_workers, thread_name_prefix="embed-cpu")
    loop = asyncio.get_running_loop()
    predictor = await loop.run_in_executor(
        executor, LandmarkPredictor.load, package_model_path(PREDICTOR_FILE)
    )
    watch = ModelWatch(backend, required=[catalog.DETECTOR.model, calculator.model])
    await watch.refresh()
    analyzer = FaceAnalyzer(
        backend,
        predictor,
        executor,
        AnalyzerSettings(
            limits=ImageLimits(
                max_bytes=config.max_image_bytes,
                max_pixels=config.max_image_pixels,
                max_detect_size=config.max_detect_size,
            ),
            alignment=config.alignment,
            mirror_average=config.mirror_average,
            confirm_below=config.confirm_below,
        ),
        attribute_spec,
    )
    servicer = EmbeddingServicer(
        analyzer,
        watch,
        default_calculator=config.calculator,
        default_threshold=config.det_prob_threshold,
        max_images=config.max_images_per_request,
        backend_name=backend.name,
        alignment=config.alignment,
        mirror_average=config.mirror_average,
        attribute_spec=attribute_spec,
    )
    running = await start_server(
        host=config.host,
        port=config.port,
        register=lambda server: embedding_service_pb2_grpc.add_EmbeddingServiceServicer_to_server(
            servicer, server
        ),
        service_names=[SERVICE_NAME],
        max_connection_age_s=config.grpc_max_connection_age_s,
        metrics=metrics,
        metrics_port=config.metrics_port,
    )
    await running.set_serving(True)
    await running.keep_ready(watch.refresh, WATCH_INTERVAL_S, timeout_s=config.triton_timeout_s)
    log.info("embed_svc_started", backend=backend.name, calculator=config.calculator)
    return EmbedServer(running, backend, executor)


async def serve(config: EmbedConfig) -> None:
    """Runs until SIGINT/SIGTERM, then drains and closes."""
    server = await create_server(config, await connect_backend(config))
    try:
        await wait_for_signal()
    finally:
        await server.close(config.shutdown_grace_s)

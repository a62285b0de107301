"""EmbeddingService: validates requests, runs the analyzer, renders protobuf and errors."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import grpc
import structlog

from embed_svc import catalog, render
from embed_svc.analyzer import BadImage, FaceAnalyzer
from embed_svc.backends.base import BackendError, BackendUnavailable, ModelUnavailable
from embed_svc.catalog import AttributeSpec, CalculatorSpec
from embed_svc.readiness import ModelWatch
from embed_svc.types import AnalyzeParams, ModelInfo
from facegrid.embedding.v1 import embedding_service_pb2 as pb
from facegrid.embedding.v1 import embedding_service_pb2_grpc as pb_grpc
from facegrid.errors import ServiceError, abort, internal, invalid_argument

log = structlog.get_logger()

#: CompreFace's code for a failure of its embedding service.
EMBEDDING_SERVICE_FAILED = 41


class EmbeddingServicer(pb_grpc.EmbeddingServiceServicer):
    """gRPC handlers of facegrid.embedding.v1.EmbeddingService."""

    def __init__(
        self,
        analyzer: FaceAnalyzer,
        watch: ModelWatch,
        default_calculator: str,
        default_threshold: float,
        max_images: int,
        backend_name: str,
        alignment: str,
        mirror_average: bool,
        attribute_spec: AttributeSpec | None,
    ) -> None:
        self._analyzer = analyzer
        self._watch = watch
        self._default_calculator = default_calculator
        self._default_threshold = default_threshold
        self._max_images = max_images
        self._backend_name = backend_name
        self._alignment = alignment
        self._mirror_average = mirror_average
        self._attributes = attribute_spec

    async def AnalyzeImages(
        self, request: pb.AnalyzeImagesRequest, context: grpc.aio.ServicerContext
    ) -> pb.AnalyzeImagesResponse:
        """Detects faces and runs the requested plugins on every image."""
        async with _answering(context):
            self._check_count(request.images)
            params = self._params(request.options)
            images, timings = await self._analyzer.analyze(list(request.images), params)
            response = pb.AnalyzeImagesResponse(execution_time_ms=timings)
            for image in images:
                response.images.append(
                    pb.ImageFaces(
                        width=image.width,
                        height=image.height,
                        faces=[render.face(face) for face in image.faces],
                    )
                )
            for key, info in self._models_used(params).items():
                response.models[key].CopyFrom(render.version(info))
            if params.calculator is not None:
                response.calculator.CopyFrom(render.version(params.calculator.info))
            return response

    async def EmbedFaces(
        self, request: pb.EmbedFacesRequest, context: grpc.aio.ServicerContext
    ) -> pb.EmbedFacesResponse:
        """Embeds each image as one already-cropped face."""
        async with _answering(context):
            self._check_count(request.images)
            calculator = self._calculator(request.calculator)
            params = AnalyzeParams(
                det_prob_threshold=self._default_threshold,
                limit=1,
                whole_image_is_face=True,
                calculator=calculator,
                landmarks=False,
                age=False,
                gender=False,
                pose=False,
            )
            images, _ = await self._analyzer.analyze(list(request.images), params)
            return pb.EmbedFacesResponse(
                embeddings=[
                    pb.Embedding(values=render.embedding_values(image.faces[0])) for image in images
                ],
                calculator=render.version(calculator.info),
            )

    async def GetStatus(
        self, request: pb.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetStatusResponse:
        """Describes the detector, the calculators that are ready and the plugin models."""
        async with _answering(context):
            return self._status()

    def _status(self) -> pb.GetStatusResponse:
        response = pb.GetStatusResponse(
            detector=render.version(catalog.DETECTOR.info), backend=self._backend_name
        )
        for name, spec in catalog.CALCULATORS.items():
            if spec.model not in self._watch.available and name != self._default_calculator:
                continue
            calibration = spec.calibration(self._alignment, self._mirror_average)
            response.calculators.append(
                pb.CalculatorInfo(
                    model=render.version(spec.info),
                    embedding_size=spec.embedding_size,
                    calibration=pb.SimilarityCalibration(c0=calibration.c0, c1=calibration.c1),
                    is_default=name == self._default_calculator,
                )
            )
        for key, info in self._plugin_models().items():
            response.plugins[key].CopyFrom(render.version(info))
        return response

    def _check_count(self, images: Sequence[bytes]) -> None:
        if not images:
            raise invalid_argument("NO_IMAGES", "the request holds no image", field="images")
        if len(images) > self._max_images:
            raise invalid_argument(
                "TOO_MANY_IMAGES",
                f"the request holds {len(images)} images; the limit is {self._max_images}",
                field="images",
            )

    def _calculator(self, name: str) -> CalculatorSpec:
        chosen = name or self._default_calculator
        spec = catalog.CALCULATORS.get(chosen)
        if spec is None:
            raise invalid_argument(
                "UNKNOWN_CALCULATOR",
                f"unknown calculator {chosen!r}; known: {', '.join(sorted(catalog.CALCULATORS))}",
                field="calculator",
            )
        if self._watch.serving and spec.model not in self._watch.available:
            raise _not_installed("calculator", chosen)
        return spec

    def _params(self, options: pb.AnalyzeOptions) -> AnalyzeParams:
        threshold = self._default_threshold
        if options.HasField("det_prob_threshold"):
            threshold = options.det_prob_threshold
            if not 0.0 <= threshold <= 1.0:
                raise invalid_argument(
                    "INVALID_DET_PROB_THRESHOLD",
                    f"det_prob_threshold must be between 0 and 1, got {threshold}",
                    field="det_prob_threshold",
                )
        if options.limit < 0:
            raise invalid_argument(
                "INVALID_LIMIT", f"limit must be >= 0, got {options.limit}", field="limit"
            )
        plugins = set()
        for value in options.plugins:
            if value not in pb.FacePlugin.values():
                raise invalid_argument(
                    "UNKNOWN_PLUGIN", f"unknown face plugin {value}", field="plugins"
                )
            plugins.add(value)
        if pb.FACE_PLUGIN_MASK in plugins:
            raise _not_installed("mask", "mask")
        age = pb.FACE_PLUGIN_AGE in plugins
        gender = pb.FACE_PLUGIN_GENDER in plugins
        attribute_spec = self._attributes
        if (age or gender) and (
            attribute_spec is None
            or (self._watch.serving and attribute_spec.model not in self._watch.available)
        ):
            raise _not_installed("age" if age else "gender", "age/gender")
        wants_embedding = pb.FACE_PLUGIN_CALCULATOR in plugins
        return AnalyzeParams(
            det_prob_threshold=threshold,
            limit=options.limit,
            whole_image_is_face=options.whole_image_is_face,
            calculator=self._calculator(options.calculator) if wants_embedding else None,
            landmarks=bool(plugins & {pb.FACE_PLUGIN_LANDMARKS, pb.FACE_PLUGIN_POSE}),
            age=age,
            gender=gender,
            pose=pb.FACE_PLUGIN_POSE in plugins,
        )

    def _plugin_models(self) -> dict[str, ModelInfo]:
        models = {"landmarks": catalog.LANDMARKS, "pose": catalog.POSE}
        spec = self._attributes
        if spec is not None and spec.model in self._watch.available:
            models["age"] = spec.info
            models["gender"] = spec.info
        return models

    def _models_used(self, params: AnalyzeParams) -> dict[str, ModelInfo]:
        used = {"detector": catalog.DETECTOR.info}
        if params.calculator is not None:
            used["calculator"] = params.calculator.info
        if params.landmarks:
            used["landmarks"] = catalog.LANDMARKS
        if params.pose:
            used["pose"] = catalog.POSE
        spec = self._attributes
        if spec is not None:
            if params.age:
                used["age"] = spec.info
            if params.gender:
                used["gender"] = spec.info
        return used


def _not_installed(plugin: str, model: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        "PLUGIN_UNAVAILABLE",
        f"no {model} model is installed, so the {plugin} plugin cannot run",
        compreface_code=26,
        metadata={"plugin": plugin},
    )


@contextlib.asynccontextmanager
async def _answering(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
    """Ends the call with the status its failure means: ServiceError as raised, pipeline
    failures translated, anything else INTERNAL with a generic message (logged here)."""
    try:
        yield
    except ServiceError as error:
        await abort(context, error)
    except (BadImage, BackendError) as exc:
        await abort(context, _translate(exc))
    except Exception:
        log.exception("unexpected_error")
        await abort(context, internal(EMBEDDING_SERVICE_FAILED))


def _translate(exc: BadImage | BackendError) -> ServiceError:
    """The one place where pipeline failures become gRPC statuses."""
    if isinstance(exc, BadImage):
        return invalid_argument(
            exc.error.reason,
            f"image {exc.index}: {exc.error.message}",
            exc.error.compreface_code,
            image_index=str(exc.index),
        )
    if isinstance(exc, BackendUnavailable):
        log.warning("inference_unavailable", detail=str(exc))
        return ServiceError(
            grpc.StatusCode.UNAVAILABLE,
            "INFERENCE_UNAVAILABLE",
            "the inference server is unavailable; retry later",
            EMBEDDING_SERVICE_FAILED,
        )
    if isinstance(exc, ModelUnavailable):
        log.warning("model_unavailable", model=exc.model)
        return ServiceError(
            grpc.StatusCode.UNAVAILABLE,
            "MODEL_UNAVAILABLE",
            f"model {exc.model!r} is not loaded; retry later",
            EMBEDDING_SERVICE_FAILED,
            {"model": exc.model},
        )
    log.error("inference_failed", error=type(exc).__name__, detail=str(exc))
    return ServiceError(
        grpc.StatusCode.INTERNAL,
        "INFERENCE_FAILED",
        "inference failed",
        EMBEDDING_SERVICE_FAILED,
    )

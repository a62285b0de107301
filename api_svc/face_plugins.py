"""CompreFace's ``face_plugins`` parameter and the embed_svc options it becomes."""

from __future__ import annotations

from typing import Protocol

from facegrid.embedding.v1 import embedding_service_pb2 as embed_pb
from facegrid.errors import invalid_argument

#: CompreFace plugin names this deployment can run, and embed_svc's plugin for each.
_PLUGINS = {
    "age": embed_pb.FACE_PLUGIN_AGE,
    "gender": embed_pb.FACE_PLUGIN_GENDER,
    "landmarks": embed_pb.FACE_PLUGIN_LANDMARKS,
    "pose": embed_pb.FACE_PLUGIN_POSE,
    "calculator": embed_pb.FACE_PLUGIN_CALCULATOR,
}
#: CompreFace plugin names no installed model serves.
_WITHOUT_MODEL = {
    "mask": "no mask model is installed",
    "landmarks2d106": "no 106-point landmark model is installed",
}


def parse_face_plugins(text: str) -> frozenset[str]:
    """The plugin names of a comma-separated ``face_plugins`` value (blank items ignored).

    Raises ServiceError (code 26) for a plugin without a model or an unknown name.
    """
    names = {item.strip().lower() for item in text.split(",")} - {""}
    for name in sorted(names):
        if name in _WITHOUT_MODEL:
            raise invalid_argument(
                "PLUGIN_UNAVAILABLE",
                f"face plugin {name} is not available: {_WITHOUT_MODEL[name]}",
                field="face_plugins",
            )
        if name not in _PLUGINS:
            raise invalid_argument(
                "UNKNOWN_PLUGIN",
                f"unknown face plugin {name!r}; available: {', '.join(sorted(_PLUGINS))}",
                field="face_plugins",
            )
    return frozenset(names)


def check_limit(limit: int) -> int:
    """``limit`` when it is >= 0 (0: no limit); else ServiceError (code 26)."""
    if limit < 0:
        raise invalid_argument(
            "INVALID_LIMIT", "Limit should be equal or greater than 0", field="limit"
        )
    return limit


class HasThreshold(Protocol):
    """A request with CompreFace's optional ``det_prob_threshold``."""

    @property
    def det_prob_threshold(self) -> float: ...
    def HasField(self, field_name: str) -> bool: ...


def threshold_of(request: HasThreshold) -> float | None:
    """The request's ``det_prob_threshold``; None when absent (the detector's default)."""
    return request.det_prob_threshold if request.HasField("det_prob_threshold") else None


def analyze_options(
    names: frozenset[str],
    *,
    limit: int,
    det_prob_threshold: float | None,
    calculator: str | None,
    embeddings: bool,
) -> embed_pb.AnalyzeOptions:
    """embed_svc options: the named plugins plus landmarks (CompreFace always answers five),
    and the calculator when ``embeddings`` is needed."""
    plugins = {_PLUGINS[name] for name in names} | {embed_pb.FACE_PLUGIN_LANDMARKS}
    if embeddings:
        plugins.add(embed_pb.FACE_PLUGIN_CALCULATOR)
    options = embed_pb.AnalyzeOptions(
        limit=check_limit(limit), plugins=sorted(plugins), calculator=calculator or ""
    )
    if det_prob_threshold is not None:
        options.det_prob_threshold = det_prob_threshold
    return options

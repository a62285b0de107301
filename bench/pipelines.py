"""The pipelines compared by bench/accuracy.py, each turning the photos of a set into one
embedding per photo (None where it finds no face), computed once and cached.

- ``reference``: dlib's HOG box on the whole photo -> 68 points -> dlib chip + mirror -> the
  ONNX embedder (bench.alignment.reference_rect);
- ``service``: embed_svc's own pipeline, ``FaceAnalyzer`` end to end (bench.stages.Service);
- a box option (bench.alignment.options): the service's face and chip with another 68-point box;
- another calculator (mobileface, faceres-deep) on the service's face.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import alignment, data, stages
from bench.cache import cached_map
from embed_svc import catalog, landmarks

#: Cache versions: bump when a stage's computation changes.
DETECT_VERSION = "v1"
EMBED_VERSION = "v1"
SERVICE_VERSION = "v1"


#: The service's detection settings measured (embed_svc's defaults).
THRESHOLD = 0.5
CONFIRM_BELOW = 0.7


def protocols(args: argparse.Namespace) -> list[tuple[str, data.PairSet]]:
    """(cache key, pairs) of every verification protocol whose folder is known."""
    out = []
    celeba = data.dataset_dir(args.celeba, "FACEGRID_BENCH_CELEBA")
    if celeba is not None:
        out.append(("CelebA", data.celeba_pairs(celeba)))
    cfp = data.dataset_dir(args.cfp, "FACEGRID_BENCH_CFP")
    if cfp is not None:
        out.extend(("CFP", data.cfp_pairs(cfp, protocol)) for protocol in ("FF", "FP"))
    return out


def photos_by_key(sets: list[tuple[str, data.PairSet]]) -> dict[str, tuple[Path, list[str]]]:
    """Every photo of each cached set (CFP's two protocols share their photos)."""
    out: dict[str, tuple[Path, set[str]]] = {}
    for key, pairs in sets:
        _, photos = out.setdefault(key, (pairs.root, set()))
        photos.update(pairs.photos())
    return {key: (root, sorted(photos)) for key, (root, photos) in out.items()}


@dataclass(frozen=True)
class Pipeline:
    """A way of embedding the photos of a set."""

    name: str
    """Row name."""
    calculator: str = catalog.DLIB_RESNET.info.name
    """Calculator."""
    option: str = ""
    """Box option of bench.alignment (empty: the reference, or ``service``)."""
    mirror: bool = True
    """Average with the mirrored face."""
    template: bool = False
    """Align on BlazeFace's keypoints (no 68 points)."""


def detections(key: str, root: Path, photos: list[str]) -> dict[str, dict[str, Any]]:
    """The cached detections of every photo (``bench.stages.Detect`` with the whole-photo HOG)."""
    found = cached_map(f"{key}/detect", DETECT_VERSION, photos, stages.Detect(root, True))
    return dict(zip(photos, found, strict=True))


def embed(
    key: str,
    root: Path,
    found: dict[str, dict[str, Any]],
    pipeline: Pipeline,
    threshold: float,
    confirm_below: float,
    options: dict[str, alignment.Option] | None = None,
) -> dict[str, np.ndarray | None]:
    """One embedding per photo (None: no face found)."""
    photos = sorted(found)
    if pipeline.option == "service":
        results = cached_map(
            f"{key}/service",
            f"{SERVICE_VERSION} {threshold} {confirm_below}",
            photos,
            stages.Service(root, threshold, confirm_below),
        )
        return {
            photo: None if r is None else np.asarray(r["embedding"])
            for photo, r in zip(photos, results, strict=True)
        }
    faces: dict[str, stages.Face] = {}
    for photo in photos:
        face = _face(photo, found[photo], pipeline, threshold, confirm_below, options or {})
        if face is not None:
            faces[photo] = face
    order = sorted(faces)
    results = cached_map(
        f"{key}/embed", EMBED_VERSION, [faces[p] for p in order], stages.Embed(root)
    )
    by_photo: dict[str, np.ndarray | None] = dict.fromkeys(photos)
    for photo, result in zip(order, results, strict=True):
        by_photo[photo] = result["mirror" if pipeline.mirror else "plain"]
    return by_photo


def points(
    key: str,
    root: Path,
    found: dict[str, dict[str, Any]],
    pipeline: Pipeline,
    threshold: float,
    confirm_below: float,
    options: dict[str, alignment.Option],
) -> dict[str, np.ndarray]:
    """The 68 points each photo's face got (photos where the pipeline found a face)."""
    faces = {
        photo: face
        for photo in sorted(found)
        if (face := _face(photo, found[photo], pipeline, threshold, confirm_below, options))
        is not None
    }
    order = sorted(faces)
    results = cached_map(
        f"{key}/embed", EMBED_VERSION, [faces[p] for p in order], stages.Embed(root)
    )
    return {p: r["points"] for p, r in zip(order, results, strict=True) if r["points"] is not None}


def _face(
    photo: str,
    found: dict[str, Any],
    pipeline: Pipeline,
    threshold: float,
    confirm_below: float,
    options: dict[str, alignment.Option],
) -> stages.Face | None:
    calculator = pipeline.calculator
    if not pipeline.option:
        rect = alignment.reference_rect(found, threshold, confirm_below)
        return None if rect is None else stages.Face(photo, calculator, rect)
    chosen = alignment.service_choice(found, threshold, confirm_below)
    if chosen is None:
        return None
    spec = catalog.CALCULATORS[calculator]
    if spec.crop == "box":
        box = tuple(float(v) for v in found["boxes"][chosen])
        return stages.Face(photo, calculator, None, box=box)  # type: ignore[arg-type]
    if pipeline.template:
        keypoints = tuple((float(x), float(y)) for x, y in found["keypoints"][chosen])
        return stages.Face(photo, calculator, None, keypoints=keypoints)
    if pipeline.option == "service-68":
        rect = alignment.rect_tuple(landmarks.dlib_rect(alignment.detection(found, chosen)))
    else:
        rect = options[pipeline.option].rect(found, chosen)
    return stages.Face(photo, calculator, rect)

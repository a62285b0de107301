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
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import alignment, data, stages
from bench.cache import cached_map
from bench.data import REPO
from embed_svc import catalog, detector, landmarks
from embed_svc.config import load_config

#: Cache versions: bump when a stage's computation changes.
DETECT_VERSION = "v1"
HOG_VERSION = "v1"
LOOK_VERSION = "v1"
EMBED_VERSION = "v1"
SERVICE_VERSION = "v2"
ATTRIBUTES_VERSION = "v1"


#: Detection passes before issue 8.
BEFORE_PASSES = (1.0,)


def service_thresholds(option: str) -> tuple[float, float]:
    """(threshold, second-look bar) as raw detector scores for a request without options:
    embed_svc's defaults through the detector's calibration; before issue 8, raw 0.5 and 0.7."""
    if option == "before":
        return 0.5, 0.7
    config = load_config({})
    calibration = catalog.DETECTOR.calibration
    confirm = calibration.raw_at(config.confirm_below) if config.confirm_below > 0 else 0.0
    return calibration.raw_at(config.det_prob_threshold), confirm


def protocols(args: argparse.Namespace) -> list[tuple[str, data.PairSet]]:
    """(cache key, pairs) of every verification protocol whose folder is known."""
    out = []
    celeba = data.dataset_dir(args.celeba, "FACEGRID_BENCH_CELEBA")
    if celeba is not None:
        pairs = data.celeba_pairs(celeba)
        folds = getattr(args, "celeba_folds", len(pairs.folds))
        if folds < len(pairs.folds):
            pairs = data.PairSet(f"CelebA folds 1-{folds}", pairs.root, pairs.folds[:folds])
        out.append(("CelebA", pairs))
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
    passes: tuple[float, ...] = detector.PASSES
    """Detection passes (embed_svc/detector.py)."""


def service_fingerprint() -> str:
    """Digest of the embed_svc modules the service pipeline runs (a change re-runs it)."""
    names = ("align", "analyzer", "catalog", "confirm", "detector", "images", "landmarks")
    text = "".join((REPO / "embed_svc" / f"{name}.py").read_text() for name in names)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def detect_version(passes: tuple[float, ...]) -> str:
    """Cache version of BlazeFace's detections with these passes (v1: one pass)."""
    return DETECT_VERSION if passes == (1.0,) else f"{DETECT_VERSION} passes {passes}"


def detections(
    key: str, root: Path, photos: list[str], passes: tuple[float, ...] = detector.PASSES
) -> dict[str, dict[str, Any]]:
    """The cached detections of every photo (``bench.stages.Detect``) with the whole-photo HOG
    boxes (``bench.stages.WholeHog``) of the reference pipeline."""
    found = cached_map(f"{key}/detect", detect_version(passes), photos, stages.Detect(root, passes))
    hog = cached_map(f"{key}/hog", HOG_VERSION, photos, stages.WholeHog(root))
    return {photo: {**f, **h} for photo, f, h in zip(photos, found, hog, strict=True)}


def wider_detections(
    root: Path,
    photos: list[str],
    passes: tuple[float, ...],
    zoomed_min: float = 0.0,
    looks: tuple[float, float] | None = None,
) -> list[dict[str, Any]]:
    """Detections of WIDER's validation photos down to raw score 0.05 (for the AP), boxes of a
    zoomed-out pass at least ``zoomed_min`` of the input wide. The second look (about 40 ms a
    box, 90 boxes a photo) only in the band of raw scores ``looks`` (default: 0.5-0.7, where the
    single-pass detector before issue 8 used it; none for the other settings cached before the
    band was an argument)."""
    if looks is None:
        looks = (0.5, 0.7) if passes == BEFORE_PASSES else (2.0, 2.0)
    version = detect_version(passes)
    if zoomed_min > 0:
        version += f" zoomed-min {zoomed_min} looks {looks}"
    return cached_map(
        "WIDER/detect",
        version,
        photos,
        stages.Detect(
            root / "WIDER_val" / "images",
            passes,
            threshold=0.05,
            look_from=looks[0],
            look_below=looks[1],
            zoomed_min=zoomed_min,
        ),
    )


def attributes(root: Path, photos: list[str], margin: float) -> list[dict[str, Any] | None]:
    """faceres-deep's age and gender for the service's face of every photo (None: no face)."""
    passes = detector.PASSES
    found = cached_map(
        f"{root.name}/detect",
        detect_version(passes),
        photos,
        stages.Detect(root, passes, look_below=0.9),
    )
    items = []
    for photo, f in zip(photos, found, strict=True):
        chosen = alignment.service_choice(f, *service_thresholds(""))
        if chosen is not None:
            box = tuple(float(v) for v in f["boxes"][chosen])
            items.append((photo, box, margin))
    results = cached_map(
        f"{root.name}/attributes", ATTRIBUTES_VERSION, items, stages.Attributes(root)
    )
    by_photo = {item[0]: r for item, r in zip(items, results, strict=True)}
    return [by_photo.get(photo) for photo in photos]


def service_faces(root: Path, photos: list[str], threshold: float) -> list[list[dict[str, Any]]]:
    """Every face embed_svc's pipeline finds in each photo at a probability threshold (score,
    detector score, box, embedding), largest first; not cached (small sets)."""
    worker = stages.Service(root, threshold, load_config({}).confirm_below, limit=0)
    return [worker.faces(photo) for photo in photos]


def wider_looks(
    root: Path, photos: list[str], found: list[dict[str, Any]], band: tuple[float, float]
) -> list[np.ndarray]:
    """The second look at every box of ``found`` whose raw score is in ``band`` (NaN for the
    others and for boxes HOG finds nothing at); WIDER's crowds have about 15 such boxes a photo."""
    items = []
    for photo, f in zip(photos, found, strict=True):
        inside = (f["scores"] >= band[0]) & (f["scores"] < band[1])
        items.append((photo, tuple(tuple(float(v) for v in b) for b in f["boxes"][inside])))
    looked = cached_map(
        "WIDER/look", LOOK_VERSION, items, stages.Look(root / "WIDER_val" / "images")
    )
    out = []
    for f, scores in zip(found, looked, strict=True):
        full = np.full(len(f["scores"]), np.nan)
        full[(f["scores"] >= band[0]) & (f["scores"] < band[1])] = scores
        out.append(full)
    return out


def embed(
    key: str,
    root: Path,
    found: dict[str, dict[str, Any]],
    pipeline: Pipeline,
    options: dict[str, alignment.Option] | None = None,
) -> dict[str, np.ndarray | None]:
    """One embedding per photo (None: no face found)."""
    photos = sorted(found)
    if pipeline.option == "service":
        config = load_config({})
        threshold, confirm_below = config.det_prob_threshold, config.confirm_below
        results = cached_map(
            f"{key}/service",
            f"{SERVICE_VERSION} {service_fingerprint()} {threshold} {confirm_below}",
            photos,
            stages.Service(root, threshold, confirm_below),
        )
        return {
            photo: None if r is None else np.asarray(r["embedding"])
            for photo, r in zip(photos, results, strict=True)
        }
    faces: dict[str, stages.Face] = {}
    for photo in photos:
        face = _face(photo, found[photo], pipeline, options or {})
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
    options: dict[str, alignment.Option],
) -> dict[str, np.ndarray]:
    """The 68 points each photo's face got (photos where the pipeline found a face)."""
    faces = {
        photo: face
        for photo in sorted(found)
        if (face := _face(photo, found[photo], pipeline, options)) is not None
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
    options: dict[str, alignment.Option],
) -> stages.Face | None:
    calculator = pipeline.calculator
    threshold, confirm_below = service_thresholds(pipeline.option)
    if not pipeline.option:
        rect = alignment.reference_rect(found, *service_thresholds("before"))
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

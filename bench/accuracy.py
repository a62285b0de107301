"""Verification accuracy and detection counts of embed_svc's pipeline on a labelled photo set.

    python -m bench.accuracy [--faces /work/shared/faces] [--repository triton_models]

For every calculator and alignment (dlib 68-point chip or BlazeFace keypoints, each with and
without mirror averaging) it embeds the largest face of every identity photo, forms all
genuine (same identity) and impostor pairs, and prints the equal-error rate and its distance
threshold, the true-accept rate at 1% false accepts, the similarity calibration and the
genuine/impostor similarity distributions. Calibration of CompreFace's mapping
``similarity = (tanh((c0 - d) * c1) + 1) / 2``: c0 is the equal-error distance; c1 is the
maximum-likelihood slope of that logistic model of P(same | d) with c0 fixed and equal class
weights, capped by the "quantile slope" 2 atanh(0.9) / (q5(impostor) - q95(genuine)), which
takes the similarity from 0.05 at the impostors' 5th-percentile distance to 0.95 at the genuine
pairs' 95th. Where the classes overlap the likelihood slope is finite and used; where they
barely overlap (dlib on this set) it runs off to infinity, and the cap keeps the scale
informative instead of a step. It then counts
detected faces on the group photos against the manifest. Runs in process on onnxruntime,
the same code path as the service.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embed_svc import catalog
from embed_svc.analyzer import AnalyzerSettings, FaceAnalyzer
from embed_svc.backends.onnx import OnnxBackend
from embed_svc.catalog import CalculatorSpec
from embed_svc.images import ImageLimits
from embed_svc.landmarks import PREDICTOR_FILE, LandmarkPredictor, package_model_path
from embed_svc.types import AnalyzeParams
from facegrid.similarity import Calibration

LIMITS = ImageLimits(max_bytes=64 * 1024 * 1024, max_pixels=100_000_000, max_detect_size=1920)


@dataclass(frozen=True)
class Scores:
    """Distances of the genuine and impostor pairs of one configuration."""

    genuine: np.ndarray
    impostor: np.ndarray


def equal_error(scores: Scores) -> tuple[float, float]:
    """(equal-error rate, distance threshold): the threshold where the false-accept and
    false-reject rates are closest; where a range of thresholds ties (few pairs), its middle."""
    thresholds = np.unique(np.concatenate([scores.genuine, scores.impostor]))
    # Candidate thresholds halfway between consecutive observed distances.
    candidates = (thresholds[:-1] + thresholds[1:]) / 2 if len(thresholds) > 1 else thresholds
    far = (scores.impostor[None, :] <= candidates[:, None]).mean(axis=1)
    frr = (scores.genuine[None, :] > candidates[:, None]).mean(axis=1)
    gap = np.abs(far - frr)
    best = np.flatnonzero(gap <= gap.min() + 1e-12)
    low, high = candidates[best[0]], candidates[best[-1]]
    rate = float(((far + frr) / 2)[best].mean())
    return rate, float((low + high) / 2)


def tar_at_far(scores: Scores, far: float) -> tuple[float, float]:
    """(true-accept rate, threshold) at the given false-accept rate."""
    threshold = float(np.quantile(scores.impostor, far, method="lower"))
    return float((scores.genuine <= threshold).mean()), threshold


def fit_slope(scores: Scores, c0: float) -> float:
    """c1 maximising the class-balanced likelihood of P(same|d) = (tanh((c0-d)c1)+1)/2."""

    def loss(c1: float) -> float:
        def nll(d: np.ndarray, same: bool) -> float:
            z = 2.0 * c1 * (c0 - d) * (1 if same else -1)
            return float(np.logaddexp(0.0, -z).mean())

        return nll(scores.genuine, True) + nll(scores.impostor, False)

    low, high = 0.1, 1000.0
    for _ in range(100):  # golden-section search on a unimodal loss
        a = high - (high - low) / 1.618
        b = low + (high - low) / 1.618
        if loss(a) < loss(b):
            high = b
        else:
            low = a
    return (low + high) / 2


def quantile_slope(scores: Scores) -> float:
    """c1 taking similarity from 0.05 at q5(impostor) to 0.95 at q95(genuine)."""
    gap = float(np.quantile(scores.impostor, 0.05) - np.quantile(scores.genuine, 0.95))
    return 2.0 * math.atanh(0.9) / gap if gap > 0 else math.inf


def percentiles(values: np.ndarray) -> str:
    """min / 5% / 25% / median / 75% / 95% / max."""
    qs = np.quantile(values, [0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
    return " ".join(f"{q:.3f}" for q in qs)


async def embed_identities(
    analyzer: FaceAnalyzer, calculator: CalculatorSpec, files: list[tuple[str, Path]]
) -> tuple[list[str], np.ndarray, list[str]]:
    """(labels, embeddings, files without a face) for the largest face of every photo."""
    params = AnalyzeParams(
        det_prob_threshold=0.5,
        limit=1,
        whole_image_is_face=False,
        calculator=calculator,
        landmarks=False,
        age=False,
        gender=False,
        pose=False,
    )
    labels, vectors, missing = [], [], []
    for label, path in files:
        results, _ = await analyzer.analyze([path.read_bytes()], params)
        faces = results[0].faces
        if not faces or faces[0].embedding is None:
            missing.append(str(path))
            continue
        labels.append(label)
        vectors.append(faces[0].embedding)
    return labels, np.stack(vectors), missing


def pair_scores(labels: list[str], vectors: np.ndarray) -> Scores:
    """Euclidean distances of L2-normalised embeddings over all pairs."""
    genuine: list[float] = []
    impostor: list[float] = []
    for i, j in itertools.combinations(range(len(labels)), 2):
        distance = float(np.linalg.norm(vectors[i] - vectors[j]))
        (genuine if labels[i] == labels[j] else impostor).append(distance)
    return Scores(np.array(genuine), np.array(impostor))


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    manifest = json.loads((args.faces / "manifest.json").read_text())
    files = [
        (identity, args.faces / entry["file"])
        for identity, entries in manifest["identities"].items()
        for entry in entries
    ]
    backend = await OnnxBackend.connect(args.repository, catalog.all_models(), threads=2)
    executor = ThreadPoolExecutor(max_workers=2)
    predictor = LandmarkPredictor.load(package_model_path(PREDICTOR_FILE))
    ready = await backend.ready_models()
    report: dict[str, object] = {"identities": len(manifest["identities"]), "photos": len(files)}
    print(f"{len(files)} photos of {len(manifest['identities'])} identities from {args.faces}")
    rows = []
    for name, calculator in catalog.CALCULATORS.items():
        if calculator.model not in ready:
            print(f"{name}: model {calculator.model} not in {args.repository}, skipped")
            continue
        alignments = ["box"] if calculator.crop == "box" else ["dlib68", "blazeface"]
        for alignment, mirror in itertools.product(alignments, (False, True)):
            analyzer = FaceAnalyzer(
                backend,
                predictor,
                executor,
                AnalyzerSettings(LIMITS, alignment if alignment != "box" else "dlib68", mirror),
                None,
            )
            started = time.perf_counter()
            labels, vectors, missing = await embed_identities(analyzer, calculator, files)
            scores = pair_scores(labels, vectors)
            eer, c0 = equal_error(scores)
            tar, _ = tar_at_far(scores, 0.01)
            c1_quantile = quantile_slope(scores)
            c1_mle = fit_slope(scores, c0)
            c1 = min(c1_mle, c1_quantile)
            scale = Calibration(c0, c1)
            row = {
                "calculator": name,
                "alignment": alignment,
                "mirror": mirror,
                "faces": len(labels),
                "no_face": missing,
                "genuine_pairs": len(scores.genuine),
                "impostor_pairs": len(scores.impostor),
                "eer": eer,
                "tar_at_far_1pct": tar,
                "c0": c0,
                "c1": c1,
                "c1_max_likelihood": c1_mle,
                "c1_quantile": c1_quantile,
                "genuine_similarity": percentiles(scale.similarities(scores.genuine)),
                "impostor_similarity": percentiles(scale.similarities(scores.impostor)),
                "genuine_distance": percentiles(scores.genuine),
                "impostor_distance": percentiles(scores.impostor),
                "seconds": round(time.perf_counter() - started, 1),
            }
            rows.append(row)
            print(
                f"\n{name} alignment={alignment} mirror={mirror}: {len(labels)} faces "
                f"({len(missing)} without a face), {len(scores.genuine)} genuine / "
                f"{len(scores.impostor)} impostor pairs\n"
                f"  EER {eer * 100:.2f}% at distance {c0:.4f};  TAR@FAR=1% {tar * 100:.2f}%;"
                f"  calibration c0={c0:.4f} c1={c1:.3f} (max-likelihood {c1_mle:.1f}, "
                f"quantile {c1_quantile:.1f})\n"
                f"  [min 5% 25% 50% 75% 95% max]\n"
                f"  similarity genuine  {row['genuine_similarity']}\n"
                f"  similarity impostor {row['impostor_similarity']}\n"
                f"  distance   genuine  {row['genuine_distance']}\n"
                f"  distance   impostor {row['impostor_distance']}"
            )
    report["verification"] = rows
    report["groups"] = await count_groups(args, manifest, backend, predictor, executor)
    report["one_person_photos"] = await count_single_photos(files, backend, predictor, executor)
    await backend.close()
    executor.shutdown()
    return report


async def count_groups(
    args: argparse.Namespace,
    manifest: dict[str, object],
    backend: OnnxBackend,
    predictor: LandmarkPredictor,
    executor: ThreadPoolExecutor,
) -> list[dict[str, object]]:
    """Detected faces per group photo at several thresholds, against the manifest."""
    analyzer = FaceAnalyzer(
        backend, predictor, executor, AnalyzerSettings(LIMITS, "dlib68", True), None
    )
    thresholds = (0.3, 0.5, 0.7)
    print(f"\ngroup photos: detected faces at det_prob_threshold {thresholds} vs expected")
    rows = []
    groups = manifest["group_photos"]
    assert isinstance(groups, list)
    for entry in groups:
        data = (args.faces / entry["file"]).read_bytes()
        counts = []
        for threshold in thresholds:
            params = AnalyzeParams(threshold, 0, False, None, False, False, False, False)
            results, _ = await analyzer.analyze([data], params)
            counts.append(len(results[0].faces))
        rows.append({"file": entry["file"], "expected": entry["faces"], "detected": counts})
        print(f"  {entry['file']}: expected {entry['faces']}, detected {counts}")
    return rows


async def count_single_photos(
    files: list[tuple[str, Path]],
    backend: OnnxBackend,
    predictor: LandmarkPredictor,
    executor: ThreadPoolExecutor,
) -> list[dict[str, object]]:
    """Faces found in the one-person photos at several thresholds: photos without a face, photos
    with more than one (each extra one is a false detection unless the photo shows a bystander:
    look at the files printed), and the scores of the extra detections."""
    analyzer = FaceAnalyzer(
        backend, predictor, executor, AnalyzerSettings(LIMITS, "dlib68", True), None
    )
    params = AnalyzeParams(0.3, 0, False, None, False, False, False, False)
    scores: dict[str, list[float]] = {}
    for _, path in files:
        results, _ = await analyzer.analyze([path.read_bytes()], params)
        scores[str(path)] = sorted((face.score for face in results[0].faces), reverse=True)
    print(f"\n{len(files)} one-person photos: faces found at each det_prob_threshold")
    rows = []
    for threshold in (0.5, 0.6, 0.7, 0.8):
        found = {path: [s for s in got if s >= threshold] for path, got in scores.items()}
        none = sorted(path for path, kept in found.items() if not kept)
        several = {path: kept[1:] for path, kept in found.items() if len(kept) > 1}
        rows.append({"threshold": threshold, "no_face": none, "extra": several})
        extras = "; ".join(
            f"{Path(p).parent.name}/{Path(p).name} {', '.join(f'{s:.3f}' for s in extra)}"
            for p, extra in several.items()
        )
        print(
            f"  {threshold}: {len(none)} without a face, {len(several)} with more than one"
            + (f" (extra scores: {extras})" if extras else "")
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, default=Path("/work/shared/faces"))
    parser.add_argument("--repository", type=Path, default=Path("triton_models"))
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

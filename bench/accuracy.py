"""Accuracy of embed_svc's pipeline on public photo sets, beside a fixed reference pipeline
measured in the same run (docs/benchmarks.md).

    python -m bench.accuracy [--celeba DIR] [--cfp DIR] [--wider DIR] [--utkface DIR]
                             [--faces DIR] [--only verify,calibrate,detect,attributes]
                             [--options before,centre,keypoints,...]

Each set's folder comes from its argument or environment variable (bench/data.py); a section
runs when its folder is known. Per-photo detections, landmarks and embeddings are cached
under build/bench-cache (the first run on a set takes tens of minutes on two cores; later
runs reuse them).

- verify: CelebA (10 folds of 300 genuine + 300 impostor pairs from bench/data.py's seeded
  generator) and CFP (official frontal-frontal and frontal-profile pairs): 10-fold accuracy,
  accuracy at the published 0.5 similarity, equal-error rate, for the reference pipeline
  (dlib's HOG box on the whole photo -> 68 points -> dlib chip + mirror -> the ONNX embedder;
  where HOG finds no face, the service's box), the service (FaceAnalyzer end to end, in
  process on onnxruntime) and the 68-point box options of bench/alignment.py. A photo in which a
  pipeline finds no face makes its pairs errors for that pipeline.
- calibrate: every calculator's similarity calibration on CelebA (c0 = equal-error distance,
  c1 = maximum-likelihood slope) and predicted vs observed same-person rate per bucket.
- detect: WIDER FACE validation AP (easy/medium/hard) and the detection-score calibration.
- attributes: faceres-deep's gender and age on UTKFace.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench import alignment, data, pipelines
from bench.fit_dlib_rect import fit_centre, fit_keypoints, matched
from bench.pipelines import CONFIRM_BELOW, THRESHOLD, Pipeline, photos_by_key, protocols
from bench.verification import Folds, accuracy_at, calibrate, equal_error, reliability, ten_fold
from embed_svc import catalog
from facegrid.similarity import Calibration


def folds_of(pairs: data.PairSet, vectors: dict[str, np.ndarray | None]) -> Folds:
    """Distances of a protocol's pairs (NaN where a photo has no face)."""
    distances, same = [], []
    for fold in pairs.folds:
        d = []
        for pair in fold:
            a, b = vectors[pair.a], vectors[pair.b]
            d.append(np.nan if a is None or b is None else float(np.linalg.norm(a - b)))
        distances.append(np.array(d))
        same.append(np.array([pair.same for pair in fold]))
    return Folds(distances, same)


def verify(args: argparse.Namespace) -> None:
    sets = protocols(args)
    if not sets:
        print("verify: no CelebA or CFP folder given (--celeba, --cfp), skipped")
        return
    rows = [Pipeline("reference (dlib HOG box)")]
    rows += [Pipeline(f"box option {name}", option=name) for name in args.options]
    rows.append(Pipeline("service (FaceAnalyzer)", option="service"))
    found = {
        key: pipelines.detections(key, root, photos)
        for key, (root, photos) in photos_by_key(sets).items()
    }
    both = matched([photo for photos in found.values() for photo in photos.values()])
    options = alignment.options(fit_centre(both), fit_keypoints(both))
    scale = catalog.DLIB_RESNET.calibration("dlib68", True)
    for key, pairs in sets:
        print(
            f"\n{pairs.name}: {sum(len(f) for f in pairs.folds)} pairs in {len(pairs.folds)} "
            f"folds, {len(pairs.photos())} photos (pair list {pairs.digest()}) from {pairs.root}"
        )
        print(
            "  pipeline                          no face  10-fold acc (sd)   acc at sim 0.5"
            "   EER    EER dist"
        )
        for row in rows:
            started = time.perf_counter()
            vectors = pipelines.embed(
                key, pairs.root, found[key], row, THRESHOLD, CONFIRM_BELOW, options
            )
            used = set(pairs.photos())
            missing = sum(1 for p in used if vectors[p] is None)
            folds = folds_of(pairs, vectors)
            mean, sd, _ = ten_fold(folds)
            distances, same = folds.all()
            eer, c0 = equal_error(distances, same)
            at_half = accuracy_at(distances, same, scale.c0)
            print(
                f"  {row.name:33s} {missing:6d}  {mean * 100:6.2f}% ({sd * 100:.2f})"
                f"    {at_half * 100:6.2f}%      {eer * 100:5.2f}%  {c0:.4f}"
                f"   [{time.perf_counter() - started:.0f} s]"
            )


#: Similarity buckets of the calibration table.
BUCKETS = (0.0, 0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95, 1.0)


def calibration_rows() -> list[tuple[str, bool, Pipeline]]:
    """(alignment key, mirror, pipeline) of every calibration the catalog publishes."""
    rows = []
    for name, spec in catalog.CALCULATORS.items():
        for aligned, mirror in spec.calibrations:
            label = f"{name} {aligned}{' mirror' if mirror else ''}"
            rows.append(
                (
                    aligned,
                    mirror,
                    Pipeline(
                        label,
                        calculator=name,
                        option="service-68",
                        mirror=mirror,
                        template=aligned == "blazeface",
                    ),
                )
            )
    return rows


def calibrate_section(args: argparse.Namespace) -> None:
    root = data.dataset_dir(args.celeba, "FACEGRID_BENCH_CELEBA")
    if root is None:
        print("calibrate: no CelebA folder given (--celeba), skipped")
        return
    pairs = data.celeba_pairs(root)
    found = pipelines.detections("CelebA", root, pairs.photos())
    print(
        f"\nSimilarity calibration on {pairs.name} ({sum(len(f) for f in pairs.folds)} pairs, "
        f"pair list {pairs.digest()}): c0 = equal-error distance, c1 = balanced "
        "maximum-likelihood slope; published = the catalog's pair now"
    )
    for aligned, mirror, row in calibration_rows():
        spec = catalog.CALCULATORS[row.calculator]
        vectors = pipelines.embed("CelebA", root, found, row, THRESHOLD, CONFIRM_BELOW)
        folds = folds_of(pairs, vectors)
        fitted = calibrate(folds)
        published = spec.calibrations[(aligned, mirror)]
        distances, same = folds.all()
        mean, sd, _ = ten_fold(folds)
        at_half = accuracy_at(distances, same, published.c0)
        print(
            f"\n  {row.name}: fitted c0={fitted.c0:.4f} c1={fitted.c1:.2f}; published "
            f"c0={published.c0:.4f} c1={published.c1:.2f}; 10-fold {mean * 100:.2f}% "
            f"({sd * 100:.2f}); at published 0.5 {at_half * 100:.2f}%"
        )
        _print_reliability(distances, same, published)


def _print_reliability(distances: np.ndarray, same: np.ndarray, scale: Calibration) -> None:
    print("    similarity bucket   pairs   predicted   observed same-person rate")
    for low, high, count, predicted, observed in reliability(distances, same, scale, BUCKETS):
        print(f"    [{low:.2f}, {high:.2f})   {count:6d}   {predicted:8.3f}   {observed:8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--celeba", type=Path, help="CelebA folder (FACEGRID_BENCH_CELEBA)")
    parser.add_argument("--cfp", type=Path, help="cfp-dataset folder (FACEGRID_BENCH_CFP)")
    parser.add_argument("--wider", type=Path, help="WIDER folder (FACEGRID_BENCH_WIDER)")
    parser.add_argument("--utkface", type=Path, help="UTKFace folder (FACEGRID_BENCH_UTKFACE)")
    parser.add_argument("--faces", type=Path, help="small photo set (FACEGRID_FACES_DIR)")
    parser.add_argument(
        "--only", default="verify,calibrate,detect,attributes", help="sections to run"
    )
    parser.add_argument(
        "--options",
        type=lambda text: [name for name in text.split(",") if name],
        default=[],
        help="68-point box options to compare (bench/alignment.py options())",
    )
    args = parser.parse_args()
    sections = set(args.only.split(","))
    if "verify" in sections:
        verify(args)
    if "calibrate" in sections:
        calibrate_section(args)


if __name__ == "__main__":
    main()

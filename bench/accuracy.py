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
import asyncio
import itertools
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dlib
import numpy as np

from bench import alignment, data, mesh, pipelines, rest, stages, wider
from bench.fit_dlib_rect import fit_centre, matched
from bench.pipelines import BEFORE_PASSES, Pipeline, photos_by_key, protocols
from bench.verification import Folds, accuracy_at, calibrate, equal_error, reliability, ten_fold
from embed_svc import attributes, catalog, detector, landmarks
from embed_svc.confirm import HOG_ADJUST, FaceConfirmer
from embed_svc.detector import PASSES
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
    if args.before:
        rows.append(Pipeline("service before issue 8", option="before", passes=BEFORE_PASSES))
    rows += [Pipeline(f"box option {name}", option=name) for name in args.options]
    if args.service:
        rows.append(Pipeline("service (FaceAnalyzer)", option="service"))
    photos = photos_by_key(sets)
    found = {
        (key, passes): pipelines.detections(key, root, names, passes)
        for key, (root, names) in photos.items()
        for passes in {row.passes for row in rows}
    }
    both = matched(
        [f for (_, passes), by in found.items() if passes == PASSES for f in by.values()]
    )
    options = alignment.options(fit_centre(both), alignment.SERVICE_KEYPOINTS)
    scale = catalog.DLIB_RESNET.calibration("dlib68", True)
    with _rest_service(args) as service:
        rest_vectors = {
            key: asyncio.run(_rest_vectors(service, key, root, names))
            for key, (root, names) in photos.items()
            if service is not None
        }
        for key, pairs in sets:
            _verify_set(key, pairs, rows, found, options, scale, rest_vectors.get(key), service)
    if args.costs:
        key, (root, names) = next(iter(photos.items()))
        option_costs(root, names, found[(key, PASSES)])


def _verify_set(
    key: str,
    pairs: data.PairSet,
    rows: list[Pipeline],
    found: dict[tuple[str, tuple[float, ...]], dict[str, dict[str, Any]]],
    options: dict[str, alignment.Option],
    scale: Calibration,
    rest_vectors: dict[str, np.ndarray | None] | None,
    service: rest.RestService | None,
) -> None:
    """One protocol's table: every pipeline's row, then the REST service's."""
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
        vectors = pipelines.embed(key, pairs.root, found[(key, row.passes)], row, options)
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
    if rest_vectors is not None and service is not None:
        _rest_row(pairs, rest_vectors, service, scale)


def _rest_row(
    pairs: data.PairSet,
    vectors: dict[str, np.ndarray | None],
    service: rest.RestService,
    scale: Calibration,
) -> None:
    """The service through REST: 10-fold and EER on the distances of the embeddings it
    answered, accuracy at the similarity 0.5 its embeddings/verify answers."""
    started = time.perf_counter()
    missing = sum(1 for p in pairs.photos() if vectors[p] is None)
    folds = folds_of(pairs, vectors)
    mean, sd, _ = ten_fold(folds)
    distances, same = folds.all()
    eer, c0 = equal_error(distances, same)
    similarity = np.concatenate(asyncio.run(rest.similarities(service, pairs, vectors)))
    right = np.where(np.isnan(similarity), False, (similarity >= 0.5) == same)
    # The published calibration applied here to the answered embeddings: the same decisions.
    local = accuracy_at(distances, same, scale.c0)
    print(
        f"  {'service through REST (0.8)':33s} {missing:6d}  {mean * 100:6.2f}% ({sd * 100:.2f})"
        f"    {right.mean() * 100:6.2f}%      {eer * 100:5.2f}%  {c0:.4f}"
        f"   [{time.perf_counter() - started:.0f} s; at the catalog's c0 here "
        f"{local * 100:.2f}%]"
    )


@contextmanager
def _rest_service(args: argparse.Namespace) -> Iterator[rest.RestService | None]:
    """The REST service of ``--rest``: a mesh started here (``start``), one at a URL with the
    given keys, or None."""
    if not args.rest:
        yield None
    elif args.rest == "start":
        with mesh.started_mesh() as running:
            print(f"  mesh started by the launcher at {running.rest}", file=sys.stderr)
            yield rest.RestService(
                running.rest, running.keys["DETECTION"], running.keys["VERIFICATION"]
            )
    else:
        yield rest.RestService(args.rest, args.detection_key, args.verification_key)


async def _rest_vectors(
    service: rest.RestService | None, key: str, root: Path, photos: list[str]
) -> dict[str, np.ndarray | None]:
    assert service is not None
    answers = await rest.detections(service, key, root, photos)
    return {p: None if a is None else a["embedding"] for p, a in answers.items()}


#: Photos timed per option.
COST_PHOTOS = 300
#: Similarity buckets of the calibration table.
BUCKETS = (0.0, 0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95, 1.0)


def option_costs(root: Path, photos: list[str], found: dict[str, dict[str, Any]]) -> None:
    """Milliseconds per face of each way of getting the 68 points (box + predictor), on one
    core, over the first photos of a set (decoding and detection excluded)."""
    predictor = landmarks.LandmarkPredictor.load(
        landmarks.package_model_path(landmarks.PREDICTOR_FILE)
    )
    confirmer = FaceConfirmer()
    faces = []
    for photo in photos[:COST_PHOTOS]:
        chosen = alignment.service_choice(found[photo], *pipelines.service_thresholds(""))
        if chosen is not None:
            faces.append((stages.load(root, photo), alignment.detection(found[photo], chosen)))
    centre, keypoints = fit_centre(matched(list(found.values()))), alignment.SERVICE_KEYPOINTS

    def hog_crop(image: np.ndarray, det: Any) -> Any:
        look = confirmer.look(image, det.box)
        if look is not None:
            return look.rect
        return dlib.rectangle(*alignment.keypoint_rect(det, *keypoints))

    ways = {
        "centre": lambda image, det: dlib.rectangle(*alignment.centre_rect(det, *centre)),
        "keypoints": lambda image, det: dlib.rectangle(*alignment.keypoint_rect(det, *keypoints)),
        "hog-crop (second look's HOG, 240 px crop)": hog_crop,
    }
    print(f"  cost per face over {len(faces)} faces (box + 68 points, one core):")
    for name, rect in ways.items():
        started = time.perf_counter()
        for image, det in faces:
            predictor.shape_in(image, rect(image, det))
        ms = (time.perf_counter() - started) * 1000 / max(len(faces), 1)
        print(f"    {name:44s} {ms:6.2f} ms")


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
    sets = protocols(args)
    if not any(key == "CelebA" for key, _ in sets):
        print("calibrate: no CelebA folder given (--celeba), skipped")
        return
    rows = [
        r for r in calibration_rows() if not args.calibrations or r[2].name in args.calibrations
    ]
    found = {
        key: pipelines.detections(key, root, names)
        for key, (root, names) in photos_by_key(sets).items()
    }
    celeba = next(pairs for key, pairs in sets if key == "CelebA")
    print(
        f"\nSimilarity calibration fitted on {celeba.name} ({sum(len(f) for f in celeba.folds)} "
        f"pairs, pair list {celeba.digest()}): c0 = equal-error distance, c1 = balanced "
        "maximum-likelihood slope; published = the catalog's pair now; reported on every set"
    )
    for aligned, mirror, row in rows:
        spec = catalog.CALCULATORS[row.calculator]
        published = spec.calibrations[(aligned, mirror)]
        by_set = {}
        for key, pairs in sets:
            vectors = pipelines.embed(key, pairs.root, found[key], row)
            by_set[pairs.name] = folds_of(pairs, vectors)
        fitted = calibrate(by_set[celeba.name])
        print(
            f"\n  {row.name}: fitted c0={fitted.c0:.4f} c1={fitted.c1:.2f}; published "
            f"c0={published.c0:.4f} c1={published.c1:.2f}"
        )
        for name, folds in by_set.items():
            distances, same = folds.all()
            mean, sd, _ = ten_fold(folds)
            eer, c0 = equal_error(distances, same)
            before = accuracy_at(distances, same, published.c0)
            after = accuracy_at(distances, same, fitted.c0)
            print(
                f"  {name}: 10-fold {mean * 100:.2f}% ({sd * 100:.2f}); EER {eer * 100:.2f}% at "
                f"d={c0:.4f}; published 0.5 {before * 100:.2f}%, at fitted 0.5 {after * 100:.2f}%"
            )
            _print_reliability(distances, same, fitted)


def _print_reliability(distances: np.ndarray, same: np.ndarray, scale: Calibration) -> None:
    print("    similarity bucket   pairs   predicted   observed same-person rate")
    for low, high, count, predicted, observed in reliability(distances, same, scale, BUCKETS):
        print(f"    [{low:.2f}, {high:.2f})   {count:6d}   {predicted:8.3f}   {observed:8.3f}")


#: Raw-score bins of the detection calibration table.
RAW_BINS = (0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)
#: Raw scores the second look is taken at on WIDER (the service's band at thresholds 0.5-0.9).
WIDER_LOOKS = (0.4, 0.85)
#: Faces at least this tall count as clearly visible (with WIDER's attributes).
CLEAR_HEIGHT = 64


def detect_section(args: argparse.Namespace) -> None:
    root = data.dataset_dir(args.wider, "FACEGRID_BENCH_WIDER")
    if root is None:
        print("detect: no WIDER folder given (--wider), skipped")
        return
    truth = wider.ground_truth(root)[:: args.wider_step]
    photos = [gt.relative for gt in truth]
    faces = sum(len(gt.boxes) for gt in truth)
    print(f"\nWIDER FACE validation: {len(truth)} photos, {faces} faces, from {root}")
    print(
        "  (published AP easy/medium/hard: MTCNN 0.851/0.820/0.607, "
        "RetinaFace-R50 0.965/0.956/0.904)"
    )
    now = "passes (1.0, 0.5), zoomed-out boxes >= 0.15 of the input (the service)"
    runs = {
        "passes (1.0,) (before issue 8)": pipelines.wider_detections(root, photos, BEFORE_PASSES),
        "passes (1.0, 0.5), unfiltered": pipelines.wider_detections(root, photos, PASSES),
        now: pipelines.wider_detections(
            root, photos, PASSES, detector.ZOOMED_MIN_WIDTH, looks=WIDER_LOOKS
        ),
    }
    for name, found in runs.items():
        ap = wider.average_precision(
            truth, [f["boxes"].astype(np.float64) for f in found], [f["scores"] for f in found]
        )
        print(
            f"  AP (standard protocol), BlazeFace back model, {name}: "
            + ", ".join(f"{s} {ap[s]:.3f}" for s in wider.SETTINGS)
        )
    found = runs[now]
    _, confirm_raw = pipelines.service_thresholds("")
    # Every detection is a face or not: IoU >= 0.5 with any annotated face; kept: what the
    # service keeps (the second look under the bar).
    score = np.concatenate([f["scores"] for f in found])
    kept = np.concatenate([_kept(f, 0.0, confirm_raw) for f in found])
    face = np.concatenate(
        [
            wider.best_overlap(gt, f["boxes"].astype(np.float64))[0] >= wider.IOU
            for gt, f in zip(truth, found, strict=True)
        ]
    )
    calibration = catalog.DETECTOR.calibration
    print(
        "  raw score bin     boxes    kept   faces  precision of kept   published probability "
        "(median box)"
    )
    for low, high in itertools.pairwise(RAW_BINS):
        inside = (score >= low) & (score < high) & kept
        if inside.any():
            published = calibration.calibrated(float(np.median(score[inside])))
            print(
                f"  [{low:.2f}, {high:.2f})  {((score >= low) & (score < high)).sum():7d} "
                f"{inside.sum():7d} {face[inside].sum():7d}   {face[inside].mean():7.3f}"
                f"             {published:.3f}"
            )
    print(
        f"  clearly visible faces: >= {CLEAR_HEIGHT} px tall, valid, not heavily blurred or "
        "occluded; a false detection overlaps no annotated face (IoU < 0.3)"
    )
    print("  setting                                          clear faces found   false detections")
    settings: list[tuple[str, str, float, float]] = [
        (
            "before issue 8: raw 0.5, second look under 0.7",
            "passes (1.0,) (before issue 8)",
            0.5,
            0.7,
        )
    ]
    for threshold in (0.5, 0.8, 0.9):
        settings.append(
            (
                f"det_prob_threshold {threshold} now (raw {calibration.raw_at(threshold):.3f})",
                now,
                calibration.raw_at(threshold),
                confirm_raw,
            )
        )
    for name, run, raw, confirm in settings:
        hit, clear, false = _detection_counts(truth, runs[run], raw, confirm)
        print(f"  {name:48s} {hit:6d} / {clear} ({hit / max(clear, 1) * 100:.1f}%)   {false:6d}")


def _kept(f: dict[str, Any], raw: float, confirm: float) -> np.ndarray:
    """Mask of the detections kept at a raw threshold with the second look under ``confirm``."""
    looked = np.nan_to_num(f["look_score"], nan=-np.inf) >= HOG_ADJUST
    scores = f["scores"]
    return (scores >= raw) & ((scores >= confirm) | looked)


def _detection_counts(
    truth: list[wider.GroundTruth], found: list[dict[str, Any]], raw: float, confirm: float
) -> tuple[int, int, int]:
    """(clearly visible faces found, clearly visible faces, false detections)."""
    kept = [f["boxes"][_kept(f, raw, confirm)] for f in found]
    return wider.found_and_false(truth, kept, CLEAR_HEIGHT)


#: Ages over which the age error is averaged (the issue's goal).
AGE_SPAN = (16, 70)


def attributes_section(args: argparse.Namespace) -> None:
    root = data.dataset_dir(args.utkface, "FACEGRID_BENCH_UTKFACE")
    if root is None:
        print("attributes: no UTKFace folder given (--utkface), skipped")
        return
    photos = data.utkface_photos(root)[:: args.utkface_step]
    print(f"\nUTKFace: {len(photos)} labelled photos (200 px aligned crops) from {root}")
    for margin in (0.0, *args.margins):
        got = pipelines.attributes(root, [p.path for p in photos], margin)
        found = [g is not None for g in got]
        truth_male = np.array([p.male for p in photos])
        ages = np.array([p.age for p in photos])
        male = np.array([np.nan if g is None else g["male"] for g in got])
        years = np.array([np.nan if g is None else g["years"] for g in got])
        ranges = [None if g is None else g["range"] for g in got]
        ok = np.array(found)
        gender_right = (male >= 0.5) == truth_male
        span = (ages >= AGE_SPAN[0]) & (ages <= AGE_SPAN[1])
        mae = float(np.abs(years - ages)[ok & span].mean())
        hit = np.array(
            [
                r is not None and r == attributes.age_range(int(a))
                for r, a in zip(ranges, ages, strict=True)
            ]
        )
        inside = np.array(
            [r is not None and r[0] <= a <= r[1] for r, a in zip(ranges, ages, strict=True)]
        )
        print(
            f"  box margin {margin:.2f}: face found in {ok.sum()} ({ok.mean() * 100:.1f}%); "
            f"gender accuracy {gender_right[ok].mean() * 100:.2f}% of found "
            f"({(gender_right & ok).mean() * 100:.2f}% of all); age MAE {mae:.2f} years over "
            f"ages {AGE_SPAN[0]}-{AGE_SPAN[1]} ({(ok & span).sum()} faces); CompreFace range "
            f"hit {hit[ok].mean() * 100:.1f}% (the range the true age falls in, gaps split at "
            f"midpoints), true age inside the range {inside[ok].mean() * 100:.1f}%"
        )
        bias = (years - ages)[ok & span]
        print(
            "    age error by decade (mean signed, years): "
            + ", ".join(
                f"{d}s {np.mean(bias[(ages[ok & span] // 10) == d // 10]):+.1f}"
                for d in range(10, 80, 10)
                if ((ages[ok & span] // 10) == d // 10).any()
            )
        )


def faces_section(args: argparse.Namespace) -> None:
    root = data.faces_dir(args.faces)
    if not (root / "manifest.json").is_file():
        print(f"faces: no manifest.json in {root} (--faces, FACEGRID_FACES_DIR), skipped")
        return
    manifest = data.faces_manifest(root)
    identities = manifest["identities"]
    groups = manifest["group_photos"]
    assert isinstance(identities, dict) and isinstance(groups, list)
    singles = [(person, e["file"]) for person, entries in identities.items() for e in entries]
    print(
        f"\n{root}: {len(singles)} one-person photos of {len(identities)} people, "
        f"{len(groups)} group photos; embed_svc's pipeline (FaceAnalyzer, in process)"
    )
    for threshold in (0.5, 0.8):
        got = pipelines.service_faces(root, [f for _, f in singles], threshold)
        group_got = pipelines.service_faces(root, [g["file"] for g in groups], threshold)
        without = [f for (_, f), faces in zip(singles, got, strict=True) if not faces]
        extra = sum(max(0, len(faces) - 1) for faces in got)
        counts = [len(faces) for faces in group_got]
        expected = [g["faces"] for g in groups]
        lowest = min(f["score"] for faces in got + group_got for f in faces)
        print(
            f"  det_prob_threshold {threshold}: one-person photos without a face {len(without)} "
            f"{without}, extra faces {extra}; group photos {counts} (expected {expected}); "
            f"lowest box probability {lowest:.3f}"
        )
    got = pipelines.service_faces(root, [f for _, f in singles], 0.8)
    labels = [person for person, _ in singles]
    vectors = [faces[0]["embedding"] for faces in got]
    scale = catalog.DLIB_RESNET.calibration("dlib68", True)
    genuine: list[float] = []
    impostor: list[float] = []
    for i, j in itertools.combinations(range(len(labels)), 2):
        similarity = scale.similarity(float(np.linalg.norm(vectors[i] - vectors[j])))
        (genuine if labels[i] == labels[j] else impostor).append(similarity)
    g, i_ = np.array(genuine), np.array(impostor)
    print(
        f"  similarity: {(g > 0.5).mean() * 100:.1f}% of {len(g)} same-person pairs above 0.5 "
        f"(lowest {g.min():.3f}), {(i_ < 0.5).mean() * 100:.1f}% of {len(i_)} different-person "
        f"pairs below it (highest {i_.max():.3f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--celeba", type=Path, help="CelebA folder (FACEGRID_BENCH_CELEBA)")
    parser.add_argument(
        "--celeba-folds",
        type=int,
        default=data.CELEBA_FOLDS,
        help="use the first N of CelebA's 10 folds (a shorter run on a busy machine)",
    )
    parser.add_argument("--cfp", type=Path, help="cfp-dataset folder (FACEGRID_BENCH_CFP)")
    parser.add_argument("--wider", type=Path, help="WIDER folder (FACEGRID_BENCH_WIDER)")
    parser.add_argument("--utkface", type=Path, help="UTKFace folder (FACEGRID_BENCH_UTKFACE)")
    parser.add_argument("--faces", type=Path, help="small photo set (FACEGRID_FACES_DIR)")
    parser.add_argument(
        "--only", default="verify,calibrate,detect,attributes,faces", help="sections to run"
    )
    parser.add_argument(
        "--options",
        type=lambda text: [name for name in text.split(",") if name],
        default=[],
        help="68-point box options to compare (bench/alignment.py options())",
    )
    parser.add_argument(
        "--utkface-step", type=int, default=1, help="every Nth UTKFace photo (a shorter run)"
    )
    parser.add_argument(
        "--wider-step", type=int, default=1, help="every Nth WIDER photo (a shorter run)"
    )
    parser.add_argument(
        "--calibrations",
        type=lambda text: [name for name in text.split(",") if name],
        default=[],
        help="calibrations to fit (e.g. 'dlib-resnet-v1 dlib68 mirror'); default every one",
    )
    parser.add_argument(
        "--no-service",
        dest="service",
        action="store_false",
        help="leave out the end-to-end FaceAnalyzer row (the slowest; the box options share "
        "its detections)",
    )
    parser.add_argument(
        "--no-before",
        dest="before",
        action="store_false",
        help="leave out the 'service before issue 8' row",
    )
    parser.add_argument(
        "--rest",
        default="",
        help="add the service through REST: 'start' (a mesh started here by the launcher, "
        "free ports, a scratch data dir) or the URL of a running one (with --detection-key "
        "and --verification-key)",
    )
    parser.add_argument("--detection-key", default="", help="API key of a detection service")
    parser.add_argument("--verification-key", default="", help="API key of a verification service")
    parser.add_argument(
        "--costs", action="store_true", help="time the 68-point box options per face"
    )
    parser.add_argument(
        "--margins",
        type=lambda text: [float(v) for v in text.split(",") if v],
        default=[],
        help="extra box margins to try for age and gender (fraction of the box per side)",
    )
    args = parser.parse_args()
    sections = set(args.only.split(","))
    if "verify" in sections:
        verify(args)
    if "calibrate" in sections:
        calibrate_section(args)
    if "detect" in sections:
        detect_section(args)
    if "attributes" in sections:
        attributes_section(args)
    if "faces" in sections:
        faces_section(args)


if __name__ == "__main__":
    main()

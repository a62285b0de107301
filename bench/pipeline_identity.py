"""Are two checkouts' pipelines bit-identical? embed_svc's FaceAnalyzer in process (onnxruntime,
one thread per session, as bench/throughput.py builds it, plus the age/gender network) on real
photos, its results written to an .npz; ``compare`` says which fields of two such files differ
and by how much.

    PYTHONPATH=. .venv/bin/python -m bench.pipeline_identity dump OUT.npz \\
        [--faces DIR] [--celeba DIR] [--cfp DIR] [--sample 200] [--seed 13]
    .venv/bin/python -m bench.pipeline_identity compare A.npz B.npz

``dump`` runs the checkout it is imported from, with that checkout's ``triton_models/``
(``--repository``): run it once in each checkout (e.g. main's, with this file copied or given by
path) and compare. Photos: every image of ``--faces`` and ``--sample`` random photos (seed
``--seed``) of CelebA (``Celeb/*.jpg``) and of CFP (``Data/Images/**/*.jpg``) each, where
given. Three passes over every photo: dlib ResNet with landmarks, pose, age and gender (all four
networks but mobileface); mobileface; faceres-deep. Recorded per photo and pass: boxes, raw
detector scores, five landmarks, embeddings, age (years, range probability) and gender
(probability).
"""

from __future__ import annotations

import argparse
import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bench.data import faces_dir
from embed_svc import catalog
from embed_svc.analyzer import AnalyzerSettings, BadImage, FaceAnalyzer
from embed_svc.backends.onnx import OnnxBackend
from embed_svc.images import ImageLimits
from embed_svc.landmarks import PREDICTOR_FILE, LandmarkPredictor, package_model_path
from embed_svc.types import AnalyzeParams, FaceResult

LIMITS = ImageLimits(max_bytes=64 * 1024 * 1024, max_pixels=100_000_000, max_detect_size=1920)
#: The passes: name -> request parameters.
PASSES = {
    "dlib": AnalyzeParams(0.5, 0, False, catalog.DLIB_RESNET, True, True, True, True),
    "mobileface": AnalyzeParams(0.5, 0, False, catalog.MOBILEFACE, False, False, False, False),
    "faceres": AnalyzeParams(0.5, 0, False, catalog.FACERES_DEEP, False, False, False, False),
}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def photo_paths(args: argparse.Namespace) -> list[Path]:
    """The photos: all of the faces folder, then the seeded samples of CelebA and CFP."""
    rng = np.random.default_rng(args.seed)
    paths = sorted(
        p for p in faces_dir(args.faces).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
    )
    for folder, pattern in ((args.celeba, "Celeb/*.jpg"), (args.cfp, "Data/Images/**/*.jpg")):
        if folder is None:
            continue
        pool = sorted(folder.glob(pattern))
        if not pool:
            raise SystemExit(f"no {pattern} under {folder}")
        picked = rng.choice(len(pool), size=min(args.sample, len(pool)), replace=False)
        paths.extend(pool[i] for i in sorted(picked))
    return paths


def _fields(faces: tuple[FaceResult, ...]) -> dict[str, NDArray[np.generic]]:
    """One photo's results as arrays (one row per face)."""
    count = len(faces)
    out: dict[str, NDArray[np.generic]] = {
        "boxes": np.array(
            [[f.box.x_min, f.box.y_min, f.box.x_max, f.box.y_max] for f in faces], np.float64
        ).reshape(count, 4),
        "scores": np.array([f.detector_score or 0.0 for f in faces], np.float64),
    }
    if faces and faces[0].embedding is not None:
        out["embeddings"] = np.stack([np.asarray(f.embedding) for f in faces])
    if faces and faces[0].landmarks is not None:
        out["landmarks"] = np.stack([np.asarray(f.landmarks) for f in faces])
    if faces and faces[0].age is not None:
        out["ages"] = np.array([[f.age.years, f.age.probability] for f in faces if f.age])
    if faces and faces[0].gender is not None:
        out["genders"] = np.array([f.gender.probability for f in faces if f.gender])
    if faces and faces[0].pose is not None:
        out["poses"] = np.array([[f.pose.pitch, f.pose.roll, f.pose.yaw] for f in faces if f.pose])
    return out


async def dump(args: argparse.Namespace) -> None:
    paths = photo_paths(args)
    backend = await OnnxBackend.connect(args.repository, catalog.all_models(), threads=1)
    executor = ThreadPoolExecutor(max_workers=2)
    analyzer = FaceAnalyzer(
        backend,
        LandmarkPredictor.load(package_model_path(PREDICTOR_FILE)),
        executor,
        AnalyzerSettings(LIMITS, "dlib68", True),
        catalog.ATTRIBUTES,
    )
    arrays: dict[str, NDArray[np.generic]] = {}
    faces = 0
    for index, path in enumerate(paths):
        data = path.read_bytes()
        for name, params in PASSES.items():
            try:
                results, _ = await analyzer.analyze([data], params)
            except BadImage as exc:
                arrays[f"{index}/{name}/refused"] = np.array(str(exc))
                continue
            for field, value in _fields(results[0].faces).items():
                arrays[f"{index}/{name}/{field}"] = value
            faces += len(results[0].faces) if name == "dlib" else 0
    arrays["paths"] = np.array([str(p) for p in paths])
    np.savez_compressed(args.out, **arrays)
    print(f"{len(paths)} photos, {faces} faces (dlib pass), {len(arrays) - 1} arrays -> {args.out}")
    executor.shutdown()
    await backend.close()


def compare(a_path: Path, b_path: Path) -> int:
    """Prints, per pass and field, how many photos' arrays are identical and the largest
    difference; returns 0 when everything is identical."""
    a, b = np.load(a_path), np.load(b_path)
    if list(a["paths"]) != list(b["paths"]):
        print("the files hold different photos")
        return 2
    keys = sorted((set(a.files) | set(b.files)) - {"paths"})
    missing = [k for k in keys if k not in a.files or k not in b.files]
    totals: dict[str, list[float]] = {}
    for key in keys:
        if key in missing:
            continue
        _, name, field = key.split("/")
        x, y = a[key], b[key]
        same = x.shape == y.shape and np.array_equal(x, y)
        diff = (
            float(np.abs(x.astype(np.float64) - y.astype(np.float64)).max())
            if x.shape == y.shape and x.dtype.kind == "f" and x.size
            else (0.0 if same else float("inf"))
        )
        entry = totals.setdefault(f"{name}/{field}", [0, 0, 0.0])
        entry[0] += 1
        entry[1] += int(same)
        entry[2] = max(entry[2], diff)
    print(f"{len(a['paths'])} photos; arrays only in one file: {len(missing)} {missing[:5]}")
    for label, (count, same, diff) in sorted(totals.items()):
        print(f"{label}: {same}/{count} photos identical, max |difference| {diff:.3g}")
    return 0 if not missing and all(s == c for c, s, _ in totals.values()) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("dump", help="analyse the photos, write OUT.npz")
    run.add_argument("out", type=Path)
    run.add_argument("--repository", type=Path, default=Path("triton_models"))
    run.add_argument("--faces", type=Path, help="default: FACEGRID_FACES_DIR, ../shared/faces")
    run.add_argument("--celeba", type=Path, help="CelebA folder (holding Celeb/)")
    run.add_argument("--cfp", type=Path, help="CFP folder (holding Data/Images/)")
    run.add_argument("--sample", type=int, default=200, help="photos of each data set")
    run.add_argument("--seed", type=int, default=13)
    check = commands.add_parser("compare", help="compare two dumps")
    check.add_argument("a", type=Path)
    check.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.command == "dump":
        asyncio.run(dump(args))
    else:
        raise SystemExit(compare(args.a, args.b))


if __name__ == "__main__":
    main()

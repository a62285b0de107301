"""Real face embeddings for the index benchmarks: CelebA photos embedded by the service's default
pipeline, cached, and padded to any size at the measured within-identity spread.

    python -m bench.celeba --data /work/data/celeba [--cache build/bench/celeba.npz]

Embeds the largest face of every photo of ``Celeb/`` (identities from ``identity_CelebA.txt``)
with embed_svc's default configuration (calculator, alignment, mirror averaging, detection
threshold and confirmation as ``embed_svc.config.load_config({})`` sets them) on the in-process
onnxruntime backend, the code path of the service, and caches ``labels``, ``files`` and
``vectors`` (L2-normalised float32) in an ``.npz`` under ``build/`` (gitignored; the photos are
research data and never committed, nor anything derived from them but numbers).

``padded`` builds a collection of any size from them: the real embeddings of the enrolled photos,
then copies of them perturbed by Gaussian noise scaled so that a copy lies from its source at the
median within-identity distance measured on the real photos (so a copy looks like another photo
of the same person). Queries are held-out real photos of the enrolled people.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embed_svc import catalog
from embed_svc.analyzer import AnalyzerSettings, FaceAnalyzer
from embed_svc.backends.onnx import OnnxBackend
from embed_svc.config import load_config
from embed_svc.images import ImageLimits
from embed_svc.landmarks import PREDICTOR_FILE, LandmarkPredictor, package_model_path
from embed_svc.types import AnalyzeParams

DEFAULT_CACHE = Path("build/bench/celeba.npz")


@dataclass(frozen=True)
class FaceSet:
    """Embedded photos: one row per photo with a face."""

    labels: np.ndarray
    """Identity number of each row."""
    files: np.ndarray
    """Photo file name of each row."""
    vectors: np.ndarray
    """L2-normalised float32 embeddings, one row per photo."""
    calculator: str
    """Calculator that made them."""


def identities(data: Path) -> dict[str, int]:
    """Photo file name -> identity number, from ``identity_CelebA.txt``."""
    table: dict[str, int] = {}
    for line in (data / "identity_CelebA.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            table[parts[0]] = int(parts[1])
    return table


async def embed(data: Path, repository: Path) -> FaceSet:
    """Embeds every photo of ``data/Celeb`` with embed_svc's default configuration."""
    config = load_config({})
    calculator = catalog.CALCULATORS[config.calculator]
    backend = await OnnxBackend.connect(repository, catalog.all_models(), threads=1)
    executor = ThreadPoolExecutor(max_workers=2)
    predictor = LandmarkPredictor.load(package_model_path(PREDICTOR_FILE))
    analyzer = FaceAnalyzer(
        backend,
        predictor,
        executor,
        AnalyzerSettings(
            ImageLimits(config.max_image_bytes, config.max_image_pixels, config.max_detect_size),
            config.alignment,
            config.mirror_average,
            confirm_below=config.confirm_below,
        ),
        None,
    )
    params = AnalyzeParams(
        det_prob_threshold=config.det_prob_threshold,
        limit=1,
        whole_image_is_face=False,
        calculator=calculator,
        landmarks=False,
        age=False,
        gender=False,
        pose=False,
    )
    table = identities(data)
    photos = sorted(p for p in (data / "Celeb").glob("*.jpg") if p.name in table)
    labels, files, vectors = [], [], []
    started = time.perf_counter()

    async def one(path: Path) -> None:
        results, _ = await analyzer.analyze([path.read_bytes()], params)
        faces = results[0].faces
        if faces and faces[0].embedding is not None:
            labels.append(table[path.name])
            files.append(path.name)
            vectors.append(np.asarray(faces[0].embedding, dtype=np.float32))

    for start in range(0, len(photos), 4):
        await asyncio.gather(*(one(p) for p in photos[start : start + 4]))
        if start % 400 == 0:
            print(f"  {start}/{len(photos)} photos, {time.perf_counter() - started:.0f} s")
    matrix = np.stack(vectors)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    print(
        f"embedded {len(vectors)} of {len(photos)} photos ({len(set(labels))} identities) "
        f"in {time.perf_counter() - started:.0f} s with {config.calculator}"
    )
    return FaceSet(np.array(labels), np.array(files), matrix, config.calculator)


def load(
    data: Path, cache: Path = DEFAULT_CACHE, repository: Path = Path("triton_models")
) -> FaceSet:
    """The cached embeddings, made first when the cache is missing."""
    if not cache.exists():
        faces = asyncio.run(embed(data, repository))
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            cache,
            labels=faces.labels,
            files=faces.files,
            vectors=faces.vectors,
            calculator=np.array(faces.calculator),
        )
    stored = np.load(cache)
    return FaceSet(stored["labels"], stored["files"], stored["vectors"], str(stored["calculator"]))


@dataclass(frozen=True)
class Split:
    """Enrolled photos and held-out queries of the same people."""

    enrolled: np.ndarray
    """Row numbers (in the FaceSet) of the enrolled photos."""
    queries: np.ndarray
    """Row numbers of held-out photos whose person is enrolled."""
    spread: float
    """Median Euclidean distance between two photos of one person (unit vectors)."""


def split(faces: FaceSet, held_out: int = 2, seed: int = 0) -> Split:
    """Holds out ``held_out`` photos of each person with at least 3; the rest is enrolled."""
    rng = np.random.default_rng(seed)
    enrolled: list[int] = []
    queries: list[int] = []
    distances: list[float] = []
    for label in np.unique(faces.labels):
        rows = rng.permutation(np.flatnonzero(faces.labels == label))
        if len(rows) >= 3:
            queries.extend(rows[:held_out])
            rows = rows[held_out:]
        enrolled.extend(rows)
        vectors = faces.vectors[rows]
        if len(rows) >= 2:
            gaps = np.linalg.norm(vectors[:, None, :] - vectors[None, :, :], axis=2)
            distances.extend(gaps[np.triu_indices(len(rows), 1)])
    return Split(np.array(enrolled), np.array(queries), float(np.median(distances)))


def padded(
    faces: FaceSet, chosen: Split, size: int, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, identity of each row): the enrolled embeddings, then perturbed copies of them up
    to ``size`` rows; a copy is at about ``chosen.spread`` from its source."""
    rng = np.random.default_rng(seed)
    base = faces.vectors[chosen.enrolled]
    dim = base.shape[1]
    out = np.empty((size, dim), dtype=np.float32)
    labels = np.empty(size, dtype=np.int64)
    first = min(size, len(base))
    out[:first] = base[:first]
    labels[:first] = faces.labels[chosen.enrolled][:first]
    # Noise of per-coordinate sigma s moves a unit vector by about s * sqrt(dim) before
    # renormalising; this sigma lands the copies at the measured spread.
    sigma = chosen.spread / np.sqrt(dim)
    step = 1 << 16
    for start in range(first, size, step):
        stop = min(size, start + step)
        sources = rng.integers(0, len(base), stop - start)
        block = base[sources] + rng.normal(scale=sigma, size=(stop - start, dim)).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:stop] = block
        labels[start:stop] = faces.labels[chosen.enrolled][sources]
    return out, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="CelebA folder (Celeb/ + labels)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()
    faces = load(args.data, args.cache)
    chosen = split(faces)
    print(
        f"{len(faces.vectors)} embeddings of {len(np.unique(faces.labels))} people "
        f"({faces.calculator}); {len(chosen.enrolled)} enrolled, {len(chosen.queries)} held out; "
        f"median within-identity distance {chosen.spread:.3f}"
    )


if __name__ == "__main__":
    main()

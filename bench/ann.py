"""api_svc's FaceIndex alone on real face embeddings: recall@1 of the approximate path against
exact search, search latency, build time and memory, from thousands to millions of faces.

    python -m bench.ann --data /work/data/celeba [--sizes 10000,100000,1000000]
        [--sweep 1000000] [--threshold] [--threads 8] [--repeat 4] [--build-threads 1]

Faces: CelebA photos embedded by the service's default pipeline (``bench/celeba.py``, cached),
two held-out photos per person as queries, the rest enrolled and padded to each size with
perturbed copies at the measured within-identity spread. Each size builds the index api_svc
builds (``FaceIndex.build``: exact below ``FACEGRID_INDEX_EXACT_MAX``, IVF-SQ4 with exact
re-ranking above) and an exact one over the same rows as the reference.

Prints per size: build seconds, bytes held (and the vectors' own bytes), RSS growth, single-query
latency p50/p99 (queries one at a time, as recognise asks per face), queries/s from ``--threads``
threads at once against one thread (FAISS releases the GIL), recall@1 against exact search
(same image id) and top-1 identity accuracy of both. ``--sweep N`` tunes nprobe and the re-rank
candidates at size N; ``--threshold`` times exact against approximate search at small sizes (the
choice of exact_max).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np
import psutil

from api_svc.ann import AnnSettings
from api_svc.face_index import FaceIndex, IndexSettings
from api_svc.face_rows import UUID_BYTES, FaceBatch, SubjectBatch
from api_svc.index_registry import single_threaded_faiss
from bench.celeba import DEFAULT_CACHE, load, padded, split

EXACT = IndexSettings(exact_max=10**12)


def batch_of(vectors: np.ndarray, labels: np.ndarray) -> FaceBatch:
    """A FaceBatch over ``vectors`` (ids = row numbers, subjects = identities)."""
    count = len(vectors)
    ids = np.zeros((count, UUID_BYTES), np.uint8)
    ids[:, 8:] = np.arange(count, dtype=">u8").view(np.uint8).reshape(count, 8)
    people = np.unique(labels)
    subject_ids = np.zeros((count, UUID_BYTES), np.uint8)
    subject_ids[:, 8:] = labels.astype(">u8").view(np.uint8).reshape(count, 8)
    subjects = SubjectBatch.of((uuid.UUID(int=int(p)), f"person {p}") for p in people)
    return FaceBatch(ids, subject_ids, vectors, subjects)


def row_of(hit_id: uuid.UUID) -> int:
    return hit_id.int & 0xFFFF_FFFF_FFFF_FFFF


def timed(index: FaceIndex, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(latency ms of each single query, top-1 row of each)."""
    times, rows = [], []
    for query in queries:
        started = time.perf_counter()
        [hits] = index.search(query[None, :], 1)
        times.append((time.perf_counter() - started) * 1000)
        rows.append(row_of(hits[0].image_id))
    return np.array(times), np.array(rows)


def throughput(index: FaceIndex, queries: np.ndarray, threads: int) -> float:
    """Queries/s with ``threads`` threads searching one query at a time."""
    chunks = np.array_split(queries, threads)

    def work(chunk: np.ndarray) -> None:
        for query in chunk:
            index.search(query[None, :], 1)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads, initializer=single_threaded_faiss) as pool:
        list(pool.map(work, chunks))
    return len(queries) / (time.perf_counter() - started)


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def exact_top1(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    _, rows = faiss.knn(queries, vectors, 1, faiss.METRIC_INNER_PRODUCT)
    return rows[:, 0]


def bench_size(size: int, args: argparse.Namespace, data: tuple) -> None:
    faces, chosen, queries, truth_people = data
    vectors, labels = padded(faces, chosen, size)
    vector_mb = vectors.nbytes / 2**20
    faiss.omp_set_num_threads(args.build_threads)
    reference = exact_top1(vectors, queries)
    before = rss_mb()
    started = time.perf_counter()
    index = FaceIndex.build("bench", vectors.shape[1], batch_of(vectors, labels), args.settings)
    single_threaded_faiss()
    build_s = time.perf_counter() - started
    grown = rss_mb() - before
    status = index.status()
    times, found = timed(index, np.tile(queries, (args.repeat, 1)))
    found = found[: len(queries)]
    recall = float(np.mean(found == reference))
    one = throughput(index, np.tile(queries, (2, 1)), 1)
    many = throughput(index, np.tile(queries, (2, 1)), args.threads)
    print(
        f"\n{size:,} faces x {vectors.shape[1]} ({vector_mb:.0f} MiB of vectors): "
        f"{status.kind} {status.detail}, built in {build_s:.1f} s\n"
        f"  memory: index {status.nbytes / 2**20:.0f} MiB ({status.nbytes / vectors.nbytes:.2f}x "
        f"the vectors), RSS +{grown:.0f} MiB\n"
        f"  single query: p50 {np.percentile(times, 50):.2f} ms, p99 "
        f"{np.percentile(times, 99):.2f} ms ({len(times)} searches)\n"
        f"  queries/s: 1 thread {one:.0f}, {args.threads} threads {many:.0f} "
        f"({many / one:.2f}x)\n"
        f"  recall@1 vs exact {recall:.4f}; top-1 identity: approximate "
        f"{np.mean(labels[found] == truth_people):.4f}, exact "
        f"{np.mean(labels[reference] == truth_people):.4f}",
        flush=True,
    )
    del index


def sweep(size: int, args: argparse.Namespace, data: tuple) -> None:
    faces, chosen, queries, _ = data
    vectors, labels = padded(faces, chosen, size)
    reference = exact_top1(vectors, queries)
    index = FaceIndex.build("bench", vectors.shape[1], batch_of(vectors, labels), args.settings)
    ann = index._ann
    assert ann is not None
    print(f"\nsweep at {size:,} faces, IVF{ann.nlist},SQ4 (nprobe, candidates)", flush=True)
    for nprobe in (4, 8, 16, 32, 64):
        index._ann._index.nprobe = nprobe  # type: ignore[union-attr]
        for candidates in (16, 32, 64, 128):
            index.settings = replace(
                args.settings, ann=replace(args.settings.ann, candidates=candidates)
            )
            times, found = timed(index, queries)
            print(
                f"  nprobe {nprobe:3d} ({nprobe / ann.nlist:.3f} of the lists), candidates "
                f"{candidates:3d}: recall@1 {np.mean(found == reference):.4f}, p50 "
                f"{np.percentile(times, 50):.2f} ms, p99 {np.percentile(times, 99):.2f} ms",
                flush=True,
            )


def threshold(args: argparse.Namespace, data: tuple) -> None:
    faces, chosen, queries, _ = data
    print("\nexact against approximate by size (single-query p50 / p99 ms, recall@1)")
    for size in (2_000, 5_000, 10_000, 20_000, 50_000):
        vectors, labels = padded(faces, chosen, size)
        reference = exact_top1(vectors, queries)
        exact = FaceIndex.build("bench", vectors.shape[1], batch_of(vectors, labels), EXACT)
        ivf = FaceIndex.build(
            "bench", vectors.shape[1], batch_of(vectors, labels), IndexSettings(exact_max=1)
        )
        te, _ = timed(exact, queries)
        ta, found = timed(ivf, queries)
        print(
            f"  {size:6,}: exact {np.percentile(te, 50):.3f} / {np.percentile(te, 99):.3f}; "
            f"{ivf.status().detail}: {np.percentile(ta, 50):.3f} / {np.percentile(ta, 99):.3f}, "
            f"recall@1 {np.mean(found == reference):.4f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="CelebA folder")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--sweep", type=int, default=0, help="tune nprobe/candidates at N")
    parser.add_argument("--threshold", action="store_true", help="exact vs IVF at small sizes")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=4, help="passes over the queries")
    parser.add_argument(
        "--build-threads",
        type=int,
        default=1,
        help="OpenMP threads of the build and the exact reference (searches: 1)",
    )
    parser.add_argument("--exact-max", type=int, default=IndexSettings().exact_max)
    args = parser.parse_args()
    args.settings = IndexSettings(exact_max=args.exact_max, ann=AnnSettings())
    single_threaded_faiss()  # as api_svc's index threads
    faces = load(args.data, args.cache)
    chosen = split(faces)
    queries = faces.vectors[chosen.queries]
    data = (faces, chosen, queries, faces.labels[chosen.queries])
    print(
        f"machine: {os.cpu_count()} CPUs ({platform.machine()}), "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, load average "
        f"{os.getloadavg()[0]:.1f}; faiss {faiss.__version__}, one OpenMP thread per search "
        f"thread (as api_svc)\nfaces: {len(faces.vectors)} CelebA photos of "
        f"{len(np.unique(faces.labels))} people ({faces.calculator}), {len(chosen.enrolled)} "
        f"enrolled, {len(queries)} held-out queries; padding at the within-identity spread "
        f"{chosen.spread:.3f}",
        flush=True,
    )
    if args.threshold:
        threshold(args, data)
    if args.sweep:
        sweep(args.sweep, args, data)
    for size in (int(s) for s in args.sizes.split(",") if s):
        bench_size(size, args, data)


if __name__ == "__main__":
    main()

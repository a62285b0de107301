"""Per-item results computed once and kept under build/bench-cache (gitignored).

``cached_map`` applies a function to every item not yet in a stage's cache, in worker
processes, saving each batch as it finishes (an interrupted run resumes), so comparisons
reuse the detections, landmarks and embeddings of earlier runs. An item's key is a digest of
its ``repr`` and the stage's ``version``: change the version when the computation changes.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from bench.data import CACHE

#: Items per saved batch.
BATCH = 400

_worker: Callable[[Any], Any] | None = None


def _init(worker: Callable[[Any], Any]) -> None:
    global _worker
    _worker = worker


def _run(items: Sequence[Any]) -> list[Any]:
    assert _worker is not None
    return [_worker(item) for item in items]


def key(version: str, item: Any) -> str:
    """Cache key of an item."""
    return hashlib.sha256(f"{version}\n{item!r}".encode()).hexdigest()[:20]


def load(stage: str) -> dict[str, Any]:
    """Everything cached for a stage, by key."""
    store: dict[str, Any] = {}
    for path in sorted((CACHE / stage).glob("*.pkl")):
        store.update(pickle.loads(path.read_bytes()))
    return store


def save(stage: str, results: dict[str, Any]) -> None:
    """Adds a batch of results to a stage's cache."""
    folder = CACHE / stage
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256("".join(sorted(results)).encode()).hexdigest()[:16]
    partial = folder / f"{name}.tmp"
    partial.write_bytes(pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL))
    partial.replace(folder / f"{name}.pkl")


def cached_map(
    stage: str,
    version: str,
    items: Sequence[Any],
    worker: Callable[[Any], Any],
    workers: int = 2,
) -> list[Any]:
    """``[worker(item) for item in items]``, from the cache where present.

    ``worker`` is pickled into each worker process (it loads its models lazily, once per
    process); ``stage`` names the cache folder.
    """
    store = load(stage)
    keys = [key(version, item) for item in items]
    todo = {k: item for k, item in zip(keys, items, strict=True) if k not in store}
    if todo:
        started = time.perf_counter()
        print(f"  [{stage}] computing {len(todo)} of {len(items)}", file=sys.stderr, flush=True)
        pending = list(todo.items())
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, context, initializer=_init, initargs=(worker,)) as pool:
            for start in range(0, len(pending), BATCH):
                batch = pending[start : start + BATCH]
                step = -(-len(batch) // workers)
                parts = [batch[j : j + step] for j in range(0, len(batch), step)]
                outputs = pool.map(_run, [[item for _, item in part] for part in parts])
                results = {
                    k: out
                    for part, part_out in zip(parts, outputs, strict=True)
                    for (k, _), out in zip(part, part_out, strict=True)
                }
                save(stage, results)
                store.update(results)
                done = start + len(batch)
                rate = done / (time.perf_counter() - started)
                print(
                    f"  [{stage}] {done}/{len(pending)} ({rate:.1f}/s)",
                    file=sys.stderr,
                    flush=True,
                )
    return [store[k] for k in keys]


def stage_path(stage: str) -> Path:
    """Folder of a stage's cache."""
    return CACHE / stage

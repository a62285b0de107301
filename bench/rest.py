"""Verification through the running service's REST API, as a CompreFace client does it.

Each photo goes to ``POST /api/v1/detection/detect?face_plugins=calculator`` with
``det_prob_threshold`` 0.8 (what CompreFace's SDK sends) and ``limit=1`` (the largest face);
the embedding comes from the answer (no face: CompreFace's code 28, the photo's pairs count as
errors). Each pair's similarity is the service's own: ``POST
/api/v1/verification/embeddings/verify`` with the pair's two embeddings, so the published
calibration is the one the mesh applies. A bounded number of requests is in flight; every
answer is cached per photo under build/bench-cache/<set>/rest (a rerun is cheap), keyed by
the threshold and the digest of this checkout's embed_svc modules (the mesh is assumed to run
this checkout).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import numpy as np

from bench import cache, data
from bench.pipelines import service_fingerprint

#: The ``det_prob_threshold`` CompreFace's SDK and docs send.
CLIENT_THRESHOLD = 0.8
#: Requests in flight.
IN_FLIGHT = 4
#: Answers per saved cache batch.
SAVE_EVERY = 200
#: CompreFace's error code for "No face is found in the given image".
NO_FACE = 28
#: Cache version of the REST answers (bump when what is kept changes).
REST_VERSION = "v1"

T = TypeVar("T")


@dataclass(frozen=True)
class RestService:
    """A running mesh's public address and the API keys of its detection and verification
    services."""

    url: str
    detection_key: str
    verification_key: str


async def _bounded(
    items: Sequence[T], call: Callable[[T], Awaitable[Any]], in_flight: int
) -> list[Any]:
    """``[await call(item) for item in items]`` with at most ``in_flight`` running at once."""
    gate = asyncio.Semaphore(in_flight)

    async def one(item: T) -> Any:
        async with gate:
            return await call(item)

    return await asyncio.gather(*(one(item) for item in items))


async def _detect(
    session: aiohttp.ClientSession, service: RestService, path: Path, threshold: float
) -> dict[str, Any] | None:
    """The largest face's embedding, probability and box (None: the service found no face)."""
    form = aiohttp.FormData()
    form.add_field("file", path.read_bytes(), filename=path.name, content_type="image/jpeg")
    query = {
        "face_plugins": "calculator",
        "det_prob_threshold": str(threshold),
        "limit": "1",
        "status": "true",
    }
    async with session.post(
        f"{service.url}/api/v1/detection/detect",
        data=form,
        params=query,
        headers={"x-api-key": service.detection_key},
    ) as reply:
        body = await reply.json(content_type=None)
        if reply.status == 400 and body.get("code") == NO_FACE:
            return None
        if reply.status != 200:
            raise RuntimeError(f"{path}: HTTP {reply.status} {body}")
    face = body["result"][0]
    box = face["box"]
    return {
        "embedding": np.asarray(face["embedding"], dtype=np.float32),
        "probability": float(box["probability"]),
        "box": (box["x_min"], box["y_min"], box["x_max"], box["y_max"]),
        "calculator": body.get("plugins_versions", {}).get("calculator", ""),
    }


async def detections(
    service: RestService,
    key: str,
    root: Path,
    photos: list[str],
    threshold: float = CLIENT_THRESHOLD,
    in_flight: int = IN_FLIGHT,
) -> dict[str, dict[str, Any] | None]:
    """Every photo's answer (None: no face), from the cache where present."""
    stage = f"{key}/rest"
    version = f"{REST_VERSION} {threshold} limit 1 {service_fingerprint()}"
    store = cache.load(stage)
    keys = {photo: cache.key(version, photo) for photo in photos}
    todo = [photo for photo in photos if keys[photo] not in store]
    if todo:
        print(f"  [{stage}] sending {len(todo)} of {len(photos)}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        timeout = aiohttp.ClientTimeout(total=300)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for start in range(0, len(todo), SAVE_EVERY):
                batch = todo[start : start + SAVE_EVERY]
                answers = await _bounded(
                    batch,
                    lambda photo: _detect(session, service, root / photo, threshold),
                    in_flight,
                )
                results = {keys[p]: a for p, a in zip(batch, answers, strict=True)}
                cache.save(stage, results)
                store.update(results)
                done = start + len(batch)
                print(
                    f"  [{stage}] {done}/{len(todo)} "
                    f"({done / (time.perf_counter() - started):.1f}/s)",
                    file=sys.stderr,
                    flush=True,
                )
    return {photo: store[keys[photo]] for photo in photos}


async def _verify(
    session: aiohttp.ClientSession,
    service: RestService,
    source: np.ndarray,
    targets: list[np.ndarray],
) -> list[float]:
    """The service's similarity of ``source`` with each target, in the targets' order (its
    answer is sorted by similarity and echoes each target)."""
    body = {"source": source.tolist(), "targets": [t.tolist() for t in targets]}
    async with session.post(
        f"{service.url}/api/v1/verification/embeddings/verify",
        json=body,
        headers={"x-api-key": service.verification_key},
    ) as reply:
        answer = await reply.json(content_type=None)
        if reply.status != 200:
            raise RuntimeError(f"embeddings/verify: HTTP {reply.status} {answer}")
    by_target = {
        np.asarray(r["embedding"], dtype=np.float32).tobytes(): float(r["similarity"])
        for r in answer["result"]
    }
    return [by_target[t.astype(np.float32).tobytes()] for t in targets]


async def similarities(
    service: RestService,
    pairs: data.PairSet,
    vectors: dict[str, np.ndarray | None],
    in_flight: int = IN_FLIGHT,
) -> list[np.ndarray]:
    """Per fold, the service's similarity of each pair (NaN where a photo has no face): one
    ``embeddings/verify`` call per source photo with all its partners as targets."""
    partners: dict[str, list[str]] = defaultdict(list)
    for fold in pairs.folds:
        for pair in fold:
            a, b = vectors[pair.a], vectors[pair.b]
            if a is not None and b is not None and pair.b not in partners[pair.a]:
                partners[pair.a].append(pair.b)
    sources = sorted(partners)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(source: str) -> list[float]:
            vector = vectors[source]
            assert vector is not None
            targets = [vectors[b] for b in partners[source]]
            return await _verify(session, service, vector, [t for t in targets if t is not None])

        scores = await _bounded(sources, one, in_flight)
    score = {
        (source, b): s
        for source, found in zip(sources, scores, strict=True)
        for b, s in zip(partners[source], found, strict=True)
    }
    return [np.array([score.get((p.a, p.b), np.nan) for p in fold]) for fold in pairs.folds]

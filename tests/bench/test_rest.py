"""bench/rest.py against a fake CompreFace-shaped server (aiohttp.web): the detection request a
CompreFace client sends, "no face" as a missing embedding, answers cached per photo, and pair
similarities matched to their targets although the service sorts them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench import cache, data, rest

#: Embedding of each fake photo (photo "none" has no face).
VECTORS = {"a.jpg": [1.0, 0.0], "b.jpg": [0.0, 1.0], "c.jpg": [0.6, 0.8]}


class Fake:
    """Records the detection requests; answers as CompreFace does."""

    def __init__(self) -> None:
        self.detections: list[dict[str, str]] = []

    async def detect(self, request: web.Request) -> web.Response:
        assert request.headers["x-api-key"] == "det-key"
        form = await request.post()
        name = form["file"].filename  # type: ignore[union-attr]
        self.detections.append(dict(request.query))
        if name not in VECTORS:
            return web.json_response(
                {"message": "No face is found in the given image", "code": 28}, status=400
            )
        box = {"probability": 0.95, "x_min": 1, "y_min": 2, "x_max": 30, "y_max": 40}
        face = {"box": box, "embedding": VECTORS[name]}
        return web.json_response(
            {"result": [face], "plugins_versions": {"calculator": "dlib-resnet-v1"}}
        )

    async def verify(self, request: web.Request) -> web.Response:
        assert request.headers["x-api-key"] == "ver-key"
        body = await request.json()
        source = np.array(body["source"])
        scored = [
            {"embedding": t, "similarity": float(source @ np.array(t))} for t in body["targets"]
        ]
        scored.sort(key=lambda r: -r["similarity"])
        return web.json_response({"result": scored})


@pytest.fixture
async def served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Fake, str]]:
    monkeypatch.setattr(cache, "CACHE", tmp_path / "cache")
    fake = Fake()
    app = web.Application()
    app.router.add_post("/api/v1/detection/detect", fake.detect)
    app.router.add_post("/api/v1/verification/embeddings/verify", fake.verify)
    server = TestServer(app)
    await server.start_server()
    try:
        yield fake, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_detections_send_a_compreface_request_and_are_cached(
    served: tuple[Fake, str], tmp_path: Path
) -> None:
    fake, url = served
    for name in (*VECTORS, "none.jpg"):
        (tmp_path / name).write_bytes(b"jpeg")
    service = rest.RestService(url, "det-key", "ver-key")
    photos = sorted([*VECTORS, "none.jpg"])
    found = await rest.detections(service, "Fake", tmp_path, photos)
    assert found["none.jpg"] is None
    assert np.allclose(found["c.jpg"]["embedding"], VECTORS["c.jpg"])  # type: ignore[index]
    assert fake.detections[0] == {
        "face_plugins": "calculator",
        "det_prob_threshold": "0.8",
        "limit": "1",
        "status": "true",
    }
    again = await rest.detections(service, "Fake", tmp_path, photos)
    assert len(fake.detections) == len(photos)  # the second pass came from the cache
    assert again["none.jpg"] is None and again["a.jpg"] is not None


async def test_similarities_follow_the_pairs_not_the_service_order(
    served: tuple[Fake, str], tmp_path: Path
) -> None:
    _, url = served
    service = rest.RestService(url, "det-key", "ver-key")
    vectors: dict[str, np.ndarray | None] = {
        k: np.array(v, dtype=np.float32) for k, v in VECTORS.items()
    }
    vectors["none.jpg"] = None
    pairs = data.PairSet(
        "fake",
        tmp_path,
        [
            [data.Pair("a.jpg", "b.jpg", False), data.Pair("a.jpg", "c.jpg", True)],
            [data.Pair("a.jpg", "none.jpg", True)],
        ],
    )
    folds = await rest.similarities(service, pairs, vectors)
    assert np.allclose(folds[0], [0.0, 0.6])
    assert np.isnan(folds[1][0])

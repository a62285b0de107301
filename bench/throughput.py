"""Throughput of the detector, the embedder and the whole embed_svc pipeline.

    python -m bench.throughput [--faces DIR] [--repository triton_models]
                               [--seconds 10] [--skip-triton]
    python -m bench.throughput --outside [--photos 20] [--seconds 60] [--repeats 3]

1. In process, onnxruntime: detector images/s and faces/s on the group photos; embedder
   faces/s on aligned chips at batch 1 and batch 32.
2. The pipeline (decode, detect, 68 landmarks, align, embed with mirror averaging) on
   one-face photos with the calculator plugin: in process on onnxruntime (FaceAnalyzer called
   directly), then as the real service - ``python -m embed_svc`` in its own process on Triton
   (tritonserver started here on free ports) - called over gRPC. Each at 1 request in flight
   (batch 1) and at 8 and 32 concurrent requests; the service's faces/s is given as a ratio to
   the in-process figure at the same concurrency, with Triton's mean batch per model at each.

With ``--outside`` (issue 13's measure): the in-process pipeline at 1 request in flight on the
first ``--photos`` one-face photos, each call's wall time split into the time inside the
detector's and the embedder's inference calls and the rest ("outside the networks"), per
stage, in ``--repeats`` rounds of ``--seconds`` (``--small-pages``: the landmark predictor loaded
without huge pages, for a before/after in one run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import dlib
import grpc
import numpy as np
import tritonclient.grpc

from bench.data import faces_dir
from embed_svc import align, catalog, detector
from embed_svc.analyzer import AnalyzerSettings, FaceAnalyzer
from embed_svc.backends.onnx import OnnxBackend
from embed_svc.images import ImageLimits, decode_image
from embed_svc.landmarks import PREDICTOR_FILE, LandmarkPredictor, package_model_path
from embed_svc.types import AnalyzeParams, Box, FloatArray, InputArray, RgbImage
from facegrid.embedding.v1 import embedding_service_pb2 as pb
from facegrid.embedding.v1 import embedding_service_pb2_grpc as pb_grpc
from facegrid.server import READY_SERVICE, channel_options
from launcher.readiness import grpc_serving, http_ok
from launcher.triton import triton_command

REPO = Path(__file__).resolve().parents[1]
LIMITS = ImageLimits(max_bytes=64 * 1024 * 1024, max_pixels=100_000_000, max_detect_size=1920)
#: Requests in flight of the pipeline figures.
CONCURRENCY = (1, 8, 32)
PARAMS = AnalyzeParams(0.5, 0, False, catalog.DLIB_RESNET, False, False, False, False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def rate(
    call: Callable[[int], Awaitable[int]], concurrency: int, seconds: float
) -> tuple[float, float]:
    """(calls/s, faces/s) of ``call(i)`` (returning its face count) kept ``concurrency`` deep."""
    deadline = time.perf_counter() + seconds
    calls = 0
    faces = 0
    counter = iter(range(10**9))

    async def worker() -> None:
        nonlocal calls, faces
        while time.perf_counter() < deadline:
            found = await call(next(counter))  # not `faces += await ...`: that reads first
            faces += found
            calls += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return calls / elapsed, faces / elapsed


async def components(args: argparse.Namespace, backend: OnnxBackend) -> dict[str, float]:
    """Detector and embedder alone, in process."""
    manifest = json.loads((args.faces / "manifest.json").read_text())
    groups = [
        decode_image((args.faces / e["file"]).read_bytes(), LIMITS)
        for e in manifest["group_photos"]
    ]
    tensors = [detector.letterbox(image.work) for image in groups]

    async def detect(i: int) -> int:
        tensor, fit = tensors[i % len(tensors)]
        out = await backend.infer(
            catalog.DETECTOR.model,
            {catalog.DETECTOR.input: tensor[None]},
            [catalog.DETECTOR.regressors, catalog.DETECTOR.classificators],
        )
        return len(
            detector.decode(
                out[catalog.DETECTOR.regressors][0],
                out[catalog.DETECTOR.classificators][0],
                fit,
                0.5,
            )
        )

    images_s, faces_s = await rate(detect, 1, args.seconds)
    print(
        f"detector (in process, 1 image per call): {images_s:.1f} images/s, {faces_s:.1f} faces/s"
    )
    work = groups[0].work
    height, width = work.shape[:2]
    chip = align.box_crop(work, Box(width * 0.3, height * 0.2, width * 0.7, height * 0.6), 150)
    results = {"detector_images_s": images_s, "detector_faces_s": faces_s}
    for batch in (1, 32):
        inputs = catalog.DLIB_RESNET.encode([chip] * batch)

        async def embed(_: int, inputs: np.ndarray = inputs, batch: int = batch) -> int:
            await backend.infer(
                catalog.DLIB_RESNET.model,
                {catalog.DLIB_RESNET.input: inputs},
                [catalog.DLIB_RESNET.output],
            )
            return batch

        _, per_s = await rate(embed, 1, args.seconds)
        print(f"embedder (in process, batch {batch}): {per_s:.1f} faces/s")
        results[f"embedder_batch{batch}_faces_s"] = per_s
    return results


def one_face_photos(faces: Path) -> list[bytes]:
    """The identity photos (one face each)."""
    manifest = json.loads((faces / "manifest.json").read_text())
    return [
        (faces / entry["file"]).read_bytes()
        for entries in manifest["identities"].values()
        for entry in entries
    ]


def in_process_analyzer(
    backend: OnnxBackend, executor: ThreadPoolExecutor, predictor: LandmarkPredictor | None = None
) -> FaceAnalyzer:
    """embed_svc's FaceAnalyzer on ``backend`` as the service builds it (dlib68, mirror)."""
    if predictor is None:
        predictor = LandmarkPredictor.load(package_model_path(PREDICTOR_FILE))
    return FaceAnalyzer(
        backend, predictor, executor, AnalyzerSettings(LIMITS, "dlib68", True), None
    )


def in_process_pipeline(
    backend: OnnxBackend, photos: list[bytes], executor: ThreadPoolExecutor
) -> Callable[[int], Awaitable[int]]:
    """embed_svc's FaceAnalyzer on ``backend`` called directly: call i analyses photo i mod n
    (with the calculator) and returns its face count."""
    analyzer = in_process_analyzer(backend, executor)

    async def analyze(i: int) -> int:
        results, _ = await analyzer.analyze([photos[i % len(photos)]], PARAMS)
        return len(results[0].faces)

    return analyze


async def pipeline_in_process(
    args: argparse.Namespace, backend: OnnxBackend, photos: list[bytes]
) -> dict[int, float]:
    executor = ThreadPoolExecutor(max_workers=2)
    analyze = in_process_pipeline(backend, photos, executor)
    out = {}
    for concurrency in CONCURRENCY:
        _, faces_s = await rate(analyze, concurrency, args.seconds)
        print(f"pipeline in process (onnxruntime), {concurrency} in flight: {faces_s:.1f} faces/s")
        out[concurrency] = faces_s
    executor.shutdown()
    return out


@contextmanager
def tritonserver(repository: Path, work: Path) -> Iterator[str]:
    """A tritonserver on ``repository`` (its log in ``work``); yields its gRPC address once
    it is ready, stops it on exit."""
    grpc_port, http_port = _free_port(), _free_port()
    command = triton_command(
        model_repository=repository, work_dir=work, grpc_port=grpc_port, http_port=http_port
    )
    log = (work / "triton.log").open("wb")
    process = subprocess.Popen(command.argv, env=command.env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while not http_ok(f"http://127.0.0.1:{http_port}/v2/health/ready"):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"tritonserver did not start; log in {work}")
            time.sleep(0.3)
        yield f"127.0.0.1:{grpc_port}"
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


async def pipeline_service(args: argparse.Namespace, photos: list[bytes]) -> dict[int, float]:
    """embed_svc as its own process on a tritonserver started here."""
    work = Path(tempfile.mkdtemp(prefix="fg-bench-"))
    embed_port = _free_port()
    with tritonserver(args.repository, work) as triton_url:
        env = dict(os.environ)
        env.update(
            FACEGRID_EMBED_PORT=str(embed_port),
            FACEGRID_TRITON_URL=triton_url,
            FACEGRID_EMBED_BACKEND="triton",
            FACEGRID_LOG_FORMAT="json",
        )
        embed_log = (work / "embed.log").open("wb")
        embed_process = subprocess.Popen(
            [sys.executable, "-m", "embed_svc"],
            cwd=REPO,
            env=env,
            stdout=embed_log,
            stderr=embed_log,
        )
        try:
            deadline = time.monotonic() + 120
            while not grpc_serving(f"127.0.0.1:{embed_port}", service=READY_SERVICE):
                if time.monotonic() > deadline or embed_process.poll() is not None:
                    raise RuntimeError(f"embed_svc did not start; logs in {work}")
                time.sleep(0.5)
            channel = grpc.aio.insecure_channel(
                f"127.0.0.1:{embed_port}", options=channel_options()
            )
            stub = pb_grpc.EmbeddingServiceStub(channel)
            options = pb.AnalyzeOptions(plugins=[pb.FACE_PLUGIN_CALCULATOR])

            async def analyze(i: int) -> int:
                request = pb.AnalyzeImagesRequest(images=[photos[i % len(photos)]], options=options)
                response = await stub.AnalyzeImages(request, timeout=60)
                return len(response.images[0].faces)

            await rate(analyze, 4, 2.0)  # warm-up
            out = {}
            for concurrency in CONCURRENCY:
                counts = batching_counts(triton_url)
                _, faces_s = await rate(analyze, concurrency, args.seconds)
                print(
                    f"embed_svc on Triton over gRPC, {concurrency} in flight: {faces_s:.1f} faces/s"
                )
                print_batching(counts, batching_counts(triton_url))
                out[concurrency] = faces_s
            await channel.close()
        finally:
            _stop(embed_process)
    shutil.rmtree(work, ignore_errors=True)  # kept, with the logs, when something failed
    return out


def batching_counts(triton_url: str) -> dict[str, tuple[int, int]]:
    """Triton's own counts per model so far: (inferences, executions)."""
    client = tritonclient.grpc.InferenceServerClient(triton_url)
    counts = {}
    for model in (catalog.DETECTOR.model, catalog.DLIB_RESNET.model):
        stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
        counts[model] = (int(stats.get("inference_count", 0)), int(stats.get("execution_count", 0)))
    client.close()
    return counts


def print_batching(
    before: Mapping[str, tuple[int, int]], after: Mapping[str, tuple[int, int]]
) -> None:
    """Inferences per execution between two ``batching_counts``: the dynamic batching achieved
    (nv_inference_count / nv_inference_exec_count of Triton's metrics)."""
    for model, (inferences, executions) in after.items():
        inferences -= before[model][0]
        executions -= before[model][1]
        print(
            f"    Triton {model}: {inferences} inferences in {executions} executions "
            f"(mean batch {inferences / max(executions, 1):.2f})"
        )


class TimedBackend:
    """An inference backend that sums the milliseconds spent in each model's ``infer``."""

    def __init__(self, inner: OnnxBackend) -> None:
        self._inner = inner
        self.ms: dict[str, float] = defaultdict(float)
        """Milliseconds inside ``infer`` per model since the last reset."""

    @property
    def name(self) -> str:
        """The wrapped backend's name."""
        return self._inner.name

    async def infer(
        self, model: str, inputs: Mapping[str, InputArray], outputs: Sequence[str]
    ) -> dict[str, FloatArray]:
        """The wrapped backend's ``infer``, timed."""
        started = time.perf_counter()
        try:
            return await self._inner.infer(model, inputs, outputs)
        finally:
            self.ms[model] += (time.perf_counter() - started) * 1000.0

    async def ready_models(self) -> frozenset[str]:
        """The wrapped backend's models."""
        return await self._inner.ready_models()

    async def max_batch_size(self, model: str) -> int:
        """The wrapped backend's limit."""
        return await self._inner.max_batch_size(model)

    async def close(self) -> None:
        """Closes the wrapped backend."""
        await self._inner.close()


class TimedPredictor(LandmarkPredictor):
    """The landmark predictor, summing the CPU time (of the calling thread) of its calls."""

    def __init__(self, inner: LandmarkPredictor) -> None:
        super().__init__(inner._predictor)
        self.cpu_ms = 0.0
        """CPU milliseconds inside the predictor since the last reset."""

    def shape_in(self, image: RgbImage, rect: dlib.rectangle) -> dlib.full_object_detection:
        """The predictor's shape, timed."""
        started = time.thread_time()
        try:
            return super().shape_in(image, rect)
        finally:
            self.cpu_ms += (time.thread_time() - started) * 1000.0


#: Rows of the ``--outside`` table: (label, pipeline stage, model whose inference it holds).
OUTSIDE_ROWS = (
    ("decode", "decode", None),
    ("detector stage minus BlazeFace (letterbox, decode, HOG look)", "detector", "blazeface"),
    ("landmarks (dlib 68 points)", "landmarks", None),
    ("align (chip)", "align", None),
    ("calculator stage minus dlib ResNet (encode, normalise)", "calculator", "dlib_resnet"),
)


async def outside_networks(args: argparse.Namespace) -> None:
    """Issue 13's split of a photo's time at 1 in flight: inside the networks and outside."""
    inner = await OnnxBackend.connect(
        args.repository, [catalog.DETECTOR.model, catalog.DLIB_RESNET.model], threads=1
    )
    backend = TimedBackend(inner)
    executor = ThreadPoolExecutor(max_workers=2)
    predictor = TimedPredictor(
        LandmarkPredictor.load(package_model_path(PREDICTOR_FILE), huge_pages=not args.small_pages)
    )
    print(f"landmark predictor on {'4 KiB pages' if args.small_pages else 'huge pages'}")
    analyzer = in_process_analyzer(backend, executor, predictor)  # type: ignore[arg-type]
    photos = one_face_photos(args.faces)[: args.photos]
    print(f"{len(photos)} photos, {sum(map(len, photos)) // 1024} KiB in all")
    # The first pass warms up; the second counts the faces.
    faces = [len((await analyzer.analyze([p], PARAMS))[0][0].faces) for p in photos]
    faces = [len((await analyzer.analyze([p], PARAMS))[0][0].faces) for p in photos]
    print(f"faces found per photo: {faces} ({sum(faces)} in all)")
    rounds = []
    for repeat in range(args.repeats):
        backend.ms.clear()
        predictor.cpu_ms = 0.0
        stages: dict[str, float] = defaultdict(float)
        calls = 0
        started = time.perf_counter()
        cpu_started = time.process_time()
        while time.perf_counter() - started < args.seconds:
            _, ms = await analyzer.analyze([photos[calls % len(photos)]], PARAMS)
            for stage, value in ms.items():
                stages[stage] += value
            calls += 1
        wall = (time.perf_counter() - started) * 1000.0 / calls
        cpu = (time.process_time() - cpu_started) * 1000.0 / calls
        per = {stage: value / calls for stage, value in stages.items()}
        nets = {model: value / calls for model, value in backend.ms.items()}
        inside = sum(nets.values())
        rounds.append((wall, inside, cpu))
        print(
            f"round {repeat + 1}: {calls} photos, {wall:.1f} ms per photo ({cpu:.1f} ms of CPU, "
            "every thread; less sensitive to other jobs than the wall time), inside the networks "
            f"{inside:.1f} ms ({', '.join(f'{m} {v:.1f}' for m, v in sorted(nets.items()))}), "
            f"outside {wall - inside:.1f} ms = {(wall - inside) / wall:.0%}"
        )
        accounted = 0.0
        for label, stage, model in OUTSIDE_ROWS:
            value = per.get(stage, 0.0) - (nets.get(model, 0.0) if model else 0.0)
            accounted += per.get(stage, 0.0)
            extra = f" ({predictor.cpu_ms / calls:.1f} ms of CPU)" if stage == "landmarks" else ""
            print(f"    {label}: {value:.1f} ms{extra}")
        print(f"    between stages (event loop, executor hops): {wall - accounted:.1f} ms")
    wall = statistics.median(w for w, _, _ in rounds)
    outside = statistics.median((w - i) / w for w, i, _ in rounds)
    cpu = statistics.median(c for _, _, c in rounds)
    print(
        f"median of {args.repeats} rounds: {wall:.1f} ms per photo "
        f"({1000.0 / wall:.1f} photos/s, {cpu:.1f} ms of CPU), outside the networks {outside:.0%}"
    )
    executor.shutdown()
    await backend.close()


async def main_async(args: argparse.Namespace) -> None:
    print(f"machine: {os.cpu_count()} CPUs; {args.seconds:.0f} s per measurement")
    if args.outside:
        await outside_networks(args)
        return
    backend = await OnnxBackend.connect(
        args.repository, [catalog.DETECTOR.model, catalog.DLIB_RESNET.model], threads=1
    )
    await components(args, backend)
    photos = one_face_photos(args.faces)
    local = await pipeline_in_process(args, backend, photos)
    await backend.close()
    if args.skip_triton:
        return
    remote = await pipeline_service(args, photos)
    for concurrency in CONCURRENCY:
        print(
            f"ratio service/in-process at {concurrency} in flight: "
            f"{remote[concurrency] / local[concurrency]:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--faces", type=Path, help="photo folder (default: FACEGRID_FACES_DIR, ../shared/faces)"
    )
    parser.add_argument("--repository", type=Path, default=Path("triton_models"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--skip-triton", action="store_true")
    parser.add_argument(
        "--outside", action="store_true", help="only the split inside/outside the networks"
    )
    parser.add_argument("--photos", type=int, default=20, help="one-face photos (--outside)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (--outside)")
    parser.add_argument(
        "--small-pages",
        action="store_true",
        help="load the landmark predictor without huge pages (--outside; the old behaviour)",
    )
    args = parser.parse_args()
    args.faces = faces_dir(args.faces)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()

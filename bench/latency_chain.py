"""Latency of one detection request at 1 in flight, layer by layer (issue 13): where the REST
path's time goes beyond the in-process pipeline.

    python -m bench.latency_chain [--faces DIR] [--photos 20] [--calls 60] [--repeats 3]

In one run, a mesh started by the real launcher (free ports, a scratch data dir), then
``--repeats`` rounds, each timing ``--calls`` sequential requests (the photos in turn) at four
depths of the same detection with the calculator plugin:

- ``in process``: embed_svc's FaceAnalyzer on onnxruntime in this process (bench/envoy.py's
  InProcess, the mesh idle);
- ``embed_svc``: ``EmbeddingService.AnalyzeImages`` on the embed_svc node over gRPC (the pipeline
  on Triton, plus one gRPC hop);
- ``api_svc``: ``RecognitionService.DetectFaces`` on the api_svc node over gRPC, the multipart
  body as Envoy forwards it (plus authentication, the body, the hop to embed_svc);
- ``REST``: ``POST /api/v1/detection/detect`` through Envoy on a kept-alive connection.

Each figure is the mean wall time per request (the mean, as throughput at 1 in flight is its
inverse); the summary gives each depth's median over the rounds, what it adds to the one
before, and the ratio of in process to it (issue 13's 1-in-flight ratio, from latencies).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable

import grpc
from google.api import httpbody_pb2

from bench.data import faces_dir
from bench.envoy import (
    InProcess,
    KeptAliveClient,
    identity_photos,
    photo_arguments,
    sequential_ms,
)
from bench.mesh import Mesh, started_mesh
from bench.workload import _multipart
from facegrid.embedding.v1 import embedding_service_pb2 as embed_pb
from facegrid.embedding.v1 import embedding_service_pb2_grpc as embed_grpc
from facegrid.recognition.v1 import recognition_service_pb2 as recognition_pb
from facegrid.recognition.v1 import recognition_service_pb2_grpc as recognition_grpc

DEPTHS = ("in process", "embed_svc", "api_svc", "REST")
DETECT_PATH = "/api/v1/detection/detect?face_plugins=calculator"
#: The detection threshold api_svc sends embed_svc when a request sets none (embed_svc's own
#: default), so that the embed_svc depth runs the same detection.
THRESHOLD = 0.8
GRPC_OPTIONS = [("grpc.max_send_message_length", 64 << 20)]


def mean_ms(call: Callable[[int], object], calls: int) -> float:
    """Mean wall milliseconds of ``call(i)`` for i in 0..calls-1, one at a time."""
    total = 0.0
    for i in range(calls):
        started = time.perf_counter()
        call(i)
        total += time.perf_counter() - started
    return total / calls * 1000.0


class GrpcDepths:
    """The embed_svc and api_svc depths, on channels kept open between the rounds."""

    def __init__(self, mesh: Mesh, photos: list[bytes]) -> None:
        self._loop = asyncio.new_event_loop()

        async def channel(port: int) -> grpc.aio.Channel:  # made inside the loop it runs on
            return grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=GRPC_OPTIONS)

        self._embed_channel = self._loop.run_until_complete(channel(mesh.ports["EMBED"]))
        self._api_channel = self._loop.run_until_complete(channel(mesh.ports["API"]))
        self._embed = embed_grpc.EmbeddingServiceStub(self._embed_channel)
        self._api = recognition_grpc.RecognitionServiceStub(self._api_channel)
        self._key = mesh.keys["DETECTION"]
        options = embed_pb.AnalyzeOptions(
            plugins=[embed_pb.FACE_PLUGIN_CALCULATOR], det_prob_threshold=THRESHOLD
        )
        self._embed_requests = [
            embed_pb.AnalyzeImagesRequest(images=[data], options=options) for data in photos
        ]
        self._api_requests = []
        for data in photos:
            body, content_type = _multipart(data)
            self._api_requests.append(
                recognition_pb.DetectFacesRequest(
                    image=httpbody_pb2.HttpBody(content_type=content_type, data=body),
                    face_plugins="calculator",
                )
            )

    async def _embed_call(self, i: int) -> None:
        answer = await self._embed.AnalyzeImages(
            self._embed_requests[i % len(self._embed_requests)], timeout=60
        )
        if not answer.images[0].faces:
            raise RuntimeError(f"embed_svc found no face in photo {i % len(self._embed_requests)}")

    async def _api_call(self, i: int) -> None:
        answer = await self._api.DetectFaces(
            self._api_requests[i % len(self._api_requests)],
            metadata=[("x-api-key", self._key)],
            timeout=60,
        )
        if not answer.result:
            raise RuntimeError(f"api_svc found no face in photo {i % len(self._api_requests)}")

    def embed_ms(self, calls: int) -> float:
        """Mean milliseconds per embed_svc call."""
        return self._loop.run_until_complete(sequential_ms(self._embed_call, calls))

    def api_ms(self, calls: int) -> float:
        """Mean milliseconds per api_svc call."""
        return self._loop.run_until_complete(sequential_ms(self._api_call, calls))

    def close(self) -> None:
        self._loop.run_until_complete(self._embed_channel.close())
        self._loop.run_until_complete(self._api_channel.close())
        self._loop.close()


def run(args: argparse.Namespace) -> None:
    named = identity_photos(faces_dir(args.faces), args.photos)
    photos = [data for _, data in named]
    found: dict[str, list[float]] = defaultdict(list)
    local = InProcess(args.repository, photos)
    try:
        with started_mesh() as mesh:
            rest = KeptAliveClient(mesh.rest, photos)
            key = mesh.keys["DETECTION"]

            def rest_call(i: int) -> None:
                status, body = rest.post(DETECT_PATH, key, i)
                if status != 200:
                    raise RuntimeError(f"REST detection failed: {status} {body[:200]!r}")

            remote = GrpcDepths(mesh, photos)
            try:
                depths: dict[str, Callable[[int], float]] = {
                    "in process": local.mean_ms,
                    "embed_svc": remote.embed_ms,
                    "api_svc": remote.api_ms,
                    "REST": lambda calls: mean_ms(rest_call, calls),
                }
                for depth in DEPTHS:  # warm-up: every photo once at each depth
                    depths[depth](len(photos))
                for round_ in range(1, args.repeats + 1):
                    line = f"round {round_}:"
                    for depth in DEPTHS:
                        ms = depths[depth](args.calls)
                        found[depth].append(ms)
                        line += f" {depth} {ms:.1f} ms;"
                    print(line.rstrip(";"), flush=True)
            finally:
                remote.close()
    finally:
        local.close()
    print("summary, mean ms per request (median over the rounds); added to the depth before;")
    print("in process / this depth:")
    base = statistics.median(found["in process"])
    previous = None
    for depth in DEPTHS:
        ms = statistics.median(found[depth])
        added = f", +{ms - previous:.1f}" if previous is not None else ""
        print(f"  {depth:>10}: {ms:.1f} ms{added}, ratio {base / ms:.2f}", flush=True)
        previous = ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    photo_arguments(parser)
    parser.add_argument("--calls", type=int, default=60, help="requests per depth and round")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"{args.photos} photos; {args.calls} calls per depth, {args.repeats} rounds",
        flush=True,
    )
    run(args)


if __name__ == "__main__":
    main()

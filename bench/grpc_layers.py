"""What the services' gRPC layers cost per call (issue 13): CPU per unary call of a
``grpc.aio`` server and client in this process, bare against with the chain every Facegrid
service runs (metrics, request id with its ``rpc_finished`` log line, node header, request
decoding; the client's request-id interceptor), for a small request and for a photo-sized one
(an AnalyzeImagesRequest holding the bytes, as api_svc sends embed_svc), at 1 and 8 in flight.

    python -m bench.grpc_layers [--calls 2000] [--repeats 3] [--kib 440] [--unix]

The handler does nothing but answer an empty AnalyzeImagesResponse, so the figures are the
transport and the layers alone; both sides share this process, so a call's CPU is the
client's and the server's together. Rounds alternate bare and layered; the summary is the
median per configuration and the layered/bare ratio. Logs go to /dev/null in JSON, as the
services write them. With ``--unix`` the rounds alternate bare calls over loopback TCP and bare
calls over a Unix socket instead (the transport's share of a hop).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import grpc
import structlog

from facegrid.embedding.v1 import embedding_service_pb2 as pb
from facegrid.logs import configure
from facegrid.metrics import ServiceMetrics
from facegrid.request_id import RequestIdClientInterceptor
from facegrid.server import interceptor_chain

METHOD = "/facegrid.embedding.v1.EmbeddingService/AnalyzeImages"
LEVELS = (1, 8)


def server_chain(layered: bool) -> list[grpc.aio.ServerInterceptor]:
    """The interceptors every service runs (facegrid.server.interceptor_chain), or none."""
    return interceptor_chain(ServiceMetrics(), "bench-0") if layered else []


async def answer(request: pb.AnalyzeImagesRequest, context: Any) -> pb.AnalyzeImagesResponse:
    return pb.AnalyzeImagesResponse()


async def cpu_per_call(
    layered: bool, payload: bytes, level: int, calls: int, unix: bool = False
) -> float:
    """CPU milliseconds (client and server together) per call; over a Unix socket with
    ``unix``, else loopback TCP."""
    server = grpc.aio.server(
        interceptors=server_chain(layered),
        options=[("grpc.max_receive_message_length", 64 << 20)],
    )
    handler = grpc.unary_unary_rpc_method_handler(
        answer,
        request_deserializer=pb.AnalyzeImagesRequest.FromString,
        response_serializer=pb.AnalyzeImagesResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "facegrid.embedding.v1.EmbeddingService", {"AnalyzeImages": handler}
            )
        ]
    )
    with tempfile.TemporaryDirectory() as folder:
        if unix:
            target = f"unix:{folder}/bench.sock"
            server.add_insecure_port(target)
        else:
            target = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
        await server.start()
        return await _measure(target, layered, payload, level, calls, server)


async def _measure(
    target: str,
    layered: bool,
    payload: bytes,
    level: int,
    calls: int,
    server: grpc.aio.Server,
) -> float:
    channel = grpc.aio.insecure_channel(
        target,
        interceptors=[RequestIdClientInterceptor()] if layered else None,
        options=[("grpc.max_send_message_length", 64 << 20)],
    )
    call = channel.unary_unary(
        METHOD,
        request_serializer=pb.AnalyzeImagesRequest.SerializeToString,
        response_deserializer=pb.AnalyzeImagesResponse.FromString,
    )
    request = pb.AnalyzeImagesRequest(images=[payload])

    async def calls_from(counter: Iterator[int]) -> None:
        for _ in counter:
            await call(request, timeout=30)

    try:
        warm_up = iter(range(calls // 10))
        await asyncio.gather(*(calls_from(warm_up) for _ in range(level)))
        measured = iter(range(calls))
        started = time.process_time()
        await asyncio.gather(*(calls_from(measured) for _ in range(level)))
        return (time.process_time() - started) / calls * 1000
    finally:
        await channel.close()
        await server.stop(None)


async def run(args: argparse.Namespace) -> None:
    sizes = {"small (1 KiB)": 1024, f"photo ({args.kib} KiB)": args.kib * 1024}
    found: dict[tuple[str, int, bool], list[float]] = defaultdict(list)
    for _ in range(args.repeats):
        for label, size in sizes.items():
            payload = os.urandom(size)
            for level in LEVELS:
                for other in (False, True):
                    ms = await cpu_per_call(
                        other and not args.unix, payload, level, args.calls, other and args.unix
                    )
                    found[(label, level, other)].append(ms)
    first, second = ("TCP", "Unix") if args.unix else ("bare", "layered")
    what = "bare call" if args.unix else "call"
    print(f"CPU ms per {what} (client + server), median of the rounds; {second} / {first}:")
    for label in sizes:
        for level in LEVELS:
            first_ms = statistics.median(found[(label, level, False)])
            second_ms = statistics.median(found[(label, level, True)])
            print(
                f"  {label}, {level} in flight: {first} {first_ms:.3f}, {second} {second_ms:.3f} "
                f"(+{second_ms - first_ms:.3f} ms, x{second_ms / first_ms:.2f})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds")
    parser.add_argument("--kib", type=int, default=440, help="the photo-sized request")
    parser.add_argument(
        "--unix", action="store_true", help="bare calls: loopback TCP against a Unix socket"
    )
    args = parser.parse_args()
    sys.stdout.flush()
    configure("bench", "json")
    structlog.configure(logger_factory=structlog.WriteLoggerFactory(open(os.devnull, "w")))  # noqa: SIM115
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"{args.calls} calls per measurement, {args.repeats} rounds",
        flush=True,
    )
    asyncio.run(run(args))


if __name__ == "__main__":
    main()

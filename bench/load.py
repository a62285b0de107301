"""Load test: the mixed REST workload (detect 40%, recognise 45%, enrol 15%) through Envoy at
rising concurrency until errors or latency climb: throughput, p50/p99 and error rate per step,
and the knee.

    python -m bench.load [--faces /work/shared/faces] [--seconds 20] [--steps 1,2,4,8,16,32]
                         [--url http://127.0.0.1:8000 --recognition-key K --detection-key K]

Without --url it starts its own mesh (the real launcher, free ports, a scratch data dir). Each
step runs that many clients for --seconds, each with one request in flight; throughput is given
as a ratio to the first step's, measured in the same run. The knee is the last step before
throughput gains less than 10% while p99 more than doubles, or errors pass 1%.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.mesh import Mesh, started_mesh
from bench.workload import Client, Result, default_faces, ok, percentile, photos


@dataclass(frozen=True, slots=True)
class Step:
    """What one concurrency step measured."""

    concurrency: int
    requests: int
    errors: int
    rate: float
    """Requests per second."""
    p50_ms: float
    p99_ms: float


def run_step(clients: list[Client], seconds: float) -> list[Result]:
    """Runs every client in its own thread for ``seconds``; returns every result."""
    results: list[Result] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def loop(client: Client) -> None:
        mine = []
        while time.monotonic() < stop:
            mine.append(client.one())
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=loop, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def summarise(concurrency: int, results: list[Result], seconds: float) -> Step:
    latencies = [r.seconds * 1000 for r in results if ok(r)]
    return Step(
        concurrency,
        len(results),
        sum(not ok(r) for r in results),
        len(latencies) / seconds,
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
    )


def knee(steps: list[Step]) -> Step:
    """The last step before throughput stops paying for latency, or errors appear."""
    best = steps[0]
    for previous, step in itertools.pairwise(steps):
        if step.errors / max(step.requests, 1) > 0.01:
            break
        if step.rate < previous.rate * 1.1 and step.p99_ms > 2 * previous.p99_ms:
            break
        best = step
    return best


@contextmanager
def mesh_from(args: argparse.Namespace) -> Iterator[Mesh]:
    if args.url:
        yield Mesh(
            args.url.rstrip("/"),
            {"RECOGNITION": args.recognition_key, "DETECTION": args.detection_key},
        )
        return
    with started_mesh() as mesh:
        yield mesh


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, default=default_faces())
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--steps", default="1,2,4,8,16,32")
    parser.add_argument("--url")
    parser.add_argument("--recognition-key")
    parser.add_argument("--detection-key")
    args = parser.parse_args()
    singles, groups = photos(args.faces)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs; photos: {len(singles)} single,"
        f" {len(groups)} group; {args.seconds:g} s per step"
    )
    with mesh_from(args) as mesh:
        warm = [Client(mesh.rest, mesh.keys, singles, groups, seed=999)]
        run_step(warm, 5.0)  # models and collection loaded
        warm[0].clean_up()
        steps = []
        print("clients  requests  errors  req/s  ratio   p50 ms   p99 ms")
        for concurrency in (int(n) for n in args.steps.split(",")):
            clients = [
                Client(mesh.rest, mesh.keys, singles, groups, seed=i) for i in range(concurrency)
            ]
            step = summarise(concurrency, run_step(clients, args.seconds), args.seconds)
            for client in clients:
                client.clean_up()
            steps.append(step)
            print(
                f"{step.concurrency:7d}  {step.requests:8d}  {step.errors:6d}  {step.rate:5.1f}"
                f"  {step.rate / steps[0].rate:5.2f}x  {step.p50_ms:7.0f}  {step.p99_ms:7.0f}"
            )
        best = knee(steps)
        print(
            f"knee: {best.concurrency} clients, {best.rate:.1f} req/s,"
            f" p50 {best.p50_ms:.0f} ms, p99 {best.p99_ms:.0f} ms"
        )


if __name__ == "__main__":
    main()

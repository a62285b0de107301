"""REST through Envoy against the in-process pipeline (issue 13): faces/s of detection with the
calculator plugin and of recognise, at 1 and 8 requests in flight, as ratios to embed_svc's
FaceAnalyzer called in process on the same photos, and each mesh process's CPU at 8.

    python -m bench.envoy [--faces DIR] [--photos 20] [--seconds 60] [--repeats 3]

In one run: a mesh started by the real launcher (free ports, a scratch data dir; Triton,
embed_svc, api_svc, Envoy, PostgreSQL) with each photo enrolled under its identity; then
``--repeats`` rounds, each measuring at 1 and at 8 in flight, one after the other: the
in-process pipeline (onnxruntime, as bench/throughput.py builds it, while the mesh idles),
detection and recognise through Envoy (blocking clients in threads, one request each, on
kept-alive connections with the multipart bodies prepared once). The
ratios of a round compare points measured minutes apart at most; the summary gives each
ratio's median and range over the rounds. CPU at 8 in flight: each process with its children
(Triton's python-backend stubs, PostgreSQL's backends), as a share of the whole machine (100% =
every core) and in milliseconds per face.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import statistics
import threading
import time
import urllib.parse
from collections import defaultdict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from bench.data import faces_dir
from bench.mesh import Mesh, started_mesh
from bench.throughput import in_process_pipeline, rate
from bench.workload import _multipart, _send
from embed_svc import catalog
from embed_svc.backends.onnx import OnnxBackend

LEVELS = (1, 8)


def identity_photos(faces: Path, count: int) -> list[tuple[str, bytes]]:
    """The first ``count`` one-face photos with their identity (bench.throughput's order)."""
    manifest = json.loads((faces / "manifest.json").read_text())
    found = [
        (identity, (faces / entry["file"]).read_bytes())
        for identity, entries in manifest["identities"].items()
        for entry in entries
    ]
    return found[:count]


async def sequential_ms(call: Callable[[int], Awaitable[object]], calls: int) -> float:
    """Mean wall milliseconds of ``await call(i)`` for i in 0..calls-1, one at a time."""
    total = 0.0
    for i in range(calls):
        started = time.perf_counter()
        await call(i)
        total += time.perf_counter() - started
    return total / calls * 1000.0


class InProcess:
    """The in-process pipeline, kept open between the rounds."""

    def __init__(self, repository: Path, photos: list[bytes]) -> None:
        self._loop = asyncio.new_event_loop()
        self._backend = self._loop.run_until_complete(
            OnnxBackend.connect(
                repository, [catalog.DETECTOR.model, catalog.DLIB_RESNET.model], threads=1
            )
        )
        self._executor = ThreadPoolExecutor(max_workers=2)
        self._analyze = in_process_pipeline(self._backend, photos, self._executor)
        self._loop.run_until_complete(rate(self._analyze, 2, 2.0))  # warm-up

    def faces_per_s(self, level: int, seconds: float) -> float:
        """faces/s at ``level`` in flight over ``seconds``."""
        _, faces_s = self._loop.run_until_complete(rate(self._analyze, level, seconds))
        return faces_s

    def mean_ms(self, calls: int) -> float:
        """Mean wall milliseconds of ``calls`` calls made one at a time (the photos in turn)."""
        return self._loop.run_until_complete(sequential_ms(self._analyze, calls))

    def close(self) -> None:
        self._executor.shutdown()
        self._loop.run_until_complete(self._backend.close())
        self._loop.close()


def rest_rate(call: Callable[[int], int], level: int, seconds: float) -> tuple[float, int]:
    """(faces/s, failed calls) of ``call(i)`` (returning its face count, -1 on failure) kept
    ``level`` deep by blocking threads."""
    deadline = time.perf_counter() + seconds
    lock = threading.Lock()
    counter = iter(range(10**9))
    totals = {"faces": 0, "failed": 0}

    def worker() -> None:
        while time.perf_counter() < deadline:
            with lock:
                i = next(counter)
            found = call(i)
            with lock:
                if found < 0:
                    totals["failed"] += 1
                else:
                    totals["faces"] += found

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(level)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return totals["faces"] / (time.perf_counter() - started), totals["failed"]


def cpu_seconds(mesh: Mesh) -> dict[str, float]:
    """CPU seconds so far of each mesh process with its children, and of this process."""
    mesh.refresh_pids()
    out = {}
    pids = {name: pid for name, pid in mesh.pids.items() if name != "launcher"}
    pids["bench (REST clients)"] = os.getpid()
    for name, pid in pids.items():
        try:
            root = psutil.Process(pid)
            tree = [root] if name.startswith("bench") else [root, *root.children(recursive=True)]
            out[name] = sum(p.cpu_times().user + p.cpu_times().system for p in tree)
        except psutil.NoSuchProcess:
            out[name] = 0.0
    return out


class KeptAliveClient:
    """POSTs prepared multipart bodies over one kept-alive HTTP/1.1 connection per thread, as
    a client library with a session does (a new TCP connection and a body built per request
    cost the 2-core machine about 2 ms of CPU per face that the in-process side does not pay)."""

    def __init__(self, rest: str, photos: list[bytes]) -> None:
        parsed = urllib.parse.urlsplit(rest)
        self._host = parsed.hostname or "127.0.0.1"
        self._port = parsed.port or 80
        self._bodies = [_multipart(data) for data in photos]
        self._local = threading.local()

    def post(self, path: str, key: str, i: int) -> tuple[int, bytes]:
        """(status, body) of POST ``path`` with photo ``i`` (mod n); status 0 when the
        connection failed (it is reopened by the next call)."""
        body, content_type = self._bodies[i % len(self._bodies)]
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=120)
            self._local.connection = connection
        try:
            connection.request("POST", path, body, {"x-api-key": key, "content-type": content_type})
            reply = connection.getresponse()
            return reply.status, reply.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            self._local.connection = None
            return 0, b""


def rest_calls(mesh: Mesh, named: list[tuple[str, bytes]]) -> dict[str, Callable[[int], int]]:
    """Enrols each photo under its identity; the two REST calls measured, by label."""
    photos = [data for _, data in named]
    client = KeptAliveClient(mesh.rest, photos)
    key = mesh.keys["RECOGNITION"]
    for identity, data in named:
        query = urllib.parse.urlencode({"subject": identity, "det_prob_threshold": 0.5})
        status, body = _send("POST", f"{mesh.rest}/api/v1/recognition/faces?{query}", key, data)
        if status != 201:
            raise RuntimeError(f"enrolment failed: {status} {body[:200]!r}")
    paths = {
        "detection": ("/api/v1/detection/detect?face_plugins=calculator", mesh.keys["DETECTION"]),
        "recognise": ("/api/v1/recognition/recognize", key),
    }
    calls: dict[str, Callable[[int], int]] = {}
    for label, (path, api_key) in paths.items():

        def call(i: int, path: str = path, api_key: str = api_key) -> int:
            status, body = client.post(path, api_key, i)
            return len(json.loads(body)["result"]) if status == 200 else -1

        rest_rate(call, 2, 2.0)  # warm-up
        calls[label] = call
    return calls


def measured_rest(
    mesh: Mesh, label: str, call: Callable[[int], int], level: int, seconds: float
) -> float:
    """faces/s of ``call`` at ``level``; at the top level also each process's CPU."""
    before = cpu_seconds(mesh)
    started = time.perf_counter()
    faces_s, failed = rest_rate(call, level, seconds)
    wall = time.perf_counter() - started
    after = cpu_seconds(mesh)
    if failed:
        print(f"    {label}: {failed} calls failed", flush=True)
    if level == max(LEVELS):
        cores = psutil.cpu_count() or 1
        used = {n: after[n] - before.get(n, 0.0) for n in after}
        faces = faces_s * wall
        print(
            f"    {label} at {level}, CPU share of the machine (ms per face): "
            + ", ".join(
                f"{n} {u / wall / cores:.0%} ({u / faces * 1000:.1f})"
                for n, u in sorted(used.items())
                if u / wall / cores >= 0.005
            )
            + f"; all {sum(used.values()) / wall / cores:.0%}"
            f" ({sum(used.values()) / faces * 1000:.1f})",
            flush=True,
        )
    return faces_s


def interleaved(args: argparse.Namespace, named: list[tuple[str, bytes]]) -> None:
    """``args.repeats`` rounds of in process / detection / recognise at each level."""
    local = InProcess(args.repository, [data for _, data in named])
    ratios: dict[tuple[str, int], list[float]] = defaultdict(list)
    rates: dict[tuple[str, int], list[float]] = defaultdict(list)
    try:
        with started_mesh(api_nodes=args.api_nodes, embed_nodes=args.embed_nodes) as mesh:
            calls = rest_calls(mesh, named)
            for round_ in range(1, args.repeats + 1):
                for level in LEVELS:
                    local_s = local.faces_per_s(level, args.seconds)
                    rates[("in process", level)].append(local_s)
                    line = f"round {round_}, {level} in flight: in process {local_s:.1f} faces/s"
                    for label, call in calls.items():
                        faces_s = measured_rest(mesh, label, call, level, args.seconds)
                        rates[(label, level)].append(faces_s)
                        ratios[(label, level)].append(faces_s / local_s)
                        line += f"; {label} {faces_s:.1f} ({faces_s / local_s:.2f})"
                    print(line, flush=True)
    finally:
        local.close()
    print("summary (median over the rounds, range):")
    for level in LEVELS:
        base = rates[("in process", level)]
        print(f"  {level} in flight: in process {statistics.median(base):.1f} faces/s", end="")
        for label in ("detection", "recognise"):
            values = ratios[(label, level)]
            print(
                f"; {label} {statistics.median(rates[(label, level)]):.1f} faces/s, ratio "
                f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})",
                end="",
            )
        print(flush=True)


def photo_arguments(parser: argparse.ArgumentParser) -> None:
    """``--faces``, ``--repository`` and ``--photos``: the photos and the models of the runs."""
    parser.add_argument(
        "--faces", type=Path, help="photo folder (default: FACEGRID_FACES_DIR, ../shared/faces)"
    )
    parser.add_argument("--repository", type=Path, default=Path("triton_models"))
    parser.add_argument("--photos", type=int, default=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    photo_arguments(parser)
    parser.add_argument("--seconds", type=float, default=60.0, help="per point")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--api-nodes", type=int, default=1, help="api_svc processes")
    parser.add_argument("--embed-nodes", type=int, default=1, help="embed_svc processes")
    args = parser.parse_args()
    named = identity_photos(faces_dir(args.faces), args.photos)
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"{len(named)} photos; {args.seconds:.0f} s per point, {args.repeats} rounds",
        flush=True,
    )
    interleaved(args, named)


if __name__ == "__main__":
    main()

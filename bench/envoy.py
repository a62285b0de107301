"""REST through Envoy against the in-process pipeline (issue 13): faces/s of detection with the
calculator plugin and of recognise, at 1 and 8 requests in flight, as ratios to embed_svc's
FaceAnalyzer called in process on the same photos, and each mesh process's CPU share at 8.

    python -m bench.envoy [--faces DIR] [--photos 20] [--seconds 20]

In one run: the in-process pipeline (onnxruntime, as bench/throughput.py builds it) at 1 and 8
in flight, then a mesh started by the real launcher (free ports, a scratch data dir; Triton,
embed_svc, api_svc, Envoy, PostgreSQL) with each photo enrolled under its identity, then
detection and recognise through Envoy at 1 and 8 in flight (blocking clients in threads, one
request each). CPU shares are of the whole machine (100% = every core), each process with its
children (Triton's python-backend stubs, PostgreSQL's backends), over the 8-in-flight runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from bench.data import faces_dir
from bench.mesh import Mesh, started_mesh
from bench.throughput import in_process_pipeline, rate
from bench.workload import _send
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


async def in_process(args: argparse.Namespace, photos: list[bytes]) -> dict[int, float]:
    """The in-process pipeline's faces/s per level."""
    backend = await OnnxBackend.connect(
        args.repository, [catalog.DETECTOR.model, catalog.DLIB_RESNET.model], threads=1
    )
    executor = ThreadPoolExecutor(max_workers=2)
    analyze = in_process_pipeline(backend, photos, executor)
    await rate(analyze, 2, 2.0)  # warm-up
    out = {}
    for level in LEVELS:
        _, faces_s = await rate(analyze, level, args.seconds)
        print(f"in process, {level} in flight: {faces_s:.1f} faces/s", flush=True)
        out[level] = faces_s
    executor.shutdown()
    await backend.close()
    return out


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


def through_envoy(
    args: argparse.Namespace, named: list[tuple[str, bytes]], local: dict[int, float]
) -> None:
    """Detection and recognise through Envoy, ratios to ``local``, CPU shares at 8."""
    photos = [data for _, data in named]
    with started_mesh() as mesh:
        key = mesh.keys["RECOGNITION"]
        for identity, data in named:
            query = urllib.parse.urlencode({"subject": identity, "det_prob_threshold": 0.5})
            status, body = _send("POST", f"{mesh.rest}/api/v1/recognition/faces?{query}", key, data)
            if status != 201:
                raise RuntimeError(f"enrolment failed: {status} {body[:200]!r}")
        calls = {
            "detection (calculator)": (
                f"{mesh.rest}/api/v1/detection/detect?face_plugins=calculator",
                mesh.keys["DETECTION"],
            ),
            "recognise": (f"{mesh.rest}/api/v1/recognition/recognize", key),
        }
        for label, (url, api_key) in calls.items():

            def call(i: int, url: str = url, api_key: str = api_key) -> int:
                status, body = _send("POST", url, api_key, photos[i % len(photos)])
                return len(json.loads(body)["result"]) if status == 200 else -1

            rest_rate(call, 2, 2.0)  # warm-up
            for level in LEVELS:
                before = cpu_seconds(mesh)
                started = time.perf_counter()
                faces_s, failed = rest_rate(call, level, args.seconds)
                wall = time.perf_counter() - started
                after = cpu_seconds(mesh)
                print(
                    f"{label} through Envoy, {level} in flight: {faces_s:.1f} faces/s "
                    f"({failed} failed), ratio to in process {faces_s / local[level]:.2f}",
                    flush=True,
                )
                if level == max(LEVELS):
                    cores = psutil.cpu_count() or 1
                    shares = {n: (after[n] - before.get(n, 0.0)) / wall / cores for n in after}
                    print(
                        "    CPU share of the machine: "
                        + ", ".join(f"{n} {s:.0%}" for n, s in sorted(shares.items()))
                        + f"; all {sum(shares.values()):.0%}",
                        flush=True,
                    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--faces", type=Path, help="photo folder (default: FACEGRID_FACES_DIR, ../shared/faces)"
    )
    parser.add_argument("--repository", type=Path, default=Path("triton_models"))
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    named = identity_photos(faces_dir(args.faces), args.photos)
    print(f"machine: {os.cpu_count()} CPUs; {len(named)} photos; {args.seconds:.0f} s per point")
    local = asyncio.run(in_process(args, [data for _, data in named]))
    through_envoy(args, named, local)


if __name__ == "__main__":
    main()
